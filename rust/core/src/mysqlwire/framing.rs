//! Packet framing (MySQL "MySQL Packets"): every packet is a 3-byte little-endian payload
//! length, a 1-byte sequence id, then the payload. A payload of 2^24-1 bytes or more is
//! split into frames of exactly 0xffffff bytes followed by one shorter frame (possibly
//! empty); the sequence id increments by one per frame (mod 256).
//!
//! [`PacketDecoder`] is a sans-I/O state machine: feed it whatever bytes arrived and it
//! answers "need more data", "here are complete logical packets" or an error. The size
//! limit is enforced from the headers, before the payload is buffered.

use crate::{Error, Result};

/// Largest payload of one frame; a frame of exactly this size continues in the next one.
pub const MAX_FRAME_PAYLOAD: usize = 0xff_ffff;

/// One logical packet: the sequence id of its first frame and its reassembled payload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Packet {
    pub seq: u8,
    pub payload: Vec<u8>,
    /// sequence id the sender will use for its next packet (first seq + frame count)
    pub next_seq: u8,
}

/// Result of one `feed`.
#[derive(Debug, PartialEq, Eq)]
pub enum Decoded {
    /// No complete packet yet; the bytes are buffered.
    NeedMore,
    /// One or more complete packets, in order. Trailing partial bytes stay buffered.
    Packets(Vec<Packet>),
}

/// Explicit decoder state.
#[derive(Debug)]
enum State {
    /// Between logical packets.
    Ready,
    /// Inside a multi-frame payload: frames of 0xffffff bytes seen so far.
    Assembling { first_seq: u8, next_seq: u8, payload: Vec<u8> },
    /// A protocol error happened; the stream cannot be resynchronised.
    Failed(Error),
}

#[derive(Debug)]
pub struct PacketDecoder {
    state: State,
    /// bytes received but not yet consumed (at most one partial frame)
    buf: Vec<u8>,
    max_payload: usize,
}

impl PacketDecoder {
    /// `max_payload`: the largest logical payload accepted (e.g. limits.max_message_bytes).
    pub fn new(max_payload: usize) -> Self {
        PacketDecoder { state: State::Ready, buf: Vec::new(), max_payload }
    }

    pub fn set_max_payload(&mut self, max_payload: usize) {
        self.max_payload = max_payload;
    }

    /// Bytes buffered and not yet part of a returned packet.
    pub fn buffered(&self) -> usize {
        let partial = match &self.state {
            State::Assembling { payload, .. } => payload.len(),
            _ => 0,
        };
        self.buf.len() + partial
    }

    /// True when no partial packet is pending.
    pub fn is_idle(&self) -> bool {
        matches!(self.state, State::Ready) && self.buf.is_empty()
    }

    /// Hand back the raw bytes received after the last complete packet (e.g. a TLS
    /// ClientHello that arrived in the same chunk as an SSLRequest) and reset the decoder.
    /// Fails inside a multi-frame payload, where those bytes are not a clean stream position.
    pub fn take_raw(&mut self) -> Result<Vec<u8>> {
        match self.state {
            State::Ready => Ok(std::mem::take(&mut self.buf)),
            State::Assembling { .. } => Err(Error::Frame { message: "raw bytes requested inside a multi-frame packet".into() }),
            State::Failed(ref e) => Err(e.clone()),
        }
    }

    /// Feed received bytes. After an error every later call returns the same error.
    pub fn feed(&mut self, data: &[u8]) -> Result<Decoded> {
        if let State::Failed(e) = &self.state {
            return Err(e.clone());
        }
        // Fast path: nothing buffered, parse straight from `data` (no copy of the chunk).
        let mut owned = std::mem::take(&mut self.buf);
        let input: &[u8] = if owned.is_empty() {
            data
        } else {
            owned.extend_from_slice(data);
            &owned
        };
        let mut out = Vec::new();
        let res = self.parse(input, &mut out);
        match res {
            Ok(consumed) => {
                let rest = input.get(consumed..).unwrap_or(&[]);
                let rest = rest.to_vec();
                self.buf = rest;
                if out.is_empty() {
                    Ok(Decoded::NeedMore)
                } else {
                    Ok(Decoded::Packets(out))
                }
            }
            Err(e) => {
                self.state = State::Failed(e.clone());
                self.buf = Vec::new();
                Err(e)
            }
        }
    }

    /// Parse as many frames as `input` holds; returns bytes consumed. An error after some
    /// complete packets is deferred: those packets are returned and the offending bytes stay
    /// buffered, so the next `feed` reports it (and `take_raw` can still hand them over,
    /// e.g. a TLS ClientHello right behind an SSLRequest, whose record header read as a
    /// MySQL header claims 66 KB or more).
    fn parse(&mut self, input: &[u8], out: &mut Vec<Packet>) -> Result<usize> {
        let mut pos = 0usize;
        match self.parse_from(input, out, &mut pos) {
            Ok(()) => Ok(pos),
            Err(_) if !out.is_empty() => Ok(pos),
            Err(e) => Err(e),
        }
    }

    fn parse_from(&mut self, input: &[u8], out: &mut Vec<Packet>, pos_out: &mut usize) -> Result<()> {
        let mut pos = *pos_out;
        loop {
            *pos_out = pos;
            let Some(hdr) = input.get(pos..pos + 4) else { return Ok(()) };
            let len = usize::from(hdr[0]) | usize::from(hdr[1]) << 8 | usize::from(hdr[2]) << 16;
            let seq = hdr[3];
            // Size and sequence checks from the header alone, before buffering the payload.
            let so_far = match &self.state {
                State::Assembling { next_seq, payload, .. } => {
                    if seq != *next_seq {
                        return Err(Error::Frame {
                            message: format!(
                                "packets out of order: continuation frame has sequence id {seq}, expected {next_seq}"
                            ),
                        });
                    }
                    payload.len()
                }
                _ => 0,
            };
            let total = so_far.saturating_add(len);
            if total > self.max_payload {
                return Err(Error::TooLarge { size: total, limit: self.max_payload });
            }
            let body_end = pos + 4 + len;
            let Some(body) = input.get(pos + 4..body_end) else { return Ok(()) };
            pos = body_end;
            *pos_out = pos;
            let state = std::mem::replace(&mut self.state, State::Ready);
            match state {
                State::Ready => {
                    if len == MAX_FRAME_PAYLOAD {
                        self.state = State::Assembling {
                            first_seq: seq,
                            next_seq: seq.wrapping_add(1),
                            payload: body.to_vec(),
                        };
                    } else {
                        out.push(Packet { seq, payload: body.to_vec(), next_seq: seq.wrapping_add(1) });
                    }
                }
                State::Assembling { first_seq, next_seq, mut payload } => {
                    payload.extend_from_slice(body);
                    if len == MAX_FRAME_PAYLOAD {
                        self.state = State::Assembling { first_seq, next_seq: next_seq.wrapping_add(1), payload };
                    } else {
                        out.push(Packet { seq: first_seq, payload, next_seq: next_seq.wrapping_add(1) });
                    }
                }
                State::Failed(e) => return Err(e),
            }
        }
    }
}

/// Frame `payload` starting at sequence id `seq`; returns the bytes and the next sequence id.
pub fn frame_into(out: &mut Vec<u8>, payload: &[u8], seq: u8) -> u8 {
    let mut seq = seq;
    let mut rest = payload;
    loop {
        let n = rest.len().min(MAX_FRAME_PAYLOAD);
        let (head, tail) = rest.split_at(n);
        out.extend_from_slice(&(n as u32).to_le_bytes()[..3]);
        out.push(seq);
        out.extend_from_slice(head);
        seq = seq.wrapping_add(1);
        rest = tail;
        if n < MAX_FRAME_PAYLOAD {
            return seq;
        }
    }
}

pub fn frame(payload: &[u8], seq: u8) -> Vec<u8> {
    let mut out = Vec::with_capacity(payload.len() + 4);
    frame_into(&mut out, payload, seq);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn packets(d: Decoded) -> Vec<Packet> {
        match d {
            Decoded::Packets(p) => p,
            Decoded::NeedMore => vec![],
        }
    }

    #[test]
    fn single_and_split() {
        let mut d = PacketDecoder::new(1 << 20);
        let mut bytes = frame(b"\x03SELECT 1", 0);
        bytes.extend(frame(b"\x0e", 0));
        // byte by byte
        let mut got = vec![];
        for b in &bytes {
            got.extend(packets(d.feed(&[*b]).unwrap()));
        }
        assert_eq!(got.len(), 2);
        assert_eq!(got[0].payload, b"\x03SELECT 1");
        assert_eq!(got[1].payload, b"\x0e");
        assert!(d.is_idle());
        // all at once
        let got = packets(d.feed(&bytes).unwrap());
        assert_eq!(got.len(), 2);
    }

    #[test]
    fn multi_frame_roundtrip() {
        for size in [MAX_FRAME_PAYLOAD - 1, MAX_FRAME_PAYLOAD, MAX_FRAME_PAYLOAD + 1, 2 * MAX_FRAME_PAYLOAD] {
            let payload: Vec<u8> = (0..size).map(|i| (i % 251) as u8).collect();
            let bytes = frame(&payload, 0);
            let frames = size / MAX_FRAME_PAYLOAD + 1;
            assert_eq!(bytes.len(), size + 4 * frames);
            let mut d = PacketDecoder::new(64 << 20);
            let mut got = vec![];
            for chunk in bytes.chunks(1 << 20) {
                got.extend(packets(d.feed(chunk).unwrap()));
            }
            assert_eq!(got.len(), 1);
            assert_eq!(got[0].payload.len(), size);
            assert!(got[0].payload == payload);
            assert_eq!(got[0].next_seq, frames as u8);
        }
    }

    #[test]
    fn oversize_rejected_from_header() {
        let mut d = PacketDecoder::new(100);
        let err = d.feed(&[101, 0, 0, 0]).unwrap_err();
        assert_eq!(err, Error::TooLarge { size: 101, limit: 100 });
        // poisoned afterwards
        assert!(d.feed(&frame(b"\x0e", 0)).is_err());
        // multi-frame: rejected at the first frame header once the total exceeds
        let mut d = PacketDecoder::new(MAX_FRAME_PAYLOAD + 10);
        let mut hdr = vec![0xff, 0xff, 0xff, 0];
        hdr.extend(std::iter::repeat(0u8).take(MAX_FRAME_PAYLOAD));
        assert_eq!(d.feed(&hdr).unwrap(), Decoded::NeedMore);
        assert!(matches!(d.feed(&[20, 0, 0, 1]), Err(Error::TooLarge { .. })));
    }

    #[test]
    fn wrong_continuation_seq() {
        let mut d = PacketDecoder::new(64 << 20);
        let mut b = vec![0xff, 0xff, 0xff, 0];
        b.extend(std::iter::repeat(1u8).take(MAX_FRAME_PAYLOAD));
        b.extend([1, 0, 0, 5, 9]);
        assert!(matches!(d.feed(&b), Err(Error::Frame { .. })));
    }

    #[test]
    fn truncated_is_need_more() {
        let mut d = PacketDecoder::new(1000);
        assert_eq!(d.feed(&[5, 0]).unwrap(), Decoded::NeedMore);
        assert_eq!(d.feed(&[0, 0, 1, 2]).unwrap(), Decoded::NeedMore);
        assert_eq!(d.buffered(), 6);
        let got = packets(d.feed(&[3, 4, 5]).unwrap());
        assert_eq!(got[0].payload, vec![1, 2, 3, 4, 5]);
    }

    #[test]
    fn random_garbage_never_panics() {
        // deterministic pseudo-random bytes
        let mut x: u32 = 12345;
        for limit in [0usize, 3, 100, 1 << 16] {
            let mut d = PacketDecoder::new(limit);
            for _ in 0..2000 {
                x = x.wrapping_mul(1_103_515_245).wrapping_add(12345);
                let n = (x >> 16) as usize % 17;
                let chunk: Vec<u8> = (0..n).map(|i| (x >> (i % 24)) as u8).collect();
                let _ = d.feed(&chunk);
            }
        }
    }

    #[test]
    fn take_raw_after_packet() {
        let mut d = PacketDecoder::new(1000);
        let mut b = frame(b"ssl", 1);
        b.extend_from_slice(b"\x16\x03\x01tls");
        let got = packets(d.feed(&b).unwrap());
        assert_eq!(got.len(), 1);
        assert_eq!(d.take_raw().unwrap(), b"\x16\x03\x01tls");
        assert!(d.is_idle());
        // without take_raw, the oversized "header" is reported by the next feed
        let mut d = PacketDecoder::new(1000);
        assert_eq!(packets(d.feed(&b).unwrap()).len(), 1);
        assert!(matches!(d.feed(b""), Err(Error::TooLarge { .. })));
    }

    #[test]
    fn empty_payload_packet() {
        let mut d = PacketDecoder::new(10);
        let got = packets(d.feed(&[0, 0, 0, 3]).unwrap());
        assert_eq!(got, vec![Packet { seq: 3, payload: vec![], next_seq: 4 }]);
    }
}
