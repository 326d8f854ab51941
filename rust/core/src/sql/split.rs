//! Statement splitting and the text the deep parser sees.
//!
//! Both render tokens the same way, so the deep parser can never disagree with this lexer
//! (that is, with the server) about where a comment or an executable comment ends:
//! ordinary comments become one space, MySQL executable-comment markers (`/*!50000`, `*/`)
//! are removed so their contents are plain code (a space is inserted only where the
//! removal would glue two tokens together, as MySQL does), optimizer hints stay verbatim.
//!
//! Splitting happens on every `;` outside quotes and comments — also a `;` inside
//! parentheses or inside an executable comment, where the server's multi-statement parser
//! splits too. Bodies of `CREATE FUNCTION ... BEGIN ATOMIC ... END` / `CREATE PROCEDURE ...
//! BEGIN ... END` are split at their inner `;` (those statements are blocked anyway).
//!
//! T-SQL batches need no `;` at all between statements (SQL Server docs, "Transact-SQL
//! syntax conventions": the terminator is optional), so `SELECT 1 DELETE FROM t` is two
//! statements; [`tsql_batch_ranges`] finds where each one begins (see its comment for the
//! rules). Splitting too much is the safe direction: every piece is classified on its own
//! and a piece that does not parse is blocked. Splitting too little is not, because sqlglot
//! reads a statement keyword after a complete statement as an alias (`SELECT 1 DELETE FROM
//! t` parses as `SELECT 1 AS DELETE FROM t`). The fast path keeps using the `;`-only
//! [`statement_ranges`] and stays conservative on its own (a second top-level SELECT or any
//! write verb makes it DEFER or BLOCK).

use super::lexer::{is_space, tokenize, Token, TokenKind};
use super::Dialect;
use crate::Result;

fn push_gap(out: &mut String, src: &str, from: usize, to: usize) {
    if to > from {
        out.push_str(src.get(from..to).unwrap_or(" "));
    }
}

/// Render `toks` of `src`, including the gaps between them (and `lead`/`trail` gaps).
fn render(
    src: &str,
    d: Dialect,
    toks: &[Token],
    lead_from: Option<usize>,
    trail_to: Option<usize>,
) -> String {
    let mut out = String::with_capacity(src.len());
    // end of the previous operator token if it ended in '-' (MySQL `--` hazard below)
    let mut minus_end: Option<usize> = None;
    let mut pos = match (lead_from, toks.first()) {
        (Some(p), _) => p,
        (None, Some(t)) => t.start,
        (None, None) => 0,
    };
    for t in toks {
        push_gap(&mut out, src, pos, t.start);
        // MySQL: `--` followed by a non-space is two minus signs. Once a following comment
        // becomes a space, or an executable-comment marker disappears, the pair would turn
        // into a comment; `- -` means the same and cannot.
        if d == Dialect::MySql
            && t.kind == TokenKind::Operator
            && minus_end == Some(t.start)
            && t.text(src).starts_with('-')
        {
            out.push(' ');
        }
        minus_end = (t.kind == TokenKind::Operator && t.text(src).ends_with('-')).then_some(t.end);
        match t.kind {
            TokenKind::Comment => out.push(' '),
            TokenKind::ExecOpen | TokenKind::ExecClose => {
                let prev_ws = out.as_bytes().last().is_none_or(|&c| is_space(c));
                let next_ws = src.as_bytes().get(t.end).is_none_or(|&c| is_space(c));
                if !prev_ws && !next_ws {
                    out.push(' ');
                }
            }
            _ => out.push_str(t.text(src)),
        }
        pos = t.end;
    }
    if let Some(end) = trail_to {
        push_gap(&mut out, src, pos, end);
    }
    out
}

/// The text for the deep parser: comments replaced by a space, MySQL executable-comment
/// markers removed (their contents are code), everything else unchanged.
/// Example (mysql): `SELECT 1 /*!50000 INTO OUTFILE 'x' */` → `SELECT 1  INTO OUTFILE 'x' `.
pub fn expand_sql(sql: &str, dialect: Dialect) -> Result<String> {
    let toks = tokenize(sql, dialect)?;
    Ok(render(sql, dialect, &toks, Some(0), Some(sql.len())))
}

/// Index ranges (into `toks`) of each statement, split at `;` tokens; the `;` is excluded.
/// Empty statements (no content token) are skipped.
pub fn statement_ranges(toks: &[Token], src: &str) -> Vec<(usize, usize)> {
    let mut out = Vec::new();
    each_statement_range(toks, src, |a, b| out.push((a, b)));
    out
}

/// [`statement_ranges`] without the `Vec`: `f(start, end)` per statement, in order.
pub fn each_statement_range(toks: &[Token], src: &str, mut f: impl FnMut(usize, usize)) {
    let mut begin = 0usize;
    let mut has_content = false;
    for (i, t) in toks.iter().enumerate() {
        if t.kind == TokenKind::Punct && t.text(src) == ";" {
            if has_content {
                f(begin, i);
            }
            begin = i + 1;
            has_content = false;
        } else if t.kind.is_content() {
            has_content = true;
        }
    }
    if has_content {
        f(begin, toks.len());
    }
}

/// [`statement_ranges`], and for T-SQL also the statements of a batch that have no `;`
/// between them ([`tsql_batch_ranges`]).
pub fn statement_ranges_in(toks: &[Token], src: &str, d: Dialect) -> Vec<(usize, usize)> {
    let ranges = statement_ranges(toks, src);
    if d != Dialect::TSql {
        return ranges;
    }
    let mut out = Vec::with_capacity(ranges.len());
    for (a, b) in ranges {
        tsql_batch_ranges(toks, src, a, b, &mut out);
    }
    out
}

/// T-SQL reserved words that begin a statement (SQL Server docs, "Reserved Keywords
/// (Transact-SQL)", intersected with the statement list of the T-SQL reference). Reserved
/// words are never bare identifiers, so one of them after a complete statement starts the
/// next statement. Sorted for binary search; compared case-insensitively.
const TSQL_STARTERS: &[&str] = &[
    "ALTER",
    "BACKUP",
    "BEGIN",
    "BREAK",
    "BULK",
    "CHECKPOINT",
    "CLOSE",
    "COMMIT",
    "CONTINUE",
    "CREATE",
    "DBCC",
    "DEALLOCATE",
    "DECLARE",
    "DELETE",
    "DENY",
    "DROP",
    "END",
    "EXEC",
    "EXECUTE",
    "FETCH",
    "GOTO",
    "GRANT",
    "IF",
    "INSERT",
    "KILL",
    "MERGE",
    "OPEN",
    "PRINT",
    "RAISERROR",
    "READTEXT",
    "RECONFIGURE",
    "RESTORE",
    "RETURN",
    "REVERT",
    "REVOKE",
    "ROLLBACK",
    "SAVE",
    "SELECT",
    "SET",
    "SETUSER",
    "SHUTDOWN",
    "TRUNCATE",
    "UPDATE",
    "UPDATETEXT",
    "USE",
    "WAITFOR",
    "WHILE",
    "WRITETEXT",
];

fn eq_kw(text: &str, kw: &str) -> bool {
    text.eq_ignore_ascii_case(kw)
}

fn is_word(t: Option<&Token>, src: &str, kws: &[&str]) -> bool {
    t.is_some_and(|t| t.kind == TokenKind::Word && kws.iter().any(|k| eq_kw(t.text(src), k)))
}

fn is_punct(t: Option<&Token>, src: &str, p: &str) -> bool {
    t.is_some_and(|t| t.kind == TokenKind::Punct && t.text(src) == p)
}

/// Is the word `t` a statement keyword here? `prev`/`next` are the neighbouring code tokens.
fn tsql_starter(t: &Token, src: &str, prev: Option<&Token>, next: Option<&Token>) -> bool {
    let text = t.text(src);
    if text.len() > 12 || !text.is_ascii() {
        return false;
    }
    let up = text.to_ascii_uppercase();
    if TSQL_STARTERS.binary_search(&up.as_str()).is_ok() {
        return true;
    }
    // Non-reserved statement keywords may also be identifiers: after `.` or AS they are
    // names; otherwise only their statement shapes count (Service Broker, triggers).
    if is_punct(prev, src, ".") || is_word(prev, src, &["AS"]) {
        return false;
    }
    match up.as_str() {
        // THROW with no arguments re-raises inside CATCH; sqlglot would read it as an alias
        "THROW" => true,
        "ENABLE" | "DISABLE" => is_word(next, src, &["TRIGGER"]),
        "GET" | "MOVE" => is_word(next, src, &["CONVERSATION"]),
        "SEND" => is_word(next, src, &["ON"]),
        "RECEIVE" => {
            is_word(next, src, &["TOP"]) || is_punct(next, src, "(") || {
                next.is_some_and(|n| n.kind == TokenKind::Operator && n.text(src) == "*")
            }
        }
        _ => false,
    }
}

/// What the statement being read still expects (keywords that continue it, not start a new
/// one).
#[derive(Clone, Copy, PartialEq, Eq)]
enum Pending {
    None,
    /// `WITH cte AS (...)`: the statement the CTEs belong to (SELECT/INSERT/UPDATE/DELETE/MERGE)
    With,
    /// `INSERT ... SELECT` / `INSERT ... EXEC`
    InsertSource,
    /// `UPDATE t SET`
    UpdateSet,
    /// `GRANT/REVOKE/DENY SELECT, INSERT, ... ON/TO/FROM`
    Privileges,
}

/// The statement being read: its first keyword and what it still expects.
struct Stmt {
    verb: [u8; 12],
    pending: Pending,
    /// `DECLARE c CURSOR ... FOR SELECT ...`
    cursor: bool,
    /// CREATE/ALTER: a procedure, function, trigger or view body runs to the end of the
    /// batch (SQL Server docs, "CREATE PROCEDURE": it must be the only statement in its
    /// batch); such a statement is blocked whole, so nothing after it is split off.
    swallow: bool,
}

impl Stmt {
    fn start(word: Option<&str>) -> Stmt {
        let mut verb = [0u8; 12];
        if let Some(w) = word.filter(|w| w.len() <= verb.len() && w.is_ascii()) {
            for (dst, src) in verb.iter_mut().zip(w.bytes()) {
                *dst = src.to_ascii_uppercase();
            }
        }
        let mut s = Stmt {
            verb,
            pending: Pending::None,
            cursor: false,
            swallow: false,
        };
        s.pending = if s.is("WITH") {
            Pending::With
        } else if s.is("INSERT") {
            Pending::InsertSource
        } else if s.is("UPDATE") {
            Pending::UpdateSet
        } else if s.is("GRANT") || s.is("REVOKE") || s.is("DENY") {
            Pending::Privileges
        } else {
            Pending::None
        };
        s.swallow = s.is("CREATE") || s.is("ALTER");
        s
    }

    fn is(&self, kw: &str) -> bool {
        let n = self
            .verb
            .iter()
            .position(|&c| c == 0)
            .unwrap_or(self.verb.len());
        self.verb.get(..n).is_some_and(|v| v == kw.as_bytes())
    }
}

/// Does `BEGIN` followed by `next` open a BEGIN ... END block (BEGIN TRY, BEGIN CATCH,
/// BEGIN ATOMIC, plain BEGIN) rather than start a transaction or a Service Broker dialog?
fn begins_block(src: &str, next: Option<&Token>) -> bool {
    !is_word(
        next,
        src,
        &[
            "TRAN",
            "TRANSACTION",
            "DISTRIBUTED",
            "DIALOG",
            "CONVERSATION",
        ],
    )
}

/// Split the tokens `a..b` of one `;`-separated T-SQL text into the statements of the batch
/// and append their index ranges to `out`.
///
/// A new statement begins at a statement keyword ([`tsql_starter`]) outside parentheses and
/// outside BEGIN ... END blocks (a block stays one piece; a piece led by BEGIN is blocked by
/// the engine as procedural code), except where the keyword continues the statement:
/// * SELECT after UNION / EXCEPT / INTERSECT [ALL] (a set operation);
/// * FETCH after ROW/ROWS (`OFFSET n ROWS FETCH NEXT m ROWS ONLY`);
/// * the statement after the CTE list of a WITH at statement start (`WITH c AS (...) SELECT`);
///   WITH itself never starts a statement without `;` (SQL Server requires the previous
///   statement to be terminated before a CTE);
/// * `INSERT ... SELECT|EXEC`, `UPDATE ... SET`, `MERGE ... THEN INSERT|UPDATE|DELETE`,
///   `UPDATE SET` inside MERGE, the privilege list of GRANT/REVOKE/DENY, `DROP ... IF EXISTS`,
///   `BULK INSERT`, `DECLARE c CURSOR FOR SELECT ... FOR UPDATE`; CREATE/ALTER keep the rest
///   of the text (their bodies). All of these statements are writes, DDL, DCL or cursors,
///   blocked whole, so reading them as one piece cannot hide a write.
///
/// An END that closes no CASE and no block starts a statement (END CONVERSATION, or a stray
/// END the server rejects). A statement keyword inside an unclosed top-level CASE still
/// splits: statements never appear there in valid T-SQL (subqueries need parentheses), so
/// this only blocks text the server would reject anyway.
pub fn tsql_batch_ranges(
    toks: &[Token],
    src: &str,
    a: usize,
    b: usize,
    out: &mut Vec<(usize, usize)>,
) {
    let Some(range) = toks.get(a..b) else {
        return;
    };
    // open CASEs per parenthesis level (index 0: top level); END closes the innermost CASE
    let mut cases: Vec<u32> = vec![0];
    // BEGIN ... END blocks at the top level
    let mut block: u32 = 0;
    let mut begin = a;
    let mut has_content = false;
    let mut stmt = Stmt::start(None);
    let mut prev: Option<&Token> = None;
    let mut prev2: Option<&Token> = None;
    for (off, t) in range.iter().enumerate() {
        if !t.kind.is_content() {
            continue;
        }
        let i = a + off;
        let next = range
            .get(off + 1..)
            .and_then(|rest| rest.iter().find(|n| n.kind.is_content()));
        let text = t.text(src);
        let first = !has_content;
        has_content = true;
        let mut split_here = false;
        match t.kind {
            TokenKind::Punct if text == "(" => cases.push(0),
            TokenKind::Punct if text == ")" && cases.len() > 1 => {
                cases.pop();
            }
            TokenKind::Word => {
                let top = cases.len() == 1;
                let open_cases = cases.last().copied().unwrap_or(0);
                if first {
                    stmt = Stmt::start(Some(text));
                    if eq_kw(text, "BEGIN") && begins_block(src, next) {
                        block = block.saturating_add(1);
                    }
                } else if eq_kw(text, "CASE") {
                    if let Some(c) = cases.last_mut() {
                        *c = c.saturating_add(1);
                    }
                } else if eq_kw(text, "END") && open_cases > 0 {
                    if let Some(c) = cases.last_mut() {
                        *c -= 1;
                    }
                } else if !top {
                    // inside parentheses: subqueries, hints (`OPTION (USE HINT(...))`)
                } else if block > 0 {
                    if eq_kw(text, "END") {
                        block -= 1;
                    } else if eq_kw(text, "BEGIN") && begins_block(src, next) {
                        block = block.saturating_add(1);
                    }
                } else if stmt.swallow {
                    // CREATE/ALTER body: the rest of the text belongs to it
                } else if tsql_starter(t, src, prev, next) {
                    if !continues(&mut stmt, t, src, prev, prev2) {
                        split_here = true;
                    }
                } else {
                    note_word(&mut stmt, text);
                }
            }
            _ => {}
        }
        if split_here {
            out.push((begin, i));
            begin = i;
            stmt = Stmt::start(Some(text));
            if let Some(c) = cases.first_mut() {
                *c = 0;
            }
            if eq_kw(text, "BEGIN") && begins_block(src, next) {
                block = block.saturating_add(1);
            }
        }
        prev2 = prev;
        prev = Some(t);
    }
    if has_content {
        out.push((begin, b));
    }
}

/// A non-starter word inside the current statement: update what it still expects.
fn note_word(stmt: &mut Stmt, text: &str) {
    match stmt.pending {
        Pending::InsertSource if eq_kw(text, "VALUES") || eq_kw(text, "DEFAULT") => {
            stmt.pending = Pending::None;
        }
        Pending::Privileges if eq_kw(text, "ON") || eq_kw(text, "TO") || eq_kw(text, "FROM") => {
            stmt.pending = Pending::None;
        }
        _ => {}
    }
    if stmt.is("DECLARE") && eq_kw(text, "CURSOR") {
        stmt.cursor = true;
    }
}

/// Does the statement keyword `t` continue the current statement (see
/// [`tsql_batch_ranges`])? Updates `stmt` when it does.
fn continues(
    stmt: &mut Stmt,
    t: &Token,
    src: &str,
    prev: Option<&Token>,
    prev2: Option<&Token>,
) -> bool {
    let text = t.text(src);
    const SETOPS: &[&str] = &["UNION", "EXCEPT", "INTERSECT"];
    if eq_kw(text, "SELECT")
        && (is_word(prev, src, SETOPS)
            || (is_word(prev, src, &["ALL"]) && is_word(prev2, src, SETOPS)))
    {
        return true;
    }
    if eq_kw(text, "FETCH") && is_word(prev, src, &["ROW", "ROWS"]) {
        return true;
    }
    match stmt.pending {
        Pending::With => {
            if is_punct(prev, src, ")")
                && ["SELECT", "INSERT", "UPDATE", "DELETE", "MERGE"]
                    .iter()
                    .any(|k| eq_kw(text, k))
            {
                // the CTEs' statement: from here on it is that statement
                *stmt = Stmt::start(Some(text));
                return true;
            }
        }
        Pending::InsertSource => {
            if ["SELECT", "EXEC", "EXECUTE"].iter().any(|k| eq_kw(text, k)) {
                stmt.pending = Pending::None;
                return true;
            }
        }
        Pending::UpdateSet => {
            if eq_kw(text, "SET") {
                stmt.pending = Pending::None;
                return true;
            }
        }
        Pending::Privileges => return true,
        Pending::None => {}
    }
    if stmt.is("MERGE") {
        if is_word(prev, src, &["THEN"])
            && ["INSERT", "UPDATE", "DELETE"]
                .iter()
                .any(|k| eq_kw(text, k))
        {
            return true;
        }
        if is_word(prev, src, &["UPDATE"]) && eq_kw(text, "SET") {
            return true;
        }
    }
    if stmt.is("DROP") && eq_kw(text, "IF") {
        return true;
    }
    if stmt.is("BULK") && eq_kw(text, "INSERT") && is_word(prev, src, &["BULK"]) {
        return true;
    }
    if stmt.cursor
        && is_word(prev, src, &["FOR"])
        && (eq_kw(text, "SELECT") || eq_kw(text, "UPDATE"))
    {
        return true;
    }
    false
}

/// Split `sql` into statements, each rendered as in [`expand_sql`] and trimmed; the `;`
/// terminators are not included and empty statements are dropped.
pub fn split_statements(sql: &str, dialect: Dialect) -> Result<Vec<String>> {
    let toks = tokenize(sql, dialect)?;
    let mut out = Vec::new();
    for (a, b) in statement_ranges_in(&toks, sql, dialect) {
        let Some(slice) = toks.get(a..b) else {
            continue;
        };
        // drop leading/trailing comments so the statement starts and ends with code
        let first = slice
            .iter()
            .position(|t| t.kind != TokenKind::Comment)
            .unwrap_or(0);
        let last = slice
            .iter()
            .rposition(|t| t.kind != TokenKind::Comment)
            .map_or(0, |p| p + 1);
        let Some(core) = slice.get(first..last) else {
            continue;
        };
        let text = render(sql, dialect, core, None, None);
        // trim only what the server skips as whitespace (str::trim would also strip e.g.
        // U+2028, an identifier character for PostgreSQL and MySQL)
        let text = text.trim_matches(|c: char| c.is_ascii() && is_space(c as u8));
        if !text.is_empty() {
            out.push(text.to_string());
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use Dialect::{MySql, Postgres, TSql};

    fn split(s: &str, d: Dialect) -> Vec<String> {
        split_statements(s, d).unwrap_or_else(|e| panic!("{s:?}: {e}"))
    }

    #[test]
    fn expand_examples() {
        assert_eq!(
            expand_sql("SELECT 1 /*!50000 INTO OUTFILE 'x' */", MySql).unwrap(),
            "SELECT 1  INTO OUTFILE 'x' "
        );
        assert_eq!(
            expand_sql("DELETE/*!*/FROM t", MySql).unwrap(),
            "DELETE FROM t"
        );
        assert_eq!(expand_sql("SELECT/*!50000 1*/", MySql).unwrap(), "SELECT 1");
        assert_eq!(
            expand_sql("/*! DROP TABLE t */", MySql).unwrap(),
            " DROP TABLE t "
        );
        assert_eq!(
            expand_sql("SELECT /*M!100100 2 */", MySql).unwrap(),
            "SELECT  2 "
        );
        assert_eq!(
            expand_sql("SELECT 1 -- c\nFROM t", Postgres).unwrap(),
            "SELECT 1  \nFROM t"
        );
        assert_eq!(
            expand_sql("SELECT /* a /* b */ c */ 1", Postgres).unwrap(),
            "SELECT   1"
        );
        assert_eq!(
            expand_sql("SELECT /*+ BKA(t) */ 1", MySql).unwrap(),
            "SELECT /*+ BKA(t) */ 1"
        );
        assert_eq!(expand_sql("SELECT 'a' # c", MySql).unwrap(), "SELECT 'a'  ");
        assert_eq!(expand_sql("", MySql).unwrap(), "");
        // `--` followed by a non-space is arithmetic in MySQL and must stay so
        assert_eq!(
            expand_sql("SELECT 1--/*! 1*/", MySql).unwrap(),
            "SELECT 1- - 1"
        );
        assert_eq!(expand_sql("SELECT 1----", MySql).unwrap(), "SELECT 1- - ");
        assert_eq!(expand_sql("SELECT 1--1", MySql).unwrap(), "SELECT 1- -1");
        // only ASCII whitespace separates tokens: U+2028 after a marker is part of a name
        assert_eq!(
            expand_sql("SELECT GO/*!\u{2028}x*/", MySql).unwrap(),
            "SELECT GO \u{2028}x"
        );
        assert!(expand_sql("SELECT 'x", MySql).is_err());
        // not executable on PostgreSQL: an ordinary comment
        assert_eq!(
            expand_sql("SELECT 1 /*! DELETE */", Postgres).unwrap(),
            "SELECT 1  "
        );
    }

    #[test]
    fn split_basic() {
        assert_eq!(
            split("SELECT 1; SELECT 2;", Postgres),
            ["SELECT 1", "SELECT 2"]
        );
        assert_eq!(split(";; SELECT 1 ;; ", MySql), ["SELECT 1"]);
        assert_eq!(
            split("SELECT 'a;b'; SELECT \"c;\"", Postgres),
            ["SELECT 'a;b'", "SELECT \"c;\""]
        );
        assert_eq!(
            split("SELECT $$;$$; SELECT $x$;$x$", Postgres),
            ["SELECT $$;$$", "SELECT $x$;$x$"]
        );
        assert_eq!(
            split("SELECT 1 /* ; */; -- ;\nSELECT 2", Postgres),
            ["SELECT 1", "SELECT 2"]
        );
        assert_eq!(
            split("SELECT 1; COMMIT; DROP SCHEMA public CASCADE;", Postgres),
            ["SELECT 1", "COMMIT", "DROP SCHEMA public CASCADE"]
        );
        assert_eq!(split("-- only a comment", Postgres), Vec::<String>::new());
        assert_eq!(split("", TSql), Vec::<String>::new());
        assert_eq!(split("\u{2028}$a$x", Postgres), ["\u{2028}$a$x"]);
    }

    #[test]
    fn split_bypasses() {
        // T-SQL bracket identifier with a quote inside
        assert_eq!(
            split("SELECT [a'];DELETE FROM t WHERE c='x'", TSql),
            ["SELECT [a']", "DELETE FROM t WHERE c='x'"]
        );
        // MySQL backslash-escaped quote
        assert_eq!(
            split(r"SELECT 'a\';b'; DELETE FROM t", MySql),
            [r"SELECT 'a\';b'", "DELETE FROM t"]
        );
        // PostgreSQL: backslash does not escape in standard strings
        assert_eq!(
            split(r"SELECT 'a\'; DELETE FROM t; --'", Postgres),
            [r"SELECT 'a\'", "DELETE FROM t"]
        );
        // executable comment contents are code, including their ';'
        assert_eq!(
            split("SELECT 1 /*!; DELETE FROM t */", MySql),
            ["SELECT 1", "DELETE FROM t"]
        );
        // a ';' inside parentheses still separates (the server would reject or split)
        assert_eq!(
            split("SELECT (1; DELETE FROM t)", Postgres),
            ["SELECT (1", "DELETE FROM t)"]
        );
        // comment as separator
        assert_eq!(
            split("SELECT 1 -- x\n; UPDATE t SET a=1", MySql),
            ["SELECT 1", "UPDATE t SET a=1"]
        );
    }
}

#[cfg(test)]
mod tsql_tests {
    use super::*;
    use Dialect::TSql;

    fn split(s: &str) -> Vec<String> {
        split_statements(s, TSql).unwrap_or_else(|e| panic!("{s:?}: {e}"))
    }

    #[track_caller]
    fn check(sql: &str, want: &[&str]) {
        assert_eq!(split(sql), want, "{sql:?}");
    }

    #[test]
    fn batches_without_semicolons() {
        // the examples of the contract (docs/ARCHITECTURE.md, issue 2)
        check(
            "SELECT 1\nWAITFOR DELAY '1:0:0'",
            &["SELECT 1", "WAITFOR DELAY '1:0:0'"],
        );
        check(
            "SELECT a FROM t DELETE FROM t",
            &["SELECT a FROM t", "DELETE FROM t"],
        );
        check("SELECT 1 SELECT 2", &["SELECT 1", "SELECT 2"]);
        check(
            "SELECT COUNT(*) FROM dbo.users\nSELECT COUNT(*) FROM dbo.orders",
            &[
                "SELECT COUNT(*) FROM dbo.users",
                "SELECT COUNT(*) FROM dbo.orders",
            ],
        );
        // case-insensitive, comments between, mixed with ';'
        check(
            "select 1 /* c */ delete from t; SELECT 2 -- x\nupdate t set a = 1",
            &[
                "select 1",
                "delete from t",
                "SELECT 2",
                "update t set a = 1",
            ],
        );
        check("SELECT 1 SHUTDOWN", &["SELECT 1", "SHUTDOWN"]);
        check(
            "SELECT a FROM t CHECKPOINT",
            &["SELECT a FROM t", "CHECKPOINT"],
        );
        check("SELECT a FROM t COMMIT", &["SELECT a FROM t", "COMMIT"]);
        check("SELECT a FROM t THROW", &["SELECT a FROM t", "THROW"]);
        check("SELECT 1 END", &["SELECT 1", "END"]);
        check(
            "DECLARE @x int = 1 SET @x = 2 SELECT @x EXEC sp_who",
            &[
                "DECLARE @x int = 1",
                "SET @x = 2",
                "SELECT @x",
                "EXEC sp_who",
            ],
        );
        check(
            "SELECT 1 BEGIN TRAN UPDATE t SET a = 1 COMMIT",
            &["SELECT 1", "BEGIN TRAN", "UPDATE t SET a = 1", "COMMIT"],
        );
        check(
            "SELECT 1 TRUNCATE TABLE t DBCC CHECKDB KILL 55 RECONFIGURE",
            &[
                "SELECT 1",
                "TRUNCATE TABLE t",
                "DBCC CHECKDB",
                "KILL 55",
                "RECONFIGURE",
            ],
        );
        check(
            "SELECT 1 ENABLE TRIGGER tr ON t SEND ON CONVERSATION @h",
            &[
                "SELECT 1",
                "ENABLE TRIGGER tr ON t",
                "SEND ON CONVERSATION @h",
            ],
        );
        check(
            "SELECT 1 RECEIVE TOP (1) * FROM q",
            &["SELECT 1", "RECEIVE TOP (1) * FROM q"],
        );
        check(
            "SELECT 1 END CONVERSATION @h",
            &["SELECT 1", "END CONVERSATION @h"],
        );
    }

    #[test]
    fn statements_that_continue() {
        for sql in [
            "SELECT 1 UNION SELECT 2 UNION ALL SELECT 3 EXCEPT SELECT 4 INTERSECT SELECT 5",
            "SELECT 1 UNION ALL -- c\n SELECT 2",
            "SELECT * FROM (SELECT 1 AS a) x WHERE a IN (SELECT 1 UNION SELECT 2)",
            "SELECT * FROM dbo.orders ORDER BY id OFFSET 10 ROWS FETCH NEXT 5 ROWS ONLY",
            "SELECT * FROM t ORDER BY id OFFSET 1 ROW FETCH FIRST 1 ROW ONLY",
            "WITH a AS (SELECT 1 AS x), b (y) AS (SELECT 2) SELECT * FROM a, b",
            "WITH XMLNAMESPACES ('urn:x' AS x) SELECT 1",
            "SELECT CASE WHEN a = 1 THEN (SELECT 2) ELSE 3 END FROM t",
            "SELECT CASE WHEN a = 1 THEN CASE b WHEN 2 THEN 3 END END AS c FROM t",
            "SELECT a FROM t OPTION (USE HINT ('DISABLE_OPTIMIZER_ROWGOAL'))",
            "SELECT a FROM t WITH (NOLOCK) WHERE EXISTS (SELECT 1 FROM u)",
            "SELECT 1 AS throw",
            "SELECT t.throw, x.get FROM t, x",
            "SELECT a get, b send, c move, d enable FROM t",
            "SELECT [select], [delete] FROM t",
            "SELECT 'a DELETE FROM t' AS s",
            "SELECT * FROM t FOR JSON AUTO",
            // writes and DDL that stay one piece (blocked whole)
            "INSERT INTO t (a) SELECT a FROM s",
            "INSERT INTO t EXEC dbo.p",
            "INSERT t DEFAULT VALUES",
            "UPDATE t SET a = 1 FROM t JOIN s ON s.id = t.id",
            "WITH c AS (SELECT 1 AS a) INSERT INTO t SELECT a FROM c",
            "WITH c AS (SELECT 1 AS a) UPDATE t SET a = 1",
            "WITH c AS (SELECT 1 AS a) DELETE FROM t",
            "MERGE t USING s ON t.id = s.id WHEN MATCHED THEN UPDATE SET a = s.a \
             WHEN NOT MATCHED THEN INSERT (a) VALUES (s.a) WHEN NOT MATCHED BY SOURCE THEN DELETE",
            "GRANT SELECT, INSERT, UPDATE, DELETE ON t TO u",
            "REVOKE EXECUTE ON p FROM u",
            "DENY CREATE TABLE TO u",
            "DROP TABLE IF EXISTS t",
            "BULK INSERT t FROM 'c:\\x.csv'",
            "DECLARE c CURSOR LOCAL FOR SELECT a FROM t FOR UPDATE OF a",
            "CREATE PROCEDURE p AS SELECT 1 DELETE FROM t",
            "CREATE TRIGGER tr ON t AFTER INSERT, UPDATE, DELETE AS SELECT 1",
            "ALTER DATABASE d SET READ_WRITE",
            "BEGIN SELECT 1 DELETE FROM t END",
            "BEGIN TRY SELECT 1 END TRY",
            "BEGIN ATOMIC WITH (LANGUAGE = N'us_english') SELECT 1 END",
        ] {
            let got = split(sql);
            assert_eq!(got.len(), 1, "{sql:?} -> {got:?}");
        }
    }

    #[test]
    fn blocks_and_control_flow() {
        check(
            "IF 1 = 1 BEGIN SELECT 1 DELETE FROM t END ELSE SELECT 2",
            &[
                "IF 1 = 1",
                "BEGIN SELECT 1 DELETE FROM t END ELSE",
                "SELECT 2",
            ],
        );
        check(
            "BEGIN TRY SELECT 1 END TRY BEGIN CATCH THROW END CATCH SELECT 3",
            &[
                "BEGIN TRY SELECT 1 END TRY",
                "BEGIN CATCH THROW END CATCH",
                "SELECT 3",
            ],
        );
        check(
            "BEGIN SELECT CASE WHEN 1 = 1 THEN 1 END END DELETE FROM t",
            &[
                "BEGIN SELECT CASE WHEN 1 = 1 THEN 1 END END",
                "DELETE FROM t",
            ],
        );
        check(
            "BEGIN BEGIN SELECT 1 END DELETE FROM t END UPDATE t SET a = 1",
            &[
                "BEGIN BEGIN SELECT 1 END DELETE FROM t END",
                "UPDATE t SET a = 1",
            ],
        );
        // IF/WHILE: the condition is a piece of its own (blocked as procedural code)
        check(
            "IF EXISTS (SELECT 1 FROM t) PRINT 'x'",
            &["IF EXISTS (SELECT 1 FROM t)", "PRINT 'x'"],
        );
        check(
            "WHILE 1 = 1 BREAK SELECT 1",
            &["WHILE 1 = 1", "BREAK", "SELECT 1"],
        );
        // after the CTE's statement, the next statement splits again
        check(
            "WITH a AS (SELECT 1 AS x) SELECT * FROM a DELETE FROM t",
            &["WITH a AS (SELECT 1 AS x) SELECT * FROM a", "DELETE FROM t"],
        );
        check(
            "INSERT INTO t SELECT 1 SELECT 2",
            &["INSERT INTO t SELECT 1", "SELECT 2"],
        );
        check(
            "INSERT INTO t VALUES (1) SELECT 2",
            &["INSERT INTO t VALUES (1)", "SELECT 2"],
        );
        check(
            "UPDATE t SET a = 1 SET NOCOUNT ON",
            &["UPDATE t SET a = 1", "SET NOCOUNT ON"],
        );
        check(
            "GRANT SELECT ON t TO u SELECT 1",
            &["GRANT SELECT ON t TO u", "SELECT 1"],
        );
        check(
            "DROP TABLE t IF 1 = 1 SELECT 1",
            &["DROP TABLE t IF 1 = 1", "SELECT 1"],
        );
        // WITH does not start a statement without ';' (the server requires one before a CTE)
        check(
            "SELECT 1 WITH a AS (SELECT 2) SELECT * FROM a",
            &["SELECT 1 WITH a AS (SELECT 2)", "SELECT * FROM a"],
        );
        // a stray END or an unclosed CASE at the top level does not hide what follows
        check(
            "SELECT CASE WHEN 1 = 1 THEN 1 DELETE FROM t",
            &["SELECT CASE WHEN 1 = 1 THEN 1", "DELETE FROM t"],
        );
        check(
            "SELECT 1 END END DELETE FROM t",
            &["SELECT 1", "END", "END", "DELETE FROM t"],
        );
        // an unclosed CASE inside parentheses ends with them
        check(
            "SELECT (CASE) DELETE FROM t",
            &["SELECT (CASE)", "DELETE FROM t"],
        );
        // statement keywords after '.', ',', AS still split (reserved words are never names)
        check("SELECT t.delete FROM t", &["SELECT t.", "delete FROM t"]);
        check(
            "SELECT 1 AS DELETE FROM t",
            &["SELECT 1 AS", "DELETE FROM t"],
        );
        check("SELECT 1, DELETE FROM t", &["SELECT 1,", "DELETE FROM t"]);
        // set operators only continue SELECT
        check(
            "SELECT 1 UNION DELETE FROM t",
            &["SELECT 1 UNION", "DELETE FROM t"],
        );
        check(
            "SELECT a FROM t FETCH NEXT FROM c",
            &["SELECT a FROM t", "FETCH NEXT FROM c"],
        );
        // MERGE: a keyword not after THEN starts a statement
        check(
            "MERGE t USING s ON 1 = 1 WHEN MATCHED THEN DELETE SELECT 1",
            &[
                "MERGE t USING s ON 1 = 1 WHEN MATCHED THEN DELETE",
                "SELECT 1",
            ],
        );
        // a cursor is only a cursor after CURSOR
        check(
            "DECLARE @x int SELECT @x = 1",
            &["DECLARE @x int", "SELECT @x = 1"],
        );
        // other dialects are untouched
        assert_eq!(
            split_statements("SELECT 1 DELETE FROM t", Dialect::Postgres).unwrap(),
            ["SELECT 1 DELETE FROM t"]
        );
        assert_eq!(
            split_statements("SELECT 1 DELETE FROM t", Dialect::MySql).unwrap(),
            ["SELECT 1 DELETE FROM t"]
        );
    }

    #[test]
    fn starters_sorted() {
        assert!(TSQL_STARTERS.windows(2).all(|w| w[0] < w[1]));
        assert!(TSQL_STARTERS.iter().all(|w| w.len() <= 12));
    }
}
