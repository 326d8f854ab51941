//! Rust-side verdict cache of one backend's engine (issue 6: a cache hit must not leave the
//! I/O thread). It only ever holds what the Python engine decided (`insert`), under the same
//! two keys the engine uses (python/sandbox_db_proxy/engine/engine.py, `Engine.classify`):
//! * exact text -> verdict (any verdict the engine keeps in its exact-text cache);
//! * literal-stripped fingerprint -> verdict, only for verdicts the engine itself stored in its
//!   fingerprint cache (allowed reads whose decision read no literal), and looked up only
//!   when the Rust fast path did not say BLOCK -- exactly the engine's rule, so a
//!   fingerprint hit can never overturn a fast BLOCK (e.g. `ambiguous_quoting`).
//!
//! Nothing is decided here: a miss goes to the Python engine. `clear()` (config reload, a new
//! pg_proc catalogue) bumps a generation so that an answer computed before the clear is not
//! stored after it. `set_refuse(true)` (audit fail-closed and the log failing) makes every
//! lookup miss, so every statement goes to Python, which refuses it.

use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use super::Verdict;
use crate::sql::{cache_probe, Dialect, ProbeScratch};

thread_local! {
    /// Token, keyword-row and fingerprint buffers of this thread's probes (an I/O lane's).
    static SCRATCH: RefCell<ProbeScratch> = RefCell::new(ProbeScratch::default());
}

/// Longest text kept under its exact key (engine.MAX_CACHED_TEXT).
pub const MAX_CACHED_TEXT: usize = 16 * 1024;

/// Where an engine answer may be stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CacheMode {
    /// One-off (not cached by the engine either).
    None,
    /// Exact text only.
    Exact,
    /// Exact text and the fingerprint.
    Fingerprint,
}

#[derive(Debug)]
pub enum Lookup {
    Hit(Arc<Verdict>),
    /// Ask the engine; pass `fingerprint` and `generation` back with its answer.
    Miss { fingerprint: Option<String>, generation: u64 },
}

/// A bounded map with "second chance" eviction: cheaper than an LRU list on the hit path
/// (a hit only sets a flag) and close enough to LRU for hot statements to stay.
struct Bounded {
    map: HashMap<Box<str>, (Arc<Verdict>, bool)>,
    cap: usize,
}

impl Bounded {
    fn new(cap: usize) -> Self {
        Bounded { map: HashMap::new(), cap }
    }
    fn get(&mut self, key: &str) -> Option<Arc<Verdict>> {
        self.map.get_mut(key).map(|(v, used)| {
            *used = true;
            Arc::clone(v)
        })
    }
    fn put(&mut self, key: &str, v: Arc<Verdict>) {
        if self.cap == 0 {
            return;
        }
        if self.map.len() >= self.cap && !self.map.contains_key(key) {
            // Drop the entries not used since the last sweep; if all were, drop half.
            self.map.retain(|_, (_, used)| std::mem::replace(used, false));
            if self.map.len() >= self.cap {
                let mut n = 0usize;
                let half = self.cap / 2;
                self.map.retain(|_, _| {
                    n += 1;
                    n > half
                });
            }
        }
        self.map.insert(key.into(), (v, false));
    }
}

struct Inner {
    exact: Bounded,
    fp: Bounded,
}

pub struct VerdictCache {
    dialect: Dialect,
    inner: Mutex<Inner>,
    generation: AtomicU64,
    refuse: AtomicBool,
}

impl VerdictCache {
    pub fn new(dialect: Dialect, capacity: usize) -> Self {
        VerdictCache {
            dialect,
            inner: Mutex::new(Inner { exact: Bounded::new(capacity), fp: Bounded::new(capacity) }),
            generation: AtomicU64::new(1),
            refuse: AtomicBool::new(false),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn dialect(&self) -> Dialect {
        self.dialect
    }

    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    pub fn lookup(&self, sql: &str) -> Lookup {
        let generation = self.generation();
        if self.refuse.load(Ordering::Relaxed) {
            return Lookup::Miss { fingerprint: None, generation };
        }
        if sql.len() <= MAX_CACHED_TEXT {
            if let Some(v) = self.lock().exact.get(sql) {
                return Lookup::Hit(v);
            }
        }
        // Not under its exact text: the fingerprint map, unless the fast path BLOCKs the text.
        // A fingerprint hit is not copied to the exact map: texts that differ only in
        // literals (pgbench's `aid = 123`) would churn it and evict the ones that repeat.
        let probe = |s: &mut ProbeScratch| match cache_probe(sql, self.dialect, s) {
            None => Lookup::Miss { fingerprint: None, generation },
            Some(fp) => match self.lock().fp.get(fp) {
                Some(v) => Lookup::Hit(v),
                None => Lookup::Miss { fingerprint: Some(fp.to_owned()), generation },
            },
        };
        SCRATCH.with(|cell| match cell.try_borrow_mut() {
            Ok(mut s) => probe(&mut s),
            Err(_) => probe(&mut ProbeScratch::default()),
        })
    }

    /// Store the engine's answer for `sql` (ignored when the cache was cleared since the
    /// lookup that missed, i.e. `generation` is stale).
    pub fn insert(&self, sql: &str, fingerprint: Option<&str>, v: Arc<Verdict>, mode: CacheMode, generation: u64) {
        if mode == CacheMode::None || generation != self.generation() {
            return;
        }
        let mut inner = self.lock();
        if generation != self.generation() {
            return;
        }
        if sql.len() <= MAX_CACHED_TEXT {
            inner.exact.put(sql, Arc::clone(&v));
        }
        if mode == CacheMode::Fingerprint {
            if let Some(fp) = fingerprint {
                inner.fp.put(fp, v);
            }
        }
    }

    pub fn clear(&self) {
        let mut inner = self.lock();
        self.generation.fetch_add(1, Ordering::AcqRel);
        inner.exact.map.clear();
        inner.fp.map.clear();
    }

    pub fn set_refuse(&self, on: bool) {
        self.refuse.store(on, Ordering::Relaxed);
    }

    pub fn len(&self) -> (usize, usize) {
        let inner = self.lock();
        (inner.exact.map.len(), inner.fp.map.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn allow() -> Arc<Verdict> {
        Arc::new(Verdict { allowed: true, rule: "read_only".into(), klass: "read".into(), ..Default::default() })
    }

    #[test]
    fn exact_and_fingerprint() {
        let c = VerdictCache::new(Dialect::Postgres, 100);
        let g = match c.lookup("SELECT a FROM t WHERE id = 1") {
            Lookup::Miss { fingerprint, generation } => {
                assert!(fingerprint.is_some());
                c.insert("SELECT a FROM t WHERE id = 1", fingerprint.as_deref(), allow(), CacheMode::Fingerprint, generation);
                generation
            }
            Lookup::Hit(_) => panic!("empty cache hit"),
        };
        assert!(matches!(c.lookup("SELECT a FROM t WHERE id = 1"), Lookup::Hit(_)));
        assert!(matches!(c.lookup("select a from t where id = 42"), Lookup::Hit(_)));
        // a fast BLOCK never reaches the fingerprint map
        assert!(matches!(c.lookup("DELETE FROM t WHERE id = 1"), Lookup::Miss { .. }));
        c.clear();
        assert!(matches!(c.lookup("SELECT a FROM t WHERE id = 1"), Lookup::Miss { .. }));
        // stale answers are dropped
        c.insert("SELECT 1", None, allow(), CacheMode::Exact, g);
        assert!(matches!(c.lookup("SELECT 1"), Lookup::Miss { .. }));
    }

    #[test]
    fn exact_only_and_refuse() {
        let c = VerdictCache::new(Dialect::MySql, 100);
        let g = c.generation();
        c.insert("SELECT a FROM t WHERE x = 'a'", Some("x"), allow(), CacheMode::Exact, g);
        assert!(matches!(c.lookup("SELECT a FROM t WHERE x = 'a'"), Lookup::Hit(_)));
        assert!(matches!(c.lookup("SELECT a FROM t WHERE x = 'b'"), Lookup::Miss { .. }));
        c.set_refuse(true);
        assert!(matches!(c.lookup("SELECT a FROM t WHERE x = 'a'"), Lookup::Miss { .. }));
    }

    #[test]
    fn bounded() {
        let c = VerdictCache::new(Dialect::Postgres, 10);
        let g = c.generation();
        for i in 0..1000 {
            c.insert(&format!("SELECT {i}"), None, allow(), CacheMode::Exact, g);
        }
        assert!(c.len().0 <= 10);
    }
}
