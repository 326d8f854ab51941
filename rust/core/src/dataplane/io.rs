//! Socket plumbing of the I/O thread: one stream type over TCP and Unix sockets, and the
//! per-side write queue.

use std::io::{self, Read, Write};
use std::net::Shutdown;
use std::os::fd::OwnedFd;

use mio::event::Source;
use mio::{Interest, Registry, Token};

/// A client or backend socket handed over by Python (TCP or Unix stream).
pub(crate) enum Stream {
    Tcp(mio::net::TcpStream),
    Unix(mio::net::UnixStream),
}

impl Stream {
    /// Takes ownership of `fd`. The kind is told by the socket's own address family: a Unix
    /// socket has a `sockaddr_un` name (possibly unnamed), anything else must be TCP. The
    /// socket is (again) put in non-blocking mode: the I/O thread must never block on it.
    pub(crate) fn from_fd(fd: OwnedFd) -> io::Result<Stream> {
        let unix = std::os::unix::net::UnixStream::from(fd);
        if unix.local_addr().is_ok() {
            unix.set_nonblocking(true)?;
            return Ok(Stream::Unix(mio::net::UnixStream::from_std(unix)));
        }
        let tcp = std::net::TcpStream::from(OwnedFd::from(unix));
        // Fails for anything that is not an IP socket (a pipe, a file): refused.
        tcp.local_addr()?;
        tcp.set_nonblocking(true)?;
        Ok(Stream::Tcp(mio::net::TcpStream::from_std(tcp)))
    }

    pub(crate) fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Stream::Tcp(s) => s.read(buf),
            Stream::Unix(s) => s.read(buf),
        }
    }

    pub(crate) fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Stream::Tcp(s) => s.write(buf),
            Stream::Unix(s) => s.write(buf),
        }
    }

    /// Sends FIN even if Python still holds a duplicate of the descriptor (closing ours alone
    /// would not end the connection then).
    pub(crate) fn shutdown_write(&self) {
        let _ = match self {
            Stream::Tcp(s) => s.shutdown(Shutdown::Write),
            Stream::Unix(s) => s.shutdown(Shutdown::Write),
        };
    }
}

impl Source for Stream {
    fn register(&mut self, r: &Registry, t: Token, i: Interest) -> io::Result<()> {
        match self {
            Stream::Tcp(s) => s.register(r, t, i),
            Stream::Unix(s) => s.register(r, t, i),
        }
    }
    fn reregister(&mut self, r: &Registry, t: Token, i: Interest) -> io::Result<()> {
        match self {
            Stream::Tcp(s) => s.reregister(r, t, i),
            Stream::Unix(s) => s.reregister(r, t, i),
        }
    }
    fn deregister(&mut self, r: &Registry) -> io::Result<()> {
        match self {
            Stream::Tcp(s) => s.deregister(r),
            Stream::Unix(s) => s.deregister(r),
        }
    }
}

/// Write-queue capacity kept once a queue is empty.
const KEEP_CAPACITY: usize = 256 * 1024;

/// Result of writing to a socket.
pub(crate) enum Wrote {
    /// Everything handed over was written (or queued: see `Side::send`).
    Done,
    /// The peer is gone (EPIPE, ECONNRESET, ...): the error text.
    Failed(String),
}

/// One socket and the bytes still to be written to it.
pub(crate) struct Side {
    pub(crate) stream: Stream,
    queue: Vec<u8>,
    /// Start of the unwritten part of `queue`.
    pos: usize,
    /// The last event said readable and no read since returned WouldBlock (edge-triggered:
    /// no new event comes while this is true, so the data plane must remember it).
    pub(crate) readable: bool,
    /// The peer closed its end (EPOLLRDHUP) or the socket errored: a short read does not
    /// mean "drained", read on until EOF.
    pub(crate) hup: bool,
    /// Read returned 0 or failed: never read again.
    pub(crate) eof: bool,
    /// A write failed: never write again (what is queued or sent later is discarded).
    pub(crate) dead: bool,
}

impl Side {
    pub(crate) fn new(stream: Stream) -> Self {
        Side { stream, queue: Vec::new(), pos: 0, readable: true, hup: false, eof: false, dead: false }
    }

    /// Bytes waiting to be written.
    pub(crate) fn queued(&self) -> usize {
        self.queue.len().saturating_sub(self.pos)
    }

    /// Writes `data` after what is queued: at once as far as the socket takes it, the rest is
    /// kept (the WRITABLE edge tells when to go on). `*written` grows by the bytes written.
    pub(crate) fn send(&mut self, data: &[u8], written: &mut u64) -> Wrote {
        if self.dead || data.is_empty() {
            return Wrote::Done;
        }
        if self.queued() > 0 {
            self.queue.extend_from_slice(data);
            return self.flush(written);
        }
        let mut at = 0;
        while at < data.len() {
            let rest = data.get(at..).unwrap_or_default();
            match self.stream.write(rest) {
                Ok(0) => return self.fail("write returned 0".into()),
                Ok(n) => {
                    at += n;
                    *written += n as u64;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    self.queue.clear();
                    self.pos = 0;
                    self.queue.extend_from_slice(rest);
                    return Wrote::Done;
                }
                Err(e) => return self.fail(e.to_string()),
            }
        }
        Wrote::Done
    }

    /// Writes what is queued until the socket would block.
    pub(crate) fn flush(&mut self, written: &mut u64) -> Wrote {
        while !self.dead && self.pos < self.queue.len() {
            let rest = self.queue.get(self.pos..).unwrap_or_default();
            match self.stream.write(rest) {
                Ok(0) => return self.fail("write returned 0".into()),
                Ok(n) => {
                    self.pos += n;
                    *written += n as u64;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) => return self.fail(e.to_string()),
            }
        }
        if self.pos >= self.queue.len() {
            // Keep the capacity (the steady state allocates nothing), but not what a burst
            // to a slow peer grew it to: many idle sessions must not each hold megabytes.
            self.queue.clear();
            self.pos = 0;
            if self.queue.capacity() > KEEP_CAPACITY {
                self.queue.shrink_to(KEEP_CAPACITY);
            }
        } else if self.pos > self.queue.len() / 2 {
            self.queue.drain(..self.pos);
            self.pos = 0;
        }
        Wrote::Done
    }

    fn fail(&mut self, e: String) -> Wrote {
        self.dead = true;
        self.queue = Vec::new();
        self.pos = 0;
        Wrote::Failed(e)
    }
}
