//! Fingerprint: the statement text normalised so that two texts with the same fingerprint
//! differ only in literal values (the verdict cache key for reads, docs/ARCHITECTURE.md
//! "Engine": "Cache: bounded LRU keyed by (fingerprint)").
//!
//! Rules:
//! * string and numeric literals become `?`, except literals whose meaning or extent depends
//!   on server settings, which stay verbatim: strings flagged ambiguous (they end elsewhere
//!   under the other backslash mode) and MySQL `"..."` (an identifier under `ANSI_QUOTES`);
//! * words found in the keyword table are upper-cased (unless they follow a `.`, where they
//!   are names); every other identifier, quoted identifier, parameter (`$1`, `?`, `:n`) and
//!   variable stays exactly as written;
//! * comments are removed; whitespace and removed comments between two tokens become one
//!   space; tokens that touched stay touching; hints and executable-comment markers stay.

use super::keywords;
use super::lexer::{tokenize, Token, TokenKind, FLAG_AMBIGUOUS, FLAG_DQ_STRING};
use super::Dialect;
use crate::Result;

/// Fingerprint of `sql` (lex errors propagate: such text has no fingerprint).
pub fn fingerprint(sql: &str, dialect: Dialect) -> Result<String> {
    let toks = tokenize(sql, dialect)?;
    Ok(fingerprint_tokens(sql, &toks))
}

/// Fingerprint from already lexed tokens of `src`.
pub fn fingerprint_tokens(src: &str, toks: &[Token]) -> String {
    fingerprint_rows(src, toks, &keywords::rows_of(src, toks))
}

/// Same, with the keyword rows of each token already looked up (`keywords::rows_of`).
pub fn fingerprint_rows(src: &str, toks: &[Token], rows: &[u16]) -> String {
    let mut out = String::with_capacity(src.len());
    fingerprint_into(src, toks, rows, &mut out);
    out
}

/// Same, appended to `out` (a reused buffer: the verdict cache's probe).
pub fn fingerprint_into(src: &str, toks: &[Token], rows: &[u16], out: &mut String) {
    let mut prev_end: Option<usize> = None;
    let mut prev_dot = false;
    for (i, t) in toks.iter().enumerate() {
        if t.kind == TokenKind::Comment {
            continue;
        }
        if prev_end.is_some_and(|pe| t.start > pe) {
            out.push(' ');
        }
        let text = t.text(src);
        match t.kind {
            TokenKind::String if t.flags & (FLAG_AMBIGUOUS | FLAG_DQ_STRING) == 0 => out.push('?'),
            TokenKind::Number => out.push('?'),
            TokenKind::Word if !prev_dot => {
                let row = rows.get(i).copied().unwrap_or(keywords::NO_ROW);
                match keywords::entry(usize::from(row)) {
                    Some((upper, _)) => out.push_str(upper),
                    None => out.push_str(text),
                }
            }
            _ => out.push_str(text),
        }
        prev_dot = t.kind == TokenKind::Punct && text == ".";
        prev_end = Some(t.end);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use Dialect::{MySql, Postgres, TSql};

    fn fp(s: &str, d: Dialect) -> String {
        fingerprint(s, d).unwrap_or_else(|e| panic!("{s:?}: {e}"))
    }

    #[test]
    fn literals_and_keywords() {
        assert_eq!(
            fp(
                "select abalance from pgbench_accounts where aid = 123;",
                Postgres
            ),
            "SELECT abalance FROM pgbench_accounts WHERE aid = ?;"
        );
        assert_eq!(
            fp("SELECT c FROM sbtest1 WHERE id BETWEEN 5 AND 17", MySql),
            fp(
                "select  c\n FROM sbtest1 /* x */ WHERE id between 99 and 1000",
                MySql
            )
        );
        assert_eq!(
            fp("SELECT 'a', 1.5e3, x'1F', E'q\\'' FROM t", Postgres),
            "SELECT ?, ?, ?, ? FROM t"
        );
        assert_eq!(
            fp("SELECT $1, $2::int FROM t WHERE a = ?", MySql),
            "SELECT $1, $2::int FROM t WHERE a = ?"
        );
        assert_eq!(fp("SELECT $1, $2::int", Postgres), "SELECT $1, $2::INT");
        assert_eq!(fp("SELECT $a$ x $a$", Postgres), "SELECT ?");
        assert_eq!(
            fp("SELECT N'x', [Col] FROM dbo.T", TSql),
            "SELECT ?, [Col] FROM dbo.T"
        );
    }

    #[test]
    fn identifiers_kept() {
        // quoted identifiers keep their exact text; unquoted non-keywords keep their case
        assert_eq!(
            fp("SELECT \"MyCol\", MyCol FROM \"T\"", Postgres),
            "SELECT \"MyCol\", MyCol FROM \"T\""
        );
        assert_ne!(
            fp("SELECT a FROM Orders", MySql),
            fp("SELECT a FROM orders", MySql)
        );
        // a keyword after a dot is a name
        assert_eq!(
            fp("SELECT t.select FROM t", MySql),
            "SELECT t.select FROM t"
        );
    }

    #[test]
    fn comments_whitespace() {
        assert_eq!(fp("DELETE/**/FROM t", MySql), "DELETE FROM t");
        assert_eq!(fp("  SELECT\t\n1  -- c", Postgres), "SELECT ?");
        assert_eq!(fp("SELECT a+1", Postgres), "SELECT a+?");
        assert_ne!(fp("SELECT a+1", Postgres), fp("SELECT a + 1", Postgres));
        // MySQL: `1--1` is arithmetic, `1-- 1` is a comment
        assert_eq!(fp("SELECT 1--1", MySql), "SELECT ?--?");
        assert_eq!(fp("SELECT 1-- 1", MySql), "SELECT ?");
    }

    #[test]
    fn executable_comments_and_hints_kept() {
        assert_eq!(
            fp("SELECT 1 /*!50000 into outfile '/tmp/x' */", MySql),
            "SELECT ? /*!50000 INTO OUTFILE ? */"
        );
        assert_ne!(fp("SELECT /*+ BKA(t) */ 1", MySql), fp("SELECT 1", MySql));
    }

    #[test]
    fn settings_dependent_literals_verbatim() {
        // ambiguous under NO_BACKSLASH_ESCAPES: kept verbatim so the cache cannot merge it
        let s = r"SELECT 'x\', sleep(10) -- ', 'b' FROM t";
        let f = fp(s, MySql);
        assert!(f.contains(r"'x\', sleep(10) -- '"), "{f}");
        assert_ne!(f, fp("SELECT 'a', 'b' FROM t", MySql));
        // MySQL double quotes: identifiers under ANSI_QUOTES
        assert_eq!(fp("SELECT \"a\" FROM t", MySql), "SELECT \"a\" FROM t");
        // PostgreSQL plain strings with a backslash that ends the same either way
        assert_eq!(fp(r"SELECT 'a\\b'", Postgres), "SELECT ?");
    }

    #[test]
    fn lex_error_has_no_fingerprint() {
        assert!(fingerprint("SELECT 'abc", Postgres).is_err());
    }
}
