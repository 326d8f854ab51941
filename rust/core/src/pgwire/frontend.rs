//! Client → proxy direction.
//!
//! A connection starts in [`FrontendState::Startup`]: the first packet has no type byte
//! (`Int32 length` including itself, `Int32 code`, body; protocol section "StartupMessage",
//! "SSLRequest", "GSSENCRequest", "CancelRequest"). After the startup phase every message
//! is `Byte1 type, Int32 length (including itself, excluding the type byte), body`.

use super::{be_i16, be_i32, cstr, frame, CANCEL_REQUEST_CODE, GSSENC_REQUEST_CODE, MAX_STARTUP_PACKET, SSL_REQUEST_CODE};
use crate::{Error, Result};

/// Which framing applies to the next bytes from the client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FrontendState {
    /// Untyped startup packets (SSLRequest, GSSENCRequest, CancelRequest, StartupMessage).
    Startup,
    /// Typed messages (`Q`, `P`, `B`, ..., and `p` during authentication).
    Normal,
}

/// One complete typed message inside the caller's buffer: `buf[start]` is the type byte,
/// the body is `buf[start + 5 .. end]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Frame {
    pub tag: u8,
    pub start: usize,
    pub end: usize,
}

impl Frame {
    /// The message body (after type byte and length).
    #[inline]
    pub fn body<'a>(&self, buf: &'a [u8]) -> Result<&'a [u8]> {
        buf.get(self.start + 5..self.end).ok_or_else(|| frame("frame outside the buffer"))
    }
}

/// Result of one [`split`] call.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Split {
    /// Bytes of complete messages at the start of the buffer (forwardable as one block).
    pub consumed: usize,
    /// The complete messages, in order.
    pub frames: Vec<Frame>,
    /// True when the bytes at `consumed` are an invalid or oversized message header: the
    /// caller handles `frames` first, then calls again at `consumed` to get the error.
    pub bad: bool,
    /// Size of the incomplete message at `consumed` when its header is known (0 otherwise):
    /// the caller need not call again before that many bytes are buffered.
    pub need: usize,
}

/// Split typed messages (state Normal). `max_message` bounds a whole message (type byte +
/// length + body); it is enforced as soon as the 5-byte header is visible, so an oversized
/// message is refused before its body is buffered. The first bad header raises an error when
/// no complete message precedes it; otherwise the messages before it are returned with
/// `bad = true`.
pub fn split(buf: &[u8], max_message: usize) -> Result<Split> {
    let mut out = Split::default();
    let mut at = 0usize;
    while buf.len().saturating_sub(at) >= 5 {
        match header(buf, at, max_message) {
            Ok((tag, total)) => {
                let end = at.checked_add(total).ok_or_else(|| frame("length overflow"))?;
                if end > buf.len() {
                    out.need = total;
                    break;
                }
                out.frames.push(Frame { tag, start: at, end });
                at = end;
            }
            Err(e) => {
                if out.frames.is_empty() {
                    return Err(e);
                }
                out.bad = true;
                break;
            }
        }
    }
    out.consumed = at;
    Ok(out)
}

/// Validate a typed message header at `at`: returns (type byte, total size incl. type byte).
fn header(buf: &[u8], at: usize, max_message: usize) -> Result<(u8, usize)> {
    let tag = *buf.get(at).ok_or_else(|| frame("missing type byte"))?;
    let len = be_i32(buf, at + 1)?;
    if len < 4 {
        return Err(frame(&format!("message '{}' has invalid length {len}", printable(tag))));
    }
    let total = (len as usize) + 1;
    if total > max_message {
        return Err(Error::TooLarge { size: total, limit: max_message });
    }
    Ok((tag, total))
}

fn printable(tag: u8) -> char {
    if tag.is_ascii_graphic() {
        tag as char
    } else {
        '?'
    }
}

/// A decoded startup-phase packet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StartupPacket {
    Ssl,
    GssEnc,
    Cancel { pid: i32, key: Vec<u8> },
    /// StartupMessage: protocol version and the parameter name/value pairs.
    Startup { major: u16, minor: u16, params: Vec<(String, String)> },
}

/// Parse one startup packet from the start of `buf`. `Ok(None)`: more bytes needed.
/// Returns the packet and its size.
pub fn parse_startup(buf: &[u8]) -> Result<Option<(StartupPacket, usize)>> {
    if buf.len() < 4 {
        return Ok(None);
    }
    let len = be_i32(buf, 0)?;
    if len < 8 {
        return Err(frame(&format!("startup packet has invalid length {len}")));
    }
    let len = len as usize;
    if len > MAX_STARTUP_PACKET {
        return Err(Error::TooLarge { size: len, limit: MAX_STARTUP_PACKET });
    }
    let Some(pkt) = buf.get(..len) else { return Ok(None) };
    let code = be_i32(pkt, 4)?;
    let packet = match code {
        SSL_REQUEST_CODE if len == 8 => StartupPacket::Ssl,
        GSSENC_REQUEST_CODE if len == 8 => StartupPacket::GssEnc,
        CANCEL_REQUEST_CODE => {
            // Protocol 3.0 keys are 4 bytes; 3.2 allows up to 256 bytes.
            let pid = be_i32(pkt, 8)?;
            let key = pkt.get(12..).unwrap_or(&[]).to_vec();
            if key.is_empty() || key.len() > 256 {
                return Err(frame("CancelRequest has an invalid key length"));
            }
            StartupPacket::Cancel { pid, key }
        }
        SSL_REQUEST_CODE | GSSENC_REQUEST_CODE => {
            return Err(frame("SSLRequest/GSSENCRequest has an invalid length"))
        }
        _ => {
            let major = ((code as u32) >> 16) as u16;
            let minor = ((code as u32) & 0xffff) as u16;
            let mut params = Vec::new();
            if major != 3 {
                // Another protocol's layout: the caller refuses the version, unparsed.
                return Ok(Some((StartupPacket::Startup { major, minor, params }, len)));
            }
            let mut at = 8usize;
            loop {
                let (name, next) = cstr(pkt, at)?;
                if name.is_empty() {
                    // The list ends with one extra NUL; nothing may follow it.
                    if next != len {
                        return Err(frame("bytes after the startup parameter list"));
                    }
                    break;
                }
                let (value, next2) = cstr(pkt, next)?;
                params.push((utf8(name)?.to_string(), utf8(value)?.to_string()));
                at = next2;
            }
            StartupPacket::Startup { major, minor, params }
        }
    };
    Ok(Some((packet, len)))
}

#[inline]
fn utf8(b: &[u8]) -> Result<&str> {
    std::str::from_utf8(b).map_err(|_| frame("string is not valid UTF-8"))
}

/// Text of a string field: `None` when it is not valid UTF-8 (the relay then blocks it:
/// a statement it cannot read is a statement it cannot judge).
#[inline]
fn text(b: &[u8]) -> Option<&str> {
    std::str::from_utf8(b).ok()
}

/// The body of one message decoded into the fields the relay inspects.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FrontendMsg<'a> {
    /// 'Q' Query: the SQL string.
    Query { sql: Option<&'a str> },
    /// 'P' Parse: statement name, SQL, number of declared parameter types.
    Parse { name: Option<&'a str>, sql: Option<&'a str>, nparams: i16 },
    /// 'B' Bind: portal, statement.
    Bind { portal: Option<&'a str>, statement: Option<&'a str> },
    /// 'D' Describe / 'C' Close: kind b'S' (statement) or b'P' (portal), name.
    Describe { kind: u8, name: Option<&'a str> },
    Close { kind: u8, name: Option<&'a str> },
    /// 'E' Execute: portal, row limit (0 = all).
    Execute { portal: Option<&'a str>, max_rows: i32 },
    /// Everything else: the relay decides on the type byte alone.
    Other,
}

/// Decode the body of `f` (see protocol section "Message Formats").
pub fn decode<'a>(buf: &'a [u8], f: &Frame) -> Result<FrontendMsg<'a>> {
    let body = f.body(buf)?;
    Ok(match f.tag {
        b'Q' => {
            let (sql, next) = cstr(body, 0)?;
            trailing(body, next)?;
            FrontendMsg::Query { sql: text(sql) }
        }
        b'P' => {
            let (name, n1) = cstr(body, 0)?;
            let (sql, n2) = cstr(body, n1)?;
            let nparams = be_i16(body, n2)?;
            if nparams < 0 {
                return Err(frame("Parse declares a negative number of parameters"));
            }
            let need = n2 + 2 + 4 * nparams as usize;
            if body.len() != need {
                return Err(frame("Parse length does not match its parameter count"));
            }
            FrontendMsg::Parse { name: text(name), sql: text(sql), nparams }
        }
        b'B' => {
            // Only the names are needed; the parameter values stream through unread.
            let (portal, n1) = cstr(body, 0)?;
            let (stmt, _) = cstr(body, n1)?;
            FrontendMsg::Bind { portal: text(portal), statement: text(stmt) }
        }
        b'D' | b'C' => {
            let kind = *body.first().ok_or_else(|| frame("Describe/Close without a kind"))?;
            if kind != b'S' && kind != b'P' {
                return Err(frame("Describe/Close kind must be 'S' or 'P'"));
            }
            let (name, next) = cstr(body, 1)?;
            trailing(body, next)?;
            if f.tag == b'D' {
                FrontendMsg::Describe { kind, name: text(name) }
            } else {
                FrontendMsg::Close { kind, name: text(name) }
            }
        }
        b'E' => {
            let (portal, n1) = cstr(body, 0)?;
            let max_rows = be_i32(body, n1)?;
            trailing(body, n1 + 4)?;
            FrontendMsg::Execute { portal: text(portal), max_rows }
        }
        _ => FrontendMsg::Other,
    })
}

#[inline]
fn trailing(body: &[u8], used: usize) -> Result<()> {
    if used == body.len() {
        Ok(())
    } else {
        Err(frame("unexpected bytes at the end of the message"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pgwire::build;

    fn msg(tag: u8, body: &[u8]) -> Vec<u8> {
        build::message(tag, body)
    }

    #[test]
    fn splits_complete_and_keeps_partial() {
        let mut b = msg(b'Q', b"SELECT 1\0");
        b.extend(msg(b'S', b""));
        let full = b.len();
        b.extend(&msg(b'Q', b"SELECT 2\0")[..7]);
        let s = split(&b, 1 << 20).unwrap();
        assert_eq!(s.consumed, full);
        assert_eq!(s.frames.len(), 2);
        assert_eq!(s.frames[0].tag, b'Q');
        assert_eq!(s.frames[1].tag, b'S');
        assert!(!s.bad);
        assert_eq!(s.need, 14);
        assert_eq!(decode(&b, &s.frames[0]).unwrap(), FrontendMsg::Query { sql: Some("SELECT 1") });
    }

    #[test]
    fn every_truncation_is_need_more_never_panic() {
        let mut b = msg(b'P', b"s1\0SELECT $1\0\0\x01\0\0\0\x17");
        b.extend(msg(b'B', b"\0s1\0\0\0\0\x01\0\0\0\x011\0\0"));
        b.extend(msg(b'E', b"\0\0\0\0\0"));
        b.extend(msg(b'S', b""));
        for cut in 0..b.len() {
            let s = split(&b[..cut], 1 << 20).unwrap();
            assert!(s.consumed <= cut);
            for f in &s.frames {
                decode(&b[..cut], f).unwrap();
            }
        }
        let s = split(&b, 1 << 20).unwrap();
        assert_eq!(s.frames.len(), 4);
        assert_eq!(
            decode(&b, &s.frames[0]).unwrap(),
            FrontendMsg::Parse { name: Some("s1"), sql: Some("SELECT $1"), nparams: 1 }
        );
        assert_eq!(
            decode(&b, &s.frames[1]).unwrap(),
            FrontendMsg::Bind { portal: Some(""), statement: Some("s1") }
        );
        assert_eq!(decode(&b, &s.frames[2]).unwrap(), FrontendMsg::Execute { portal: Some(""), max_rows: 0 });
    }

    #[test]
    fn oversized_refused_from_header_alone() {
        let mut b = vec![b'Q'];
        b.extend(1_000_000i32.to_be_bytes());
        let e = split(&b, 1000).unwrap_err();
        assert_eq!(e, Error::TooLarge { size: 1_000_001, limit: 1000 });
        // After a good message: the good one is returned and the bad one flagged.
        let mut g = msg(b'S', b"");
        g.extend(&b);
        let s = split(&g, 1000).unwrap();
        assert_eq!(s.frames.len(), 1);
        assert!(s.bad);
        assert!(split(&g[s.consumed..], 1000).is_err());
    }

    #[test]
    fn invalid_lengths_are_errors() {
        for len in [-1i32, 0, 3, i32::MIN] {
            let mut b = vec![b'Q'];
            b.extend(len.to_be_bytes());
            assert!(matches!(split(&b, 1 << 20), Err(Error::Frame { .. })), "len {len}");
        }
        // i32::MAX must not overflow on 32- or 64-bit.
        let mut b = vec![b'Q'];
        b.extend(i32::MAX.to_be_bytes());
        assert!(split(&b, usize::MAX).unwrap().frames.is_empty());
    }

    #[test]
    fn malformed_bodies_are_errors() {
        let cases: Vec<Vec<u8>> = vec![
            msg(b'Q', b"SELECT 1"),                 // no NUL
            msg(b'Q', b"SELECT 1\0junk"),           // trailing bytes
            msg(b'P', b"s\0SELECT 1\0"),             // missing count
            msg(b'P', b"s\0SELECT 1\0\xff\xff"),     // negative count
            msg(b'P', b"s\0SELECT 1\0\0\x02\0\0\0\x17"), // count/length mismatch
            msg(b'D', b"X\0"),                      // bad kind
            msg(b'D', b""),                         // empty
            msg(b'C', b"S"),                        // no name
            msg(b'E', b"\0\0\0"),                   // short row count
            msg(b'B', b"portal"),                   // no NUL
        ];
        for c in cases {
            let s = split(&c, 1 << 20).unwrap();
            assert_eq!(s.frames.len(), 1);
            assert!(decode(&c, &s.frames[0]).is_err(), "{c:?}");
        }
    }

    #[test]
    fn invalid_utf8_sql_is_none() {
        let b = msg(b'Q', b"SELECT '\xff'\0");
        let s = split(&b, 1 << 20).unwrap();
        assert_eq!(decode(&b, &s.frames[0]).unwrap(), FrontendMsg::Query { sql: None });
    }

    #[test]
    fn startup_packets() {
        let ssl = [0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x2f];
        assert_eq!(parse_startup(&ssl).unwrap(), Some((StartupPacket::Ssl, 8)));
        let gss = [0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x30];
        assert_eq!(parse_startup(&gss).unwrap(), Some((StartupPacket::GssEnc, 8)));
        let cancel = build::cancel_request(42, &[1, 2, 3, 4]);
        assert_eq!(
            parse_startup(&cancel).unwrap(),
            Some((StartupPacket::Cancel { pid: 42, key: vec![1, 2, 3, 4] }, 16))
        );
        let st = build::startup_message(&[("user", "u"), ("database", "d")]);
        let (p, n) = parse_startup(&st).unwrap().unwrap();
        assert_eq!(n, st.len());
        assert_eq!(
            p,
            StartupPacket::Startup {
                major: 3,
                minor: 0,
                params: vec![("user".into(), "u".into()), ("database".into(), "d".into())]
            }
        );
        for cut in 0..st.len() {
            assert_eq!(parse_startup(&st[..cut]).unwrap(), None);
        }
    }

    #[test]
    fn malformed_startup_packets() {
        let mut too_big = 20_000i32.to_be_bytes().to_vec();
        too_big.extend(196608i32.to_be_bytes());
        assert!(matches!(parse_startup(&too_big), Err(Error::TooLarge { .. })));
        assert!(parse_startup(&[0, 0, 0, 4, 0, 0, 0, 0]).is_err());
        assert!(parse_startup(&[0xff, 0xff, 0xff, 0xff]).is_err());
        // SSLRequest with a body.
        assert!(parse_startup(&[0, 0, 0, 9, 0x04, 0xd2, 0x16, 0x2f, 0]).is_err());
        // Parameter without value / without terminator / junk after terminator.
        let mut p = vec![0, 0, 0, 0, 0, 3, 0, 0];
        p.extend(b"user\0");
        let n = p.len() as i32;
        p[..4].copy_from_slice(&n.to_be_bytes());
        assert!(parse_startup(&p).is_err());
        let mut q = vec![0, 0, 0, 0, 0, 3, 0, 0];
        q.extend(b"user\0u\0\0x");
        let n = q.len() as i32;
        q[..4].copy_from_slice(&n.to_be_bytes());
        assert!(parse_startup(&q).is_err());
        // Protocol 2.0: reported as such (so the caller can name the version), not parsed.
        let v2 = [0, 0, 0, 8, 0, 2, 0, 0];
        assert_eq!(
            parse_startup(&v2).unwrap(),
            Some((StartupPacket::Startup { major: 2, minor: 0, params: vec![] }, 8))
        );
        // Cancel without key.
        assert!(parse_startup(&[0, 0, 0, 12, 0x04, 0xd2, 0x16, 0x2e, 0, 0, 0, 1]).is_err());
    }

    #[test]
    fn fuzz_like_never_panics() {
        // Deterministic pseudo-random bytes through every entry point.
        let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
        for round in 0..2000 {
            let n = (round % 97) + 1;
            let mut b = Vec::with_capacity(n);
            for _ in 0..n {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                b.push((x & 0xff) as u8);
            }
            let _ = parse_startup(&b);
            if let Ok(s) = split(&b, 64) {
                for f in &s.frames {
                    let _ = decode(&b, f);
                }
            }
        }
    }
}
