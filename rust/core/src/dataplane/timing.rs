//! Timing probe, not an assertion (issue 6: the proxy's own user-space cost per relayed
//! statement, next to the kernel's socket work that benches/run.py measures from /proc):
//! `cargo test --release -p sdp_core relay_path_timing -- --ignored --nocapture`
//!
//! One pgbench -S statement per iteration, without sockets: the client's Query (a new
//! literal each time, so the exact-text cache misses and the fingerprint hits), the verdict
//! lookup as session.rs's judge does it, the backend's one-row answer, the statement's audit
//! line and counters -- the work the I/O thread does between its recv() and send() calls.

use std::sync::Arc;
use std::time::{Instant, SystemTime};

use super::audit::{self, Clock};
use super::stats::BackendStats;
use crate::pgwire::build;
use crate::relay::pg::{PgRelay, PgRelayConfig};
use crate::relay::{
    CacheMode, Judge, Judgement, Lookup, Out, Outcome, Record, Relay, Verdict, VerdictCache,
};
use crate::sql::Dialect;

struct CacheJudge<'a> {
    cache: &'a VerdictCache,
    stats: &'a BackendStats,
}

impl Judge for CacheJudge<'_> {
    fn judge(&mut self, sql: &str) -> Judgement {
        let t0 = Instant::now();
        match self.cache.lookup(sql) {
            Lookup::Hit(v) => {
                self.stats.cache_hit(t0.elapsed().as_secs_f64());
                Judgement::Known(v)
            }
            Lookup::Miss { .. } => Judgement::Pending,
        }
    }
}

/// The backend's answer: [ParseComplete, BindComplete,] RowDescription, DataRow,
/// CommandComplete, ReadyForQuery.
fn answer(extended: bool) -> Vec<u8> {
    let mut b = Vec::new();
    if extended {
        b.extend(build::message(b'1', b""));
        b.extend(build::message(b'2', b""));
    }
    // RowDescription: one int4 column "abalance"
    let mut rd = 1i16.to_be_bytes().to_vec();
    rd.extend_from_slice(b"abalance\0");
    rd.extend_from_slice(&[
        0, 0, 0, 0, 0, 0, 0, 0, 0, 23, 0, 4, 255, 255, 255, 255, 0, 0,
    ]);
    b.extend(build::message(b'T', &rd));
    let mut dr = 1i16.to_be_bytes().to_vec();
    dr.extend_from_slice(&4i32.to_be_bytes());
    dr.extend_from_slice(b"1234");
    b.extend(build::message(b'D', &dr));
    b.extend(build::message(b'C', b"SELECT 1\0"));
    b.extend(build::ready_for_query(b'I'));
    b
}

/// pgbench -M extended: Parse (unnamed, `$1`), Bind, Describe portal, Execute, Sync.
fn extended(aid: u32) -> Vec<u8> {
    let mut b = build::parse("", "SELECT abalance FROM pgbench_accounts WHERE aid = $1;");
    let v = aid.to_string();
    let mut bind = b"\0\0".to_vec(); // portal "", statement ""
    bind.extend_from_slice(&0i16.to_be_bytes()); // parameter formats: all text
    bind.extend_from_slice(&1i16.to_be_bytes());
    bind.extend_from_slice(&(v.len() as i32).to_be_bytes());
    bind.extend_from_slice(v.as_bytes());
    bind.extend_from_slice(&0i16.to_be_bytes()); // result formats: all text
    b.extend(build::message(b'B', &bind));
    b.extend(build::message(b'D', b"P\0"));
    b.extend(build::message(b'E', b"\0\0\0\0\0"));
    b.extend(build::message(b'S', b""));
    b
}

fn run(label: &str, queries: &[Vec<u8>], reply: &[u8], cache: &VerdictCache, stats: &BackendStats) {
    let prefix = br#"{"ts":"#.to_vec();
    let (mut relay, mut out, mut buf, mut clock) = (
        PgRelay::new(PgRelayConfig::default()),
        Out::default(),
        Vec::new(),
        Clock::new(),
    );
    for pass in 0..3 {
        let n = 400_000usize;
        let t0 = Instant::now();
        let mut lines = 0usize;
        for i in 0..n {
            let mut judge = CacheJudge { cache, stats };
            let q = &queries[i % queries.len()];
            relay.client_data(
                std::hint::black_box(q),
                Instant::now(),
                &mut judge,
                &mut out,
            );
            assert!(
                !out.to_backend.is_empty(),
                "{label}: statement not forwarded"
            );
            out.to_backend.clear();
            relay.backend_data(
                std::hint::black_box(reply),
                Instant::now(),
                &mut judge,
                &mut out,
            );
            out.to_client.clear();
            for r in out.records.drain(..) {
                if let Record::Done {
                    sql,
                    verdict,
                    message,
                    rows,
                    seconds,
                    outcome: Outcome::Ok,
                } = r
                {
                    stats.allowed(&verdict.klass, seconds);
                    audit::allowed_line(
                        &mut buf,
                        &mut clock,
                        SystemTime::now(),
                        &prefix,
                        None,
                        &verdict,
                        &sql,
                        message,
                        rows,
                        seconds,
                    );
                    lines += 1;
                }
            }
            if buf.len() > 1 << 20 {
                buf.clear();
            }
        }
        assert_eq!(lines, n, "{label}: every statement allowed and audited");
        let ns = t0.elapsed().as_nanos() as f64 / n as f64;
        println!("pass {pass}: {ns:>7.0} ns per pgbench -S statement ({label})");
    }
}

#[test]
#[ignore]
fn relay_path_timing() {
    let cache = VerdictCache::new(Dialect::Postgres, 10_000);
    let stats = BackendStats::new();
    let v = Arc::new(Verdict {
        allowed: true,
        rule: "read_only".into(),
        klass: "read".into(),
        verbs: vec!["SELECT".into()],
        audit_pre: br#""verdict":"ALLOWED","rule":"read_only","class":"read","#.to_vec(),
        audit_post: br#","db.operation.name":"SELECT""#.to_vec(),
        ..Verdict::default()
    });
    for first in [
        "SELECT abalance FROM pgbench_accounts WHERE aid = 1;",
        "SELECT abalance FROM pgbench_accounts WHERE aid = $1;",
    ] {
        let Lookup::Miss {
            fingerprint,
            generation,
        } = cache.lookup(first)
        else {
            panic!("empty cache hit")
        };
        cache.insert(
            first,
            fingerprint.as_deref(),
            Arc::clone(&v),
            CacheMode::Fingerprint,
            generation,
        );
    }
    let simple: Vec<Vec<u8>> = (0..4096u32)
        .map(|i| {
            build::query(&format!(
                "SELECT abalance FROM pgbench_accounts WHERE aid = {};",
                1000 + i * 7919
            ))
        })
        .collect();
    if std::env::var_os("SDP_TIMING_ONLY_EXTENDED").is_none() {
        run(
            "simple protocol, new literal",
            &simple,
            &answer(false),
            &cache,
            &stats,
        );
    }
    let ext: Vec<Vec<u8>> = (0..4096u32).map(|i| extended(1000 + i * 7919)).collect();
    run("extended protocol", &ext, &answer(true), &cache, &stats);
}
