//! The fast path (issue 2, layer 1): one pass over the tokens answers
//!
//! * ALLOW only when certain: exactly one statement, led by `SELECT`, made only of
//!   identifiers, literals, parameters, a small set of operators, punctuation, keywords from
//!   the read allowlist and calls of known-pure built-in functions; no hint, no executable
//!   comment, no risky word anywhere (INTO, FOR, LOCK, any write/DDL/DCL/session/transaction
//!   verb, ...), no unknown reserved word, balanced parentheses and CASE/END;
//! * BLOCK only when certain: some statement *starts* with an unambiguous write verb
//!   (INSERT, UPDATE, DELETE, MERGE, REPLACE, TRUNCATE, CREATE, ALTER, DROP, RENAME, GRANT,
//!   REVOKE, DENY), the text cannot be tokenized (`lex_error`), or it reads differently under
//!   another backslash-escape mode and that other reading is not a plain read
//!   (`ambiguous_quoting`);
//! * DEFER (rule "", reason "") otherwise: the deep check decides.
//!
//! Cost: one tokenize into a `Vec`, one fingerprint `String`, one `String` per verb; keyword
//! and function lookups are binary searches compared case-insensitively in place.

use super::functions::is_pure_function;
use super::keywords::{self, READ};
use super::lexer::{tokenize_mode, LexMode, Token, TokenKind};
use super::split::statement_ranges;
use super::fingerprint::fingerprint_tokens;
use super::Dialect;
use crate::Error;

pub const DEFER: u8 = 0;
pub const ALLOW: u8 = 1;
pub const BLOCK: u8 = 2;

/// Result of [`fast_check`] (the tuple of the Python contract, in order).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FastCheck {
    pub decision: u8,
    pub rule: &'static str,
    pub reason: String,
    pub class: &'static str,
    pub verbs: Vec<String>,
    pub fingerprint: Option<String>,
}

struct Analysis {
    decision: u8,
    rule: &'static str,
    reason: String,
    class: &'static str,
    verbs: Vec<String>,
    ambiguous: bool,
}

/// Classify `sql` conservatively. Never panics; lex errors become BLOCK `lex_error`.
pub fn fast_check(sql: &str, dialect: Dialect) -> FastCheck {
    let toks = match tokenize_mode(sql, dialect, LexMode::server_default(dialect)) {
        Ok(t) => t,
        Err(e) => return lex_block(sql, &e),
    };
    let a = analyze(sql, dialect, &toks);
    let mut res = FastCheck {
        decision: a.decision,
        rule: a.rule,
        reason: a.reason,
        class: a.class,
        verbs: a.verbs,
        fingerprint: Some(fingerprint_tokens(sql, &toks)),
    };
    if a.ambiguous && res.decision != BLOCK {
        // The text ends its strings elsewhere if the session runs with other escape settings
        // (MySQL NO_BACKSLASH_ESCAPES / ANSI_QUOTES, PostgreSQL standard_conforming_strings
        // = off). A reading the server would reject (lex error) is harmless; any other reading
        // must be a plain read too, because the deep check only sees the default reading.
        for alt in LexMode::alternates(dialect) {
            let Ok(t2) = tokenize_mode(sql, dialect, *alt) else { continue };
            let b = analyze(sql, dialect, &t2);
            if b.decision != ALLOW {
                res.decision = BLOCK;
                res.rule = "ambiguous_quoting";
                res.reason = "the text reads differently depending on whether a backslash \
                    escapes a quote inside strings (MySQL sql_mode NO_BACKSLASH_ESCAPES or \
                    ANSI_QUOTES, PostgreSQL standard_conforming_strings), and one reading is \
                    not a plain read; write a quote inside a string by doubling it ('') instead \
                    of using a backslash, and send one plain SELECT"
                    .to_string();
                if b.decision == BLOCK {
                    res.class = b.class;
                }
                break;
            }
        }
    }
    res
}

fn lex_block(sql: &str, e: &Error) -> FastCheck {
    let (offset, message) = match e {
        Error::Lex { offset, message } => (*offset, message.as_str()),
        _ => (0, "invalid input"),
    };
    let at = sql.get(..offset).map_or(offset, |p| p.chars().count());
    FastCheck {
        decision: BLOCK,
        rule: "lex_error",
        reason: format!(
            "the SQL text could not be parsed ({message} at character {at}); it may hide \
             code in an unterminated string or comment; rewrite it as a single plain SELECT"
        ),
        class: "unknown",
        verbs: Vec::new(),
        fingerprint: None,
    }
}

fn eq_kw(text: &str, kw: &str) -> bool {
    text.eq_ignore_ascii_case(kw)
}

fn write_reason(verb: &str, class: &str, index: usize, total: usize) -> String {
    let what = match (class, verb) {
        ("write", "INSERT") => "INSERT adds rows",
        ("write", "DELETE") => "DELETE removes rows",
        ("write", "TRUNCATE") => "TRUNCATE removes every row of a table",
        ("write", _) => "changes data",
        ("ddl", _) => "changes the database schema",
        ("dcl", _) => "changes permissions",
        _ => "changes the database",
    };
    let head = if what.starts_with(verb) { what.to_string() } else { format!("{verb} {what}") };
    let prefix = if total > 1 {
        format!("statement {} of {} is {verb}: ", index + 1, total)
    } else {
        String::new()
    };
    let advice = match class {
        "ddl" => "use SELECT to read data (a subquery or WITH ... SELECT instead of a new table or view)",
        "dcl" => "privileges cannot be changed through this connection; ask a database administrator",
        _ => "use SELECT to read the rows instead",
    };
    let tail = if total > 1 { "; send one plain SELECT per request" } else { "" };
    format!("{prefix}{head}; this connection is read-only; {advice}{tail}")
}

/// Operators the fast path accepts (built-in arithmetic, comparison, string, bit, JSON).
fn operator_ok(op: &str, d: Dialect) -> bool {
    match op {
        "=" | "<>" | "!=" | "<" | ">" | "<=" | ">=" | "+" | "-" | "*" | "/" | "%" | "||" | "&"
        | "|" | "^" | "~" | "<<" | ">>" => true,
        "::" | "#>" | "#>>" | "@>" | "<@" => d == Dialect::Postgres,
        "->" | "->>" => d != Dialect::TSql,
        "<=>" | "&&" | "!" => d == Dialect::MySql,
        "!<" | "!>" => d == Dialect::TSql,
        _ => false,
    }
}

/// Index of the next non-comment token after `i`.
fn next_code(toks: &[Token], i: usize) -> Option<&Token> {
    toks.get(i + 1..)?.iter().find(|t| t.kind != TokenKind::Comment)
}

fn analyze(src: &str, d: Dialect, toks: &[Token]) -> Analysis {
    let ambiguous = toks.iter().any(Token::ambiguous);
    let ranges = statement_ranges(toks, src);
    let mut verbs = Vec::with_capacity(ranges.len());
    let mut verb_flags = Vec::with_capacity(ranges.len());
    for &(a, b) in &ranges {
        let lead = toks.get(a..b).and_then(|s| {
            s.iter().find(|t| {
                t.kind.is_content() && !(t.kind == TokenKind::Punct && t.text(src) == "(")
            })
        });
        match lead {
            Some(t) if t.kind == TokenKind::Word => {
                let text = t.text(src);
                verbs.push(text.to_ascii_uppercase());
                verb_flags.push(keywords::flags(text));
            }
            _ => {
                verbs.push(String::new());
                verb_flags.push(0);
            }
        }
    }
    let total = ranges.len();
    // BLOCK: a statement that starts with an unambiguous write verb.
    for (i, f) in verb_flags.iter().enumerate() {
        if f & keywords::BLOCK != 0 {
            let class = keywords::class_name(*f);
            let verb = verbs.get(i).map_or("", String::as_str);
            return Analysis {
                decision: BLOCK,
                rule: "write_verb",
                reason: write_reason(verb, class, i, total),
                class,
                verbs,
                ambiguous,
            };
        }
    }
    let class = if total == 0 {
        "unknown"
    } else {
        verb_flags
            .iter()
            .map(|f| keywords::class_name(*f))
            .find(|c| *c != "read")
            .unwrap_or("read")
    };
    let defer = |verbs| Analysis {
        decision: DEFER,
        rule: "",
        reason: String::new(),
        class,
        verbs,
        ambiguous,
    };
    // ALLOW needs exactly one statement, led by SELECT, and no hint/executable comment
    // anywhere in the text.
    let (Some(&(a, b)), 1) = (ranges.first(), total) else { return defer(verbs) };
    if toks.iter().any(|t| matches!(t.kind, TokenKind::Hint | TokenKind::ExecOpen | TokenKind::ExecClose)) {
        return defer(verbs);
    }
    let Some(stmt) = toks.get(a..b) else { return defer(verbs) };
    if plain_select(src, d, stmt) {
        return Analysis {
            decision: ALLOW,
            rule: "plain_select",
            reason: "a single plain SELECT using only known read-only syntax and functions"
                .to_string(),
            class: "read",
            verbs,
            ambiguous,
        };
    }
    defer(verbs)
}

/// Is `stmt` (the tokens of one statement) a SELECT the fast path can vouch for?
fn plain_select(src: &str, d: Dialect, stmt: &[Token]) -> bool {
    let mut depth: i32 = 0;
    let mut case_depth: i32 = 0;
    let mut prev: Option<&Token> = None;
    for (i, t) in stmt.iter().enumerate() {
        if t.kind == TokenKind::Comment {
            continue;
        }
        let text = t.text(src);
        let next = next_code(stmt, i);
        let next_paren = next.is_some_and(|n| n.kind == TokenKind::Punct && n.text(src) == "(");
        let prev_text = prev.map(|p| p.text(src));
        match t.kind {
            TokenKind::Word => {
                if prev.is_none() && !eq_kw(text, "SELECT") {
                    return false;
                }
                let f = keywords::flags(text);
                if next_paren {
                    // a function call: qualified calls (schema.fn) may resolve anywhere
                    if prev_text == Some(".") {
                        return false;
                    }
                    if !is_pure_function(text, d) && f & READ == 0 {
                        return false;
                    }
                    if f & READ == 0 {
                        // pure function (possibly a risky word like REPLACE or IF): fine
                        prev = Some(t);
                        continue;
                    }
                }
                if keywords::risky_in(f, d) {
                    return false;
                }
                if keywords::reserved_in(f, d) && f & READ == 0 {
                    return false;
                }
                if eq_kw(text, "CASE") {
                    case_depth += 1;
                } else if eq_kw(text, "END") {
                    if case_depth == 0 {
                        return false;
                    }
                    case_depth -= 1;
                } else if eq_kw(text, "SELECT") && prev.is_some() && depth == 0 {
                    // a second top-level SELECT must follow a set operator (T-SQL batches
                    // need no ';' between statements)
                    let after_setop = prev.is_some_and(|p| {
                        p.kind == TokenKind::Word && {
                            let pt = p.text(src);
                            ["UNION", "INTERSECT", "EXCEPT", "ALL", "DISTINCT"]
                                .iter()
                                .any(|k| eq_kw(pt, k))
                        }
                    });
                    if !after_setop {
                        return false;
                    }
                }
            }
            TokenKind::QuotedIdent | TokenKind::String => {
                if prev.is_none() || next_paren {
                    // a quoted name called as a function ("pg_sleep"(1), `sleep`(1))
                    return false;
                }
            }
            TokenKind::Number | TokenKind::Param => {
                if prev.is_none() {
                    return false;
                }
            }
            TokenKind::Variable => {
                if d == Dialect::TSql {
                    // local variables need DECLARE; `@@x = ...` would be an assignment
                    let assign = next.is_some_and(|n| n.kind == TokenKind::Operator && n.text(src) == "=");
                    if !text.starts_with("@@") || assign {
                        return false;
                    }
                }
            }
            TokenKind::Operator => {
                if !operator_ok(text, d) {
                    return false;
                }
            }
            TokenKind::Punct => match text {
                "(" => depth += 1,
                ")" => {
                    depth -= 1;
                    if depth < 0 {
                        return false;
                    }
                }
                "," | "." => {}
                "[" | "]" if d == Dialect::Postgres => {}
                _ => return false,
            },
            TokenKind::Comment => {}
            TokenKind::Hint | TokenKind::ExecOpen | TokenKind::ExecClose | TokenKind::Other => {
                return false;
            }
        }
        if prev.is_none() && t.kind != TokenKind::Word {
            return false;
        }
        prev = Some(t);
    }
    prev.is_some() && depth == 0 && case_depth == 0
}

#[cfg(test)]
mod tests {
    use super::*;
    use Dialect::{MySql, Postgres, TSql};

    fn dec(s: &str, d: Dialect) -> u8 {
        fast_check(s, d).decision
    }

    #[test]
    fn benchmark_reads_allowed() {
        for s in [
            "SELECT abalance FROM pgbench_accounts WHERE aid = 123;",
            "SELECT abalance FROM pgbench_accounts WHERE aid = $1",
        ] {
            assert_eq!(dec(s, Postgres), ALLOW, "{s}");
        }
        for s in [
            "SELECT c FROM sbtest1 WHERE id=?",
            "SELECT c FROM sbtest1 WHERE id=5012",
            "SELECT c FROM sbtest1 WHERE id BETWEEN ? AND ?",
            "SELECT SUM(k) FROM sbtest1 WHERE id BETWEEN ? AND ?",
            "SELECT c FROM sbtest1 WHERE id BETWEEN ? AND ? ORDER BY c",
            "SELECT DISTINCT c FROM sbtest1 WHERE id BETWEEN ? AND ? ORDER BY c",
            "SELECT DISTINCT c FROM sbtest1 WHERE id BETWEEN 100 AND 199 ORDER BY c",
        ] {
            assert_eq!(dec(s, MySql), ALLOW, "{s}");
        }
    }

    #[test]
    fn result_shape() {
        let r = fast_check("select a from t", Postgres);
        assert_eq!(r.decision, ALLOW);
        assert_eq!(r.class, "read");
        assert_eq!(r.verbs, ["SELECT"]);
        assert_eq!(r.fingerprint.as_deref(), Some("SELECT a FROM t"));
        let r = fast_check("SELECT 1; DELETE FROM t", Postgres);
        assert_eq!((r.decision, r.rule, r.class), (BLOCK, "write_verb", "write"));
        assert_eq!(r.verbs, ["SELECT", "DELETE"]);
        assert!(r.reason.contains("statement 2 of 2 is DELETE"), "{}", r.reason);
        let r = fast_check("UPDATE t SET a = 1", MySql);
        assert_eq!(r.reason, "UPDATE changes data; this connection is read-only; use SELECT to read the rows instead");
        let r = fast_check("SHOW TABLES", MySql);
        assert_eq!((r.decision, r.rule, r.reason.as_str(), r.class), (DEFER, "", "", "read"));
        let r = fast_check("SELECT 'x", Postgres);
        assert_eq!((r.decision, r.rule, r.class, r.fingerprint), (BLOCK, "lex_error", "unknown", None));
        assert!(r.reason.contains("rewrite it as a single plain SELECT"));
        let r = fast_check("", Postgres);
        assert_eq!((r.decision, r.class), (DEFER, "unknown"));
        assert!(r.verbs.is_empty());
        let r = fast_check("SET x = 1", Postgres);
        assert_eq!((r.decision, r.class), (DEFER, "session"));
        let r = fast_check("GRANT ALL ON t TO u", Postgres);
        assert_eq!((r.decision, r.class), (BLOCK, "dcl"));
        let r = fast_check("DROP TABLE t", TSql);
        assert_eq!((r.decision, r.class), (BLOCK, "ddl"));
        assert!(r.reason.starts_with("DROP changes the database schema"));
    }
}
