//! Bounds-checked reading of protocol fields (MySQL "Basic Data Types": fixed-length
//! little-endian integers, length-encoded integers and strings, NUL-terminated strings).
//! Every accessor returns `Error::Frame` on short input; nothing here can panic.

use crate::{Error, Result};

fn short(what: &str) -> Error {
    Error::Frame { message: format!("packet too short while reading {what}") }
}

/// A cursor over one packet payload.
pub struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    pub fn new(buf: &'a [u8]) -> Self {
        Reader { buf, pos: 0 }
    }

    pub fn pos(&self) -> usize {
        self.pos
    }

    pub fn remaining(&self) -> usize {
        self.buf.len().saturating_sub(self.pos)
    }

    pub fn is_empty(&self) -> bool {
        self.remaining() == 0
    }

    pub fn bytes(&mut self, n: usize, what: &str) -> Result<&'a [u8]> {
        let end = self.pos.checked_add(n).ok_or_else(|| short(what))?;
        let out = self.buf.get(self.pos..end).ok_or_else(|| short(what))?;
        self.pos = end;
        Ok(out)
    }

    pub fn u8(&mut self, what: &str) -> Result<u8> {
        Ok(self.bytes(1, what)?[0])
    }

    pub fn u16(&mut self, what: &str) -> Result<u16> {
        let b = self.bytes(2, what)?;
        Ok(u16::from_le_bytes([b[0], b[1]]))
    }

    pub fn u24(&mut self, what: &str) -> Result<u32> {
        let b = self.bytes(3, what)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], 0]))
    }

    pub fn u32(&mut self, what: &str) -> Result<u32> {
        let b = self.bytes(4, what)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }

    pub fn u64(&mut self, what: &str) -> Result<u64> {
        let b = self.bytes(8, what)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(b);
        Ok(u64::from_le_bytes(a))
    }

    /// Length-encoded integer. 0xfb (NULL) and 0xff (error marker) are not integers here.
    pub fn lenenc(&mut self, what: &str) -> Result<u64> {
        match self.u8(what)? {
            b @ 0..=0xfa => Ok(u64::from(b)),
            0xfc => Ok(u64::from(self.u16(what)?)),
            0xfd => Ok(u64::from(self.u24(what)?)),
            0xfe => self.u64(what),
            b => Err(Error::Frame { message: format!("invalid length-encoded integer prefix 0x{b:02x} in {what}") }),
        }
    }

    pub fn lenenc_bytes(&mut self, what: &str) -> Result<&'a [u8]> {
        let n = self.lenenc(what)?;
        let n = usize::try_from(n).map_err(|_| short(what))?;
        self.bytes(n, what)
    }

    /// NUL-terminated string; a missing terminator at the end of the packet is tolerated
    /// (some servers omit the final NUL after the auth plugin name).
    pub fn nul_str(&mut self, _what: &str) -> Result<&'a [u8]> {
        let rest = self.buf.get(self.pos..).unwrap_or(&[]);
        match rest.iter().position(|&b| b == 0) {
            Some(i) => {
                self.pos += i + 1;
                Ok(&rest[..i])
            }
            None => {
                self.pos = self.buf.len();
                Ok(rest)
            }
        }
    }

    pub fn rest(&mut self) -> &'a [u8] {
        let rest = self.buf.get(self.pos..).unwrap_or(&[]);
        self.pos = self.buf.len();
        rest
    }
}

/// Append a length-encoded integer.
pub fn put_lenenc(out: &mut Vec<u8>, v: u64) {
    if v < 0xfb {
        out.push(v as u8);
    } else if v <= 0xffff {
        out.push(0xfc);
        out.extend_from_slice(&(v as u16).to_le_bytes());
    } else if v <= 0xff_ffff {
        out.push(0xfd);
        out.extend_from_slice(&(v as u32).to_le_bytes()[..3]);
    } else {
        out.push(0xfe);
        out.extend_from_slice(&v.to_le_bytes());
    }
}

pub fn put_lenenc_bytes(out: &mut Vec<u8>, b: &[u8]) {
    put_lenenc(out, b.len() as u64);
    out.extend_from_slice(b);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lenenc_roundtrip() {
        for v in [0u64, 1, 250, 251, 0xffff, 0x10000, 0xff_ffff, 0x100_0000, u64::MAX] {
            let mut b = Vec::new();
            put_lenenc(&mut b, v);
            assert_eq!(Reader::new(&b).lenenc("x").unwrap(), v);
        }
    }

    #[test]
    fn short_input_is_error() {
        assert!(Reader::new(&[0xfc, 1]).lenenc("x").is_err());
        assert!(Reader::new(&[0xfe, 1, 2, 3]).lenenc("x").is_err());
        assert!(Reader::new(&[0xff]).lenenc("x").is_err());
        assert!(Reader::new(&[0x05, b'a']).lenenc_bytes("x").is_err());
        assert!(Reader::new(&[]).u8("x").is_err());
        let mut r = Reader::new(b"ab");
        assert_eq!(r.nul_str("x").unwrap(), b"ab");
        assert!(r.is_empty());
    }

    #[test]
    fn huge_lenenc_does_not_overflow() {
        let mut b = vec![0xfe];
        b.extend_from_slice(&u64::MAX.to_le_bytes());
        assert!(Reader::new(&b).lenenc_bytes("x").is_err());
    }
}
