//! Fuzz the SQL lexer, splitter, fingerprint and fast path on arbitrary UTF-8 text, in all
//! three dialects. Beyond "never panics", it checks the invariants the proxy relies on:
//! tokens are ordered, non-empty and on char boundaries; an unlexable text is blocked with
//! `lex_error`; the deep parser's text (`expand_sql`) lexes to the same code tokens as the
//! original (so the deep check and the server can never see different code); every split
//! statement lexes; an ALLOW is a single SELECT; the verdict cache's probe agrees with the
//! fast path.
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

fuzz_target!(|data: &[u8]| {
    let Ok(s) = std::str::from_utf8(data) else { return };
    for d in [Dialect::Postgres, Dialect::MySql, Dialect::TSql] {
        let r = sql::fast_check(s, d);
        // the verdict cache's probe answers exactly what fast_check answers
        let mut scratch = sql::ProbeScratch::default();
        let want = if r.decision == sql::BLOCK { None } else { r.fingerprint.clone() };
        assert_eq!(sql::cache_probe(s, d, &mut scratch).map(str::to_owned), want);
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
