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
//! splits too. Limits: T-SQL batches whose statements are not separated by `;`
//! (`SELECT 1 DELETE FROM t`) come back as one statement (the fast path never allows such a
//! text); bodies of `CREATE FUNCTION ... BEGIN ATOMIC ... END` / `CREATE PROCEDURE ... BEGIN
//! ... END` are split at their inner `;` (those statements are blocked anyway).

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
    let mut begin = 0usize;
    let mut has_content = false;
    for (i, t) in toks.iter().enumerate() {
        if t.kind == TokenKind::Punct && t.text(src) == ";" {
            if has_content {
                out.push((begin, i));
            }
            begin = i + 1;
            has_content = false;
        } else if t.kind.is_content() {
            has_content = true;
        }
    }
    if has_content {
        out.push((begin, toks.len()));
    }
    out
}

/// Split `sql` into statements, each rendered as in [`expand_sql`] and trimmed; the `;`
/// terminators are not included and empty statements are dropped.
pub fn split_statements(sql: &str, dialect: Dialect) -> Result<Vec<String>> {
    let toks = tokenize(sql, dialect)?;
    let mut out = Vec::new();
    for (a, b) in statement_ranges(&toks, sql) {
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
