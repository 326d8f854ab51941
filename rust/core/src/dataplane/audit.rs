//! The audit line of an allowed statement that completed (the hot path), built on the I/O
//! thread byte-exact with Python's `_allowed_line` (python/sandbox_db_proxy/audit.py, with the
//! fragments of `AuditLog._fragments`), and the bounded buffer Python drains (`take_audit`).

use std::time::{SystemTime, UNIX_EPOCH};

use crate::relay::Verdict;

/// audit.py MAX_QUERY_CHARS: longer texts take Python's `statement()` path.
pub const MAX_QUERY_CHARS: usize = 65536;
/// Finished lines kept until Python takes them; beyond this, lines are dropped and counted
/// (the Python queue does the same with `audit.queue_size`).
pub const AUDIT_CAP: usize = 64 << 20;

/// True when `sql` is short enough for the hot path (`len(sql) <= MAX_QUERY_CHARS` counts
/// code points in Python, hence chars here; the byte length bounds it from above).
pub fn short_enough(sql: &str) -> bool {
    sql.len() <= MAX_QUERY_CHARS || sql.chars().count() <= MAX_QUERY_CHARS
}

/// Appends `s` as a JSON string the way orjson writes it: `"` and `\` escaped, control
/// characters as `\n \r \t \b \f` or `\u00xx` (lower-case hex), everything else verbatim
/// UTF-8 (no `\u` escapes for non-ASCII, and U+007F is not escaped).
pub fn json_str(buf: &mut Vec<u8>, s: &str) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let bytes = s.as_bytes();
    buf.reserve(bytes.len() + 2);
    buf.push(b'"');
    let mut start = 0;
    for (i, &b) in bytes.iter().enumerate() {
        let esc: &[u8] = match b {
            b'"' => b"\\\"",
            b'\\' => b"\\\\",
            b'\n' => b"\\n",
            b'\r' => b"\\r",
            b'\t' => b"\\t",
            0x08 => b"\\b",
            0x0c => b"\\f",
            0..=0x1f => &[],
            _ => continue,
        };
        if let Some(run) = bytes.get(start..i) {
            buf.extend_from_slice(run);
        }
        if esc.is_empty() {
            buf.extend_from_slice(b"\\u00");
            buf.push(HEX[usize::from(b >> 4)]);
            buf.push(HEX[usize::from(b & 15)]);
        } else {
            buf.extend_from_slice(esc);
        }
        start = i + 1;
    }
    if let Some(run) = bytes.get(start..) {
        buf.extend_from_slice(run);
    }
    buf.push(b'"');
}

/// RFC 3339 UTC timestamps with milliseconds (`2026-11-27T23:59:01.123Z`, audit.py
/// `_ts_bytes`); the date part is formatted once per second.
pub struct Clock {
    second: i64,
    prefix: [u8; 19],
}

impl Default for Clock {
    fn default() -> Self {
        Self::new()
    }
}

impl Clock {
    pub fn new() -> Self {
        Clock { second: i64::MIN, prefix: [b'0'; 19] }
    }

    /// Appends the timestamp of `t` (24 bytes). Times before 1970 (a broken clock) are
    /// written as the epoch rather than failing.
    pub fn write(&mut self, buf: &mut Vec<u8>, t: SystemTime) {
        let ms = t.duration_since(UNIX_EPOCH).map(|d| d.as_millis()).unwrap_or(0);
        let ms = i64::try_from(ms).unwrap_or(0);
        let (sec, milli) = (ms.div_euclid(1000), ms.rem_euclid(1000));
        if sec != self.second {
            self.prefix = civil(sec);
            self.second = sec;
        }
        buf.extend_from_slice(&self.prefix);
        // milli is in 0..1000, so each digit is in 0..10
        buf.push(b'.');
        buf.push(b'0' + (milli / 100) as u8);
        buf.push(b'0' + (milli / 10 % 10) as u8);
        buf.push(b'0' + (milli % 10) as u8);
        buf.push(b'Z');
    }
}

/// `YYYY-MM-DDTHH:MM:SS` of Unix seconds (H. Hinnant's civil_from_days; proleptic
/// Gregorian, the same as `time.gmtime`).
fn civil(sec: i64) -> [u8; 19] {
    let days = sec.div_euclid(86_400);
    let secs = sec.rem_euclid(86_400);
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    let mut out = *b"0000-00-00T00:00:00";
    let mut put = |at: usize, width: usize, v: i64| {
        let mut v = v.rem_euclid(10i64.pow(width as u32));
        for i in (0..width).rev() {
            if let Some(c) = out.get_mut(at + i) {
                *c = b'0' + (v % 10) as u8;
            }
            v /= 10;
        }
    };
    put(0, 4, y);
    put(5, 2, m);
    put(8, 2, d);
    put(11, 2, secs / 3600);
    put(14, 2, secs / 60 % 60);
    put(17, 2, secs % 60);
    out
}

/// The line of one allowed statement (audit.py `_allowed_line`):
/// `{"ts":..,"event":"statement",<prefix>["db.namespace":..,]<audit_pre>"db.query.text":..
/// <audit_post>,"protocol.message":..[,"rows":N],"duration_ms":%.3f}\n`.
#[allow(clippy::too_many_arguments)]
pub fn allowed_line(
    buf: &mut Vec<u8>,
    clock: &mut Clock,
    now: SystemTime,
    prefix: &[u8],
    database: Option<&str>,
    verdict: &Verdict,
    sql: &str,
    message: &str,
    rows: Option<u64>,
    seconds: f64,
) {
    use std::io::Write;
    buf.extend_from_slice(b"{\"ts\":\"");
    clock.write(buf, now);
    buf.extend_from_slice(b"\",\"event\":\"statement\",");
    buf.extend_from_slice(prefix);
    if let Some(db) = database {
        buf.extend_from_slice(b"\"db.namespace\":");
        json_str(buf, db);
        buf.push(b',');
    }
    buf.extend_from_slice(&verdict.audit_pre);
    buf.extend_from_slice(b"\"db.query.text\":");
    json_str(buf, sql);
    buf.extend_from_slice(&verdict.audit_post);
    buf.extend_from_slice(b",\"protocol.message\":");
    json_str(buf, message);
    if let Some(n) = rows {
        buf.extend_from_slice(b",\"rows\":");
        push_u64(buf, n);
    }
    let ms = seconds * 1000.0;
    // A non-finite duration (a broken clock) would make the line invalid JSON: write 0.
    let ms = if ms.is_finite() { ms } else { 0.0 };
    buf.extend_from_slice(b",\"duration_ms\":");
    if (0.0..1e12).contains(&ms) {
        // Integer microseconds, ties to even: Python's %.3f rounds the exact binary value
        // half-to-even; the product can differ from it by one ulp, i.e. at most 0.001 ms
        // once in ~1e13 values. The float formatter (`{:.3}`) cost ~0.1 us per line.
        let us = (ms * 1000.0).round_ties_even() as u64;
        push_u64(buf, us / 1000);
        let frac = us % 1000;
        buf.extend_from_slice(&[b'.', b'0' + (frac / 100) as u8, b'0' + (frac / 10 % 10) as u8, b'0' + (frac % 10) as u8]);
        buf.extend_from_slice(b"}\n");
    } else {
        let _ = writeln!(buf, "{ms:.3}}}");
    }
}

/// Number of `\n` in `b` (lines of a batch), eight bytes at a time: the writer counts every
/// batch it writes, megabytes per second at full load.
pub fn count_lines(b: &[u8]) -> usize {
    const LO7: u64 = 0x7f7f_7f7f_7f7f_7f7f;
    let mut n = 0usize;
    let mut chunks = b.chunks_exact(8);
    for c in &mut chunks {
        let mut w = [0u8; 8];
        w.copy_from_slice(c);
        let x = u64::from_ne_bytes(w) ^ 0x0a0a_0a0a_0a0a_0a0a;
        // exact zero-byte test: the high bit is set only where the byte of x is 0
        let zero = !(((x & LO7).wrapping_add(LO7)) | x | LO7);
        n += zero.count_ones() as usize;
    }
    n + chunks.remainder().iter().filter(|&&c| c == b'\n').count()
}

/// Decimal digits of `n` (no allocation, no formatter).
fn push_u64(buf: &mut Vec<u8>, mut n: u64) {
    let mut tmp = [0u8; 20];
    let mut i = tmp.len();
    loop {
        i -= 1;
        if let Some(d) = tmp.get_mut(i) {
            *d = b'0' + (n % 10) as u8;
        }
        n /= 10;
        if n == 0 || i == 0 {
            break;
        }
    }
    buf.extend_from_slice(tmp.get(i..).unwrap_or_default());
}

/// Finished lines waiting for Python.
#[derive(Default)]
pub struct AuditBuf {
    pub buf: Vec<u8>,
    pub dropped: u64,
    pub cap: usize,
}

impl AuditBuf {
    pub fn new(cap: usize) -> Self {
        AuditBuf { buf: Vec::new(), dropped: 0, cap }
    }

    /// Appends whole lines (`lines` is a run of `\n`-terminated lines) while they fit under
    /// the cap; the others are counted as dropped.
    pub fn append(&mut self, lines: &[u8]) {
        if self.buf.len() + lines.len() <= self.cap {
            self.buf.extend_from_slice(lines);
            return;
        }
        // JSON lines contain no raw newline (json_str escapes it), so '\n' ends a line.
        for line in lines.split_inclusive(|&b| b == b'\n') {
            if self.buf.len() + line.len() <= self.cap {
                self.buf.extend_from_slice(line);
            } else {
                self.dropped += 1;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn verdict() -> Verdict {
        Verdict {
            allowed: true,
            rule: "read_only".into(),
            klass: "read".into(),
            audit_pre: b"\"verdict\":\"ALLOWED\",\"rule\":\"read_only\",\"class\":\"read\",".to_vec(),
            audit_post: b",\"db.operation.name\":\"SELECT\"".to_vec(),
            ..Default::default()
        }
    }

    /// Expected lines produced by audit.py `_allowed_line` for the same inputs.
    #[test]
    fn same_bytes_as_python() {
        let mut clock = Clock::new();
        let prefix = br#""agent":"a","connection.id":"c1","backend":"pg","#;
        let t = UNIX_EPOCH + Duration::from_millis(1_795_823_941_123);
        let mut buf = Vec::new();
        allowed_line(
            &mut buf,
            &mut clock,
            t,
            prefix,
            Some("sh\"op"),
            &verdict(),
            "SELECT \"x\", '\u{e9}\n\t\u{1}' FROM t",
            "Query",
            Some(3),
            0.0012341,
        );
        assert_eq!(
            String::from_utf8_lossy(&buf),
            "{\"ts\":\"2026-11-27T23:59:01.123Z\",\"event\":\"statement\",\"agent\":\"a\",\"connection.id\":\"c1\",\
             \"backend\":\"pg\",\"db.namespace\":\"sh\\\"op\",\"verdict\":\"ALLOWED\",\"rule\":\"read_only\",\
             \"class\":\"read\",\"db.query.text\":\"SELECT \\\"x\\\", '\u{e9}\\n\\t\\u0001' FROM t\",\
             \"db.operation.name\":\"SELECT\",\"protocol.message\":\"Query\",\"rows\":3,\"duration_ms\":1.234}\n"
        );
        buf.clear();
        allowed_line(&mut buf, &mut clock, t, prefix, None, &verdict(), "SELECT 1", "Query", None, 0.0000624);
        assert_eq!(
            String::from_utf8_lossy(&buf),
            "{\"ts\":\"2026-11-27T23:59:01.123Z\",\"event\":\"statement\",\"agent\":\"a\",\"connection.id\":\"c1\",\
             \"backend\":\"pg\",\"verdict\":\"ALLOWED\",\"rule\":\"read_only\",\"class\":\"read\",\
             \"db.query.text\":\"SELECT 1\",\"db.operation.name\":\"SELECT\",\"protocol.message\":\"Query\",\
             \"duration_ms\":0.062}\n"
        );
        buf.clear();
        let t = UNIX_EPOCH + Duration::from_millis(951_782_400_000);
        allowed_line(&mut buf, &mut clock, t, b"", None, &verdict(), "SELECT 1", "COM_QUERY", None, 1.0);
        assert!(buf.starts_with(b"{\"ts\":\"2000-02-29T00:00:00.000Z\",\"event\":\"statement\",\"verdict\""));
        assert!(buf.ends_with(b"\"protocol.message\":\"COM_QUERY\",\"duration_ms\":1000.000}\n"));
    }

    #[test]
    fn json_escapes_like_orjson() {
        let mut b = Vec::new();
        json_str(&mut b, "a\u{0}\u{1}\u{8}\u{c}\n\r\t\u{1f}\u{7f}\"\\ \u{e9} \u{2028} \u{1F600}");
        assert_eq!(
            b,
            "\"a\\u0000\\u0001\\b\\f\\n\\r\\t\\u001f\u{7f}\\\"\\\\ \u{e9} \u{2028} \u{1F600}\"".as_bytes()
        );
        b.clear();
        json_str(&mut b, "\u{1a}\u{1b}\u{b}");
        assert_eq!(b, b"\"\\u001a\\u001b\\u000b\"");
    }

    #[test]
    fn civil_dates() {
        assert_eq!(&civil(0), b"1970-01-01T00:00:00");
        assert_eq!(&civil(951_782_399), b"2000-02-28T23:59:59");
        assert_eq!(&civil(4_107_542_400), b"2100-03-01T00:00:00");
        assert_eq!(&civil(1_709_251_199), b"2024-02-29T23:59:59");
    }

    #[test]
    fn cap_drops_whole_lines() {
        let mut a = AuditBuf::new(10);
        a.append(b"1234\n");
        a.append(b"ab\ncdefgh\nx\n");
        assert_eq!(a.buf, b"1234\nab\nx\n");
        assert_eq!(a.dropped, 1);
    }

    #[test]
    fn short_texts() {
        assert!(short_enough(&"a".repeat(MAX_QUERY_CHARS)));
        assert!(!short_enough(&"a".repeat(MAX_QUERY_CHARS + 1)));
        assert!(short_enough(&"\u{e9}".repeat(MAX_QUERY_CHARS)));
        assert!(!short_enough(&"\u{e9}".repeat(MAX_QUERY_CHARS + 1)));
    }

    #[test]
    fn duration_matches_the_float_formatter() {
        // The integer path must print what `{:.3}` (Python's %.3f) prints, for durations
        // from microseconds to hours (xorshift sample; no exact binary ties among them).
        let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
        let v = Verdict::default();
        for i in 0..200_000u64 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let seconds = (x % 10_000_000_000) as f64 / 1e9 / (1 + i % 1000) as f64;
            let mut a = Vec::new();
            allowed_line(&mut a, &mut Clock::new(), UNIX_EPOCH, b"", None, &v, "q", "Query", Some(i), seconds);
            let line = String::from_utf8(a).unwrap();
            let want = format!(",\"rows\":{i},\"duration_ms\":{:.3}}}\n", seconds * 1000.0);
            assert!(line.ends_with(&want), "{line} vs {want}");
        }
    }

    #[test]
    fn count_lines_matches_a_plain_count() {
        let mut x: u64 = 12345;
        for len in 0..300usize {
            let data: Vec<u8> = (0..len).map(|_| { x ^= x << 13; x ^= x >> 7; x ^= x << 17; [b'\n', b'a', 0x8a, 0x0a ^ 0x80, 0][(x % 5) as usize] }).collect();
            assert_eq!(count_lines(&data), data.iter().filter(|&&c| c == b'\n').count(), "{data:?}");
        }
    }
}
