//! Per-backend metric accumulators filled by the I/O thread and drained by Python
//! (`BackendStats::take`), which adds the deltas to its Prometheus families
//! (python/sandbox_db_proxy/metrics.py). Only what the data plane decides by itself is counted
//! here: allowed statements that completed (class + query seconds) and verdict-cache hits
//! (classification path "cache"); everything handed to Python as a `Record` is counted there.

use std::sync::{Mutex, MutexGuard};

/// `QUERY_BUCKETS` of metrics.py (upper bounds in seconds; the last bucket is +Inf).
pub const QUERY_BOUNDS: [f64; 18] = [
    1e-4, 2.5e-4, 5e-4, 1e-3, 2.5e-3, 5e-3, 1e-2, 2.5e-2, 5e-2, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
    60.0,
];
/// `CLASSIFY_BUCKETS` of metrics.py.
pub const CLASSIFY_BOUNDS: [f64; 15] =
    [1e-6, 2.5e-6, 5e-6, 1e-5, 2.5e-5, 5e-5, 1e-4, 2.5e-4, 5e-4, 1e-3, 2.5e-3, 5e-3, 1e-2, 2.5e-2, 0.1];

/// Bucket index of `value`: Python's `bisect_left(bounds, value)` (metrics.py `HistogramCell`),
/// so a value equal to a bound lands in that bound's bucket (`le` is inclusive). Written as
/// the same comparison loop so that odd values (NaN, negative) land where Python puts them.
pub fn bucket(bounds: &[f64], value: f64) -> usize {
    let (mut lo, mut hi) = (0usize, bounds.len());
    while lo < hi {
        let mid = (lo + hi) / 2;
        match bounds.get(mid) {
            Some(b) if *b < value => lo = mid + 1,
            _ => hi = mid,
        }
    }
    lo
}

/// Counts since the last `take` (per bucket, not cumulative).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct StatsDelta {
    pub allowed_by_class: Vec<(String, u64)>,
    /// `QUERY_BOUNDS.len() + 1` counts (last: +Inf).
    pub query_buckets: Vec<u64>,
    pub query_sum: f64,
    pub cache_hits: u64,
    /// `CLASSIFY_BOUNDS.len() + 1` counts (last: +Inf).
    pub classify_buckets: Vec<u64>,
    pub classify_sum: f64,
}

struct Acc {
    by_class: Vec<(String, u64)>,
    query: [u64; QUERY_BOUNDS.len() + 1],
    query_sum: f64,
    cache_hits: u64,
    classify: [u64; CLASSIFY_BOUNDS.len() + 1],
    classify_sum: f64,
}

impl Acc {
    const fn new() -> Self {
        Acc {
            by_class: Vec::new(),
            query: [0; QUERY_BOUNDS.len() + 1],
            query_sum: 0.0,
            cache_hits: 0,
            classify: [0; CLASSIFY_BOUNDS.len() + 1],
            classify_sum: 0.0,
        }
    }
}

/// Metric accumulators of one backend, shared by all its sessions.
pub struct BackendStats {
    acc: Mutex<Acc>,
}

impl Default for BackendStats {
    fn default() -> Self {
        Self::new()
    }
}

impl BackendStats {
    pub fn new() -> Self {
        BackendStats { acc: Mutex::new(Acc::new()) }
    }

    fn lock(&self) -> MutexGuard<'_, Acc> {
        // A panic elsewhere while holding the lock leaves plain counters: keep using them.
        self.acc.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// An allowed statement completed (metrics.py: statements{verdict=allowed,class} and
    /// query_seconds).
    pub fn allowed(&self, klass: &str, seconds: f64) {
        let mut a = self.lock();
        match a.by_class.iter_mut().find(|(k, _)| k == klass) {
            Some((_, n)) => *n += 1,
            None => a.by_class.push((klass.to_owned(), 1)),
        }
        let i = bucket(&QUERY_BOUNDS, seconds);
        if let Some(n) = a.query.get_mut(i) {
            *n += 1;
        }
        a.query_sum += seconds;
    }

    /// A verdict came from the Rust-side cache in `seconds` (classification{path=cache}).
    pub fn cache_hit(&self, seconds: f64) {
        let mut a = self.lock();
        a.cache_hits += 1;
        let i = bucket(&CLASSIFY_BOUNDS, seconds);
        if let Some(n) = a.classify.get_mut(i) {
            *n += 1;
        }
        a.classify_sum += seconds;
    }

    /// Everything counted since the last call; the accumulators start again from zero.
    pub fn take(&self) -> StatsDelta {
        let a = std::mem::replace(&mut *self.lock(), Acc::new());
        StatsDelta {
            allowed_by_class: a.by_class,
            query_buckets: a.query.to_vec(),
            query_sum: a.query_sum,
            cache_hits: a.cache_hits,
            classify_buckets: a.classify.to_vec(),
            classify_sum: a.classify_sum,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bisect_left_like_python() {
        assert_eq!(bucket(&QUERY_BOUNDS, 0.0), 0);
        assert_eq!(bucket(&QUERY_BOUNDS, 1e-4), 0);
        assert_eq!(bucket(&QUERY_BOUNDS, 1.1e-4), 1);
        assert_eq!(bucket(&QUERY_BOUNDS, 1e-3), 3);
        assert_eq!(bucket(&QUERY_BOUNDS, 60.0), 17);
        assert_eq!(bucket(&QUERY_BOUNDS, 61.0), 18);
        assert_eq!(bucket(&QUERY_BOUNDS, f64::INFINITY), 18);
        assert_eq!(bucket(&QUERY_BOUNDS, f64::NAN), 0);
        assert_eq!(bucket(&CLASSIFY_BOUNDS, 0.2), 15);
    }

    #[test]
    fn deltas() {
        let s = BackendStats::new();
        s.allowed("read", 0.001);
        s.allowed("read", 0.002);
        s.allowed("session", 100.0);
        s.cache_hit(3e-6);
        let d = s.take();
        assert_eq!(d.allowed_by_class, vec![("read".to_string(), 2), ("session".to_string(), 1)]);
        assert_eq!(d.query_buckets.len(), 19);
        assert_eq!(d.query_buckets[3], 1);
        assert_eq!(d.query_buckets[4], 1);
        assert_eq!(d.query_buckets[18], 1);
        assert!((d.query_sum - 100.003).abs() < 1e-9);
        assert_eq!(d.cache_hits, 1);
        assert_eq!(d.classify_buckets.len(), 16);
        assert_eq!(d.classify_buckets[2], 1);
        let d = s.take();
        assert!(d.allowed_by_class.is_empty());
        assert_eq!(d.query_buckets.iter().sum::<u64>(), 0);
        assert_eq!(d.cache_hits, 0);
        assert_eq!(d.query_sum, 0.0);
    }
}
