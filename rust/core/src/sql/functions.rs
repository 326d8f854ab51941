//! Built-in functions the fast path may allow: pure (no side effect, no host access, no
//! sleep/lock, no dynamic SQL), per dialect. Anything else called in a query makes the fast
//! path DEFER to the deep check and its function policy.
//!
//! Deliberately absent (side effects or host access, see the function policy and
//! `read-only-bypasses.md` rows 8–10): PostgreSQL `nextval`, `setval`, `currval`, `lastval`,
//! `pg_sleep*`, `set_config`, `pg_advisory_*`, `pg_notify`, `pg_read_file`, `pg_ls_dir`,
//! `lo_*`, `dblink*`, `query_to_xml`, `pg_terminate_backend`, `txid_current`,
//! `generate_series` (unbounded output), `random`/`setseed`; MySQL `sleep`, `benchmark`,
//! `get_lock`, `release_lock`, `is_free_lock`, `load_file`, `master_pos_wait`,
//! `source_pos_wait`, `nextval`/`setval`/`lastval` (MariaDB sequences), `last_insert_id`
//! (sets session state with an argument), `rand`, `uuid`; T-SQL `openrowset`, `openquery`,
//! `opendatasource`, `xp_*`, `sp_*`, `newid`.
//!
//! Lookups are case-insensitive (all three servers resolve unqualified built-in names
//! case-insensitively); a qualified (`schema.fn(`) or quoted (`"fn"(`) call never matches.

use super::keywords::lookup_in;
use super::Dialect;

pub const FN_PG: u8 = 1;
pub const FN_MY: u8 = 2;
pub const FN_TS: u8 = 4;

/// Is `name` (as written, unquoted, unqualified) a pure built-in function in `d`?
pub fn is_pure_function(name: &str, d: Dialect) -> bool {
    let bit = match d {
        Dialect::Postgres => FN_PG,
        Dialect::MySql => FN_MY,
        Dialect::TSql => FN_TS,
    };
    lookup_in(PURE_FUNCTIONS, name).is_some_and(|f| f & bit != 0)
}

/// Built-in type names a cast may target on the fast path. A cast to anything else may run
/// user code: a user-defined cast function (`CREATE CAST ... WITH FUNCTION`), a domain
/// whose CHECK calls a function (PostgreSQL), a CLR type's `Parse` (SQL Server).
pub fn is_builtin_type(name: &str, d: Dialect) -> bool {
    let bit = match d {
        Dialect::Postgres => FN_PG,
        Dialect::MySql => FN_MY,
        Dialect::TSql => FN_TS,
    };
    lookup_in(BUILTIN_TYPES, name).is_some_and(|f| f & bit != 0)
}

#[rustfmt::skip]
static BUILTIN_TYPES: &[(&str, u8)] = &[
    ("BIGINT", FN_PG | FN_MY | FN_TS),
    ("BINARY", FN_MY | FN_TS),
    ("BIT", FN_PG | FN_TS),
    ("BOOL", FN_PG),
    ("BOOLEAN", FN_PG),
    ("BPCHAR", FN_PG),
    ("BYTEA", FN_PG),
    ("CHAR", FN_PG | FN_MY | FN_TS),
    ("CHARACTER", FN_PG),
    ("CIDR", FN_PG),
    ("DATE", FN_PG | FN_MY | FN_TS),
    ("DATETIME", FN_MY | FN_TS),
    ("DATETIME2", FN_TS),
    ("DATETIMEOFFSET", FN_TS),
    ("DEC", FN_PG | FN_MY),
    ("DECIMAL", FN_PG | FN_MY | FN_TS),
    ("DOUBLE", FN_PG | FN_MY),
    ("FLOAT", FN_PG | FN_MY | FN_TS),
    ("FLOAT4", FN_PG),
    ("FLOAT8", FN_PG),
    ("INET", FN_PG),
    ("INT", FN_PG | FN_MY | FN_TS),
    ("INT2", FN_PG),
    ("INT4", FN_PG),
    ("INT8", FN_PG),
    ("INTEGER", FN_PG | FN_MY),
    ("INTERVAL", FN_PG),
    ("JSON", FN_PG | FN_MY),
    ("JSONB", FN_PG),
    ("MONEY", FN_PG | FN_TS),
    ("NCHAR", FN_MY | FN_TS),
    ("NUMERIC", FN_PG | FN_TS),
    ("NVARCHAR", FN_TS),
    ("OID", FN_PG),
    ("PRECISION", FN_PG | FN_MY),
    ("REAL", FN_PG | FN_MY | FN_TS),
    ("REGCLASS", FN_PG),
    ("REGTYPE", FN_PG),
    ("SIGNED", FN_MY),
    ("SMALLDATETIME", FN_TS),
    ("SMALLINT", FN_PG | FN_TS),
    ("TEXT", FN_PG),
    ("TIME", FN_PG | FN_MY | FN_TS),
    ("TIMESTAMP", FN_PG),
    ("TIMESTAMPTZ", FN_PG),
    ("TIMETZ", FN_PG),
    ("TINYINT", FN_TS),
    ("UNIQUEIDENTIFIER", FN_TS),
    ("UNSIGNED", FN_MY),
    ("UUID", FN_PG),
    ("VARBINARY", FN_TS),
    ("VARCHAR", FN_PG | FN_MY | FN_TS),
    ("YEAR", FN_MY),
];

/// System schemas and catalogs. The fast path vouches only for reads of user data: a query
/// naming any of these goes to the deep check, where the sensitive-catalog policy lives
/// (`pg_authid`, `pg_stat_activity`, `mysql.user`, `information_schema.processlist`,
/// `performance_schema.events_statements_history`, `sys.sql_logins`, ...; read-only-bypasses
/// row 16). PostgreSQL: also every name starting with `pg_`.
pub fn is_system_name(name: &str, d: Dialect) -> bool {
    let n = name.as_bytes();
    if d == Dialect::Postgres
        && n.len() >= 3
        && n.get(..3).is_some_and(|p| p.eq_ignore_ascii_case(b"pg_"))
    {
        return true;
    }
    let bit = match d {
        Dialect::Postgres => FN_PG,
        Dialect::MySql => FN_MY,
        Dialect::TSql => FN_TS,
    };
    lookup_in(SYSTEM_NAMES, name).is_some_and(|f| f & bit != 0)
}

#[rustfmt::skip]
static SYSTEM_NAMES: &[(&str, u8)] = &[
    ("GLOBAL_PRIV", FN_MY),
    ("INFORMATION_SCHEMA", FN_PG | FN_MY | FN_TS),
    ("MASTER", FN_TS),
    ("MSDB", FN_TS),
    ("MYSQL", FN_MY),
    ("PERFORMANCE_SCHEMA", FN_MY),
    ("PROCESSLIST", FN_MY),
    ("SYS", FN_MY | FN_TS),
    ("SYSLOGINS", FN_TS),
    ("SYSPROCESSES", FN_TS),
    ("SYSUSERS", FN_TS),
    ("SYSXLOGINS", FN_TS),
];

#[rustfmt::skip]
pub static PURE_FUNCTIONS: &[(&str, u8)] = &[
    ("ABS", FN_PG | FN_MY | FN_TS),
    ("ACOS", FN_PG | FN_MY | FN_TS),
    ("ADDDATE", FN_MY),
    ("AGE", FN_PG),
    ("ANY_VALUE", FN_MY),
    ("ARRAY_AGG", FN_PG),
    ("ARRAY_LENGTH", FN_PG),
    ("ARRAY_TO_STRING", FN_PG),
    ("ASCII", FN_PG | FN_MY | FN_TS),
    ("ASIN", FN_PG | FN_MY | FN_TS),
    ("ATAN", FN_PG | FN_MY | FN_TS),
    ("ATAN2", FN_PG | FN_MY),
    ("AVG", FN_PG | FN_MY | FN_TS),
    ("BIN", FN_MY),
    ("BIT_AND", FN_MY),
    ("BIT_LENGTH", FN_PG | FN_MY),
    ("BIT_OR", FN_MY),
    ("BIT_XOR", FN_MY),
    ("BOOL_AND", FN_PG),
    ("BOOL_OR", FN_PG),
    ("BTRIM", FN_PG),
    ("CARDINALITY", FN_PG),
    ("CBRT", FN_PG),
    ("CEIL", FN_PG | FN_MY),
    ("CEILING", FN_PG | FN_MY | FN_TS),
    ("CHARACTER_LENGTH", FN_PG | FN_MY),
    ("CHARINDEX", FN_TS),
    ("CHAR_LENGTH", FN_PG | FN_MY),
    ("CHR", FN_PG),
    ("COALESCE", FN_PG | FN_MY | FN_TS),
    ("CONCAT", FN_PG | FN_MY | FN_TS),
    ("CONCAT_WS", FN_PG | FN_MY | FN_TS),
    ("CONNECTION_ID", FN_MY),
    ("CONV", FN_MY),
    ("CORR", FN_PG),
    ("COS", FN_PG | FN_MY | FN_TS),
    ("COT", FN_PG | FN_MY | FN_TS),
    ("COUNT", FN_PG | FN_MY | FN_TS),
    ("COVAR_POP", FN_PG),
    ("COVAR_SAMP", FN_PG),
    ("CRC32", FN_MY),
    ("CUBE", FN_PG),
    ("CUME_DIST", FN_PG | FN_MY | FN_TS),
    ("CURDATE", FN_MY),
    ("CURRENT_DATABASE", FN_PG),
    ("CURRENT_ROLE", FN_MY),
    ("CURRENT_SCHEMAS", FN_PG),
    ("CURRENT_SETTING", FN_PG),
    ("CURTIME", FN_MY),
    ("DATABASE", FN_MY),
    ("DATALENGTH", FN_TS),
    ("DATEADD", FN_TS),
    ("DATEDIFF", FN_MY | FN_TS),
    ("DATEFROMPARTS", FN_TS),
    ("DATENAME", FN_TS),
    ("DATEPART", FN_TS),
    ("DATE_ADD", FN_MY),
    ("DATE_FORMAT", FN_MY),
    ("DATE_PART", FN_PG),
    ("DATE_SUB", FN_MY),
    ("DATE_TRUNC", FN_PG),
    ("DAY", FN_MY | FN_TS),
    ("DAYNAME", FN_MY),
    ("DAYOFMONTH", FN_MY),
    ("DAYOFWEEK", FN_MY),
    ("DAYOFYEAR", FN_MY),
    ("DECODE", FN_PG),
    ("DEGREES", FN_PG | FN_MY | FN_TS),
    ("DENSE_RANK", FN_PG | FN_MY | FN_TS),
    ("DIFFERENCE", FN_TS),
    ("DIV", FN_PG),
    ("ELT", FN_MY),
    ("ENCODE", FN_PG),
    ("EOMONTH", FN_TS),
    ("EXP", FN_PG | FN_MY | FN_TS),
    ("FIELD", FN_MY),
    ("FIND_IN_SET", FN_MY),
    ("FIRST_VALUE", FN_PG | FN_MY | FN_TS),
    ("FLOOR", FN_PG | FN_MY | FN_TS),
    ("FORMAT", FN_PG | FN_MY | FN_TS),
    ("FROM_DAYS", FN_MY),
    ("FROM_UNIXTIME", FN_MY),
    ("GETDATE", FN_TS),
    ("GETUTCDATE", FN_TS),
    ("GREATEST", FN_PG | FN_MY),
    ("GROUPING", FN_PG),
    ("GROUP_CONCAT", FN_MY),
    ("HEX", FN_MY),
    ("HOUR", FN_MY),
    ("IF", FN_MY),
    ("IFNULL", FN_MY),
    ("IIF", FN_TS),
    ("INITCAP", FN_PG),
    ("INSTR", FN_MY),
    ("ISJSON", FN_TS),
    ("ISNULL", FN_MY | FN_TS),
    ("ISNUMERIC", FN_TS),
    ("JSONB_AGG", FN_PG),
    ("JSONB_ARRAY_ELEMENTS", FN_PG),
    ("JSONB_ARRAY_ELEMENTS_TEXT", FN_PG),
    ("JSONB_ARRAY_LENGTH", FN_PG),
    ("JSONB_BUILD_ARRAY", FN_PG),
    ("JSONB_BUILD_OBJECT", FN_PG),
    ("JSONB_EACH", FN_PG),
    ("JSONB_EACH_TEXT", FN_PG),
    ("JSONB_EXTRACT_PATH", FN_PG),
    ("JSONB_EXTRACT_PATH_TEXT", FN_PG),
    ("JSONB_OBJECT_AGG", FN_PG),
    ("JSONB_TYPEOF", FN_PG),
    ("JSON_AGG", FN_PG),
    ("JSON_ARRAY", FN_MY),
    ("JSON_ARRAYAGG", FN_MY),
    ("JSON_ARRAY_ELEMENTS", FN_PG),
    ("JSON_ARRAY_LENGTH", FN_PG),
    ("JSON_BUILD_ARRAY", FN_PG),
    ("JSON_BUILD_OBJECT", FN_PG),
    ("JSON_CONTAINS", FN_MY),
    ("JSON_CONTAINS_PATH", FN_MY),
    ("JSON_DEPTH", FN_MY),
    ("JSON_EXTRACT", FN_MY),
    ("JSON_KEYS", FN_MY),
    ("JSON_LENGTH", FN_MY),
    ("JSON_OBJECT", FN_MY),
    ("JSON_OBJECTAGG", FN_MY),
    ("JSON_OBJECT_AGG", FN_PG),
    ("JSON_SEARCH", FN_MY),
    ("JSON_TYPE", FN_MY),
    ("JSON_TYPEOF", FN_PG),
    ("JSON_UNQUOTE", FN_MY),
    ("JSON_VALID", FN_MY),
    ("JSON_VALUE", FN_MY | FN_TS),
    ("LAG", FN_PG | FN_MY | FN_TS),
    ("LAST_DAY", FN_MY),
    ("LAST_VALUE", FN_PG | FN_MY | FN_TS),
    ("LCASE", FN_MY),
    ("LEAD", FN_PG | FN_MY | FN_TS),
    ("LEAST", FN_PG | FN_MY),
    ("LEFT", FN_PG | FN_MY | FN_TS),
    ("LEN", FN_TS),
    ("LENGTH", FN_PG | FN_MY),
    ("LN", FN_PG | FN_MY),
    ("LOCATE", FN_MY),
    ("LOG", FN_PG | FN_MY | FN_TS),
    ("LOG10", FN_PG | FN_MY | FN_TS),
    ("LOWER", FN_PG | FN_MY | FN_TS),
    ("LPAD", FN_PG | FN_MY),
    ("LTRIM", FN_PG | FN_MY | FN_TS),
    ("MAKEDATE", FN_MY),
    ("MAKE_DATE", FN_PG),
    ("MAX", FN_PG | FN_MY | FN_TS),
    ("MD5", FN_PG | FN_MY),
    ("MICROSECOND", FN_MY),
    ("MIN", FN_PG | FN_MY | FN_TS),
    ("MINUTE", FN_MY),
    ("MOD", FN_PG | FN_MY),
    ("MODE", FN_PG),
    ("MONTH", FN_MY | FN_TS),
    ("MONTHNAME", FN_MY),
    ("NOW", FN_PG | FN_MY),
    ("NTH_VALUE", FN_PG | FN_MY),
    ("NTILE", FN_PG | FN_MY | FN_TS),
    ("NULLIF", FN_PG | FN_MY | FN_TS),
    ("OCT", FN_MY),
    ("OCTET_LENGTH", FN_PG | FN_MY),
    ("ORD", FN_MY),
    ("PATINDEX", FN_TS),
    ("PERCENTILE_CONT", FN_PG | FN_TS),
    ("PERCENTILE_DISC", FN_PG | FN_TS),
    ("PERCENT_RANK", FN_PG | FN_MY | FN_TS),
    ("PG_TYPEOF", FN_PG),
    ("PI", FN_PG | FN_MY | FN_TS),
    ("POW", FN_MY),
    ("POWER", FN_PG | FN_MY | FN_TS),
    ("QUARTER", FN_MY),
    ("QUOTENAME", FN_TS),
    ("QUOTE_IDENT", FN_PG),
    ("QUOTE_LITERAL", FN_PG),
    ("RADIANS", FN_PG | FN_MY | FN_TS),
    ("RANK", FN_PG | FN_MY | FN_TS),
    ("REGEXP_REPLACE", FN_PG | FN_MY),
    ("REGR_AVGX", FN_PG),
    ("REGR_AVGY", FN_PG),
    ("REGR_COUNT", FN_PG),
    ("REGR_INTERCEPT", FN_PG),
    ("REGR_R2", FN_PG),
    ("REGR_SLOPE", FN_PG),
    ("REPEAT", FN_PG | FN_MY),
    ("REPLACE", FN_PG | FN_MY | FN_TS),
    ("REPLICATE", FN_TS),
    ("REVERSE", FN_PG | FN_MY | FN_TS),
    ("RIGHT", FN_PG | FN_MY | FN_TS),
    ("ROLLUP", FN_PG),
    ("ROUND", FN_PG | FN_MY | FN_TS),
    ("ROW_NUMBER", FN_PG | FN_MY | FN_TS),
    ("ROW_TO_JSON", FN_PG),
    ("RPAD", FN_PG | FN_MY),
    ("RTRIM", FN_PG | FN_MY | FN_TS),
    ("SCHEMA", FN_MY),
    ("SECOND", FN_MY),
    ("SEC_TO_TIME", FN_MY),
    ("SESSION_USER", FN_MY),
    ("SHA1", FN_MY),
    ("SHA2", FN_MY),
    ("SIGN", FN_PG | FN_MY | FN_TS),
    ("SIN", FN_PG | FN_MY | FN_TS),
    ("SOUNDEX", FN_PG | FN_MY | FN_TS),
    ("SPACE", FN_TS),
    ("SPLIT_PART", FN_PG),
    ("SQRT", FN_PG | FN_MY | FN_TS),
    ("SQUARE", FN_TS),
    ("STD", FN_MY),
    ("STDDEV", FN_PG | FN_MY),
    ("STDDEV_POP", FN_PG | FN_MY),
    ("STDDEV_SAMP", FN_PG | FN_MY),
    ("STDEV", FN_TS),
    ("STDEVP", FN_TS),
    ("STR", FN_TS),
    ("STRCMP", FN_MY),
    ("STRING_AGG", FN_PG | FN_TS),
    ("STRPOS", FN_PG),
    ("STR_TO_DATE", FN_MY),
    ("STUFF", FN_TS),
    ("SUBDATE", FN_MY),
    ("SUBSTR", FN_PG | FN_MY),
    ("SUBSTRING_INDEX", FN_MY),
    ("SUM", FN_PG | FN_MY | FN_TS),
    ("SYSDATETIME", FN_TS),
    ("SYSTEM_USER", FN_MY),
    ("SYSUTCDATETIME", FN_TS),
    ("TAN", FN_PG | FN_MY | FN_TS),
    ("TIMESTAMPADD", FN_MY),
    ("TIMESTAMPDIFF", FN_MY),
    ("TIME_FORMAT", FN_MY),
    ("TIME_TO_SEC", FN_MY),
    ("TO_CHAR", FN_PG),
    ("TO_DATE", FN_PG),
    ("TO_DAYS", FN_MY),
    ("TO_JSON", FN_PG),
    ("TO_JSONB", FN_PG),
    ("TO_NUMBER", FN_PG),
    ("TO_TIMESTAMP", FN_PG),
    ("TRUNC", FN_PG),
    ("UCASE", FN_MY),
    ("UNHEX", FN_MY),
    ("UNIX_TIMESTAMP", FN_MY),
    ("UNNEST", FN_PG),
    ("UPPER", FN_PG | FN_MY | FN_TS),
    ("USER", FN_MY),
    ("VAR", FN_TS),
    ("VARIANCE", FN_PG | FN_MY),
    ("VARP", FN_TS),
    ("VAR_POP", FN_PG | FN_MY),
    ("VAR_SAMP", FN_PG | FN_MY),
    ("VERSION", FN_PG | FN_MY),
    ("WEEK", FN_MY),
    ("WEEKDAY", FN_MY),
    ("WIDTH_BUCKET", FN_PG),
    ("YEAR", FN_MY | FN_TS),
    ("YEARWEEK", FN_MY),

];

#[cfg(test)]
mod tests {
    use super::*;
    use Dialect::{MySql, Postgres, TSql};

    #[test]
    fn table_sorted() {
        for w in PURE_FUNCTIONS.windows(2) {
            if let [a, b] = w {
                assert!(a.0 < b.0, "function table out of order: {} >= {}", a.0, b.0);
            }
        }
    }

    #[test]
    fn other_tables_sorted() {
        for t in [BUILTIN_TYPES, SYSTEM_NAMES] {
            for w in t.windows(2) {
                if let [a, b] = w {
                    assert!(a.0 < b.0, "table out of order: {} >= {}", a.0, b.0);
                }
            }
        }
        assert!(is_builtin_type("int", Postgres) && is_builtin_type("Text", Postgres));
        assert!(!is_builtin_type("ticket", Postgres));
        assert!(is_system_name("pg_authid", Postgres) && is_system_name("PG_SHADOW", Postgres));
        assert!(is_system_name("information_schema", MySql) && is_system_name("mysql", MySql));
        assert!(!is_system_name("pg_x", MySql) && !is_system_name("orders", Postgres));
        assert!(is_system_name("sys", TSql));
    }

    #[test]
    fn allow_and_deny() {
        for d in [Postgres, MySql, TSql] {
            assert!(is_pure_function("count", d));
            assert!(is_pure_function("SUM", d));
            assert!(is_pure_function("Coalesce", d));
        }
        for f in [
            "nextval",
            "setval",
            "pg_sleep",
            "set_config",
            "query_to_xml",
            "dblink_exec",
            "pg_read_file",
            "lo_export",
            "pg_advisory_lock",
            "pg_notify",
            "pg_terminate_backend",
            "generate_series",
            "random",
            "txid_current",
        ] {
            assert!(!is_pure_function(f, Postgres), "{f}");
        }
        for f in [
            "sleep",
            "benchmark",
            "get_lock",
            "release_lock",
            "load_file",
            "nextval",
            "last_insert_id",
            "master_pos_wait",
            "rand",
            "uuid",
        ] {
            assert!(!is_pure_function(f, MySql), "{f}");
        }
        for f in [
            "openrowset",
            "openquery",
            "xp_cmdshell",
            "sp_executesql",
            "newid",
        ] {
            assert!(!is_pure_function(f, TSql), "{f}");
        }
        assert!(is_pure_function("if", MySql));
        assert!(!is_pure_function("if", TSql));
        assert!(is_pure_function("iif", TSql));
        assert!(!is_pure_function("date_trunc", MySql));
        assert!(is_pure_function("date_trunc", Postgres));
    }
}
