//! Fuzz the SQL lexer, splitter, fingerprint and fast path on arbitrary UTF-8 text, in all
//! three dialects. Beyond "never panics", it checks the invariants the proxy relies on:
//! tokens are ordered, non-empty and on char boundaries; an unlexable text is blocked with
//! `lex_error`; the deep parser's text (`expand_sql`) lexes to the same code tokens as the
//! original (so the deep check and the server can never see different code); every split
//! statement lexes; an ALLOW is a single SELECT; the verdict cache's probe agrees with the
//! fast path, and its memo agrees with a fresh probe on digit variants.
#![no_main]
use libfuzzer_sys::fuzz_target;
use sdp_core::sql::{self, Dialect, TokenKind};

fn code(s: &str, d: Dialect) -> Option<Vec<String>> {
    let toks = sql::tokenize(s, d).ok()?;
    Some(
        toks.iter()
            .filter(|t| t.kind.is_content() && t.kind != TokenKind::Hint)
            .map(|t| t.text(s).to_string())
            .collect(),
    )
}

/// `s` with the first maximal run of ASCII digits replaced by `digits` (a probe-memo variant).
fn replace_digit_runs(s: &str, digits: &str) -> String {
    let b = s.as_bytes();
    let Some(a) = b.iter().position(u8::is_ascii_digit) else { return s.to_string() };
    let end = a + b[a..].iter().take_while(|c| c.is_ascii_digit()).count();
    format!("{}{}{}", &s[..a], digits, &s[end..])
}

fuzz_target!(|data: &[u8]| {
    let Ok(s) = std::str::from_utf8(data) else { return };
    for d in [Dialect::Postgres, Dialect::MySql, Dialect::TSql] {
        let r = sql::fast_check(s, d);
        // the verdict cache's probe answers exactly what fast_check answers
        let mut scratch = sql::ProbeScratch::default();
        let want = if r.decision == sql::BLOCK { None } else { r.fingerprint.clone() };
        assert_eq!(sql::cache_probe(s, d, &mut scratch).map(str::to_owned), want);
        // ...and its memo answers each digit variant (every digit run -> "0", "7", "12")
        // exactly as a fresh probe would (sql/probe_memo.rs)
        for digits in ["0", "7", "12"] {
            let v = replace_digit_runs(s, digits);
            let fresh = sql::cache_probe(&v, d, &mut sql::ProbeScratch::default()).map(str::to_owned);
            assert_eq!(sql::cache_probe(&v, d, &mut scratch).map(str::to_owned), fresh);
        }
        match sql::tokenize(s, d) {
            Ok(toks) => {
                let mut last = 0;
                for t in &toks {
                    assert!(t.start >= last && t.end > t.start && t.end <= s.len());
                    assert!(s.is_char_boundary(t.start) && s.is_char_boundary(t.end));
                    last = t.end;
                }
                assert!(r.fingerprint.is_some());
                let e = sql::expand_sql(s, d).expect("lexable text must expand");
                assert_eq!(code(&e, d), code(s, d), "expand_sql changed the code");
                for st in sql::split_statements(s, d).expect("lexable text must split") {
                    assert!(sql::tokenize(&st, d).is_ok(), "split statement does not lex");
                }
            }
            Err(_) => {
                assert_eq!(r.decision, sql::BLOCK);
                assert_eq!(r.rule, "lex_error");
                assert!(r.fingerprint.is_none());
            }
        }
        if r.decision == sql::ALLOW {
            assert_eq!(r.verbs, ["SELECT"]);
        }
    }
});
