//! Keyword table: every word the fast path needs to know, with per-dialect flags.
//!
//! Sources: PostgreSQL "SQL Key Words" appendix (reserved + "reserved (can be function or
//! type)", i.e. `kwlist.h` RESERVED_KEYWORD and TYPE_FUNC_NAME_KEYWORD); MySQL 8.0 "Keywords
//! and Reserved Words" (R) plus MariaDB 10.11 "Reserved Words"; SQL Server "Reserved
//! Keywords (Transact-SQL)". A word reserved in a dialect cannot be an unquoted identifier
//! there, so an unknown reserved word is an unknown piece of syntax: the fast path defers.
//!
//! The table is sorted (upper-case, byte order; `tests::table_sorted` guards it) so that
//! [`lookup_in`] can binary-search it; [`find`], on the hot path, uses a hash index built
//! from it at compile time, and `tests::index_agrees_with_full_search` checks the two agree.

/// Reserved in PostgreSQL.
pub const RES_PG: u32 = 1 << 0;
/// Reserved in MySQL or MariaDB.
pub const RES_MY: u32 = 1 << 1;
/// Reserved in SQL Server.
pub const RES_TS: u32 = 1 << 2;
/// Allowed in a plain read query (cannot by itself cause a side effect).
pub const READ: u32 = 1 << 3;
/// Forces DEFER wherever it appears (write/DDL/DCL verbs, INTO, FOR, LOCK, dynamic SQL, ...).
pub const RISKY: u32 = 1 << 4;
/// Forces DEFER in T-SQL only (statement verbs of batches without `;`).
pub const RISKY_TS: u32 = 1 << 5;
/// As the first word of a statement: certainly a write/DDL/DCL statement (fast BLOCK).
pub const BLOCK: u32 = 1 << 6;
const CLASS_SHIFT: u32 = 8;
const CLASS_MASK: u32 = 0xf << CLASS_SHIFT;
pub const CLASS_READ: u32 = 1 << CLASS_SHIFT;
pub const CLASS_WRITE: u32 = 2 << CLASS_SHIFT;
pub const CLASS_DDL: u32 = 3 << CLASS_SHIFT;
pub const CLASS_DCL: u32 = 4 << CLASS_SHIFT;
pub const CLASS_TRANSACTION: u32 = 5 << CLASS_SHIFT;
pub const CLASS_SESSION: u32 = 6 << CLASS_SHIFT;
pub const CLASS_FUNCTION: u32 = 7 << CLASS_SHIFT;
pub const CLASS_ADMIN: u32 = 8 << CLASS_SHIFT;

use super::Dialect;
use std::cmp::Ordering;

/// Compare `word` (any case) with an upper-case ASCII `key`, as if `word` were upper-cased.
#[inline]
pub fn cmp_upper(word: &[u8], key: &[u8]) -> Ordering {
    for (a, b) in word.iter().zip(key) {
        match a.to_ascii_uppercase().cmp(b) {
            Ordering::Equal => {}
            other => return other,
        }
    }
    word.len().cmp(&key.len())
}

/// Binary search in a sorted `(UPPER, value)` table, case-insensitively.
#[inline]
pub fn lookup_in<T: Copy>(table: &[(&'static str, T)], word: &str) -> Option<T> {
    let w = word.as_bytes();
    if w.is_empty() || w.len() > 40 || !w.is_ascii() {
        return None;
    }
    table
        .binary_search_by(|(k, _)| cmp_upper(w, k.as_bytes()).reverse())
        .ok()
        .and_then(|i| table.get(i))
        .map(|(_, v)| *v)
}

/// Open-addressing index of [`KEYWORDS`] by a hash of the upper-cased word, built at compile
/// time: one hash and usually one comparison per word, where a binary search needs about
/// five case-folding comparisons (every word of every statement is looked up, issue 6).
/// Slots hold `row + 1` (0 = empty); linear probing; the table stays under half full.
const INDEX_BITS: u32 = 11;
const INDEX_LEN: usize = 1 << INDEX_BITS;
static INDEX: [u16; INDEX_LEN] = build_index(KEYWORDS);

/// FNV-1a over the upper-cased bytes, folded to `INDEX_BITS` (multiplicative: the high bits).
#[inline]
const fn hash_upper(w: &[u8]) -> usize {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    let mut i = 0;
    while i < w.len() {
        h ^= w[i].to_ascii_uppercase() as u64;
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
        i += 1;
    }
    (h.wrapping_mul(0x9e37_79b9_7f4a_7c15) >> (64 - INDEX_BITS)) as usize
}

const fn build_index(table: &[(&str, u32)]) -> [u16; INDEX_LEN] {
    assert!(table.len() < INDEX_LEN / 2, "keyword index too full");
    let mut idx = [0u16; INDEX_LEN];
    let mut row = 0;
    while row < table.len() {
        let mut slot = hash_upper(table[row].0.as_bytes());
        while idx[slot] != 0 {
            slot = (slot + 1) & (INDEX_LEN - 1);
        }
        idx[slot] = row as u16 + 1;
        row += 1;
    }
    idx
}

/// Row index of `word` in [`KEYWORDS`] (case-insensitive), if it is a keyword.
#[inline]
pub fn find(word: &str) -> Option<usize> {
    let w = word.as_bytes();
    if w.is_empty() || w.len() > 40 {
        return None;
    }
    let mut slot = hash_upper(w);
    loop {
        let row = usize::from(*INDEX.get(slot)?).checked_sub(1)?;
        let (key, _) = KEYWORDS.get(row)?;
        if key.as_bytes().eq_ignore_ascii_case(w) {
            return Some(row);
        }
        slot = (slot + 1) & (INDEX_LEN - 1);
    }
}

/// "Not a keyword" in a per-token row vector (see [`rows_of`]).
pub const NO_ROW: u16 = u16::MAX;

/// For each token, its keyword row (or [`NO_ROW`]): one lookup per word, shared by the
/// fingerprint and the fast path.
pub fn rows_of(src: &str, toks: &[super::lexer::Token]) -> Vec<u16> {
    toks.iter().map(|t| row_of(src, t)).collect()
}

/// The keyword row of one token (see [`rows_of`]).
#[inline]
pub fn row_of(src: &str, t: &super::lexer::Token) -> u16 {
    if t.kind == super::lexer::TokenKind::Word {
        find(t.text(src)).and_then(|r| u16::try_from(r).ok()).unwrap_or(NO_ROW)
    } else {
        NO_ROW
    }
}

/// Flags for a row from [`rows_of`] (0 for [`NO_ROW`]).
#[inline]
pub fn row_flags(row: u16) -> u32 {
    KEYWORDS.get(usize::from(row)).map_or(0, |(_, f)| *f)
}

/// The upper-case keyword and its flags for a row index from [`find`].
#[inline]
pub fn entry(row: usize) -> Option<(&'static str, u32)> {
    KEYWORDS.get(row).copied()
}

/// Flags of `word` (0 when it is not in the table: an ordinary identifier).
#[inline]
pub fn flags(word: &str) -> u32 {
    find(word).and_then(entry).map_or(0, |(_, f)| f)
}

/// Is `word` reserved in `d`?
#[inline]
pub fn reserved_in(f: u32, d: Dialect) -> bool {
    let bit = match d {
        Dialect::Postgres => RES_PG,
        Dialect::MySql => RES_MY,
        Dialect::TSql => RES_TS,
    };
    f & bit != 0
}

/// Does `word` force DEFER in `d`?
#[inline]
pub fn risky_in(f: u32, d: Dialect) -> bool {
    f & RISKY != 0 || (d == Dialect::TSql && f & RISKY_TS != 0)
}

/// Statement class of a leading verb with these flags.
pub fn class_name(f: u32) -> &'static str {
    match f & CLASS_MASK {
        CLASS_READ => "read",
        CLASS_WRITE => "write",
        CLASS_DDL => "ddl",
        CLASS_DCL => "dcl",
        CLASS_TRANSACTION => "transaction",
        CLASS_SESSION => "session",
        CLASS_FUNCTION => "function",
        CLASS_ADMIN => "admin",
        _ => "unknown",
    }
}

#[rustfmt::skip]
pub const KEYWORDS: &[(&str, u32)] = &[
    ("ABORT", RISKY | CLASS_TRANSACTION),
    ("ACCESSIBLE", RES_MY),
    ("ADD", RES_MY | RES_TS),
    ("ALL", RES_PG | RES_MY | RES_TS | READ),
    ("ALTER", RES_MY | RES_TS | RISKY | BLOCK | CLASS_DDL),
    ("ANALYSE", RES_PG | RISKY | CLASS_ADMIN),
    ("ANALYZE", RES_PG | RES_MY | RISKY | CLASS_ADMIN),
    ("AND", RES_PG | RES_MY | RES_TS | READ),
    ("ANY", RES_PG | RES_TS | READ),
    ("ARRAY", RES_PG | READ),
    ("AS", RES_PG | RES_MY | RES_TS | READ),
    ("ASC", RES_PG | RES_MY | RES_TS | READ),
    ("ASENSITIVE", RES_MY),
    ("ASYMMETRIC", RES_PG | READ),
    ("AT", READ),
    ("AUTHORIZATION", RES_PG | RES_TS),
    ("BACKUP", RES_TS | RISKY_TS | CLASS_ADMIN),
    ("BEFORE", RES_MY),
    ("BEGIN", RES_TS | RISKY | CLASS_TRANSACTION),
    ("BETWEEN", RES_MY | RES_TS | READ),
    ("BIGINT", RES_MY | READ),
    ("BINARY", RES_PG | RES_MY | READ),
    ("BIT", READ),
    ("BLOB", RES_MY),
    ("BOOLEAN", READ),
    ("BOTH", RES_PG | RES_MY | READ),
    ("BREAK", RES_TS | RISKY_TS),
    ("BROWSE", RES_TS),
    ("BULK", RES_TS | RISKY | CLASS_WRITE),
    ("BY", RES_MY | RES_TS | READ),
    ("CALL", RES_MY | RISKY | CLASS_FUNCTION),
    ("CASCADE", RES_MY | RES_TS),
    ("CASE", RES_PG | RES_MY | RES_TS | READ),
    ("CAST", RES_PG | READ),
    ("CHANGE", RES_MY | RISKY | CLASS_ADMIN),
    ("CHAR", RES_MY | READ),
    ("CHARACTER", RES_MY | READ),
    ("CHECK", RES_PG | RES_MY | RES_TS | CLASS_ADMIN),
    ("CHECKPOINT", RES_TS | RISKY | CLASS_ADMIN),
    ("CHECKSUM", CLASS_ADMIN),
    ("CLOSE", RES_TS | RISKY_TS),
    ("CLUSTER", RISKY | CLASS_ADMIN),
    ("CLUSTERED", RES_TS),
    ("COALESCE", RES_TS | READ),
    ("COLLATE", RES_PG | RES_MY | RES_TS | READ),
    ("COLLATION", RES_PG),
    ("COLUMN", RES_PG | RES_MY | RES_TS),
    ("COMMENT", CLASS_DDL),
    ("COMMIT", RES_TS | RISKY | CLASS_TRANSACTION),
    ("COMPUTE", RES_TS),
    ("CONCURRENTLY", RES_PG),
    ("CONDITION", RES_MY),
    ("CONSTRAINT", RES_PG | RES_MY | RES_TS),
    ("CONTAINS", RES_TS),
    ("CONTAINSTABLE", RES_TS),
    ("CONTINUE", RES_MY | RES_TS | RISKY_TS),
    ("CONVERT", RES_MY | RES_TS | READ),
    ("COPY", RISKY | CLASS_ADMIN),
    ("CREATE", RES_PG | RES_MY | RES_TS | RISKY | BLOCK | CLASS_DDL),
    ("CROSS", RES_PG | RES_MY | RES_TS | READ),
    ("CUBE", RES_MY),
    ("CUME_DIST", RES_MY | READ),
    ("CURRENT", RES_TS | READ),
    ("CURRENT_CATALOG", RES_PG | READ),
    ("CURRENT_DATE", RES_PG | RES_MY | RES_TS | READ),
    ("CURRENT_ROLE", RES_PG | RES_MY | READ),
    ("CURRENT_SCHEMA", RES_PG | READ),
    ("CURRENT_TIME", RES_PG | RES_MY | RES_TS | READ),
    ("CURRENT_TIMESTAMP", RES_PG | RES_MY | RES_TS | READ),
    ("CURRENT_USER", RES_PG | RES_MY | RES_TS | READ),
    ("CURSOR", RES_MY | RES_TS),
    ("DATABASE", RES_MY | RES_TS),
    ("DATABASES", RES_MY),
    ("DATE", READ),
    ("DATETIME", READ),
    ("DATETIME2", READ),
    ("DATETIMEOFFSET", READ),
    ("DAY_HOUR", RES_MY | READ),
    ("DAY_MICROSECOND", RES_MY | READ),
    ("DAY_MINUTE", RES_MY | READ),
    ("DAY_SECOND", RES_MY | READ),
    ("DBCC", RES_TS | RISKY_TS | CLASS_ADMIN),
    ("DEALLOCATE", RES_TS | RISKY | CLASS_FUNCTION),
    ("DEC", RES_MY | READ),
    ("DECIMAL", RES_MY | READ),
    ("DECLARE", RES_MY | RES_TS | RISKY),
    ("DEFAULT", RES_PG | RES_MY | RES_TS),
    ("DEFERRABLE", RES_PG),
    ("DELAYED", RES_MY),
    ("DELETE", RES_MY | RES_TS | RISKY | BLOCK | CLASS_WRITE),
    ("DELETE_DOMAIN_ID", RES_MY),
    ("DENSE_RANK", RES_MY | READ),
    ("DENY", RES_TS | RISKY | BLOCK | CLASS_DCL),
    ("DESC", RES_PG | RES_MY | RES_TS | READ | CLASS_READ),
    ("DESCRIBE", RES_MY | CLASS_READ),
    ("DETERMINISTIC", RES_MY),
    ("DISCARD", RISKY | CLASS_SESSION),
    ("DISK", RES_TS),
    ("DISTINCT", RES_PG | RES_MY | RES_TS | READ),
    ("DISTINCTROW", RES_MY | READ),
    ("DISTRIBUTED", RES_TS),
    ("DIV", RES_MY | READ),
    ("DO", RES_PG | RISKY | CLASS_FUNCTION),
    ("DOUBLE", RES_MY | RES_TS | READ),
    ("DO_DOMAIN_IDS", RES_MY),
    ("DROP", RES_MY | RES_TS | RISKY | BLOCK | CLASS_DDL),
    ("DUAL", RES_MY | READ),
    ("DUMP", RES_TS),
    ("DUMPFILE", RISKY),
    ("EACH", RES_MY),
    ("ELSE", RES_PG | RES_MY | RES_TS | READ),
    ("ELSEIF", RES_MY),
    ("EMPTY", RES_MY),
    ("ENCLOSED", RES_MY),
    ("END", RES_PG | RES_TS | READ | CLASS_TRANSACTION),
    ("ERRLVL", RES_TS),
    ("ESCAPE", RES_TS | READ),
    ("ESCAPED", RES_MY),
    ("EXCEPT", RES_PG | RES_MY | RES_TS | READ),
    ("EXEC", RES_TS | RISKY | CLASS_FUNCTION),
    ("EXECUTE", RES_TS | RISKY | CLASS_FUNCTION),
    ("EXISTS", RES_MY | RES_TS | READ),
    ("EXIT", RES_MY | RES_TS),
    ("EXPLAIN", RES_MY | CLASS_READ),
    ("EXTERNAL", RES_TS),
    ("EXTRACT", READ),
    ("FALSE", RES_PG | RES_MY | READ),
    ("FETCH", RES_PG | RES_MY | RES_TS | RISKY),
    ("FILE", RES_TS),
    ("FILLFACTOR", RES_TS),
    ("FILTER", READ),
    ("FIRST", READ),
    ("FIRST_VALUE", RES_MY | READ),
    ("FLOAT", RES_MY | READ),
    ("FLOAT4", RES_MY | READ),
    ("FLOAT8", RES_MY | READ),
    ("FLUSH", RISKY | CLASS_ADMIN),
    ("FOLLOWING", READ),
    ("FOR", RES_PG | RES_MY | RES_TS | RISKY),
    ("FORCE", RES_MY),
    ("FOREIGN", RES_PG | RES_MY | RES_TS),
    ("FREETEXT", RES_TS),
    ("FREETEXTTABLE", RES_TS),
    ("FREEZE", RES_PG),
    ("FROM", RES_PG | RES_MY | RES_TS | READ),
    ("FULL", RES_PG | RES_TS | READ),
    ("FULLTEXT", RES_MY),
    ("FUNCTION", RES_MY | RES_TS),
    ("GENERAL", RES_MY),
    ("GENERATED", RES_MY),
    ("GET", RES_MY),
    ("GO", RISKY_TS | CLASS_ADMIN),
    ("GOTO", RES_TS | RISKY_TS),
    ("GRANT", RES_PG | RES_MY | RES_TS | RISKY | BLOCK | CLASS_DCL),
    ("GREATEST", READ),
    ("GROUP", RES_PG | RES_MY | RES_TS | READ),
    ("GROUPING", RES_MY | READ),
    ("GROUPS", RES_MY),
    ("HANDLER", RISKY | CLASS_FUNCTION),
    ("HAVING", RES_PG | RES_MY | RES_TS | READ),
    ("HELP", CLASS_READ),
    ("HIGH_PRIORITY", RES_MY | READ),
    ("HOLDLOCK", RES_TS),
    ("HOUR_MICROSECOND", RES_MY | READ),
    ("HOUR_MINUTE", RES_MY | READ),
    ("HOUR_SECOND", RES_MY | READ),
    ("IDENTITY", RES_TS),
    ("IDENTITYCOL", RES_TS),
    ("IDENTITY_INSERT", RES_TS),
    ("IF", RES_MY | RES_TS | RISKY),
    ("IGNORE", RES_MY),
    ("IGNORE_DOMAIN_IDS", RES_MY),
    ("IGNORE_SERVER_IDS", RES_MY),
    ("ILIKE", RES_PG | READ),
    ("IMPORT", RISKY | CLASS_DDL),
    ("IN", RES_PG | RES_MY | RES_TS | READ),
    ("INDEX", RES_MY | RES_TS),
    ("INFILE", RES_MY | RISKY),
    ("INITIALLY", RES_PG),
    ("INNER", RES_PG | RES_MY | RES_TS | READ),
    ("INOUT", RES_MY),
    ("INSENSITIVE", RES_MY),
    ("INSERT", RES_MY | RES_TS | RISKY | BLOCK | CLASS_WRITE),
    ("INSTALL", RISKY | CLASS_ADMIN),
    ("INT", RES_MY | READ),
    ("INT1", RES_MY | READ),
    ("INT2", RES_MY | READ),
    ("INT3", RES_MY | READ),
    ("INT4", RES_MY | READ),
    ("INT8", RES_MY | READ),
    ("INTEGER", RES_MY | READ),
    ("INTERSECT", RES_PG | RES_MY | RES_TS | READ),
    ("INTERVAL", RES_MY | READ),
    ("INTO", RES_PG | RES_MY | RES_TS | RISKY),
    ("IO_AFTER_GTIDS", RES_MY),
    ("IO_BEFORE_GTIDS", RES_MY),
    ("IS", RES_PG | RES_MY | RES_TS | READ),
    ("ISNULL", RES_PG | READ),
    ("ITERATE", RES_MY),
    ("JOIN", RES_PG | RES_MY | RES_TS | READ),
    ("JSON", READ),
    ("JSONB", READ),
    ("JSON_TABLE", RES_MY),
    ("KEY", RES_MY | RES_TS),
    ("KEYS", RES_MY),
    ("KILL", RES_MY | RES_TS | RISKY | CLASS_ADMIN),
    ("LAG", RES_MY | READ),
    ("LAST", READ),
    ("LAST_VALUE", RES_MY | READ),
    ("LATERAL", RES_PG | RES_MY | READ),
    ("LEAD", RES_MY | READ),
    ("LEADING", RES_PG | RES_MY | READ),
    ("LEAST", READ),
    ("LEAVE", RES_MY),
    ("LEFT", RES_PG | RES_MY | RES_TS | READ),
    ("LIKE", RES_PG | RES_MY | RES_TS | READ),
    ("LIMIT", RES_PG | RES_MY | READ),
    ("LINEAR", RES_MY),
    ("LINENO", RES_TS),
    ("LINES", RES_MY),
    ("LISTEN", RISKY | CLASS_SESSION),
    ("LOAD", RES_MY | RES_TS | RISKY | CLASS_WRITE),
    ("LOCALTIME", RES_PG | RES_MY | READ),
    ("LOCALTIMESTAMP", RES_PG | RES_MY | READ),
    ("LOCK", RES_MY | RISKY | CLASS_ADMIN),
    ("LONG", RES_MY),
    ("LONGBLOB", RES_MY),
    ("LONGTEXT", RES_MY),
    ("LOOP", RES_MY),
    ("LOW_PRIORITY", RES_MY),
    ("MASTER_BIND", RES_MY),
    ("MASTER_HEARTBEAT_PERIOD", RES_MY),
    ("MASTER_SSL_VERIFY_SERVER_CERT", RES_MY),
    ("MATCH", RES_MY | READ),
    ("MAXVALUE", RES_MY),
    ("MEDIUMBLOB", RES_MY),
    ("MEDIUMINT", RES_MY),
    ("MEDIUMTEXT", RES_MY),
    ("MERGE", RES_TS | RISKY | BLOCK | CLASS_WRITE),
    ("MIDDLEINT", RES_MY),
    ("MINUTE_MICROSECOND", RES_MY | READ),
    ("MINUTE_SECOND", RES_MY | READ),
    ("MOD", RES_MY | READ),
    ("MODIFIES", RES_MY),
    ("MONEY", READ),
    ("MOVE", RISKY_TS),
    ("NATIONAL", RES_TS | READ),
    ("NATURAL", RES_PG | RES_MY | READ),
    ("NCHAR", READ),
    ("NOCHECK", RES_TS),
    ("NONCLUSTERED", RES_TS),
    ("NOT", RES_PG | RES_MY | RES_TS | READ),
    ("NOTIFY", RISKY | CLASS_ADMIN),
    ("NOTNULL", RES_PG | READ),
    ("NOWAIT", RISKY),
    ("NO_WRITE_TO_BINLOG", RES_MY),
    ("NTH_VALUE", RES_MY | READ),
    ("NTILE", RES_MY | READ),
    ("NULL", RES_PG | RES_MY | RES_TS | READ),
    ("NULLIF", RES_TS | READ),
    ("NULLS", READ),
    ("NUMERIC", RES_MY | READ),
    ("NVARCHAR", READ),
    ("OF", RES_MY | RES_TS),
    ("OFF", RES_TS),
    ("OFFSET", RES_PG | RES_MY | READ),
    ("OFFSETS", RES_TS),
    ("ON", RES_PG | RES_MY | RES_TS | READ),
    ("ONLY", RES_PG | READ),
    ("OPEN", RES_TS | RISKY_TS),
    ("OPENDATASOURCE", RES_TS | RISKY),
    ("OPENQUERY", RES_TS | RISKY),
    ("OPENROWSET", RES_TS | RISKY),
    ("OPENXML", RES_TS | RISKY),
    ("OPTIMIZE", RES_MY | RISKY | CLASS_ADMIN),
    ("OPTIMIZER_COSTS", RES_MY),
    ("OPTION", RES_MY | RES_TS),
    ("OPTIONALLY", RES_MY),
    ("OR", RES_PG | RES_MY | RES_TS | READ),
    ("ORDER", RES_PG | RES_MY | RES_TS | READ),
    ("OUT", RES_MY),
    ("OUTER", RES_PG | RES_MY | RES_TS | READ),
    ("OUTFILE", RES_MY | RISKY),
    ("OVER", RES_MY | RES_TS | READ),
    ("OVERLAPS", RES_PG | READ),
    ("OVERLAY", READ),
    ("PAGE_CHECKSUM", RES_MY),
    ("PARSE_VCOL_EXPR", RES_MY),
    ("PARTITION", RES_MY | READ),
    ("PERCENT", RES_TS | READ),
    ("PERCENT_RANK", RES_MY | READ),
    ("PIVOT", RES_TS),
    ("PLACING", RES_PG | READ),
    ("PLAN", RES_TS),
    ("POSITION", RES_MY | READ),
    ("PRECEDING", READ),
    ("PRECISION", RES_MY | RES_TS | READ),
    ("PREPARE", RISKY | CLASS_FUNCTION),
    ("PRIMARY", RES_PG | RES_MY | RES_TS),
    ("PRINT", RES_TS | RISKY_TS),
    ("PROC", RES_TS),
    ("PROCEDURE", RES_MY | RES_TS | RISKY),
    ("PUBLIC", RES_TS),
    ("PURGE", RES_MY | RISKY | CLASS_ADMIN),
    ("RAISERROR", RES_TS | RISKY_TS),
    ("RANGE", RES_MY | READ),
    ("RANK", RES_MY | READ),
    ("READ", RES_MY | RES_TS),
    ("READS", RES_MY),
    ("READTEXT", RES_TS | RISKY_TS),
    ("READ_WRITE", RES_MY),
    ("REAL", RES_MY | READ),
    ("REASSIGN", RISKY | CLASS_DCL),
    ("RECEIVE", RISKY_TS),
    ("RECONFIGURE", RES_TS | RISKY_TS | CLASS_ADMIN),
    ("RECURSIVE", RES_MY),
    ("REFERENCES", RES_PG | RES_MY | RES_TS),
    ("REFRESH", RISKY | CLASS_ADMIN),
    ("REF_SYSTEM_ID", RES_MY),
    ("REGEXP", RES_MY | READ),
    ("REINDEX", RISKY | CLASS_ADMIN),
    ("RELEASE", RES_MY | RISKY | CLASS_TRANSACTION),
    ("RENAME", RES_MY | RISKY | BLOCK | CLASS_DDL),
    ("REPAIR", RISKY | CLASS_ADMIN),
    ("REPEAT", RES_MY),
    ("REPLACE", RES_MY | RISKY | BLOCK | CLASS_WRITE),
    ("REPLICATION", RES_TS),
    ("REQUIRE", RES_MY),
    ("RESET", RISKY | CLASS_SESSION),
    ("RESIGNAL", RES_MY | RISKY),
    ("RESTORE", RES_TS | RISKY_TS | CLASS_ADMIN),
    ("RESTRICT", RES_MY | RES_TS),
    ("RETURN", RES_MY | RES_TS | RISKY_TS),
    ("RETURNING", RES_PG | RES_MY | RISKY),
    ("REVERT", RES_TS | RISKY_TS),
    ("REVOKE", RES_MY | RES_TS | RISKY | BLOCK | CLASS_DCL),
    ("RIGHT", RES_PG | RES_MY | RES_TS | READ),
    ("RLIKE", RES_MY | READ),
    ("ROLLBACK", RES_TS | RISKY | CLASS_TRANSACTION),
    ("ROW", RES_MY | READ),
    ("ROWCOUNT", RES_TS),
    ("ROWGUIDCOL", RES_TS),
    ("ROWS", RES_MY | READ),
    ("ROW_NUMBER", RES_MY | READ),
    ("RULE", RES_TS),
    ("SAVE", RES_TS | RISKY_TS | CLASS_TRANSACTION),
    ("SAVEPOINT", RISKY | CLASS_TRANSACTION),
    ("SCHEMA", RES_MY | RES_TS),
    ("SCHEMAS", RES_MY),
    ("SECOND_MICROSECOND", RES_MY | READ),
    ("SECURITY", CLASS_DDL),
    ("SECURITYAUDIT", RES_TS),
    ("SELECT", RES_PG | RES_MY | RES_TS | READ | CLASS_READ),
    ("SEMANTICKEYPHRASETABLE", RES_TS),
    ("SEMANTICSIMILARITYDETAILSTABLE", RES_TS),
    ("SEMANTICSIMILARITYTABLE", RES_TS),
    ("SEND", RISKY_TS),
    ("SENSITIVE", RES_MY),
    ("SEPARATOR", RES_MY | READ),
    ("SESSION_USER", RES_PG | RES_TS | READ),
    ("SET", RES_MY | RES_TS | RISKY | CLASS_SESSION),
    ("SETUSER", RES_TS | RISKY_TS),
    ("SHARE", RISKY),
    ("SHOW", RES_MY | CLASS_READ),
    ("SHUTDOWN", RES_TS | RISKY | CLASS_ADMIN),
    ("SIGNAL", RES_MY | RISKY),
    ("SIGNED", READ),
    ("SIMILAR", RES_PG | READ),
    ("SLOW", RES_MY),
    ("SMALLDATETIME", READ),
    ("SMALLINT", RES_MY | READ),
    ("SOME", RES_PG | RES_TS | READ),
    ("SPATIAL", RES_MY),
    ("SPECIFIC", RES_MY),
    ("SQL", RES_MY),
    ("SQLEXCEPTION", RES_MY),
    ("SQLSTATE", RES_MY),
    ("SQLWARNING", RES_MY),
    ("SQL_BIG_RESULT", RES_MY),
    ("SQL_CALC_FOUND_ROWS", RES_MY),
    ("SQL_SMALL_RESULT", RES_MY),
    ("SSL", RES_MY),
    ("START", RISKY | CLASS_TRANSACTION),
    ("STARTING", RES_MY),
    ("STATISTICS", RES_TS),
    ("STATS_AUTO_RECALC", RES_MY),
    ("STATS_PERSISTENT", RES_MY),
    ("STATS_SAMPLE_PAGES", RES_MY),
    ("STORED", RES_MY),
    ("STRAIGHT_JOIN", RES_MY | READ),
    ("SUBSTRING", READ),
    ("SYMMETRIC", RES_PG | READ),
    ("SYSTEM", RES_MY),
    ("SYSTEM_USER", RES_PG | RES_TS | READ),
    ("TABLE", RES_PG | RES_MY | RES_TS | CLASS_READ),
    ("TABLESAMPLE", RES_PG | RES_TS),
    ("TERMINATED", RES_MY),
    ("TEXT", READ),
    ("TEXTSIZE", RES_TS),
    ("THEN", RES_PG | RES_MY | RES_TS | READ),
    ("THROW", RISKY_TS),
    ("TIME", READ),
    ("TIMESTAMP", READ),
    ("TINYBLOB", RES_MY),
    ("TINYINT", RES_MY | READ),
    ("TINYTEXT", RES_MY),
    ("TO", RES_PG | RES_MY | RES_TS | READ),
    ("TOP", RES_TS | READ),
    ("TRAILING", RES_PG | RES_MY | READ),
    ("TRAN", RES_TS | RISKY_TS | CLASS_TRANSACTION),
    ("TRANSACTION", RES_TS | RISKY_TS),
    ("TRIGGER", RES_MY | RES_TS),
    ("TRIM", READ),
    ("TRUE", RES_PG | RES_MY | READ),
    ("TRUNCATE", RES_TS | RISKY | BLOCK | CLASS_WRITE),
    ("TRY_CAST", READ),
    ("TRY_CONVERT", RES_TS | READ),
    ("TSEQUAL", RES_TS),
    ("UNBOUNDED", READ),
    ("UNDO", RES_MY),
    ("UNINSTALL", RISKY | CLASS_ADMIN),
    ("UNION", RES_PG | RES_MY | RES_TS | READ),
    ("UNIQUE", RES_PG | RES_MY | RES_TS),
    ("UNIQUEIDENTIFIER", READ),
    ("UNKNOWN", READ),
    ("UNLISTEN", RISKY | CLASS_SESSION),
    ("UNLOCK", RES_MY | RISKY | CLASS_ADMIN),
    ("UNPIVOT", RES_TS),
    ("UNSIGNED", RES_MY | READ),
    ("UPDATE", RES_MY | RES_TS | RISKY | BLOCK | CLASS_WRITE),
    ("UPDATETEXT", RES_TS | RISKY_TS | CLASS_WRITE),
    ("UPSERT", RISKY | CLASS_WRITE),
    ("USAGE", RES_MY),
    ("USE", RES_MY | RES_TS | RISKY | CLASS_SESSION),
    ("USER", RES_PG | RES_TS | READ),
    ("USING", RES_PG | RES_MY | READ),
    ("UTC_DATE", RES_MY | READ),
    ("UTC_TIME", RES_MY | READ),
    ("UTC_TIMESTAMP", RES_MY | READ),
    ("VACUUM", RISKY | CLASS_ADMIN),
    ("VALUES", RES_MY | RES_TS | READ | CLASS_READ),
    ("VARBINARY", RES_MY | READ),
    ("VARCHAR", RES_MY | READ),
    ("VARCHARACTER", RES_MY | READ),
    ("VARIADIC", RES_PG),
    ("VARYING", RES_MY | RES_TS | READ),
    ("VERBOSE", RES_PG),
    ("VIEW", RES_TS),
    ("VIRTUAL", RES_MY),
    ("WAITFOR", RES_TS | RISKY | CLASS_ADMIN),
    ("WHEN", RES_PG | RES_MY | RES_TS | READ),
    ("WHERE", RES_PG | RES_MY | RES_TS | READ),
    ("WHILE", RES_MY | RES_TS | RISKY_TS),
    ("WINDOW", RES_PG | RES_MY | READ),
    ("WITH", RES_PG | RES_MY | RES_TS | RISKY | CLASS_READ),
    ("WITHIN", RES_TS | READ),
    ("WRITE", RES_MY),
    ("WRITETEXT", RES_TS | RISKY_TS | CLASS_WRITE),
    ("XA", RISKY | CLASS_TRANSACTION),
    ("XOR", RES_MY | READ),
    ("YEAR_MONTH", RES_MY | READ),
    ("ZEROFILL", RES_MY),
    ("ZONE", READ),
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_sorted() {
        for w in KEYWORDS.windows(2) {
            if let [a, b] = w {
                assert!(a.0 < b.0, "keyword table out of order: {} >= {}", a.0, b.0);
            }
        }
        for (k, _) in KEYWORDS {
            assert!(
                k.bytes()
                    .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == b'_'),
                "{k}"
            );
        }
    }

    #[test]
    fn index_agrees_with_full_search() {
        for (k, f) in KEYWORDS {
            assert_eq!(flags(k), *f, "{k}");
            assert_eq!(flags(&k.to_ascii_lowercase()), *f, "{k}");
            assert_eq!(lookup_in(KEYWORDS, k), Some(*f));
        }
        for w in ["", "_x", "9", "zzzz", "selec", "selectx", "é", "a", "sélect", "select\u{0}"] {
            assert_eq!(flags(w), lookup_in(KEYWORDS, w).unwrap_or(0), "{w}");
        }
        // Every prefix, suffix and one-letter change of every keyword: the hash index and a
        // full search must agree on all of them (a miss must never find another row).
        let full = |w: &str| KEYWORDS.iter().position(|(x, _)| x.eq_ignore_ascii_case(w));
        for (k, _) in KEYWORDS {
            for n in 0..k.len() {
                for w in [&k[..n], &k[n..]] {
                    assert_eq!(find(w), full(w), "{w}");
                }
                let mut b = k.to_ascii_lowercase().into_bytes();
                b[n] = if b[n] == b'z' { b'a' } else { b[n] + 1 };
                let w = String::from_utf8(b).unwrap();
                assert_eq!(find(&w), full(&w), "{w}");
            }
        }
    }

    #[test]
    fn lookups() {
        assert_ne!(flags("select") & READ, 0);
        assert_ne!(flags("SeLeCt") & READ, 0);
        assert_ne!(flags("DELETE") & BLOCK, 0);
        assert_eq!(flags("users"), 0);
        assert_eq!(flags(""), 0);
        assert_eq!(flags("sélect"), 0);
        assert!(risky_in(flags("into"), Dialect::Postgres));
        assert!(!risky_in(flags("waitfo"), Dialect::TSql));
        assert!(risky_in(flags("go"), Dialect::TSql));
        assert!(!risky_in(flags("go"), Dialect::Postgres));
        assert!(reserved_in(flags("fetch"), Dialect::Postgres));
        assert!(!reserved_in(flags("status"), Dialect::MySql));
        assert_eq!(class_name(flags("update")), "write");
        assert_eq!(class_name(flags("grant")), "dcl");
        assert_eq!(class_name(flags("drop")), "ddl");
        assert_eq!(class_name(flags("commit")), "transaction");
        assert_eq!(class_name(flags("set")), "session");
        assert_eq!(class_name(flags("call")), "function");
        assert_eq!(class_name(flags("vacuum")), "admin");
        assert_eq!(class_name(flags("select")), "read");
        assert_eq!(class_name(flags("users")), "unknown");
        // every first-verb BLOCK word is also risky anywhere, and no READ word is risky
        for (k, f) in KEYWORDS {
            if f & BLOCK != 0 {
                assert_ne!(f & RISKY, 0, "{k}");
            }
            assert!(f & READ == 0 || f & (RISKY | RISKY_TS) == 0, "{k}");
        }
    }
}
