//! Dialect-aware SQL tokenizer.
//!
//! The rules follow each server's own lexer, because a guard that tokenizes differently from
//! the server can be talked into treating code as a comment or a string:
//!
//! * PostgreSQL: `src/backend/parser/scan.l` and the manual, "SQL Syntax" / "Lexical
//!   Structure": `--` comments end at `\n` or `\r`; `/* */` nests; `'...'` with `''`
//!   (backslash is literal under `standard_conforming_strings=on`, the default since 9.1);
//!   `E'...'` with backslash escapes; `B'..'`/`X'..'` (no doubling); `U&'..'`, `U&".."`;
//!   dollar quoting `$tag$...$tag$` (tag = `[A-Za-z\x80-\xff_][A-Za-z\x80-\xff_0-9]*`);
//!   `$1` parameters; identifiers may contain `$`; operators are runs of
//!   `+-*/<>=~!@#%^&|`?` cut at `--`/`/*`, with the trailing-`+`/`-` rule.
//! * MySQL / MariaDB: `sql/sql_lex.cc` and the manual, "Comments" / "String Literals" /
//!   "Schema Object Names": `--` is a comment only when followed by whitespace, a control
//!   character or the end; `#` comments; `/* */` does not nest (first `*/` closes);
//!   `/*!` [version] and MariaDB `/*M!` [version] contents are CODE (emitted as tokens
//!   between [`TokenKind::ExecOpen`] and [`TokenKind::ExecClose`]); `/*+ */` optimizer hints;
//!   `'...'` and `"..."` with doubling and backslash escapes (unless `NO_BACKSLASH_ESCAPES` /
//!   `ANSI_QUOTES`); backtick identifiers with ` `` `; `@var`, `@'var'`, `@@sys.var`; `?`
//!   parameters; identifiers may start with a digit (`1abc`).
//! * T-SQL: `--` comments, nested `/* */`, `'...'`/`N'...'` with `''`, `"..."` identifiers
//!   with `""`, `[...]` identifiers with `]]`, `@var`, `@@var`, `#temp`, `0x` binary literals.
//!
//! Modes that change where a quoted string ends (MySQL `NO_BACKSLASH_ESCAPES`/`ANSI_QUOTES`,
//! PostgreSQL `standard_conforming_strings=off`) are a [`LexMode`]; the lexer always
//! tokenizes in one mode and flags every string whose end would differ in the other mode
//! with [`FLAG_AMBIGUOUS`], so the fast path can re-check the text in that mode too.
//!
//! Deliberately stricter than the servers (a lex error makes the fast path BLOCK):
//! NUL characters anywhere; any comment inside a MySQL executable comment; a MySQL optimizer
//! hint containing a quote character (MySQL's hint scanner honours quotes, so its end is not
//! certain); a lone `\r` inside a T-SQL `--` comment (where SQL Server ends the comment is
//! not documented).

use super::Dialect;
use crate::{Error, Result};

/// What a token is. `name()` gives the string used by the Python `tokenize` binding.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TokenKind {
    /// Unquoted identifier or keyword (case-insensitive lookups via `keywords`).
    Word,
    /// `"x"`, `` `x` ``, `[x]`, `U&"x"`: an identifier, never a keyword.
    QuotedIdent,
    /// Any string literal (`'..'`, `E'..'`, `N'..'`, `X'..'`, `B'..'`, `U&'..'`, `$$..$$`,
    /// MySQL `"..."` which carries [`FLAG_DQ_STRING`]).
    String,
    Number,
    /// `$1`, `?` (MySQL, T-SQL), `:name`.
    Param,
    /// `@var`, `@'var'`, `@@global.x` (MySQL, T-SQL).
    Variable,
    Operator,
    /// `;` `,` `(` `)` `.` `[` `]` `:`
    Punct,
    /// `-- ...`, `# ...` (MySQL), `/* ... */`.
    Comment,
    /// `/*+ ... */` optimizer hint (MySQL; pg_hint_plan on PostgreSQL).
    Hint,
    /// `/*!`, `/*!50000`, `/*M!`, `/*M!100100`: start of a MySQL executable comment.
    ExecOpen,
    /// `*/` closing a MySQL executable comment.
    ExecClose,
    /// Any other single character (e.g. `{`, `\`, control characters).
    Other,
}

impl TokenKind {
    pub fn name(self) -> &'static str {
        match self {
            TokenKind::Word => "word",
            TokenKind::QuotedIdent => "quoted_ident",
            TokenKind::String => "string",
            TokenKind::Number => "number",
            TokenKind::Param => "param",
            TokenKind::Variable => "variable",
            TokenKind::Operator => "operator",
            TokenKind::Punct => "punct",
            TokenKind::Comment => "comment",
            TokenKind::Hint => "hint",
            TokenKind::ExecOpen => "exec_open",
            TokenKind::ExecClose => "exec_close",
            TokenKind::Other => "other",
        }
    }

    /// Tokens the server parses (everything except comments and hints; executable-comment
    /// markers count, they delimit code).
    pub fn is_code(self) -> bool {
        !matches!(self, TokenKind::Comment | TokenKind::Hint)
    }

    /// Tokens that carry statement content (code minus the executable-comment markers).
    pub fn is_content(self) -> bool {
        !matches!(
            self,
            TokenKind::Comment | TokenKind::Hint | TokenKind::ExecOpen | TokenKind::ExecClose
        )
    }
}

/// The string ends elsewhere under the other backslash mode (see [`LexMode`]).
pub const FLAG_AMBIGUOUS: u8 = 1;
/// A MySQL `"..."` literal: a string by default, an identifier under `ANSI_QUOTES`.
pub const FLAG_DQ_STRING: u8 = 2;

/// One token: `start..end` are byte offsets into the source `&str` (always char boundaries).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Token {
    pub kind: TokenKind,
    pub start: usize,
    pub end: usize,
    pub flags: u8,
}

impl Token {
    pub fn text<'a>(&self, src: &'a str) -> &'a str {
        src.get(self.start..self.end).unwrap_or("")
    }
    pub fn ambiguous(&self) -> bool {
        self.flags & FLAG_AMBIGUOUS != 0
    }
}

/// Server settings that change where quoted text ends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LexMode {
    /// Backslash escapes in `'...'` (MySQL default; PostgreSQL with
    /// `standard_conforming_strings=off`).
    pub sq_backslash: bool,
    /// Backslash escapes in MySQL `"..."` (off under `ANSI_QUOTES` or `NO_BACKSLASH_ESCAPES`).
    pub dq_backslash: bool,
}

impl LexMode {
    /// The server's default settings.
    pub fn server_default(d: Dialect) -> LexMode {
        match d {
            Dialect::Postgres => LexMode {
                sq_backslash: false,
                dq_backslash: false,
            },
            Dialect::MySql => LexMode {
                sq_backslash: true,
                dq_backslash: true,
            },
            Dialect::TSql => LexMode {
                sq_backslash: false,
                dq_backslash: false,
            },
        }
    }

    /// The other settings a session could be running under.
    pub fn alternates(d: Dialect) -> &'static [LexMode] {
        match d {
            // standard_conforming_strings = off
            Dialect::Postgres => &[LexMode {
                sq_backslash: true,
                dq_backslash: false,
            }],
            // NO_BACKSLASH_ESCAPES (both quotes); ANSI_QUOTES alone ("..." is an identifier)
            Dialect::MySql => &[
                LexMode {
                    sq_backslash: false,
                    dq_backslash: false,
                },
                LexMode {
                    sq_backslash: true,
                    dq_backslash: false,
                },
            ],
            Dialect::TSql => &[],
        }
    }
}

/// Tokenize `src` under the server's default settings. Comments are included as tokens.
pub fn tokenize(src: &str, dialect: Dialect) -> Result<Vec<Token>> {
    tokenize_mode(src, dialect, LexMode::server_default(dialect))
}

pub fn tokenize_mode(src: &str, dialect: Dialect, mode: LexMode) -> Result<Vec<Token>> {
    let mut out = Vec::with_capacity(src.len() / 4 + 4);
    for t in Lexer::new(src, dialect, mode) {
        out.push(t?);
    }
    Ok(out)
}

/// Streaming tokenizer; yields `Err` once and then stops.
pub struct Lexer<'a> {
    src: &'a str,
    b: &'a [u8],
    pos: usize,
    dialect: Dialect,
    mode: LexMode,
    in_exec: bool,
    done: bool,
}

fn lex_err<T>(offset: usize, message: &str) -> Result<T> {
    Err(Error::Lex {
        offset,
        message: message.to_string(),
    })
}

/// Whitespace as the servers' lexers skip it (ASCII only; U+00A0 or U+2028 are not).
#[inline]
pub fn is_space(c: u8) -> bool {
    matches!(c, b' ' | b'\t' | b'\n' | b'\r' | 0x0b | 0x0c)
}

#[inline]
fn is_digit(c: u8) -> bool {
    c.is_ascii_digit()
}

/// PostgreSQL operator characters (scan.l `op_chars`).
#[inline]
fn is_pg_op_char(c: u8) -> bool {
    matches!(
        c,
        b'~' | b'!'
            | b'@'
            | b'#'
            | b'^'
            | b'&'
            | b'|'
            | b'`'
            | b'?'
            | b'+'
            | b'-'
            | b'*'
            | b'/'
            | b'%'
            | b'<'
            | b'>'
            | b'='
    )
}

/// Scan a quoted run starting right after the opening quote; returns the index just past
/// the closing quote. `doubling`: `qq` stands for one `q`; `backslash`: `\x` is an escape.
fn scan_quoted(b: &[u8], mut i: usize, q: u8, backslash: bool, doubling: bool) -> Option<usize> {
    while let Some(&c) = b.get(i) {
        if backslash && c == b'\\' {
            i += 2;
            continue;
        }
        if c == q {
            if doubling && b.get(i + 1) == Some(&q) {
                i += 2;
                continue;
            }
            return Some(i + 1);
        }
        i += 1;
    }
    None
}

impl<'a> Lexer<'a> {
    pub fn new(src: &'a str, dialect: Dialect, mode: LexMode) -> Lexer<'a> {
        Lexer {
            src,
            b: src.as_bytes(),
            pos: 0,
            dialect,
            mode,
            in_exec: false,
            done: false,
        }
    }

    #[inline]
    fn at(&self, i: usize) -> u8 {
        // 0 doubles as "end of input": a real NUL is rejected before lexing starts.
        self.b.get(i).copied().unwrap_or(0)
    }

    /// Length in bytes of the char starting at `i` (1 for ASCII, 0 at the end).
    fn char_len(&self, i: usize) -> usize {
        match self.src.get(i..).and_then(|s| s.chars().next()) {
            Some(ch) => ch.len_utf8(),
            None => {
                // Not a char boundary cannot happen (we only stop on boundaries); be safe.
                usize::from(i < self.b.len())
            }
        }
    }

    fn is_ident_start(&self, i: usize) -> bool {
        let c = self.at(i);
        match self.dialect {
            Dialect::Postgres => c.is_ascii_alphabetic() || c == b'_' || c >= 0x80,
            Dialect::MySql => {
                c.is_ascii_alphabetic() || c == b'_' || c == b'$' || self.mysql_wide_ident(i)
            }
            Dialect::TSql => c.is_ascii_alphabetic() || c == b'_' || c == b'#',
        }
    }

    fn is_ident_cont(&self, i: usize) -> bool {
        let c = self.at(i);
        match self.dialect {
            Dialect::Postgres => c.is_ascii_alphanumeric() || c == b'_' || c == b'$' || c >= 0x80,
            Dialect::MySql => {
                c.is_ascii_alphanumeric() || c == b'_' || c == b'$' || self.mysql_wide_ident(i)
            }
            Dialect::TSql => c.is_ascii_alphanumeric() || matches!(c, b'_' | b'$' | b'#' | b'@'),
        }
    }

    /// MySQL allows U+0080..U+FFFF in unquoted identifiers (manual, "Schema Object Names");
    /// supplementary characters (4-byte UTF-8) are not identifier characters.
    fn mysql_wide_ident(&self, i: usize) -> bool {
        // lead bytes of 2- and 3-byte UTF-8 sequences (we always step whole chars)
        (0xc0..0xf0).contains(&self.at(i))
    }

    /// Advance over identifier characters from `i`, stepping whole UTF-8 chars.
    fn ident_end(&self, mut i: usize) -> usize {
        while i < self.b.len() && self.is_ident_cont(i) {
            // An ASCII byte is a whole char: no UTF-8 decode for the common case.
            let l = if self.at(i) < 0x80 { 1 } else { self.char_len(i) };
            i += l.max(1);
        }
        i
    }

    fn tok(
        &mut self,
        kind: TokenKind,
        start: usize,
        end: usize,
        flags: u8,
    ) -> Option<Result<Token>> {
        self.pos = end;
        Some(Ok(Token {
            kind,
            start,
            end,
            flags,
        }))
    }

    fn fail(&mut self, offset: usize, message: &str) -> Option<Result<Token>> {
        self.done = true;
        Some(lex_err(offset, message))
    }

    /// A quoted string whose escape rules depend on the mode: lex it in `mode` and flag it
    /// when the other mode would end it elsewhere.
    fn moded_string(
        &mut self,
        kind: TokenKind,
        start: usize,
        body: usize,
        q: u8,
        backslash: bool,
        flags: u8,
    ) -> Option<Result<Token>> {
        match scan_quoted(self.b, body, q, backslash, true) {
            Some(end) => {
                let mut f = flags;
                let has_bs = self.b.get(body..end).is_some_and(|s| s.contains(&b'\\'));
                if has_bs && scan_quoted(self.b, body, q, !backslash, true) != Some(end) {
                    f |= FLAG_AMBIGUOUS;
                }
                self.tok(kind, start, end, f)
            }
            None => self.fail(start, "unterminated quoted string"),
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn plain_quoted(
        &mut self,
        kind: TokenKind,
        start: usize,
        body: usize,
        q: u8,
        backslash: bool,
        doubling: bool,
        what: &str,
    ) -> Option<Result<Token>> {
        match scan_quoted(self.b, body, q, backslash, doubling) {
            Some(end) => self.tok(kind, start, end, 0),
            None => self.fail(start, what),
        }
    }

    fn line_comment(&mut self, start: usize) -> Option<Result<Token>> {
        if self.in_exec {
            return self.fail(start, "comment inside a MySQL executable comment");
        }
        let mut i = start;
        while let Some(&c) = self.b.get(i) {
            if c == b'\n' {
                break;
            }
            if c == b'\r' {
                match self.dialect {
                    Dialect::Postgres => break,
                    Dialect::MySql => {}
                    Dialect::TSql => {
                        // nothing can hide behind a \r that ends the text
                        if self.at(i + 1) != b'\n' && i + 1 < self.b.len() {
                            return self
                                .fail(i, "carriage return without line feed inside a -- comment");
                        }
                    }
                }
            }
            i += 1;
        }
        self.tok(TokenKind::Comment, start, i, 0)
    }

    fn block_comment(&mut self, start: usize) -> Option<Result<Token>> {
        let third = self.at(start + 2);
        if self.dialect == Dialect::MySql {
            let exec_len = if third == b'!' {
                Some(3)
            } else if third == b'M' && self.at(start + 3) == b'!' {
                Some(4)
            } else {
                None
            };
            if self.in_exec {
                return self.fail(start, "comment inside a MySQL executable comment");
            }
            if let Some(l) = exec_len {
                let mut i = start + l;
                while is_digit(self.at(i)) {
                    i += 1;
                }
                self.in_exec = true;
                return self.tok(TokenKind::ExecOpen, start, i, 0);
            }
            // MySQL: no nesting, the first */ closes.
            let mut i = start + 2;
            let is_hint = third == b'+';
            loop {
                match self.b.get(i) {
                    None => return self.fail(start, "unterminated block comment"),
                    Some(b'*') if self.at(i + 1) == b'/' => break,
                    Some(b'\'' | b'"' | b'`') if is_hint => {
                        return self.fail(i, "quote character inside an optimizer hint");
                    }
                    _ => i += 1,
                }
            }
            let kind = if is_hint {
                TokenKind::Hint
            } else {
                TokenKind::Comment
            };
            return self.tok(kind, start, i + 2, 0);
        }
        // PostgreSQL and SQL Server: block comments nest.
        let mut depth = 1usize;
        let mut i = start + 2;
        loop {
            match (self.b.get(i), self.b.get(i + 1)) {
                (Some(b'/'), Some(b'*')) => {
                    depth += 1;
                    i += 2;
                }
                (Some(b'*'), Some(b'/')) => {
                    depth -= 1;
                    i += 2;
                    if depth == 0 {
                        break;
                    }
                }
                (Some(_), _) => i += 1,
                (None, _) => return self.fail(start, "unterminated block comment"),
            }
        }
        let kind = if third == b'+' {
            TokenKind::Hint
        } else {
            TokenKind::Comment
        };
        self.tok(kind, start, i, 0)
    }

    /// PostgreSQL `$`: dollar-quoted string, `$n` parameter, or a stray `$`.
    fn pg_dollar(&mut self, start: usize) -> Option<Result<Token>> {
        let c1 = self.at(start + 1);
        if is_digit(c1) {
            let mut i = start + 1;
            while is_digit(self.at(i)) {
                i += 1;
            }
            return self.tok(TokenKind::Param, start, i, 0);
        }
        // $tag$: tag = [A-Za-z\x80-\xff_][A-Za-z\x80-\xff_0-9]*, possibly empty.
        let mut i = start + 1;
        if c1 == b'$' {
            i = start + 2;
        } else if c1.is_ascii_alphabetic() || c1 == b'_' || c1 >= 0x80 {
            while {
                let c = self.at(i);
                c.is_ascii_alphanumeric() || c == b'_' || c >= 0x80
            } {
                i += 1;
            }
            if self.at(i) != b'$' {
                return self.tok(TokenKind::Other, start, start + 1, 0);
            }
            i += 1;
        } else {
            return self.tok(TokenKind::Other, start, start + 1, 0);
        }
        let delim = match self.src.get(start..i) {
            Some(d) => d,
            None => return self.fail(start, "invalid dollar quote"),
        };
        match self.src.get(i..).and_then(|rest| rest.find(delim)) {
            Some(rel) => {
                let end = i + rel + delim.len();
                self.tok(TokenKind::String, start, end, 0)
            }
            None => self.fail(start, "unterminated dollar-quoted string"),
        }
    }

    /// Numbers. Returns a Word for MySQL identifiers that begin with digits (`1abc`, `0x1g`).
    fn number(&mut self, start: usize) -> Option<Result<Token>> {
        let b0 = self.at(start);
        let b1 = self.at(start + 1);
        // Hex / binary literals: MySQL 0x.. 0b.., T-SQL 0x.. (PostgreSQL 15 lexes `0x1F` as
        // `0` followed by the identifier `x1F`, which the generic path below does).
        if b0 == b'0' && self.dialect != Dialect::Postgres {
            let hex = matches!(b1, b'x' | b'X');
            let bin = self.dialect == Dialect::MySql && matches!(b1, b'b' | b'B');
            if hex || bin {
                let mut i = start + 2;
                while {
                    let c = self.at(i);
                    if hex {
                        c.is_ascii_hexdigit()
                    } else {
                        c == b'0' || c == b'1'
                    }
                } {
                    i += 1;
                }
                let valid = i > start + 2 || self.dialect == Dialect::TSql;
                if self.dialect == Dialect::MySql && (!valid || self.is_ident_cont(i)) {
                    let end = self.ident_end(start);
                    return self.tok(TokenKind::Word, start, end, 0);
                }
                if valid {
                    return self.tok(TokenKind::Number, start, i, 0);
                }
            }
        }
        let mut i = start;
        while is_digit(self.at(i)) {
            i += 1;
        }
        let int_only = i > start;
        let mut had_dot = false;
        if self.at(i) == b'.' && !(self.dialect == Dialect::Postgres && self.at(i + 1) == b'.') {
            had_dot = true;
            i += 1;
            while is_digit(self.at(i)) {
                i += 1;
            }
        }
        // exponent only when digits follow: `1e5`, `1.5E-3`
        let e = self.at(i);
        if matches!(e, b'e' | b'E') {
            let mut j = i + 1;
            if matches!(self.at(j), b'+' | b'-') {
                j += 1;
            }
            if is_digit(self.at(j)) {
                while is_digit(self.at(j)) {
                    j += 1;
                }
                i = j;
            }
        }
        if self.dialect == Dialect::MySql && int_only && !had_dot && self.is_ident_cont(i) {
            // MySQL: an identifier may begin with a digit (manual, "Schema Object Names").
            let end = self.ident_end(start);
            return self.tok(TokenKind::Word, start, end, 0);
        }
        self.tok(TokenKind::Number, start, i, 0)
    }

    fn word(&mut self, start: usize) -> Option<Result<Token>> {
        let c0 = self.at(start);
        let c1 = self.at(start + 1);
        let up = c0.to_ascii_uppercase();
        // Prefixed string literals: the prefix letter must start the token.
        if c1 == b'\'' {
            match (self.dialect, up) {
                (Dialect::Postgres, b'E') => {
                    return self.plain_quoted(
                        TokenKind::String,
                        start,
                        start + 2,
                        b'\'',
                        true,
                        true,
                        "unterminated quoted string",
                    );
                }
                (Dialect::Postgres | Dialect::MySql, b'B' | b'X') => {
                    return self.plain_quoted(
                        TokenKind::String,
                        start,
                        start + 2,
                        b'\'',
                        false,
                        false,
                        "unterminated bit/hex string",
                    );
                }
                (Dialect::Postgres | Dialect::MySql, b'N') => {
                    let bs = self.mode.sq_backslash;
                    return self.moded_string(TokenKind::String, start, start + 2, b'\'', bs, 0);
                }
                (Dialect::TSql, b'N') => {
                    return self.plain_quoted(
                        TokenKind::String,
                        start,
                        start + 2,
                        b'\'',
                        false,
                        true,
                        "unterminated quoted string",
                    );
                }
                _ => {}
            }
        }
        if self.dialect == Dialect::Postgres && up == b'U' && c1 == b'&' {
            match self.at(start + 2) {
                b'\'' => {
                    return self.plain_quoted(
                        TokenKind::String,
                        start,
                        start + 3,
                        b'\'',
                        false,
                        true,
                        "unterminated quoted string",
                    );
                }
                b'"' => {
                    return self.plain_quoted(
                        TokenKind::QuotedIdent,
                        start,
                        start + 3,
                        b'"',
                        false,
                        true,
                        "unterminated quoted identifier",
                    );
                }
                _ => {}
            }
        }
        let end = self.ident_end(start);
        let end = if end == start {
            start + self.char_len(start).max(1)
        } else {
            end
        };
        self.tok(TokenKind::Word, start, end, 0)
    }

    fn variable(&mut self, start: usize) -> Option<Result<Token>> {
        // @@system_var or @user_var; MySQL also @'quoted', @"quoted", @`quoted`.
        let mut i = start + 1;
        if self.at(i) == b'@' {
            i += 1;
        } else if self.dialect == Dialect::MySql {
            match self.at(i) {
                b'\'' => {
                    let bs = self.mode.sq_backslash;
                    return self.moded_string(TokenKind::Variable, start, i + 1, b'\'', bs, 0);
                }
                b'"' => {
                    let bs = self.mode.dq_backslash;
                    return self.moded_string(TokenKind::Variable, start, i + 1, b'"', bs, 0);
                }
                b'`' => {
                    return self.plain_quoted(
                        TokenKind::Variable,
                        start,
                        i + 1,
                        b'`',
                        false,
                        true,
                        "unterminated quoted variable name",
                    );
                }
                _ => {}
            }
        }
        let end = self.ident_end(i);
        if end == i && i == start + 1 {
            return self.tok(TokenKind::Other, start, start + 1, 0);
        }
        self.tok(TokenKind::Variable, start, end, 0)
    }

    fn pg_operator(&mut self, start: usize) -> Option<Result<Token>> {
        let mut i = start;
        while is_pg_op_char(self.at(i)) {
            // an operator is cut where a comment starts (scan.l, "operator" rule)
            if i > start {
                let (c, n) = (self.at(i), self.at(i + 1));
                if (c == b'-' && n == b'-') || (c == b'/' && n == b'*') {
                    break;
                }
            }
            i += 1;
        }
        let mut n = i - start;
        // "A multiple-character operator name cannot end in + or -, unless the name also
        // contains at least one of ~ ! @ # % ^ & | ` ?" (manual, "Operators").
        if n > 1 && matches!(self.at(start + n - 1), b'+' | b'-') {
            let special = (start..start + n - 1).any(|k| {
                matches!(
                    self.at(k),
                    b'~' | b'!' | b'@' | b'#' | b'^' | b'&' | b'|' | b'`' | b'?' | b'%'
                )
            });
            if !special {
                while n > 1 && matches!(self.at(start + n - 1), b'+' | b'-') {
                    n -= 1;
                }
            }
        }
        self.tok(TokenKind::Operator, start, start + n, 0)
    }

    fn fixed_operator(&mut self, start: usize) -> Option<Result<Token>> {
        const MY: &[&[u8]] = &[
            b"<=>", b"->>", b"<=", b">=", b"<>", b"!=", b"<<", b">>", b"&&", b"||", b":=", b"->",
        ];
        const TS: &[&[u8]] = &[
            b"<=", b">=", b"<>", b"!=", b"!<", b"!>", b"+=", b"-=", b"*=", b"/=", b"%=", b"&=",
            b"|=", b"^=", b"::",
        ];
        let table = if self.dialect == Dialect::MySql {
            MY
        } else {
            TS
        };
        let rest = self.b.get(start..).unwrap_or(&[]);
        for op in table {
            if rest.starts_with(op) {
                return self.tok(TokenKind::Operator, start, start + op.len(), 0);
            }
        }
        self.tok(TokenKind::Operator, start, start + 1, 0)
    }

    fn next_token(&mut self) -> Option<Result<Token>> {
        if self.done {
            return None;
        }
        if self.pos == 0 {
            if let Some(p) = self.b.iter().position(|&c| c == 0) {
                return self.fail(p, "NUL character in SQL text");
            }
        }
        while self.b.get(self.pos).is_some_and(|&c| is_space(c)) {
            self.pos += 1;
        }
        let start = self.pos;
        let Some(&c) = self.b.get(start) else {
            self.done = true;
            if self.in_exec {
                return Some(lex_err(self.b.len(), "unterminated executable comment"));
            }
            return None;
        };
        let c1 = self.at(start + 1);
        let d = self.dialect;
        match c {
            b'-' if c1 == b'-' => {
                if d != Dialect::MySql {
                    return self.line_comment(start);
                }
                // MySQL: "--" starts a comment only before whitespace/control char/end.
                let c2 = self.at(start + 2);
                if start + 2 >= self.b.len() || c2 <= 0x20 || c2 == 0x7f {
                    return self.line_comment(start);
                }
                self.fixed_operator(start)
            }
            b'#' if d == Dialect::MySql => self.line_comment(start),
            b'/' if c1 == b'*' => self.block_comment(start),
            b'*' if self.in_exec && c1 == b'/' => {
                self.in_exec = false;
                self.tok(TokenKind::ExecClose, start, start + 2, 0)
            }
            b'\'' => {
                if d == Dialect::TSql {
                    return self.plain_quoted(
                        TokenKind::String,
                        start,
                        start + 1,
                        b'\'',
                        false,
                        true,
                        "unterminated quoted string",
                    );
                }
                let bs = self.mode.sq_backslash;
                self.moded_string(TokenKind::String, start, start + 1, b'\'', bs, 0)
            }
            b'"' => {
                if d == Dialect::MySql {
                    let bs = self.mode.dq_backslash;
                    return self.moded_string(
                        TokenKind::String,
                        start,
                        start + 1,
                        b'"',
                        bs,
                        FLAG_DQ_STRING,
                    );
                }
                self.plain_quoted(
                    TokenKind::QuotedIdent,
                    start,
                    start + 1,
                    b'"',
                    false,
                    true,
                    "unterminated quoted identifier",
                )
            }
            b'`' if d == Dialect::MySql => self.plain_quoted(
                TokenKind::QuotedIdent,
                start,
                start + 1,
                b'`',
                false,
                true,
                "unterminated quoted identifier",
            ),
            b'[' if d == Dialect::TSql => self.plain_quoted(
                TokenKind::QuotedIdent,
                start,
                start + 1,
                b']',
                false,
                true,
                "unterminated bracket identifier",
            ),
            b'$' if d == Dialect::Postgres => self.pg_dollar(start),
            b'$' if d == Dialect::TSql && is_digit(c1) => {
                // money literal $12.50
                let mut i = start + 1;
                while is_digit(self.at(i)) || self.at(i) == b'.' {
                    i += 1;
                }
                self.tok(TokenKind::Number, start, i, 0)
            }
            b'@' if d != Dialect::Postgres => self.variable(start),
            b'?' if d != Dialect::Postgres => self.tok(TokenKind::Param, start, start + 1, 0),
            b':' => {
                if c1 == b':' && d != Dialect::MySql {
                    return self.tok(TokenKind::Operator, start, start + 2, 0);
                }
                if c1 == b'=' && d != Dialect::TSql {
                    return self.tok(TokenKind::Operator, start, start + 2, 0);
                }
                if (c1.is_ascii_alphabetic() || c1 == b'_') && self.is_ident_start(start + 1) {
                    let end = self.ident_end(start + 1);
                    return self.tok(TokenKind::Param, start, end, 0);
                }
                self.tok(TokenKind::Punct, start, start + 1, 0)
            }
            b'0'..=b'9' => self.number(start),
            b'.' if is_digit(c1) => self.number(start),
            b';' | b',' | b'(' | b')' | b'.' => self.tok(TokenKind::Punct, start, start + 1, 0),
            b'[' | b']' if d == Dialect::Postgres => {
                self.tok(TokenKind::Punct, start, start + 1, 0)
            }
            _ if self.is_ident_start(start) => self.word(start),
            _ if d == Dialect::Postgres && is_pg_op_char(c) => self.pg_operator(start),
            b'=' | b'<' | b'>' | b'!' | b'~' | b'^' | b'&' | b'|' | b'+' | b'-' | b'*' | b'/'
            | b'%' => self.fixed_operator(start),
            _ => {
                let l = self.char_len(start).max(1);
                self.tok(TokenKind::Other, start, start + l, 0)
            }
        }
    }
}

impl Iterator for Lexer<'_> {
    type Item = Result<Token>;

    fn next(&mut self) -> Option<Result<Token>> {
        self.next_token()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn toks(sql: &str, d: Dialect) -> Vec<(&'static str, String)> {
        tokenize(sql, d)
            .unwrap_or_else(|e| panic!("lex failed for {sql:?}: {e}"))
            .iter()
            .map(|t| (t.kind.name(), t.text(sql).to_string()))
            .collect()
    }

    fn kinds(sql: &str, d: Dialect) -> Vec<&'static str> {
        toks(sql, d).into_iter().map(|(k, _)| k).collect()
    }

    fn texts(sql: &str, d: Dialect) -> Vec<String> {
        toks(sql, d).into_iter().map(|(_, t)| t).collect()
    }

    fn err(sql: &str, d: Dialect) -> String {
        match tokenize(sql, d) {
            Err(Error::Lex { message, .. }) => message,
            other => panic!("expected lex error for {sql:?}, got {other:?}"),
        }
    }

    use Dialect::{MySql, Postgres, TSql};
    const ALL: [Dialect; 3] = [Postgres, MySql, TSql];

    #[test]
    fn basic_select() {
        for d in ALL {
            assert_eq!(
                texts("SELECT a, b FROM t WHERE x = 1;", d),
                ["SELECT", "a", ",", "b", "FROM", "t", "WHERE", "x", "=", "1", ";"]
            );
        }
    }

    #[test]
    fn dash_comments() {
        for d in ALL {
            assert_eq!(
                kinds("SELECT 1 -- x\nUPDATE", d),
                ["word", "number", "comment", "word"]
            );
            assert_eq!(kinds("-- only", d), ["comment"]);
        }
        // MySQL: `--` needs whitespace/control/end after it; `1--1` is arithmetic.
        assert_eq!(texts("SELECT 1--1", MySql), ["SELECT", "1", "-", "-", "1"]);
        assert_eq!(
            kinds("SELECT 1--1", Postgres),
            ["word", "number", "comment"]
        );
        assert_eq!(kinds("SELECT 1--1", TSql), ["word", "number", "comment"]);
        assert_eq!(kinds("SELECT 1--\tx", MySql), ["word", "number", "comment"]);
        assert_eq!(
            kinds("SELECT 1--\x01x", MySql),
            ["word", "number", "comment"]
        );
        assert_eq!(kinds("SELECT 1--", MySql), ["word", "number", "comment"]);
        assert_eq!(
            kinds("SELECT 1--x", MySql),
            ["word", "number", "operator", "operator", "word"]
        );
    }

    #[test]
    fn line_comment_endings() {
        // PostgreSQL ends `--` at \r too (scan.l non_newline = [^\n\r]); MySQL only at \n.
        assert_eq!(kinds("-- x\rDELETE", Postgres), ["comment", "word"]);
        assert_eq!(kinds("-- x\rDELETE", MySql), ["comment"]);
        assert_eq!(kinds("-- x\r\nDELETE", MySql), ["comment", "word"]);
        assert_eq!(kinds("-- x\r\nDELETE", TSql), ["comment", "word"]);
        assert!(err("-- x\rDELETE", TSql).contains("carriage return"));
        assert_eq!(
            kinds("SELECT 1 -- x\r", TSql),
            ["word", "number", "comment"]
        );
        // The quote-swallowing trick depends on getting this right.
        let sql = "SELECT 1 -- \r'\n; DELETE FROM t; -- '";
        let k = texts(sql, MySql);
        assert!(k.contains(&"DELETE".to_string()), "{k:?}");
    }

    #[test]
    fn hash_comments() {
        assert_eq!(
            kinds("SELECT 1 # x\nDELETE", MySql),
            ["word", "number", "comment", "word"]
        );
        // PostgreSQL: # is an operator (bitwise xor); T-SQL: temp table names.
        assert_eq!(
            kinds("SELECT 1 # 2", Postgres),
            ["word", "number", "operator", "number"]
        );
        assert_eq!(
            texts("SELECT * FROM #tmp", TSql),
            ["SELECT", "*", "FROM", "#tmp"]
        );
        assert_eq!(
            texts("SELECT * FROM ##g", TSql),
            ["SELECT", "*", "FROM", "##g"]
        );
    }

    #[test]
    fn block_comments_nesting() {
        let s = "SELECT /* a /* b */ DELETE */ 1";
        // PostgreSQL and T-SQL nest: DELETE is inside the comment.
        assert_eq!(kinds(s, Postgres), ["word", "comment", "number"]);
        assert_eq!(kinds(s, TSql), ["word", "comment", "number"]);
        // MySQL does not nest: the first */ closes, DELETE is code.
        assert_eq!(
            texts(s, MySql),
            ["SELECT", "/* a /* b */", "DELETE", "*", "/", "1"]
        );
        assert!(err("SELECT /* /* */", Postgres).contains("unterminated block comment"));
        assert!(err("SELECT /* x", MySql).contains("unterminated block comment"));
        assert_eq!(
            kinds("DELETE/**/FROM t", MySql),
            ["word", "comment", "word", "word"]
        );
        // PostgreSQL: `/*/` opens one level, `**/` closes.
        assert_eq!(
            kinds("SELECT /*/ x **/ 1", Postgres),
            ["word", "comment", "number"]
        );
    }

    #[test]
    fn mysql_executable_comments() {
        let s = "SELECT 1 /*!50000 INTO OUTFILE '/tmp/x' */";
        assert_eq!(
            toks(s, MySql),
            [
                ("word", "SELECT".into()),
                ("number", "1".into()),
                ("exec_open", "/*!50000".into()),
                ("word", "INTO".into()),
                ("word", "OUTFILE".into()),
                ("string", "'/tmp/x'".into()),
                ("exec_close", "*/".into()),
            ]
        );
        assert_eq!(
            texts("/*! DELETE FROM t */", MySql),
            ["/*!", "DELETE", "FROM", "t", "*/"]
        );
        assert_eq!(
            texts("/*M!100100 DROP TABLE t*/", MySql),
            ["/*M!100100", "DROP", "TABLE", "t", "*/"]
        );
        assert_eq!(
            texts("/*M! DROP TABLE t*/", MySql),
            ["/*M!", "DROP", "TABLE", "t", "*/"]
        );
        assert_eq!(texts("SELECT/*!1*/", MySql), ["SELECT", "/*!1", "*/"]);
        // `*/` inside a string inside the executable comment does not close it.
        assert_eq!(
            texts("/*! SELECT '*/' */", MySql),
            ["/*!", "SELECT", "'*/'", "*/"]
        );
        // Optimizer hints are comments; PostgreSQL/T-SQL treat /*! as an ordinary comment.
        assert_eq!(
            kinds("SELECT /*+ BKA(t) */ 1", MySql),
            ["word", "hint", "number"]
        );
        assert_eq!(
            kinds("SELECT /*! DELETE */ 1", Postgres),
            ["word", "comment", "number"]
        );
        assert_eq!(
            kinds("SELECT /*! DELETE */ 1", TSql),
            ["word", "comment", "number"]
        );
        // Stricter than the server on purpose.
        assert!(err("/*! SELECT 1 /* c */ */", MySql).contains("inside a MySQL executable"));
        assert!(err("/*! SELECT 1 -- c\n */", MySql).contains("inside a MySQL executable"));
        assert!(err("/*! SELECT 1 # c\n */", MySql).contains("inside a MySQL executable"));
        assert!(err("/*! SELECT /*! 1 */ */", MySql).contains("inside a MySQL executable"));
        assert!(err("SELECT 1 /*! DELETE FROM t", MySql).contains("unterminated executable"));
        assert!(err("SELECT /*+ SET_VAR(sql_mode='') */ 1", MySql).contains("optimizer hint"));
        // `*/` outside any comment is just two operators.
        assert_eq!(
            kinds("SELECT 2*/1", MySql),
            ["word", "number", "operator", "operator", "number"]
        );
    }

    #[test]
    fn strings_basic_and_doubling() {
        for d in ALL {
            assert_eq!(
                texts("SELECT 'it''s; DELETE'", d),
                ["SELECT", "'it''s; DELETE'"]
            );
            assert!(err("SELECT 'abc", d).contains("unterminated"));
        }
    }

    #[test]
    fn mysql_backslash_strings() {
        let s = r"SELECT 'a\'; DELETE FROM t; -- '";
        assert_eq!(kinds(s, MySql), ["word", "string"]);
        let t = tokenize(s, MySql).unwrap();
        assert!(
            t[1].ambiguous(),
            "a string ending elsewhere without backslash escapes"
        );
        // Same text in NO_BACKSLASH_ESCAPES mode: DELETE is code.
        let alt = tokenize_mode(
            s,
            MySql,
            LexMode {
                sq_backslash: false,
                dq_backslash: false,
            },
        )
        .unwrap();
        assert!(alt.iter().any(|t| t.text(s) == "DELETE"));
        // Backslashes that end the same way in both modes are not ambiguous.
        let t = tokenize(r"SELECT 'a\\b', 'c\nd'", MySql).unwrap();
        assert!(!t[1].ambiguous() && !t[3].ambiguous());
        // Double quotes: strings with backslash escapes by default.
        let s = r#"SELECT "a\"; DELETE FROM t; -- ""#;
        let t = tokenize(s, MySql).unwrap();
        assert_eq!(t.len(), 2);
        assert!(t[1].ambiguous() && t[1].flags & FLAG_DQ_STRING != 0);
        assert_eq!(texts(r#"SELECT "a""b""#, MySql), ["SELECT", r#""a""b""#]);
    }

    #[test]
    fn postgres_strings() {
        // standard_conforming_strings=on: backslash is literal.
        assert_eq!(
            texts(r"SELECT 'C:\' , 1", Postgres),
            ["SELECT", r"'C:\'", ",", "1"]
        );
        let t = tokenize(r"SELECT 'C:\' , 1", Postgres).unwrap();
        assert!(t[1].ambiguous());
        // E'' strings always process backslashes.
        assert_eq!(
            texts(r"SELECT E'a\'b', 1", Postgres),
            ["SELECT", r"E'a\'b'", ",", "1"]
        );
        assert_eq!(texts(r"SELECT e'a''b'", Postgres), ["SELECT", r"e'a''b'"]);
        assert_eq!(
            texts("SELECT B'0101', X'1F', N'x'", Postgres),
            ["SELECT", "B'0101'", ",", "X'1F'", ",", "N'x'"]
        );
        assert_eq!(
            texts("SELECT U&'d\\0061t', U&\"x\"", Postgres),
            ["SELECT", "U&'d\\0061t'", ",", "U&\"x\""]
        );
        assert_eq!(kinds("SELECT U&'a'", Postgres), ["word", "string"]);
        // A prefix letter only counts at the start of a token.
        assert_eq!(texts("SELECT abcE'x'", Postgres), ["SELECT", "abcE", "'x'"]);
        // U & 'x' with spaces is an operator expression.
        assert_eq!(
            kinds("SELECT U & 'x'", Postgres),
            ["word", "word", "operator", "string"]
        );
    }

    #[test]
    fn postgres_dollar_quotes() {
        let s = "SELECT $$a; DELETE FROM t$$, $tag$ $$ ; $tag$, $1, $2::int";
        assert_eq!(
            texts(s, Postgres),
            [
                "SELECT",
                "$$a; DELETE FROM t$$",
                ",",
                "$tag$ $$ ; $tag$",
                ",",
                "$1",
                ",",
                "$2",
                "::",
                "int"
            ]
        );
        assert_eq!(kinds("SELECT $1", Postgres), ["word", "param"]);
        assert!(err("SELECT $a$ x $b$", Postgres).contains("dollar"));
        assert!(err("SELECT $$ x", Postgres).contains("dollar"));
        // $ inside identifiers is an identifier character.
        assert_eq!(
            texts("SELECT a$b$c, x$$", Postgres),
            ["SELECT", "a$b$c", ",", "x$$"]
        );
        // tags are case-sensitive
        assert!(err("SELECT $A$ x $a$", Postgres).contains("dollar"));
        // Non-ASCII tag
        assert_eq!(texts("SELECT $é$x$é$", Postgres), ["SELECT", "$é$x$é$"]);
        // Stray $
        assert_eq!(kinds("SELECT $", Postgres), ["word", "other"]);
    }

    #[test]
    fn identifiers_quoted() {
        assert_eq!(
            texts("SELECT \"a\"\"b\" FROM t", Postgres),
            ["SELECT", "\"a\"\"b\"", "FROM", "t"]
        );
        assert_eq!(
            texts("SELECT `a``b;` FROM t", MySql),
            ["SELECT", "`a``b;`", "FROM", "t"]
        );
        assert_eq!(kinds("SELECT `x`", MySql), ["word", "quoted_ident"]);
        // T-SQL bracket identifiers: `]]` escapes, quotes inside are plain characters.
        let s = "SELECT [a'];DELETE FROM t WHERE c='x'";
        assert_eq!(
            texts(s, TSql),
            ["SELECT", "[a']", ";", "DELETE", "FROM", "t", "WHERE", "c", "=", "'x'"]
        );
        assert_eq!(
            texts("SELECT [a]]b] FROM t", TSql),
            ["SELECT", "[a]]b]", "FROM", "t"]
        );
        assert_eq!(
            texts("SELECT \"a\"\"b\" FROM t", TSql),
            ["SELECT", "\"a\"\"b\"", "FROM", "t"]
        );
        assert_eq!(texts("SELECT N'x''y'", TSql), ["SELECT", "N'x''y'"]);
        assert!(err("SELECT [a", TSql).contains("bracket"));
        assert!(err("SELECT \"a", Postgres).contains("identifier"));
        assert!(err("SELECT `a", MySql).contains("identifier"));
    }

    #[test]
    fn numbers() {
        for d in ALL {
            assert_eq!(
                kinds("SELECT 1e5, .5, 1.5E-3, 42", d),
                ["word", "number", "punct", "number", "punct", "number", "punct", "number"]
            );
        }
        assert_eq!(texts("SELECT 1.", Postgres), ["SELECT", "1."]);
        assert_eq!(texts("SELECT 0x1F", MySql), ["SELECT", "0x1F"]);
        assert_eq!(kinds("SELECT 0x1F", TSql), ["word", "number"]);
        // PostgreSQL 15: 0x1F is 0 followed by the alias x1F.
        assert_eq!(texts("SELECT 0x1F", Postgres), ["SELECT", "0", "x1F"]);
        // MySQL identifiers may start with digits.
        assert_eq!(
            toks("SELECT * FROM 2fa", MySql)[3],
            ("word", "2fa".to_string())
        );
        assert_eq!(toks("SELECT 0x1G", MySql)[1], ("word", "0x1G".to_string()));
        assert_eq!(toks("SELECT 1e", MySql)[1], ("word", "1e".to_string()));
        assert_eq!(texts("SELECT 123abc", Postgres), ["SELECT", "123", "abc"]);
        assert_eq!(texts("SELECT 1INSERT", TSql), ["SELECT", "1", "INSERT"]);
        assert_eq!(texts("SELECT 1e+", Postgres), ["SELECT", "1", "e", "+"]);
    }

    #[test]
    fn params_and_variables() {
        assert_eq!(kinds("SELECT ?", MySql), ["word", "param"]);
        assert_eq!(kinds("SELECT ?", TSql), ["word", "param"]);
        assert_eq!(
            kinds("SELECT a ? 'k'", Postgres),
            ["word", "word", "operator", "string"]
        );
        assert_eq!(
            texts("SELECT :name, @a, @@global.x", MySql),
            ["SELECT", ":name", ",", "@a", ",", "@@global", ".", "x"]
        );
        assert_eq!(
            kinds("SELECT @'a b', @`c`, @\"d\"", MySql),
            ["word", "variable", "punct", "variable", "punct", "variable"]
        );
        assert_eq!(
            texts("SELECT @@ROWCOUNT, @p1", TSql),
            ["SELECT", "@@ROWCOUNT", ",", "@p1"]
        );
        assert_eq!(texts("SELECT @a := 1", MySql), ["SELECT", "@a", ":=", "1"]);
        assert_eq!(kinds("SELECT @x", Postgres), ["word", "operator", "word"]);
        assert_eq!(
            texts("SELECT x::int", Postgres),
            ["SELECT", "x", "::", "int"]
        );
    }

    #[test]
    fn operators() {
        assert_eq!(
            texts("SELECT a>=b, a<>b, a!=b", Postgres),
            ["SELECT", "a", ">=", "b", ",", "a", "<>", "b", ",", "a", "!=", "b"]
        );
        // trailing + / - rule
        assert_eq!(
            texts("SELECT a=-1", Postgres),
            ["SELECT", "a", "=", "-", "1"]
        );
        assert_eq!(texts("SELECT a@-1", Postgres), ["SELECT", "a", "@-", "1"]);
        // operator cut at comment start
        assert_eq!(
            kinds("SELECT 1 +-- c\n 2", Postgres),
            ["word", "number", "operator", "comment", "number"]
        );
        assert_eq!(
            kinds("SELECT 1 +/* c */ 2", Postgres),
            ["word", "number", "operator", "comment", "number"]
        );
        assert_eq!(
            texts("SELECT a<=>b, j->>'k'", MySql),
            ["SELECT", "a", "<=>", "b", ",", "j", "->>", "'k'"]
        );
        assert_eq!(texts("SELECT a !< b", TSql), ["SELECT", "a", "!<", "b"]);
    }

    #[test]
    fn nul_and_weird_chars() {
        for d in ALL {
            assert!(err("SELECT 1\0; DELETE", d).contains("NUL"));
            assert_eq!(kinds("SELECT {x}", d)[1], "other");
        }
        // Non-ASCII in identifiers: PostgreSQL and MySQL (BMP) yes; T-SQL conservative.
        assert_eq!(texts("SELECT café", Postgres), ["SELECT", "café"]);
        assert_eq!(texts("SELECT café", MySql), ["SELECT", "café"]);
        assert_eq!(kinds("SELECT café", TSql), ["word", "word", "other"]);
        assert_eq!(kinds("SELECT 😀", MySql), ["word", "other"]);
        assert_eq!(kinds("SELECT 😀", Postgres), ["word", "word"]);
    }

    #[test]
    fn offsets_are_boundaries_and_sorted() {
        let s = "SELECT 'é' /* ü */, \"ß\" FROM t -- ✓";
        for d in ALL {
            let ts = tokenize(s, d).unwrap();
            let mut last = 0;
            for t in &ts {
                assert!(t.start >= last && t.end > t.start && t.end <= s.len());
                assert!(s.is_char_boundary(t.start) && s.is_char_boundary(t.end));
                last = t.end;
            }
        }
    }
}
