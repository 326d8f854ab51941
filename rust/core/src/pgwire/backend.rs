//! Server → proxy direction: a zero-copy scanner.
//!
//! Result rows (`DataRow`, `RowDescription`, `CopyData`, ...) are never decoded or held: the
//! scanner only walks message headers, reports the few messages the relay's state machine
//! needs, and says how many bytes can be forwarded right now. A message the relay does not
//! inspect may be forwarded before its end has arrived (the caller carries `skip`, the bytes
//! of it still to come), so a 100 MB row streams through without being buffered. Messages
//! the relay inspects are small and are only reported once complete.

use std::borrow::Cow;

use super::{be_i32, cstr, frame};
use crate::{Error, Result};

/// What the relay learns from one backend message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event<'a> {
    /// 'Z' ReadyForQuery: transaction status `I`, `T` or `E`.
    Ready { status: u8 },
    /// 'C' CommandComplete: the tag and its trailing row count when it has one.
    Complete { tag: Cow<'a, str>, rows: Option<u64> },
    /// 'E' ErrorResponse: non-localized severity (`V`, else `S`), SQLSTATE (`C`), message (`M`).
    Error { severity: Cow<'a, str>, code: Cow<'a, str>, message: Cow<'a, str> },
    /// 'S' ParameterStatus.
    Param { name: Cow<'a, str>, value: Cow<'a, str> },
    /// 'K' BackendKeyData (protocol 3.0: 4-byte key; 3.2: up to 256 bytes).
    KeyData { pid: i32, key: &'a [u8] },
    /// 'R' Authentication*: the request code and the rest of the body (salt, SASL data).
    Auth { code: i32, data: &'a [u8] },
    /// 'G' CopyInResponse, 'H' CopyOutResponse, 'W' CopyBothResponse.
    CopyIn,
    CopyOut,
    CopyBoth,
    /// 'I' EmptyQueryResponse, 's' PortalSuspended.
    EmptyQuery,
    Suspended,
    /// 'v' NegotiateProtocolVersion.
    NegotiateVersion,
}

/// An event with the position of its whole message in the scanned buffer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Located<'a> {
    pub tag: u8,
    pub start: usize,
    pub end: usize,
    pub event: Event<'a>,
}

/// Result of one [`scan`] call.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Scan<'a> {
    /// `buf[..forward]` can be sent to the client now; the rest must be kept and presented
    /// again (prefixed to the next chunk).
    pub forward: usize,
    /// Bytes of a forwarded-but-unfinished message still to come: pass to the next call.
    pub skip: usize,
    /// Size of the incomplete inspected message at `forward` (0 when unknown): no need to
    /// scan again before that many bytes are pending.
    pub need: usize,
    pub events: Vec<Located<'a>>,
}

/// Tags whose body the relay needs (everything else streams through).
#[inline]
fn interesting(tag: u8) -> bool {
    matches!(tag, b'Z' | b'C' | b'E' | b'S' | b'K' | b'R' | b'G' | b'H' | b'W' | b'I' | b's' | b'v')
}

/// Scan `buf` (the unforwarded bytes of the backend stream). `skip` is the value returned
/// by the previous call. `max_inspected` bounds a message the relay must hold in full.
pub fn scan(buf: &[u8], skip: usize, max_inspected: usize) -> Result<Scan<'_>> {
    let mut out = Scan::default();
    let mut at = 0usize;
    if skip > 0 {
        if skip >= buf.len() {
            out.forward = buf.len();
            out.skip = skip - buf.len();
            return Ok(out);
        }
        at = skip;
    }
    while buf.len().saturating_sub(at) >= 5 {
        let tag = *buf.get(at).ok_or_else(|| frame("missing type byte"))?;
        let len = be_i32(buf, at + 1)?;
        if len < 4 {
            return Err(frame(&format!("backend message has invalid length {len}")));
        }
        let total = (len as usize) + 1;
        let end = at.checked_add(total).ok_or_else(|| frame("length overflow"))?;
        if interesting(tag) {
            if total > max_inspected {
                return Err(Error::TooLarge { size: total, limit: max_inspected });
            }
            let Some(body) = buf.get(at + 5..end) else {
                out.need = total;
                break;
            };
            out.events.push(Located { tag, start: at, end, event: decode(tag, body)? });
            at = end;
        } else if end > buf.len() {
            out.skip = end - buf.len();
            at = buf.len();
            break;
        } else {
            at = end;
        }
    }
    out.forward = at;
    Ok(out)
}

#[inline]
fn lossy(b: &[u8]) -> Cow<'_, str> {
    String::from_utf8_lossy(b)
}

fn decode(tag: u8, body: &[u8]) -> Result<Event<'_>> {
    Ok(match tag {
        b'Z' => match body {
            [s @ (b'I' | b'T' | b'E')] => Event::Ready { status: *s },
            _ => return Err(frame("ReadyForQuery with an invalid status")),
        },
        b'C' => {
            let (tag, _) = cstr(body, 0)?;
            let rows = tag
                .rsplit(|&b| b == b' ')
                .next()
                .filter(|_| tag.contains(&b' '))
                .and_then(|n| std::str::from_utf8(n).ok())
                .and_then(|n| n.parse::<u64>().ok());
            Event::Complete { tag: lossy(tag), rows }
        }
        b'E' => {
            let (mut sev, mut sev_v, mut code, mut msg): (&[u8], &[u8], &[u8], &[u8]) = (b"", b"", b"", b"");
            let mut at = 0usize;
            loop {
                let kind = *body.get(at).ok_or_else(|| frame("ErrorResponse is not terminated"))?;
                if kind == 0 {
                    break;
                }
                let (value, next) = cstr(body, at + 1)?;
                match kind {
                    b'S' => sev = value,
                    b'V' => sev_v = value,
                    b'C' => code = value,
                    b'M' => msg = value,
                    _ => {}
                }
                at = next;
            }
            Event::Error {
                severity: lossy(if sev_v.is_empty() { sev } else { sev_v }),
                code: lossy(code),
                message: lossy(msg),
            }
        }
        b'S' => {
            let (name, n1) = cstr(body, 0)?;
            let (value, _) = cstr(body, n1)?;
            Event::Param { name: lossy(name), value: lossy(value) }
        }
        b'K' => {
            let pid = be_i32(body, 0)?;
            let key = body.get(4..).unwrap_or(&[]);
            if key.is_empty() || key.len() > 256 {
                return Err(frame("BackendKeyData has an invalid key length"));
            }
            Event::KeyData { pid, key }
        }
        b'R' => Event::Auth { code: be_i32(body, 0)?, data: body.get(4..).unwrap_or(&[]) },
        b'G' => Event::CopyIn,
        b'H' => Event::CopyOut,
        b'W' => Event::CopyBoth,
        b'I' => Event::EmptyQuery,
        b's' => Event::Suspended,
        b'v' => Event::NegotiateVersion,
        _ => return Err(frame("internal: uninspected tag decoded")),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pgwire::build;

    fn msg(tag: u8, body: &[u8]) -> Vec<u8> {
        build::message(tag, body)
    }

    fn select_response(rows: usize) -> Vec<u8> {
        let mut b = msg(b'T', b"\0\x01a\0\0\0\0\0\0\0\0\0\0\x17\0\x04\xff\xff\xff\xff\0\0");
        for _ in 0..rows {
            b.extend(msg(b'D', b"\0\x01\0\0\0\x011"));
        }
        b.extend(msg(b'C', format!("SELECT {rows}\0").as_bytes()));
        b.extend(msg(b'Z', b"I"));
        b
    }

    #[test]
    fn reports_only_interesting_messages() {
        let b = select_response(3);
        let s = scan(&b, 0, 1 << 20).unwrap();
        assert_eq!(s.forward, b.len());
        assert_eq!(s.skip, 0);
        assert_eq!(s.events.len(), 2);
        assert_eq!(s.events[0].event, Event::Complete { tag: "SELECT 3".into(), rows: Some(3) });
        assert_eq!(s.events[1].event, Event::Ready { status: b'I' });
        assert_eq!(s.events[1].end, b.len());
    }

    #[test]
    fn row_counts() {
        for (tag, rows) in [("INSERT 0 5", Some(5)), ("UPDATE 2", Some(2)), ("BEGIN", None), ("COPY 7", Some(7)), ("SET", None)] {
            let b = msg(b'C', format!("{tag}\0").as_bytes());
            let s = scan(&b, 0, 1 << 20).unwrap();
            assert_eq!(s.events[0].event, Event::Complete { tag: tag.into(), rows }, "{tag}");
        }
    }

    #[test]
    fn streams_large_rows_with_skip_and_keeps_partial_inspected() {
        let mut big = vec![0u8; 1000];
        big[0] = 0;
        let mut b = msg(b'D', &big);
        b.extend(msg(b'C', b"SELECT 1\0"));
        b.extend(msg(b'Z', b"T"));
        // Feed in chunks of every size and check the reassembled event stream.
        for chunk in [1usize, 2, 3, 7, 100, 999, 1005, 4096] {
            let mut pending: Vec<u8> = Vec::new();
            let mut skip = 0usize;
            let mut forwarded = 0usize;
            let mut events = Vec::new();
            for piece in b.chunks(chunk) {
                pending.extend_from_slice(piece);
                let s = scan(&pending, skip, 1 << 20).unwrap();
                for e in &s.events {
                    events.push(e.event.clone().to_owned_event());
                }
                skip = s.skip;
                forwarded += s.forward;
                let f = s.forward;
                pending.drain(..f);
            }
            assert_eq!(forwarded, b.len(), "chunk {chunk}");
            assert_eq!(skip, 0);
            assert_eq!(events.len(), 2);
        }
    }

    impl<'a> Event<'a> {
        fn to_owned_event(self) -> String {
            format!("{self:?}")
        }
    }

    #[test]
    fn error_response_fields() {
        let b = build::error_response(&[(b'S', "ERROR"), (b'V', "ERROR"), (b'C', "42601"), (b'M', "syntax error")]);
        let s = scan(&b, 0, 1 << 20).unwrap();
        assert_eq!(
            s.events[0].event,
            Event::Error { severity: "ERROR".into(), code: "42601".into(), message: "syntax error".into() }
        );
    }

    #[test]
    fn param_key_auth() {
        let mut b = build::parameter_status("default_transaction_read_only", "on");
        b.extend(build::backend_key_data(7, &[0, 0, 0, 9]));
        b.extend(msg(b'R', &[0, 0, 0, 10, b'S', b'C', b'R', b'A', b'M', 0, 0]));
        let s = scan(&b, 0, 1 << 20).unwrap();
        assert_eq!(s.events[0].event, Event::Param { name: "default_transaction_read_only".into(), value: "on".into() });
        assert_eq!(s.events[1].event, Event::KeyData { pid: 7, key: &[0, 0, 0, 9] });
        assert!(matches!(s.events[2].event, Event::Auth { code: 10, .. }));
    }

    #[test]
    fn malformed_and_oversized() {
        assert!(scan(&[b'Z', 0, 0, 0, 5, b'X'], 0, 1 << 20).is_err());
        assert!(scan(&[b'Z', 0, 0, 0, 4], 0, 1 << 20).is_err());
        assert!(scan(&[b'D', 0, 0, 0, 3], 0, 1 << 20).is_err());
        assert!(scan(&[b'C', 0, 0, 0, 6, b'a', b'b'], 0, 1 << 20).is_err()); // no NUL
        assert!(scan(&[b'E', 0, 0, 0, 6, b'M', b'x'], 0, 1 << 20).is_err()); // unterminated
        assert!(scan(&[b'K', 0, 0, 0, 6, 0, 0], 0, 1 << 20).is_err());
        let mut huge = vec![b'E'];
        huge.extend(100_000i32.to_be_bytes());
        assert!(matches!(scan(&huge, 0, 1000), Err(Error::TooLarge { .. })));
        // A huge uninspected message is fine: it streams.
        let mut row = vec![b'D'];
        row.extend(100_000i32.to_be_bytes());
        let s = scan(&row, 0, 1000).unwrap();
        assert_eq!((s.forward, s.skip), (5, 100_000 - 4));
    }

    #[test]
    fn truncation_never_panics() {
        let mut b = select_response(2);
        b.extend(build::error_response(&[(b'S', "ERROR"), (b'C', "25006"), (b'M', "x")]));
        b.extend(build::parameter_status("a", "b"));
        for cut in 0..b.len() {
            let s = scan(&b[..cut], 0, 1 << 20).unwrap();
            assert!(s.forward <= cut);
        }
        let mut x: u64 = 0x2545_F491_4F6C_DD1D;
        for round in 0..3000 {
            let n = (round % 61) + 1;
            let mut r = Vec::new();
            for _ in 0..n {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                r.push((x & 0xff) as u8);
            }
            let _ = scan(&r, round % 5, 64);
        }
    }
}
