//! sql: the dialect-aware SQL lexer, statement splitter, fingerprint and fast path
//! (docs/ARCHITECTURE.md, "Native SQL API"; issue 2, layer 1).
//!
//! Everything here works on untrusted text and returns [`crate::Error`] instead of panicking.
//! Offsets are byte offsets into the `&str` (the bindings convert them to character offsets).
//!
//! * [`lexer`]: one pass over the text producing [`Token`]s, following each server's own lexer
//!   (PostgreSQL `scan.l`, MySQL/MariaDB `sql_lex.cc`, SQL Server's documented rules).
//! * [`split`]: statement splitting on `;` and [`expand_sql`] (the text the deep parser sees).
//! * [`fingerprint`]: the text with literals replaced by `?` (cache key).
//! * [`fastpath`]: ALLOW only when certain, BLOCK only when certain, DEFER otherwise.

pub mod fastpath;
pub mod fingerprint;
pub mod functions;
pub mod keywords;
pub mod lexer;
pub mod probe_memo;
pub mod split;

#[cfg(test)]
mod tests;

use crate::{Error, Result};

pub use fastpath::{cache_probe, fast_check, fast_check_with, FastCheck, ProbeScratch, ALLOW, BLOCK, DEFER};
pub use fingerprint::fingerprint;
pub use lexer::{tokenize, tokenize_mode, LexMode, Lexer, Token, TokenKind};
pub use split::{expand_sql, split_statements};

/// The SQL dialects the proxy understands. `MySql` covers MySQL and MariaDB.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Dialect {
    Postgres,
    MySql,
    TSql,
}

impl Dialect {
    /// Parse the dialect names of the public contract: `postgres`, `mysql`, `tsql`.
    pub fn parse(name: &str) -> Result<Dialect> {
        match name {
            "postgres" => Ok(Dialect::Postgres),
            "mysql" => Ok(Dialect::MySql),
            "tsql" => Ok(Dialect::TSql),
            other => Err(Error::Invalid {
                message: format!(
                    "unknown SQL dialect {other:?}; expected \"postgres\", \"mysql\" or \"tsql\""
                ),
            }),
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Dialect::Postgres => "postgres",
            Dialect::MySql => "mysql",
            Dialect::TSql => "tsql",
        }
    }
}

/// Convert ascending byte offsets into character offsets of `src` (what Python's `str`
/// indexes). `offsets` must be sorted ascending; values past the end map to the char count.
/// Linear in `src.len()`; ASCII text maps to itself without a scan.
pub fn byte_to_char_offsets(src: &str, offsets: &mut [usize]) {
    if src.is_ascii() {
        return;
    }
    let mut chars = 0usize;
    let mut iter = src.char_indices().peekable();
    for off in offsets.iter_mut() {
        while let Some(&(b, _)) = iter.peek() {
            if b >= *off {
                break;
            }
            iter.next();
            chars += 1;
        }
        *off = chars;
    }
}

#[cfg(test)]
mod mod_tests {
    use super::*;

    #[test]
    fn dialect_names() {
        for d in [Dialect::Postgres, Dialect::MySql, Dialect::TSql] {
            assert_eq!(Dialect::parse(d.name()), Ok(d));
        }
        assert!(matches!(
            Dialect::parse("oracle"),
            Err(Error::Invalid { .. })
        ));
        assert!(matches!(
            Dialect::parse("Postgres"),
            Err(Error::Invalid { .. })
        ));
        assert!(matches!(Dialect::parse(""), Err(Error::Invalid { .. })));
    }

    #[test]
    fn char_offsets() {
        let s = "aé€😀b";
        // byte offsets of each char start, plus the end
        let mut offs: Vec<usize> = s.char_indices().map(|(b, _)| b).collect();
        offs.push(s.len());
        byte_to_char_offsets(s, &mut offs);
        assert_eq!(offs, vec![0, 1, 2, 3, 4, 5]);
        let mut ascii = vec![0, 3, 5];
        byte_to_char_offsets("hello", &mut ascii);
        assert_eq!(ascii, vec![0, 3, 5]);
    }
}
