//! Tables and small text helpers of the MySQL relay (relay/mysql.rs), ported from
//! python/sandbox_db_proxy/protocols/mysql_consts.py and protocols/mysql.py so that the
//! client sees the same command names, error numbers, SQLSTATEs and texts as with the
//! Python relay.

use std::sync::OnceLock;

use crate::mysqlwire::consts::*;
use crate::mysqlwire::framing::{Decoded, PacketDecoder};

/// (error number, SQLSTATE) pairs the relay sends (MySQL "Server Error Message Reference",
/// "Client Error Message Reference"; MariaDB KB "MariaDB Error Codes").
pub type ErrCode = (u16, &'static str);
pub const ER_DBACCESS_DENIED: ErrCode = (1044, "42000");
pub const ER_UNKNOWN_ERROR: ErrCode = (1105, "HY000");
pub const ER_NOT_ALLOWED_COMMAND: ErrCode = (1148, "42000");
pub const ER_NET_PACKET_TOO_LARGE: ErrCode = (1153, "08S01");
pub const ER_NET_PACKETS_OUT_OF_ORDER: ErrCode = (1156, "08S01");
pub const ER_UNKNOWN_STMT_HANDLER: ErrCode = (1243, "HY000");
/// ER_CANT_EXECUTE_IN_READ_ONLY_TRANSACTION: the answer to every refused statement.
pub const ER_READ_ONLY: ErrCode = (1792, "25006");
pub const ER_MALFORMED_PACKET: ErrCode = (1835, "HY000");
/// ER_CONNECTION_KILLED: the session was ended by the proxy's operator.
pub const ER_CONNECTION_KILLED: ErrCode = (1927, "70100");
pub const ER_CLIENT_INTERACTION_TIMEOUT: ErrCode = (4031, "HY000");
/// CR_SERVER_LOST, a client-side code: "the database went away during the query".
pub const CR_SERVER_LOST: ErrCode = (2013, "HY000");

/// Known command names (mysql_consts.COMMAND_NAMES).
const COMMAND_NAMES: [(u8, &str); 33] = [
    (COM_SLEEP, "COM_SLEEP"),
    (COM_QUIT, "COM_QUIT"),
    (COM_INIT_DB, "COM_INIT_DB"),
    (COM_QUERY, "COM_QUERY"),
    (COM_FIELD_LIST, "COM_FIELD_LIST"),
    (COM_CREATE_DB, "COM_CREATE_DB"),
    (COM_DROP_DB, "COM_DROP_DB"),
    (COM_REFRESH, "COM_REFRESH"),
    (COM_SHUTDOWN, "COM_SHUTDOWN"),
    (COM_STATISTICS, "COM_STATISTICS"),
    (COM_PROCESS_INFO, "COM_PROCESS_INFO"),
    (COM_CONNECT, "COM_CONNECT"),
    (COM_PROCESS_KILL, "COM_PROCESS_KILL"),
    (COM_DEBUG, "COM_DEBUG"),
    (COM_PING, "COM_PING"),
    (COM_TIME, "COM_TIME"),
    (COM_DELAYED_INSERT, "COM_DELAYED_INSERT"),
    (COM_CHANGE_USER, "COM_CHANGE_USER"),
    (COM_BINLOG_DUMP, "COM_BINLOG_DUMP"),
    (COM_TABLE_DUMP, "COM_TABLE_DUMP"),
    (COM_CONNECT_OUT, "COM_CONNECT_OUT"),
    (COM_REGISTER_SLAVE, "COM_REGISTER_SLAVE"),
    (COM_STMT_PREPARE, "COM_STMT_PREPARE"),
    (COM_STMT_EXECUTE, "COM_STMT_EXECUTE"),
    (COM_STMT_SEND_LONG_DATA, "COM_STMT_SEND_LONG_DATA"),
    (COM_STMT_CLOSE, "COM_STMT_CLOSE"),
    (COM_STMT_RESET, "COM_STMT_RESET"),
    (COM_SET_OPTION, "COM_SET_OPTION"),
    (COM_STMT_FETCH, "COM_STMT_FETCH"),
    (COM_DAEMON, "COM_DAEMON"),
    (COM_BINLOG_DUMP_GTID, "COM_BINLOG_DUMP_GTID"),
    (COM_RESET_CONNECTION, "COM_RESET_CONNECTION"),
    (COM_STMT_BULK_EXECUTE, "COM_STMT_BULK_EXECUTE"),
];

/// `mysql_consts.command_name`: the name, or `COM_UNKNOWN_0x..` (lower-case hex). Static so
/// that audit records can carry it as `&'static str`; the 256 names are built once.
pub fn command_name(cmd: u8) -> &'static str {
    if let Some((_, n)) = COMMAND_NAMES.iter().find(|(c, _)| *c == cmd) {
        return n;
    }
    static UNKNOWN: OnceLock<Vec<String>> = OnceLock::new();
    let names = UNKNOWN.get_or_init(|| (0..=255u8).map(|c| format!("COM_UNKNOWN_0x{c:02x}")).collect());
    names.get(usize::from(cmd)).map(String::as_str).unwrap_or("COM_UNKNOWN")
}

/// Why a refused command is refused (mysql_consts.BLOCKED_COMMANDS; shown to the agent).
pub fn blocked_command_why(cmd: u8) -> &'static str {
    match cmd {
        COM_CHANGE_USER => "re-authenticates the session as another user, bypassing the proxy's login",
        COM_PROCESS_KILL => "kills another session's connection or query",
        COM_PROCESS_INFO => "lists other sessions and their SQL (like SHOW PROCESSLIST)",
        COM_SHUTDOWN => "shuts the database server down",
        COM_REFRESH => "flushes server caches, logs or privileges (like FLUSH)",
        COM_DEBUG => "writes server debug information to the error log",
        COM_BINLOG_DUMP | COM_BINLOG_DUMP_GTID => "streams the replication log (a replica protocol, not a query)",
        COM_REGISTER_SLAVE => "registers a replica with the server",
        COM_TABLE_DUMP => "is an obsolete replication command",
        COM_DAEMON | COM_CONNECT_OUT | COM_CONNECT | COM_SLEEP | COM_TIME | COM_DELAYED_INSERT => {
            "is internal to the server"
        }
        COM_CREATE_DB => "creates a database",
        COM_DROP_DB => "drops a database",
        COM_STMT_BULK_EXECUTE => "runs a statement in bulk (a write path); it was not negotiated",
        _ => "is not a command this proxy knows",
    }
}

/// Python's `str.isspace()` (= `\s` of a `re` str pattern): Unicode White_Space plus the
/// ASCII separators 0x1c..0x1f.
fn py_space(c: char) -> bool {
    c.is_whitespace() || ('\u{1c}'..='\u{1f}').contains(&c)
}

/// `[A-Za-z0-9_$]` under `re.IGNORECASE`: Python's case folding also lets İ ı ſ K (Kelvin) in.
fn use_ident_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_' || c == '$' || matches!(c, '\u{130}' | '\u{131}' | '\u{17f}' | '\u{212a}')
}

/// `\s*;?\s*` matches all of `t`.
fn use_trailer(t: &str) -> bool {
    let t = t.trim_start_matches(py_space);
    let t = t.strip_prefix(';').unwrap_or(t);
    t.trim_start_matches(py_space).is_empty()
}

/// The database of a lone `USE db` / ``USE `db` `` text: a hand port of the Python relay's
/// `_USE_RE.fullmatch` (`\s*use\s+(`(?:[^`]|``)+`|[A-Za-z0-9_$]+)\s*;?\s*`, re.I), with the
/// backtick form unquoted (MySQL manual "Schema Object Names": `` inside quotes is one `).
/// Anything else (comments, several statements) is None: refused rather than guessed at.
pub fn parse_use(sql: &str) -> Option<String> {
    let s = sql.trim_start_matches(py_space);
    let mut chars = s.char_indices();
    let ok = matches!(chars.next(), Some((_, 'u' | 'U')))
        && matches!(chars.next(), Some((_, 's' | 'S' | '\u{17f}')))
        && matches!(chars.next(), Some((_, 'e' | 'E')));
    if !ok {
        return None;
    }
    let after = chars.next().map(|(i, _)| i).unwrap_or(s.len());
    let rest = s.get(after..)?;
    let name = rest.trim_start_matches(py_space);
    if name.len() == rest.len() {
        return None; // `\s+`: at least one space after USE
    }
    if let Some(quoted) = name.strip_prefix('`') {
        // The trailer holds no backtick, so the closing quote is the last one; inside, every
        // run of backticks must be doubled quotes.
        let close = quoted.rfind('`')?;
        let inner = quoted.get(..close)?;
        if inner.is_empty() || !use_trailer(quoted.get(close + 1..)?) {
            return None;
        }
        let mut run = 0usize;
        for c in inner.chars() {
            if c == '`' {
                run += 1;
            } else if run % 2 == 1 {
                return None;
            } else {
                run = 0;
            }
        }
        if run % 2 == 1 {
            return None;
        }
        return Some(inner.replace("``", "`"));
    }
    let end = name.find(|c: char| !use_ident_char(c)).unwrap_or(name.len());
    if end == 0 || !use_trailer(name.get(end..)?) {
        return None;
    }
    name.get(..end).map(str::to_string)
}

/// An approximation of Python's `str.isprintable()` for `repr` (C0/C1 controls, separators
/// other than the space, common format characters, private use and surrogate-free
/// noncharacters are escaped; exact Unicode tables are not needed for the texts shown here).
fn py_printable(c: char) -> bool {
    let u = u32::from(c);
    !(u < 0x20
        || (0x7f..=0xa0).contains(&u)
        || u == 0xad
        || u == 0x1680
        || (0x2000..=0x200f).contains(&u)
        || (0x2028..=0x202f).contains(&u)
        || (0x205f..=0x206f).contains(&u)
        || u == 0x3000
        || u == 0xfeff
        || (0xfff9..=0xfffb).contains(&u)
        || (0xe000..=0xf8ff).contains(&u)
        || (0xe0000..=0xe007f).contains(&u)
        || u >= 0xf0000)
}

/// Python's `repr(str)`.
pub fn py_repr_str(s: &str) -> String {
    let q = if s.contains('\'') && !s.contains('"') { '"' } else { '\'' };
    let mut out = String::with_capacity(s.len() + 2);
    out.push(q);
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c == q => {
                out.push('\\');
                out.push(c);
            }
            c if py_printable(c) => out.push(c),
            c => {
                let u = u32::from(c);
                if u < 0x100 {
                    out.push_str(&format!("\\x{u:02x}"));
                } else if u < 0x10000 {
                    out.push_str(&format!("\\u{u:04x}"));
                } else {
                    out.push_str(&format!("\\U{u:08x}"));
                }
            }
        }
    }
    out.push(q);
    out
}

/// Python's `repr(bytes)`.
pub fn py_repr_bytes(b: &[u8]) -> String {
    let q = if b.contains(&b'\'') && !b.contains(&b'"') { b'"' } else { b'\'' };
    let mut out = String::with_capacity(b.len() + 3);
    out.push('b');
    out.push(char::from(q));
    for &c in b {
        match c {
            b'\\' => out.push_str("\\\\"),
            b'\n' => out.push_str("\\n"),
            b'\r' => out.push_str("\\r"),
            b'\t' => out.push_str("\\t"),
            c if c == q => {
                out.push('\\');
                out.push(char::from(c));
            }
            0x20..=0x7e => out.push(char::from(c)),
            c => out.push_str(&format!("\\x{c:02x}")),
        }
    }
    out.push(char::from(q));
    out
}

/// Check a one-row, one-column text result whose value must be 1 (the read-only check,
/// Python `_expect_single_value_one`): None = fine, else what is wrong.
pub fn expect_single_value_one(raw: &[u8]) -> Option<String> {
    let mut dec = PacketDecoder::new(1 << 20);
    let packets = match dec.feed(raw) {
        Ok(Decoded::Packets(p)) => p,
        Ok(Decoded::NeedMore) => Vec::new(),
        Err(e) => return Some(format!("unreadable check result: {e}")),
    };
    // Skip the column count; rows are what is neither EOF/OK-0xfe, ERR nor a column definition.
    let rows: Vec<&[u8]> = packets
        .iter()
        .skip(1)
        .map(|p| p.payload.as_slice())
        .filter(|p| !matches!(p.first(), Some(&EOF_HEADER) | Some(&ERR_HEADER)) && !p.starts_with(b"\x03def"))
        .collect();
    let [row] = rows.as_slice() else {
        return Some("the read-only check returned no row".to_string());
    };
    let n = usize::from(row.first().copied().unwrap_or(0));
    // a length-encoded value: one length byte below 251 (larger lengths are not "1")
    let value: &[u8] = if n < 251 { row.get(1..(1 + n).min(row.len())).unwrap_or(&[]) } else { &[] };
    if value != b"1" {
        return Some(format!(
            "the database reports the session is no longer read-only (value {})",
            py_repr_bytes(value)
        ));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn use_parser_matches_the_python_regex() {
        assert_eq!(parse_use("USE shop").as_deref(), Some("shop"));
        assert_eq!(parse_use("  use\tshop ; ").as_deref(), Some("shop"));
        assert_eq!(parse_use("use `my``db`;").as_deref(), Some("my`db"));
        assert_eq!(parse_use("use `a b`").as_deref(), Some("a b"));
        assert_eq!(parse_use("uſe db").as_deref(), Some("db"));
        assert_eq!(parse_use("use\u{1c}db").as_deref(), Some("db"));
        assert_eq!(parse_use("use db\u{85}").as_deref(), Some("db"));
        assert_eq!(parse_use("use db\u{200b}"), None);
        assert_eq!(parse_use("usedb"), None);
        assert_eq!(parse_use("use"), None);
        assert_eq!(parse_use("use db; select 1"), None);
        assert_eq!(parse_use("use db;;"), None);
        assert_eq!(parse_use("use /* x */ db"), None);
        assert_eq!(parse_use("use ``"), None);
        assert_eq!(parse_use("use `a`` `").as_deref(), Some("a` "));
        assert_eq!(parse_use("use `a`` ;"), None);
        assert_eq!(parse_use("use ````").as_deref(), Some("`"));
        assert_eq!(parse_use("use ``````").as_deref(), Some("``"));
        assert_eq!(parse_use("use `a`````b`"), None);
        assert_eq!(parse_use("use `a```").as_deref(), Some("a`"));
        assert_eq!(parse_use("use `a` `"), None);
        assert_eq!(parse_use("use d-b"), None);
        assert_eq!(parse_use("use \u{212a}").as_deref(), Some("\u{212a}"));
    }

    #[test]
    fn names_and_reprs() {
        assert_eq!(command_name(COM_BINLOG_DUMP), "COM_BINLOG_DUMP");
        assert_eq!(command_name(0x42), "COM_UNKNOWN_0x42");
        assert_eq!(command_name(0xff), "COM_UNKNOWN_0xff");
        assert_eq!(py_repr_str("SELECT 1"), "'SELECT 1'");
        assert_eq!(py_repr_str("a'b"), "\"a'b\"");
        assert_eq!(py_repr_str("a\"b'"), "'a\"b\\''");
        assert_eq!(py_repr_str("é\x7f\u{2028}\0"), "'é\\x7f\\u2028\\x00'");
        assert_eq!(py_repr_bytes(b"\x00a'\""), "b'\\x00a\\'\"'");
        assert_eq!(py_repr_bytes(b"0"), "b'0'");
        assert_eq!(py_repr_bytes(b""), "b''");
    }

    #[test]
    fn single_value_one() {
        use crate::mysqlwire::framing::frame;
        use crate::mysqlwire::packets::eof_packet;
        let one = |v: &[u8]| {
            let mut b = frame(b"\x01", 1);
            b.extend(frame(b"\x03def\x00\x00\x00\x01v\x00\x0c\x3f\x00\x01\x00\x00\x00\x08\x00\x00\x00\x00\x00", 2));
            b.extend(eof_packet(3, 0, 2));
            let mut row = vec![v.len() as u8];
            row.extend_from_slice(v);
            b.extend(frame(&row, 4));
            b.extend(eof_packet(5, 0, 2));
            b
        };
        assert_eq!(expect_single_value_one(&one(b"1")), None);
        assert_eq!(
            expect_single_value_one(&one(b"0")).as_deref(),
            Some("the database reports the session is no longer read-only (value b'0')")
        );
        assert_eq!(expect_single_value_one(&frame(b"\x01", 1)).as_deref(), Some("the read-only check returned no row"));
        let bad = expect_single_value_one(&[0xff, 0xff, 0xff, 0, 1]).unwrap_or_default();
        assert!(bad.starts_with("unreadable check result: message of"), "{bad}");
    }
}
