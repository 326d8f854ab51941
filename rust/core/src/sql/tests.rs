//! Cross-module tests: the publicly reported lexical bypasses
//! (`shared/notes/read-only-bypasses.md`, rows 1–13), property-style "a wrapped write is
//! never allowed" checks, and a randomized "never panics, invariants hold" run.

use super::fastpath::{fast_check, ALLOW, BLOCK, DEFER};
use super::lexer::{tokenize, TokenKind};
use super::split::{expand_sql, split_statements};
use super::Dialect::{self, MySql, Postgres, TSql};

const ALL: [Dialect; 3] = [Postgres, MySql, TSql];

#[track_caller]
fn expect(d: Dialect, sql: &str, want: u8) {
    let r = fast_check(sql, d);
    assert_eq!(
        r.decision, want,
        "{d:?} {sql:?}: got {} rule={:?} reason={:?} verbs={:?}",
        r.decision, r.rule, r.reason, r.verbs
    );
}

#[track_caller]
fn not_allowed(d: Dialect, sql: &str) {
    let r = fast_check(sql, d);
    assert_ne!(r.decision, ALLOW, "{d:?} {sql:?} must not be fast-allowed");
}

// ---- row 6: comments as separators / leading comments ------------------------------------

#[test]
fn row6_comment_tricks() {
    for d in ALL {
        expect(d, "/* x */ UPDATE users SET admin = 1", BLOCK);
        expect(d, "-- x\nUPDATE users SET admin = 1", BLOCK);
        expect(d, "-- x\r\nDROP TABLE t", BLOCK);
        expect(d, "DELETE/**/FROM users", BLOCK);
        expect(d, "/**/DELETE FROM users", BLOCK);
        expect(d, "/* a */ /* b */ -- c\n  dElEtE fRoM users", BLOCK);
        expect(d, "SELECT 1 /* ; */ ; DELETE FROM t", BLOCK);
        expect(d, "SELECT 1 -- x\n; DELETE FROM t", BLOCK);
        // nothing left after stripping comments: not allowed (fail closed)
        expect(d, "/* DELETE FROM t */", DEFER);
        expect(d, "-- DROP TABLE t", DEFER);
        expect(d, "", DEFER);
        expect(d, " ;; ", DEFER);
        // words inside strings and comments are not code
        expect(d, "SELECT 'DROP TABLE t; DELETE FROM x' FROM t", ALLOW);
        expect(
            d,
            "SELECT a FROM t WHERE note = 'drop table users' -- delete",
            ALLOW,
        );
    }
    expect(MySql, "#x\nDELETE FROM t", BLOCK);
    not_allowed(MySql, "SELECT * FROM t INTO/**/OUTFILE '/tmp/x'");
    not_allowed(MySql, "LOAD/**/DATA INFILE '/etc/passwd' INTO TABLE t");
    not_allowed(MySql, "SELECT * FROM t INTO OUTFILE '/tmp/x'");
    not_allowed(MySql, "SELECT * FROM t INTO DUMPFILE '/tmp/x'");
    // PostgreSQL ends a -- comment at a bare \r
    expect(Postgres, "-- x\rDELETE FROM t", BLOCK);
    expect(Postgres, "SELECT 1 -- x\r; DELETE FROM t", BLOCK);
    // nesting: PostgreSQL and T-SQL nest block comments, MySQL does not
    expect(Postgres, "SELECT 1 /* /* */ ; DELETE FROM t; */", ALLOW);
    expect(TSql, "SELECT 1 /* /* */ ; DELETE FROM t; */", ALLOW);
    expect(MySql, "SELECT 1 /* /* */ ; DELETE FROM t; */", BLOCK);
    // MySQL: `--` needs a following space; `--x` is not a comment
    expect(MySql, "SELECT 1 --x\n; DELETE FROM t", BLOCK);
    expect(MySql, "SELECT a--1 FROM t", ALLOW);
    // the quote-swallowing trick: the comment must end exactly where the server ends it
    expect(MySql, "SELECT 1 -- \r'\n; DELETE FROM t; -- '", BLOCK);
    expect(TSql, "SELECT 1 -- \r'\n; DELETE FROM t; -- '", BLOCK);
}

// ---- row 7: MySQL / MariaDB executable comments -------------------------------------------

#[test]
fn row7_executable_comments() {
    not_allowed(
        MySql,
        "SELECT 1 /*!50000 INTO OUTFILE '/var/lib/mysql-files/x.txt' */",
    );
    expect(
        MySql,
        "SELECT 1 /*!50000 INTO OUTFILE '/var/lib/mysql-files/x.txt' */",
        DEFER,
    );
    expect(MySql, "/*! DELETE FROM t */", BLOCK);
    expect(MySql, "/*!50000 DROP TABLE t */", BLOCK);
    expect(MySql, "/*!50000DROP TABLE t */", BLOCK);
    expect(MySql, "/*M!100100 DELETE FROM t */", BLOCK);
    expect(MySql, "/*M! TRUNCATE t */", BLOCK);
    expect(MySql, "SELECT 1; /*!50000 DROP TABLE t */", BLOCK);
    expect(MySql, "SELECT 1 /*!; DELETE FROM t */", BLOCK);
    expect(MySql, "SELECT 1 /*!50000 ; UPDATE t SET a = 1 */", BLOCK);
    not_allowed(MySql, "SELECT /*!50000 SLEEP(10) */");
    not_allowed(
        MySql,
        "SELECT 1 /*! UNION SELECT LOAD_FILE('/etc/passwd') */",
    );
    not_allowed(MySql, "SELECT 1 /*!*/");
    not_allowed(MySql, "SELECT /*!50000 1 */");
    // hints: a quote inside is a lex error (BLOCK); a plain hint defers
    expect(MySql, "SELECT /*+ SET_VAR(sql_mode='') */ 1", BLOCK);
    expect(MySql, "SELECT /*+ MAX_EXECUTION_TIME(1000) */ 1", DEFER);
    // nested comments inside an executable comment: lex error (BLOCK)
    expect(MySql, "SELECT 1 /*! /* x */ UNION SELECT 2 */", BLOCK);
    expect(MySql, "SELECT 1 /*! -- x\n */", BLOCK);
    expect(MySql, "SELECT 1 /*! DELETE FROM t", BLOCK);
    // elsewhere /*! is an ordinary comment
    expect(Postgres, "SELECT 1 /*! DELETE FROM t */", ALLOW);
    expect(TSql, "SELECT 1 /*! DELETE FROM t */", ALLOW);
    // expand_sql exposes the code to the deep parser
    let e = expand_sql("SELECT 1 /*!50000 INTO OUTFILE 'x' */", MySql).unwrap();
    assert_eq!(e, "SELECT 1  INTO OUTFILE 'x' ");
}

// ---- row 13: T-SQL batches without ';', GO, bracket identifiers ---------------------------

#[test]
fn row13_tsql_batches() {
    not_allowed(TSql, "SELECT 1\nWAITFOR DELAY '99:0:0'");
    not_allowed(TSql, "SELECT 1\nUSE master");
    expect(TSql, "SELECT [a'];DELETE FROM t WHERE c='x'", BLOCK);
    let r = fast_check("SELECT [a'];DELETE FROM t WHERE c='x'", TSql);
    assert_eq!(r.verbs, ["SELECT", "DELETE"]);
    expect(TSql, "SELECT 1 DELETE FROM t", DEFER);
    expect(TSql, "SELECT 1\nGO\nDELETE FROM t", DEFER);
    expect(TSql, "SELECT 1\nGO", DEFER);
    expect(TSql, "SELECT 1\ngo 5", DEFER);
    expect(TSql, "SELECT * FROM t SELECT 2", DEFER);
    expect(
        TSql,
        "SELECT 1 EXEC('DELETE FROM dbo.users WHERE 1=1')",
        DEFER,
    );
    expect(TSql, "EXEC('DELETE FROM dbo.users WHERE 1=1')", DEFER);
    expect(TSql, "SELECT 1; EXEC xp_cmdshell 'dir'", DEFER);
    expect(
        TSql,
        "SELECT * FROM OPENROWSET('SQLNCLI', 'x', 'SELECT 1')",
        DEFER,
    );
    expect(TSql, "SELECT 1 INSERT INTO t VALUES (1)", DEFER);
    expect(TSql, "SELECT 1 IF 1=1 DROP TABLE t", DEFER);
    expect(TSql, "SELECT 1 BEGIN TRAN", DEFER);
    expect(TSql, "SELECT @x = 1", DEFER);
    expect(TSql, "SELECT @@ROWCOUNT = 1", DEFER);
    expect(TSql, "SELECT * FROM t WITH (TABLOCKX)", DEFER);
    expect(TSql, "SELECT * INTO dbo.copy FROM t", DEFER);
    expect(
        TSql,
        "SELECT CASE WHEN 1=1 THEN 1 END END CONVERSATION @h",
        DEFER,
    );
    expect(TSql, "SELECT [x]]; DELETE] FROM t", ALLOW);
    expect(
        TSql,
        "SELECT TOP 10 name, object_id FROM dbo.tables ORDER BY name",
        ALLOW,
    );
    expect(TSql, "SELECT TOP 10 name FROM sys.tables", DEFER);
    expect(TSql, "SELECT name FROM [sys].[sql_logins]", DEFER);
    expect(
        TSql,
        "SELECT CONVERT(int, a), CAST(b AS nvarchar(10)) FROM t",
        ALLOW,
    );
    expect(TSql, "SELECT CONVERT(dbo.MyClrType, a) FROM t", DEFER);
    expect(TSql, "SELECT CAST(a AS MyClrType) FROM t", DEFER);
    expect(TSql, "SELECT @@VERSION", ALLOW);
    expect(TSql, "SELECT a FROM t UNION ALL SELECT b FROM u", ALLOW);
    expect(
        TSql,
        "SELECT a FROM t EXCEPT DISTINCT SELECT b FROM u",
        ALLOW,
    );
    expect(TSql, "SELECT ALL SELECT 2", DEFER);
    expect(TSql, "SELECT a FROM t WHERE b = ALL SELECT 2", DEFER);
    expect(TSql, "DENY SELECT ON t TO u", BLOCK);
}

// ---- rows 1–5, 8–11: stacked statements, mode switches, CTEs, functions -------------------

#[test]
fn stacked_and_mode_switches() {
    expect(
        Postgres,
        "SELECT 1; COMMIT; DROP SCHEMA public CASCADE;",
        BLOCK,
    );
    let r = fast_check("SELECT 1; COMMIT; DROP SCHEMA public CASCADE;", Postgres);
    assert_eq!(r.verbs, ["SELECT", "COMMIT", "DROP"]);
    assert_eq!(r.class, "ddl");
    expect(Postgres, "SELECT 1; COMMIT", DEFER);
    expect(Postgres, "SELECT 1; SELECT 2", DEFER);
    for s in [
        "BEGIN READ WRITE",
        "SET TRANSACTION READ WRITE",
        "SET default_transaction_read_only = off",
        "SET SESSION CHARACTERISTICS AS TRANSACTION READ WRITE",
        "SET ROLE admin",
        "RESET ALL",
        "END",
        "ABORT",
        "PREPARE TRANSACTION 'x'",
        "LOCK TABLE t IN ACCESS EXCLUSIVE MODE",
        "COPY t TO PROGRAM 'id'",
        "COPY t FROM '/etc/passwd'",
        "DO $$ BEGIN DELETE FROM t; END $$",
        "LISTEN x",
        "NOTIFY x",
        "VACUUM t",
        "ANALYZE t",
        "CHECKPOINT",
        "LOAD 'plpgsql'",
        "CALL p()",
        "EXECUTE s",
        "WITH x AS (DELETE FROM t RETURNING *) SELECT * FROM x",
        "WITH x AS (SELECT 1) UPDATE t SET a = 1",
        "SELECT * INTO t2 FROM t",
        "SELECT * FROM t FOR UPDATE",
        "SELECT * FROM t FOR NO KEY UPDATE",
        "SELECT * FROM t FOR SHARE SKIP LOCKED",
        "TABLE t",
        "EXPLAIN ANALYZE DELETE FROM t",
    ] {
        expect(Postgres, s, DEFER);
    }
    expect(
        MySql,
        "START TRANSACTION READ WRITE; UPDATE t SET a = 1; COMMIT;",
        BLOCK,
    );
    for s in [
        "START TRANSACTION READ WRITE",
        "SET SESSION TRANSACTION READ WRITE",
        "SET @@global.read_only = 0",
        "SET GLOBAL read_only = 0",
        "PREPARE s FROM @q; EXECUTE s",
        "EXECUTE IMMEDIATE CONCAT('TRUNC','ATE t')",
        "HANDLER t OPEN",
        "KILL 5",
        "LOCK TABLES t WRITE",
        "FLUSH TABLES WITH READ LOCK",
        "INSTALL SONAME 'x'",
        "SELECT * FROM t LOCK IN SHARE MODE",
        "SELECT * FROM t FOR UPDATE",
        "SELECT 1 INTO @x",
        "SELECT @a := 1",
        "SELECT NEXT VALUE FOR s",
        "SELECT NEXTVAL(s)",
        "SELECT * FROM t PROCEDURE ANALYSE()",
        "SHOW PROCESSLIST",
        "CALL p()",
        "DO SLEEP(5)",
    ] {
        expect(MySql, s, DEFER);
    }
    for s in [
        "INSERT INTO t VALUES (1)",
        "REPLACE INTO t VALUES (1)",
        "UPDATE t SET a = 1",
        "DELETE FROM t",
        "TRUNCATE t",
        "CREATE TABLE x AS SELECT 1",
        "ALTER TABLE t ADD c INT",
        "DROP DATABASE d",
        "RENAME TABLE a TO b",
        "GRANT ALL ON *.* TO u",
        "REVOKE ALL ON t FROM u",
        "(DELETE FROM t)",
    ] {
        expect(MySql, s, BLOCK);
    }
    expect(
        Postgres,
        "MERGE INTO t USING s ON t.id = s.id WHEN MATCHED THEN DELETE",
        BLOCK,
    );
}

#[test]
fn system_catalogs_and_user_types_defer() {
    // read-only-bypasses row 16 (information leaks): the deep check owns catalog policy
    for s in [
        "SELECT pid, usename, query FROM pg_stat_activity",
        "SELECT rolname, rolpassword FROM pg_authid",
        "SELECT usename, passwd FROM pg_shadow",
        "SELECT * FROM \"pg_authid\"",
        "SELECT relname FROM pg_catalog.pg_class WHERE relkind = 'r'",
        "SELECT table_name FROM information_schema.tables",
        // casts to user types / domains can run functions
        "SELECT 42::ticket",
        "SELECT CAST(7 AS ticket)",
        "SELECT cast(7 as public.ticket)",
        "SELECT ticket '42'",
        "SELECT ticket /* c */ '42'",
        "SELECT rank '5'",
        "SELECT '1'::\"char\"",
        "SELECT x::pg_catalog.int4 FROM t",
        "SELECT \"ticket\" '42'",
        "SELECT * FROM U&\"\\0070g_authid\"",
    ] {
        expect(Postgres, s, DEFER);
    }
    for s in [
        "SELECT * FROM information_schema.PROCESSLIST",
        "SELECT info FROM information_schema.processlist WHERE id <> CONNECTION_ID()",
        "SELECT user, host, password FROM mysql.user",
        "SELECT sql_text FROM performance_schema.events_statements_history",
        "SELECT * FROM mysql.global_priv",
        "SELECT * FROM `mysql`.`user`",
        "SELECT * FROM \"mysql\".\"user\"",
        "SELECT * FROM processlist",
        "SELECT * FROM sys.session",
    ] {
        expect(MySql, s, DEFER);
    }
    for s in [
        "SELECT a::int, b::text, c::numeric(10, 2), d::double precision, e::int[] FROM t",
        "SELECT CAST(a AS integer), CAST(b AS varchar(20)) FROM t",
        "SELECT CAST(CAST(a AS text) AS int) FROM t",
        "SELECT a AS ticket FROM t",
        "SELECT DATE '2024-01-01', INTERVAL '1 day', TIMESTAMP '2024-01-01 00:00'",
        "SELECT a FROM t WHERE b BETWEEN 'a' AND 'z' AND c LIKE 'x%' ESCAPE '!'",
        "SELECT ts AT TIME ZONE 'UTC' FROM t",
        "SELECT CASE WHEN a THEN 'x' ELSE 'y' END FROM t",
        "SELECT a FROM t ORDER BY 'x'",
    ] {
        expect(Postgres, s, ALLOW);
    }
    expect(
        MySql,
        "SELECT CAST(a AS UNSIGNED), CAST(b AS CHAR(3)), _utf8mb4'x', a 'alias' FROM t",
        ALLOW,
    );
}

#[test]
fn side_effect_functions_defer() {
    for s in [
        "SELECT dblink_exec('dbname=app', 'DELETE FROM orders')",
        "SELECT nextval('s')",
        "SELECT setval('s', 1)",
        "SELECT pg_sleep(10)",
        "SELECT PG_SLEEP(10)",
        "SELECT \"pg_sleep\"(10)",
        "SELECT pg_catalog.pg_sleep(1)",
        "SELECT pg_sleep /* x */ (1)",
        "SELECT set_config('default_transaction_read_only', 'off', false)",
        "SELECT query_to_xml('DELETE FROM t', true, true, '')",
        "SELECT pg_read_file('/etc/passwd')",
        "SELECT lo_export(1, '/tmp/x')",
        "SELECT pg_advisory_lock(1)",
        "SELECT pg_terminate_backend(1)",
        "SELECT pg_notify('c', 'x')",
        "SELECT txid_current()",
        "SELECT pg_import_system_collations('pg_catalog')",
        "SELECT * FROM generate_series(1, 1000000000)",
        "SELECT count(*) FROM t, LATERAL f(t.x)",
        "SELECT a <-> b FROM t",
        "SELECT a FROM t WHERE b ~~ 'x'",
    ] {
        expect(Postgres, s, DEFER);
    }
    for s in [
        "SELECT SLEEP(10)",
        "SELECT BENCHMARK(1000000, MD5('a'))",
        "SELECT GET_LOCK('a', 10)",
        "SELECT LOAD_FILE('/etc/passwd')",
        "SELECT `sleep`(1)",
        "SELECT \"sleep\"(1)",
        "SELECT sleep (1)",
        "SELECT mysql.sleep(1)",
        "SELECT INSERT('abc', 1, 1, 'x')",
        "SELECT LAST_INSERT_ID(5)",
        "SELECT MASTER_POS_WAIT('f', 1)",
    ] {
        expect(MySql, s, DEFER);
    }
}

#[test]
fn realistic_reads_allowed() {
    for s in [
        "SELECT * FROM orders",
        "select o.id, c.name from orders o join customers c on c.id = o.customer_id where o.total > 100 order by o.id desc limit 10",
        "SELECT customer_id, count(*) AS n, sum(total) FROM orders GROUP BY customer_id HAVING count(*) > 2",
        "SELECT a FROM t WHERE x IN (1, 2, 3) AND y IS NOT NULL OR z LIKE 'a%'",
        "SELECT a FROM t WHERE EXISTS (SELECT 1 FROM u WHERE u.id = t.id)",
        "SELECT CASE WHEN a > 1 THEN 'big' ELSE 'small' END FROM t",
        "SELECT CAST(a AS integer), a::text, coalesce(b, 0) FROM t",
        "SELECT date_trunc('day', created_at), count(*) FROM events GROUP BY 1 ORDER BY 1",
        "SELECT row_number() OVER (PARTITION BY a ORDER BY b) FROM t",
        "SELECT sum(x) OVER (ORDER BY d ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW) FROM t",
        "SELECT count(*) FILTER (WHERE x > 0) FROM t",
        "SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY x) FROM t",
        "SELECT extract(year FROM ts), now() - interval '1 day' FROM t",
        "SELECT a FROM t UNION SELECT b FROM u EXCEPT SELECT c FROM v",
        "SELECT DISTINCT ON (a) a, b FROM t ORDER BY a, b DESC NULLS LAST",
        "SELECT data->>'name', data->'tags' FROM docs WHERE id = $1",
        "SELECT \"Weird Col\", t.\"X\" FROM \"Table\" t",
        "SELECT arr[1], ARRAY[1, 2] FROM t",
        "SELECT $body$ DELETE FROM t $body$",
        "SELECT E'it\\'s', 'a''b'",
        "SELECT version()",
        "SELECT current_setting('transaction_read_only')",
        "SELECT a FROM t WHERE a = -1",
        "SELECT 1;",
        // PostgreSQL lexes `+++` as three `+` (trailing +/- rule of scan.l)
        "SELECT 1 +++ 2",
    ] {
        expect(Postgres, s, ALLOW);
    }
    for s in [
        "SELECT @@version_comment LIMIT 1",
        "SELECT @@session.transaction_read_only",
        "SELECT DATABASE(), USER(), VERSION()",
        "SELECT IF(a > 1, 'x', 'y'), IFNULL(b, 0), REPLACE(c, 'a', 'b') FROM t",
        "SELECT GROUP_CONCAT(name SEPARATOR ', ') FROM t",
        "SELECT DATE_ADD(d, INTERVAL 1 DAY), DATE_FORMAT(d, '%Y') FROM t",
        "SELECT `order`, `select` FROM `table` WHERE `x` <=> NULL",
        "SELECT 'O\\'Brien'",
        "SELECT CONVERT(a USING utf8mb4), CAST(b AS UNSIGNED) FROM t",
        "SELECT a DIV 2, a MOD 3, a XOR b FROM t",
        "SELECT * FROM t1 STRAIGHT_JOIN t2 ON t1.a = t2.a",
        "SELECT j->>'$.name' FROM t",
        "SELECT LEFT(a, 3), RIGHT(a, 2) FROM t LEFT JOIN u ON t.id = u.id",
    ] {
        expect(MySql, s, ALLOW);
    }
}

#[test]
fn ambiguous_quoting_opt_out() {
    use super::fastpath::fast_check_with;
    // corpus reads that are reads only under the server's default escape settings
    let pg = "SELECT 'a\\' AS s, '; DELETE FROM orders; --' AS t";
    let my = "SELECT 'x\\'; DELETE FROM orders; -- ' AS s";
    assert_eq!(fast_check(pg, Postgres).rule, "ambiguous_quoting");
    assert_eq!(fast_check(my, MySql).rule, "ambiguous_quoting");
    assert_eq!(fast_check_with(pg, Postgres, false).decision, ALLOW);
    assert_eq!(fast_check_with(my, MySql, false).decision, ALLOW);
    // the fingerprint keeps ambiguous literals verbatim either way
    let f = fast_check_with(my, MySql, false)
        .fingerprint
        .unwrap_or_default();
    assert!(f.contains("DELETE FROM orders"), "{f}");
}

#[test]
fn ambiguous_quoting() {
    // default MySQL reading: one string; under NO_BACKSLASH_ESCAPES: INTO OUTFILE
    let s = "SELECT 'a\\' INTO OUTFILE '/tmp/x' -- ' FROM t";
    let r = fast_check(s, MySql);
    assert_eq!((r.decision, r.rule), (BLOCK, "ambiguous_quoting"), "{r:?}");
    let r = fast_check("SELECT 'x\\', sleep(10) -- ', 'b' FROM t", MySql);
    assert_eq!((r.decision, r.rule), (BLOCK, "ambiguous_quoting"));
    // under NO_BACKSLASH_ESCAPES this is a syntax error, so it is harmless
    expect(MySql, "SELECT 'O\\'Brien' FROM t", ALLOW);
    // double quotes under ANSI_QUOTES / NO_BACKSLASH_ESCAPES
    let r = fast_check("SELECT \"a\\\" ; DELETE FROM t; -- \"", MySql);
    assert_eq!((r.decision, r.rule), (BLOCK, "ambiguous_quoting"));
    assert_eq!(r.class, "write");
    // PostgreSQL with standard_conforming_strings = off
    let r = fast_check("SELECT '\\' AS a, ' FROM t; DELETE FROM t; -- '", Postgres);
    assert_eq!((r.decision, r.rule), (BLOCK, "ambiguous_quoting"), "{r:?}");
    expect(Postgres, "SELECT 'a\\'; DELETE FROM t; --'", BLOCK);
}

// ---- property-style: wrapping a write never makes it allowed ----------------------------

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        // xorshift64*
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % (n.max(1) as u64)) as usize
    }
    fn pick<'a>(&mut self, xs: &[&'a str]) -> &'a str {
        xs.get(self.below(xs.len())).copied().unwrap_or("")
    }
}

fn random_case(rng: &mut Rng, s: &str) -> String {
    s.chars()
        .map(|c| {
            if rng.below(2) == 0 {
                c.to_ascii_lowercase()
            } else {
                c.to_ascii_uppercase()
            }
        })
        .collect()
}

#[test]
fn wrapped_writes_never_allowed() {
    let writes = [
        "DELETE FROM users",
        "UPDATE users SET admin = 1",
        "INSERT INTO t VALUES (1)",
        "DROP TABLE t",
        "TRUNCATE t",
        "CREATE TABLE x (a int)",
        "ALTER TABLE t DROP COLUMN a",
        "GRANT ALL ON t TO u",
        "SELECT 1; DELETE FROM t",
        "SELECT * INTO t2 FROM t",
        "SELECT * FROM t FOR UPDATE",
        "WITH x AS (DELETE FROM t RETURNING *) SELECT * FROM x",
        "SELECT pg_sleep(1)",
        "SELECT sleep(1)",
        "COPY t TO '/tmp/x'",
        "SET transaction_read_only = off",
    ];
    let seps = [
        " ",
        "  ",
        "\n",
        "\t",
        "\r\n",
        " /* c */ ",
        "/**/",
        " -- c\n",
        "\n\n",
    ];
    let leads = [
        "",
        "/* x */ ",
        "-- x\n",
        "/* a */ -- b\n",
        "\n\t ",
        "/* /* n */ */ ",
    ];
    let tails = ["", ";", " ;", " -- tail", " /* t */", ";;", "; -- x"];
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    for _ in 0..3000 {
        let w = writes[rng.below(writes.len())];
        let d = ALL[rng.below(3)];
        let mut s = String::from(rng.pick(&leads));
        for (i, word) in w.split(' ').enumerate() {
            if i > 0 {
                s.push_str(rng.pick(&seps));
            }
            s.push_str(&random_case(&mut rng, word));
        }
        s.push_str(rng.pick(&tails));
        let r = fast_check(&s, d);
        assert_ne!(r.decision, ALLOW, "{d:?} {s:?} was allowed");
    }
}

// ---- randomized: never panics, invariants hold -------------------------------------------

const PIECES: &[&str] = &[
    "SELECT", "select", "DELETE", "FROM", "t", "x", "1", "0x1F", "1e5", ".5", "'", "''", "\"", "`",
    "[", "]", "]]", "$", "$$", "$a$", "$1", "E'", "N'", "U&'", "B'", "X'", "--", "-", "#", "/*",
    "*/", "/*!", "/*!50000", "/*M!", "/*+", "*", "/", "\\", "\\'", "\n", "\r", "\t", " ", " ", " ",
    ";", "(", ")", ",", ".", "@", "@@", "?", ":", "::", ":=", "=", "<", ">", "!", "~", "é", "😀",
    "\u{a0}", "\u{2028}", "{", "}", "\x01", "\x7f", "INTO", "FOR", "CASE", "END", "pg_sleep",
    "count", "GO", "WITH", "UNION",
];

fn random_sql(rng: &mut Rng) -> String {
    let n = rng.below(24);
    let mut s = String::new();
    for _ in 0..n {
        if rng.below(12) == 0 {
            // an arbitrary char
            let c = char::from_u32((rng.next() % 0x11_0000) as u32).unwrap_or('?');
            if c != '\0' || rng.below(4) == 0 {
                s.push(c);
            }
        } else {
            s.push_str(PIECES[rng.below(PIECES.len())]);
        }
    }
    s
}

fn content_texts(sql: &str, d: Dialect) -> Option<Vec<String>> {
    let toks = tokenize(sql, d).ok()?;
    Some(
        toks.iter()
            .filter(|t| t.kind.is_content() && t.kind != TokenKind::Hint)
            .map(|t| t.text(sql).to_string())
            .collect(),
    )
}

#[test]
fn randomized_never_panics_and_invariants() {
    // SDP_FUZZ_SEED / SDP_FUZZ_ITERS widen the search locally (defaults keep CI fast).
    let env = |k: &str| std::env::var(k).ok().and_then(|v| v.parse::<u64>().ok());
    let mut rng = Rng(env("SDP_FUZZ_SEED").unwrap_or(0xD1B5_4A32_D192_ED03) | 1);
    let iters = env("SDP_FUZZ_ITERS").unwrap_or(20_000) as usize;
    for i in 0..iters {
        let s = random_sql(&mut rng);
        let d = ALL[i % 3];
        let toks = tokenize(&s, d);
        let r = fast_check(&s, d);
        match &toks {
            Ok(ts) => {
                let mut last = 0;
                for t in ts {
                    assert!(
                        t.start >= last && t.end > t.start && t.end <= s.len(),
                        "{s:?} {t:?}"
                    );
                    assert!(
                        s.is_char_boundary(t.start) && s.is_char_boundary(t.end),
                        "{s:?}"
                    );
                    last = t.end;
                }
                assert!(r.fingerprint.is_some(), "{s:?}");
                assert_ne!(r.rule, "lex_error");
                // the deep parser's text lexes to the same code as the original
                let e = expand_sql(&s, d).unwrap_or_else(|e| panic!("{d:?} {s:?}: {e}"));
                assert_eq!(
                    content_texts(&e, d),
                    content_texts(&s, d),
                    "{d:?} {s:?} -> {e:?}"
                );
                for st in split_statements(&s, d).unwrap_or_default() {
                    assert!(tokenize(&st, d).is_ok(), "{d:?} statement {st:?} of {s:?}");
                }
            }
            Err(_) => {
                assert_eq!(
                    (r.decision, r.rule, r.fingerprint.is_none()),
                    (BLOCK, "lex_error", true)
                );
                assert!(expand_sql(&s, d).is_err() && split_statements(&s, d).is_err());
            }
        }
        if r.decision == ALLOW {
            assert_eq!(r.verbs, ["SELECT"], "{s:?}");
            assert_eq!(r.class, "read");
        }
    }
}

#[test]
fn adversarial_sizes_stay_linear() {
    // Quadratic behaviour would make these take minutes; they must finish instantly.
    let big = 200_000;
    let cases = [
        format!("SELECT {}", "/*".repeat(big)),
        format!("SELECT {}", "'".repeat(big + 1)),
        format!("SELECT {}", "$a".repeat(big)),
        format!("SELECT ${}$ x", "a".repeat(big)),
        format!("SELECT {}", "-- x\n".repeat(big / 4)),
        format!("SELECT {}", "(".repeat(big)),
        format!("SELECT 1{}", " /* c */".repeat(big / 8)),
        format!("SELECT '{}'", "\\".repeat(big)),
    ];
    for s in &cases {
        for d in ALL {
            let _ = fast_check(s, d);
            let _ = split_statements(s, d);
        }
    }
}

// ---- row 13 (continued): T-SQL batches split without ';' ----------------------------------

/// A read followed, with no `;`, by any other statement: the splitter (split.rs,
/// `tsql_batch_ranges`) finds the second statement where it begins, and the fast path never
/// allows the text on its own (it keeps splitting on `;` only and defers or blocks).
#[test]
fn tsql_batches_split_and_never_fast_allowed() {
    let reads = [
        "SELECT 1",
        "SELECT a FROM t",
        "SELECT a FROM t AS x",
        "SELECT * FROM t ORDER BY id OFFSET 1 ROWS FETCH NEXT 1 ROWS ONLY",
        "SELECT CASE WHEN a = 1 THEN 1 END FROM t",
        "SELECT (SELECT 1) AS x",
        "SELECT 1 UNION ALL SELECT 2",
        "WITH c AS (SELECT 1 AS a) SELECT a FROM c",
        "SELECT a FROM t WITH (NOLOCK) OPTION (MAXDOP 1)",
    ];
    let seconds = [
        "SELECT 2",
        "DELETE FROM t",
        "WAITFOR DELAY '1:0:0'",
        "SHUTDOWN",
        "CHECKPOINT",
        "COMMIT",
        "THROW",
        "END CONVERSATION @h",
        "EXEC sp_who",
        "EXECUTE AS USER = 'dbo'",
        "SET NOCOUNT ON",
        "USE master",
        "DECLARE @x int",
        "BEGIN SELECT 1 END",
        "BEGIN TRAN",
        "IF 1 = 1 SELECT 1",
        "WHILE 1 = 1 BREAK",
        "RECONFIGURE",
        "REVERT",
        "KILL 1",
        "INSERT INTO t VALUES (1)",
        "UPDATE t SET a = 1",
        "MERGE t USING s ON 1 = 1 WHEN MATCHED THEN DELETE",
        "TRUNCATE TABLE t",
        "DROP TABLE t",
        "CREATE TABLE t (a int)",
        "ALTER TABLE t ADD b int",
        "GRANT SELECT ON t TO u",
        "DENY SELECT ON t TO u",
        "RETURN",
        "PRINT 'x'",
        "RAISERROR('x', 16, 1)",
        "OPEN c",
        "CLOSE c",
        "DEALLOCATE c",
        "FETCH NEXT FROM c",
        "SAVE TRAN x",
        "ROLLBACK",
        "GOTO l",
        "SETUSER",
        "BULK INSERT t FROM 'x'",
        "DBCC CHECKDB",
        "BACKUP DATABASE d TO DISK = 'x'",
        "RESTORE DATABASE d FROM DISK = 'x'",
        "ENABLE TRIGGER tr ON t",
        "DISABLE TRIGGER ALL ON DATABASE",
        "READTEXT t.c @p 0 1",
        "WRITETEXT t.c @p 'x'",
        "UPDATETEXT t.c @p 0 0 'x'",
    ];
    let seps = [" ", "\n", "\r\n", "\t", " /* c */ ", " -- c\n", "/**/"];
    let mut rng = Rng(0x5DEE_CE66_D1CE_4E5B);
    for read in reads {
        for second in seconds {
            let sep = rng.pick(&seps);
            let s = format!("{read}{sep}{}", random_case(&mut rng, second));
            let pieces = split_statements(&s, TSql).unwrap_or_else(|e| panic!("{s:?}: {e}"));
            assert!(pieces.len() >= 2, "{s:?} -> {pieces:?}");
            assert_eq!(pieces.first().map(String::as_str), Some(read), "{s:?}");
            let lead = second.split(' ').next().unwrap_or("");
            let got = pieces.get(1).map_or("", String::as_str);
            assert!(
                got.get(..lead.len())
                    .is_some_and(|g| g.eq_ignore_ascii_case(lead)),
                "{s:?} -> {pieces:?}"
            );
            not_allowed(TSql, &s);
        }
    }
}

/// Random T-SQL-flavoured texts: whenever the splitter sees more than one statement the fast
/// path does not allow the text, every piece lexes on its own, and the pieces hold exactly the
/// code of the text.
#[test]
fn tsql_randomized_split_vs_fast_path() {
    const WORDS: &[&str] = &[
        "SELECT", "select", "1", "a", "t", "FROM", "WHERE", "=", "(", ")", ",", ".", " ", "\n",
        "UNION", "ALL", "CASE", "WHEN", "THEN", "ELSE", "END", "BEGIN", "TRAN", "TRY", "WITH",
        "AS", "DELETE", "INSERT", "UPDATE", "SET", "EXEC", "WAITFOR", "THROW", "FETCH", "ROWS",
        "OFFSET", "NEXT", "ONLY", "IF", "GO", "MERGE", "INTO", "VALUES", "ON", "TO", "GRANT",
        "CURSOR", "FOR", "DECLARE", "@x", "'s'", "[x]", "-- c\n", "/* c */", ";", "*", "N'n'",
    ];
    let mut rng = Rng(0xA076_1D64_78BD_642F);
    for _ in 0..20_000 {
        let n = 1 + rng.below(14);
        let mut s = String::new();
        for _ in 0..n {
            s.push_str(rng.pick(WORDS));
            s.push(' ');
        }
        let Ok(pieces) = split_statements(&s, TSql) else {
            continue;
        };
        // no code is lost or duplicated between the pieces (only the ';' separators go)
        let mut joined = Vec::new();
        for p in &pieces {
            assert!(tokenize(p, TSql).is_ok(), "{s:?} piece {p:?}");
            joined.extend(content_texts(p, TSql).unwrap_or_default());
        }
        let whole: Vec<String> = content_texts(&s, TSql)
            .unwrap_or_default()
            .into_iter()
            .filter(|t| t != ";")
            .collect();
        assert_eq!(joined, whole, "{s:?} -> {pieces:?}");
        if pieces.len() > 1 {
            not_allowed(TSql, &s);
        }
    }
}

// ---- the verdict cache's probe answers exactly what fast_check answers ---------------------

#[track_caller]
fn probe_agrees(s: &str, d: Dialect, scratch: &mut super::ProbeScratch) {
    let fc = fast_check(s, d);
    let want = if fc.decision == BLOCK { None } else { fc.fingerprint.clone() };
    let got = super::cache_probe(s, d, scratch).map(str::to_owned);
    assert_eq!(got, want, "{d:?} {s:?}: cache_probe differs from fast_check ({} {})", fc.decision, fc.rule);
}

#[test]
fn cache_probe_matches_fast_check() {
    let mut scratch = super::ProbeScratch::default();
    let fixed = [
        "SELECT abalance FROM pgbench_accounts WHERE aid = 123;",
        "SELECT 1; DELETE FROM t",
        "(DELETE FROM t)",
        "/* x */ update t set a = 1",
        r"SELECT 'a\', (DELETE FROM t) -- ', 'b'",
        r"SELECT 'x\', sleep(10) -- ', 'b' FROM t",
        r"SELECT 'a\\b' FROM t",
        "SELECT \"a\" FROM t",
        "SELECT 'abc",
        "WITH x AS (DELETE FROM t RETURNING *) SELECT * FROM x",
        "SELECT 1 /*!50000 INTO OUTFILE '/tmp/x' */",
        "",
        ";;",
        "GO\nDROP TABLE t",
    ];
    for d in ALL {
        for s in fixed {
            probe_agrees(s, d, &mut scratch);
        }
    }
    let mut rng = Rng(0x2545_F491_4F6C_DD1D);
    for _ in 0..40_000 {
        let s = random_sql(&mut rng);
        let d = ALL[rng.below(3)];
        probe_agrees(&s, d, &mut scratch);
    }
    // a huge statement gives its buffers back and the next probe still agrees
    let big = format!("SELECT {} FROM t", vec!["a"; 100_000].join(", "));
    probe_agrees(&big, Postgres, &mut scratch);
    probe_agrees("SELECT 1", Postgres, &mut scratch);
}

/// Every maximal run of ASCII digits in `s` (anywhere: literals, names, strings, comments).
fn digit_runs(s: &str) -> Vec<(usize, usize)> {
    let b = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        if b[i].is_ascii_digit() {
            let j = i + b[i..].iter().take_while(|c| c.is_ascii_digit()).count();
            out.push((i, j));
            i = j;
        } else {
            i += 1;
        }
    }
    out
}

/// A digit edit of `s`: a digit run replaced by 0-4 random digits, digits inserted at a
/// random char boundary, or a digit turned into a letter / a neighbour into a digit.
fn digit_edit(rng: &mut Rng, s: &str) -> String {
    let digits = |rng: &mut Rng, n: usize| (0..n).map(|_| char::from(b'0' + rng.below(10) as u8)).collect::<String>();
    let runs = digit_runs(s);
    match rng.below(6) {
        0..=2 if !runs.is_empty() => {
            let (a, b) = runs[rng.below(runs.len())];
            // "0" often: a leading zero is the one digit the number lexer treats apart
            let new = if rng.below(3) == 0 { "0".to_string() } else { let n = rng.below(5); digits(rng, n) };
            format!("{}{}{}", &s[..a], new, &s[b..])
        }
        3 => {
            let cuts: Vec<usize> = (0..=s.len()).filter(|&i| s.is_char_boundary(i)).collect();
            let at = cuts[rng.below(cuts.len())];
            let n = 1 + rng.below(3);
            format!("{}{}{}", &s[..at], digits(rng, n), &s[at..])
        }
        4 if !runs.is_empty() => {
            let (a, _) = runs[rng.below(runs.len())];
            format!("{}{}{}", &s[..a], rng.pick(&["x", "e", "b", "_", "$", ".", " ", "'"]), &s[a + 1..])
        }
        _ => {
            let cuts: Vec<usize> = (0..s.len()).filter(|&i| s.is_char_boundary(i) && s.as_bytes()[i].is_ascii()).collect();
            if cuts.is_empty() {
                return s.to_string();
            }
            let at = cuts[rng.below(cuts.len())];
            format!("{}{}{}", &s[..at], digits(rng, 1), &s[at + 1..])
        }
    }
}

/// The probe memo (probe_memo.rs) answers a digit variant of a remembered text exactly as a
/// fresh probe (and so `fast_check`) would; it must also actually answer (else it is dead).
#[test]
fn memo_agrees_with_probe() {
    let shapes = [
        "SELECT abalance FROM pgbench_accounts WHERE aid = 123;",
        "SELECT c FROM sbtest1 WHERE id BETWEEN 5012 AND 5111 ORDER BY c",
        "SELECT 1--2",
        "SELECT 1-- 2",
        "SELECT 0 x1F, 0x1F, 0b01, 10e5, 1.5, .5, 5., 1..2",
        "SELECT a1, 1abc, $1, @1, @@x1, #1, :1, ?1 FROM t1",
        "SELECT 10x1F, 11X2, 12b01, 13B1 FROM t",
        "/*!50000 SELECT 1*/ /*!5 SELECT 2*/ /*M!100100 SELECT 3 */",
        "SELECT '1', \"2\", `3`, [4], E'5', $q$6$q$, N'7' FROM t -- 8\n /* 9 */",
        "SELECT 1; DELETE FROM t WHERE id = 2",
        "SELECT 1 UNION SELECT 2 INTO OUTFILE '/tmp/3'",
        "SELECT 'x\\' , 1 -- ', 2",
        "SELECT 1 FROM t WHERE a = -1 AND b=+2 AND c=3*4",
        "SELECT é1, 1é, 1😀 FROM t",
        "WITH x AS (SELECT 1) SELECT * FROM x LIMIT 10 OFFSET 20",
    ];
    let mut rng = Rng(0xD1B5_4A32_D192_ED03);
    let (mut hits, mut total) = (0usize, 0usize);
    for round in 0..60_000 {
        let d = ALL[rng.below(3)];
        let base = if round % 2 == 0 { shapes[rng.below(shapes.len())].to_string() } else { random_sql(&mut rng) };
        let mut memo = super::ProbeScratch::default();
        let _ = super::cache_probe(&base, d, &mut memo);
        let mut text = base.clone();
        // a few edits in a row: the memo now holds the base and the variants probed since
        for _ in 0..1 + rng.below(3) {
            text = digit_edit(&mut rng, &text);
            let recalled = memo.memo_recalls(&text, d);
            let got = super::cache_probe(&text, d, &mut memo).map(str::to_owned);
            let want = super::cache_probe(&text, d, &mut super::ProbeScratch::default()).map(str::to_owned);
            assert_eq!(got, want, "{d:?} {base:?} -> {text:?}: memo {recalled}");
            total += 1;
            hits += usize::from(recalled);
        }
        probe_agrees(&text, d, &mut super::ProbeScratch::default());
    }
    assert!(hits * 20 > total, "the memo answered {hits} of {total} digit edits: it is not being used");
}
