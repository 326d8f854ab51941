//! Cross-module tests: every lexical bypass in read-only-bypasses.md rows 6, 7, 13 and more.
