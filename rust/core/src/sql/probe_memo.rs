//! Memo of recent [`cache_probe`](super::cache_probe) answers, for texts that differ from a
//! remembered one only in the digits of one integer literal (issue 6: pgbench's simple
//! protocol, sysbench without prepared statements and agents that inline ids send every
//! statement with a new number; each one missed the exact-text cache and paid a full lex,
//! keyword lookup and fingerprint before the fingerprint map could answer).
//!
//! Why the answer carries over. Let `T` be a remembered text and `a..b` one of its tokens
//! that is a [`TokenKind::Number`] made only of ASCII digits, whose neighbours (the byte
//! before `a`, the byte at `b`) are not identifier or number characters. Let `T'` be `T`
//! with `T[a..b]` replaced by another non-empty run of ASCII digits. Then:
//! * the lexer reads `T[..a]` and `T'[..a]` identically (same bytes, and no rule looks at
//!   which digit follows: a digit is never whitespace, a quote, a comment opener or a
//!   letter -- `0x`/`0b`/`1e5`/`1abc` all need a letter next to the digits, excluded above);
//! * at `a` both lex one Number token of all the digits: the run starts after a byte that
//!   cannot continue a token into it and ends before a byte that cannot extend it (no `.`,
//!   letter, `_`, `$` or non-ASCII), in every dialect (lexer.rs `number`);
//! * after it the lexer is in the same state (position aside), so the rest lexes the same,
//!   shifted by the length difference;
//! * so both have the same token kinds, flags and words, the same statement leads (the
//!   write-verb BLOCK), and the same fingerprint: a Number always becomes `?` and only
//!   whether tokens touch is kept of the spacing (fingerprint.rs), which the digits' length
//!   does not change.
//!
//! The memo only answers in that case (found by the common prefix and suffix of the two
//! texts) and otherwise says nothing, so the full probe runs. It remembers only probes that
//! produced a fingerprint without the ambiguity fallback. `tests::memo_agrees_with_probe`
//! checks its answers against fresh probes on 60,000 random digit edits of random texts.

use std::collections::VecDeque;

use super::lexer::{Token, TokenKind};
use super::Dialect;

/// Remembered texts (per I/O lane: a lane's sessions usually send a few statement shapes).
const ENTRIES: usize = 8;
/// Longer texts are not remembered (comparing them would cost what a probe costs).
const MAX_TEXT: usize = 4096;

struct Entry {
    dialect: Dialect,
    text: Box<str>,
    /// `(start, end)` of every pure-digit Number token with safe neighbours, in order.
    digits: Vec<(usize, usize)>,
    fingerprint: Box<str>,
}

#[derive(Default)]
pub struct ProbeMemo {
    /// Most recent first; the oldest is dropped beyond `ENTRIES`.
    entries: VecDeque<Entry>,
}

/// Bytes that may sit next to a digit run without joining or changing its token.
fn safe_neighbour(b: Option<&u8>) -> bool {
    match b {
        None => true,
        Some(&c) => !(c.is_ascii_alphanumeric() || matches!(c, b'_' | b'$' | b'.' | b'@' | b'#') || c >= 0x80),
    }
}

impl ProbeMemo {
    /// The entry whose fingerprint `sql` has, if it is a digit variant of a remembered text
    /// (see above); [`ProbeMemo::fingerprint`] gives the fingerprint.
    pub fn recall(&self, sql: &str, dialect: Dialect) -> Option<usize> {
        if sql.len() > MAX_TEXT {
            return None;
        }
        // most recent first: a lane's sessions tend to repeat the last shape
        self.entries.iter().position(|e| e.dialect == dialect && e.covers(sql.as_bytes()))
    }

    pub fn fingerprint(&self, entry: usize) -> Option<&str> {
        self.entries.get(entry).map(|e| &*e.fingerprint)
    }

    /// Remember the probe of `sql`: its tokens and the fingerprint it produced.
    pub fn remember(&mut self, sql: &str, dialect: Dialect, toks: &[Token], fingerprint: &str) {
        if sql.len() > MAX_TEXT || toks.iter().any(Token::ambiguous) {
            return;
        }
        let b = sql.as_bytes();
        let digits: Vec<(usize, usize)> = toks
            .iter()
            .filter(|t| t.kind == TokenKind::Number && t.start < t.end)
            .filter(|t| b.get(t.start..t.end).is_some_and(|s| s.iter().all(u8::is_ascii_digit)))
            .filter(|t| safe_neighbour(t.start.checked_sub(1).and_then(|i| b.get(i))) && safe_neighbour(b.get(t.end)))
            .map(|t| (t.start, t.end))
            .collect();
        if digits.is_empty() {
            return; // nothing a variant could change
        }
        if self.entries.len() >= ENTRIES {
            self.entries.pop_back();
        }
        self.entries.push_front(Entry { dialect, text: sql.into(), digits, fingerprint: fingerprint.into() });
    }
}

impl Entry {
    /// Is `new` this text with the digits of one remembered run replaced by other digits?
    fn covers(&self, new: &[u8]) -> bool {
        let old = self.text.as_bytes();
        let prefix = old.iter().zip(new).take_while(|(x, y)| x == y).count();
        let room = old.len().min(new.len()) - prefix;
        let suffix = old.iter().rev().zip(new.iter().rev()).take(room).take_while(|(x, y)| x == y).count();
        let (old_end, new_end) = (old.len() - suffix, new.len() - suffix);
        // what changed must be digits on both sides...
        let changed_digits = |s: &[u8], a: usize, b: usize| s.get(a..b).is_some_and(|r| r.iter().all(u8::is_ascii_digit));
        if !changed_digits(old, prefix, old_end) || !changed_digits(new, prefix, new_end) {
            return false;
        }
        // ...inside one remembered run, which stays non-empty
        let i = self.digits.partition_point(|&(_, end)| end < old_end);
        match self.digits.get(i) {
            Some(&(start, end)) => start <= prefix && old_end <= end && (end - start) + new_end > old_end,
            None => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::{cache_probe, ProbeScratch};
    use super::*;
    use Dialect::{MySql, Postgres, TSql};

    fn remembered(base: &str, d: Dialect) -> ProbeScratch {
        let mut s = ProbeScratch::default();
        assert!(cache_probe(base, d, &mut s).is_some(), "{base:?} has a fingerprint");
        s
    }

    #[test]
    fn answers_only_digit_edits_of_a_whole_integer_literal() {
        let base = "SELECT abalance FROM pgbench_accounts WHERE aid = 123;";
        let s = remembered(base, Postgres);
        for (text, yes) in [
            ("SELECT abalance FROM pgbench_accounts WHERE aid = 9;", true),
            ("SELECT abalance FROM pgbench_accounts WHERE aid = 1234567;", true),
            ("SELECT abalance FROM pgbench_accounts WHERE aid = 0;", true),
            ("SELECT abalance FROM pgbench_accounts WHERE aid = ;", false), // run deleted
            ("SELECT abalance FROM pgbench_accounts WHERE aid = 12x;", false),
            ("SELECT abalance FROM pgbench_accounts WHERE aid = 1.5;", false),
            ("SELECT abalance FROM pgbench_accounts WHERE aid = 123; ", false),
            ("SELECT abalance FROM pgbench_accounts WHERE bid = 123;", false),
            ("DELETE  abalance FROM pgbench_accounts WHERE aid = 123;", false),
        ] {
            assert_eq!(s.memo_recalls(text, Postgres), yes, "{text:?}");
        }
        // another dialect never takes this dialect's answer
        assert!(!s.memo_recalls("SELECT abalance FROM pgbench_accounts WHERE aid = 9;", MySql));
    }

    #[test]
    fn runs_next_to_name_or_number_characters_are_not_remembered() {
        // MySQL `0x1` / `1abc`, PostgreSQL `0 x1`, T-SQL `#1`, decimals, params, versions
        for (base, d, edit) in [
            ("SELECT 0x1 FROM t", MySql, "SELECT 1x1 FROM t"),
            ("SELECT 10x1 FROM t", TSql, "SELECT 0x1 FROM t"),
            ("SELECT 10b1 FROM t", MySql, "SELECT 0b1 FROM t"),
            ("SELECT 1abc FROM t", MySql, "SELECT 2abc FROM t"),
            ("SELECT 1.5 FROM t", Postgres, "SELECT 2.5 FROM t"),
            ("SELECT 1e5 FROM t", TSql, "SELECT 2e5 FROM t"),
            ("SELECT $1 FROM t", Postgres, "SELECT $2 FROM t"),
            ("SELECT a FROM #1", TSql, "SELECT a FROM #2"),
            ("SELECT a1 FROM t", Postgres, "SELECT a2 FROM t"),
            ("/*!50000 SELECT a */", MySql, "/*!40000 SELECT a */"),
            ("SELECT 'a1' FROM t", Postgres, "SELECT 'a2' FROM t"),
            ("SELECT a FROM t -- 1", Postgres, "SELECT a FROM t -- 2"),
        ] {
            let s = remembered(base, d);
            assert!(!s.memo_recalls(edit, d), "{d:?} {base:?} -> {edit:?}");
        }
    }

    #[test]
    fn remembers_a_few_shapes_and_forgets_the_oldest() {
        let mut s = ProbeScratch::default();
        for i in 0..ENTRIES + 1 {
            assert!(cache_probe(&format!("SELECT c{i} FROM t WHERE id = 1"), MySql, &mut s).is_some());
        }
        assert!(!s.memo_recalls("SELECT c0 FROM t WHERE id = 2", MySql), "the oldest was replaced");
        for i in 1..ENTRIES + 1 {
            assert!(s.memo_recalls(&format!("SELECT c{i} FROM t WHERE id = 2"), MySql), "c{i}");
        }
        // long texts are not remembered
        let long = format!("SELECT {} FROM t WHERE id = 1", "a, ".repeat(MAX_TEXT));
        assert!(cache_probe(&long, MySql, &mut s).is_some());
        assert!(!s.memo_recalls(&long.replace("id = 1", "id = 2"), MySql));
    }
}
