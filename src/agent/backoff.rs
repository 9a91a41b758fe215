//! Per-resource exponential backoff with jitter: a resource whose step keeps failing is retried
//! less and less often, without holding back the others; a success resets it.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

const BASE: Duration = Duration::from_secs(5);
const MAX: Duration = Duration::from_secs(600);

#[derive(Debug, Default)]
pub struct Backoff {
    failures: BTreeMap<String, (u32, Instant)>,
}

impl Backoff {
    pub fn failed(&mut self, resource: &str, now: Instant) {
        let n = self.failures.get(resource).map(|f| f.0 + 1).unwrap_or(1);
        let exp = BASE.saturating_mul(1u32 << (n - 1).min(10)).min(MAX);
        let jitter = jitter_fraction(resource, n);
        let delay = exp.mul_f64(0.8 + 0.4 * jitter);
        self.failures.insert(resource.to_string(), (n, now + delay));
    }

    pub fn succeeded(&mut self, resource: &str) {
        self.failures.remove(resource);
    }

    /// Resources not to retry yet.
    pub fn waiting(&self, now: Instant) -> Vec<String> {
        self.failures
            .iter()
            .filter(|(_, (_, at))| *at > now)
            .map(|(r, _)| r.clone())
            .collect()
    }

    pub fn retry_in(&self, resource: &str, now: Instant) -> Option<Duration> {
        self.failures
            .get(resource)
            .map(|(_, at)| at.saturating_duration_since(now))
    }
}

/// A deterministic fraction in [0, 1) per resource and attempt, so agents do not retry in step.
fn jitter_fraction(resource: &str, attempt: u32) -> f64 {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    resource.hash(&mut h);
    attempt.hash(&mut h);
    std::process::id().hash(&mut h);
    (h.finish() % 10_000) as f64 / 10_000.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_grow_and_a_success_resets() {
        let mut b = Backoff::default();
        let t = Instant::now();
        b.failed("service/api", t);
        let first = b.retry_in("service/api", t).unwrap();
        assert!(
            first >= Duration::from_secs(4) && first <= Duration::from_secs(6),
            "{first:?}"
        );
        b.failed("service/api", t);
        b.failed("service/api", t);
        let third = b.retry_in("service/api", t).unwrap();
        assert!(third >= Duration::from_secs(16), "{third:?}");
        assert_eq!(b.waiting(t), vec!["service/api".to_string()]);
        assert!(b.waiting(t + Duration::from_secs(700)).is_empty());
        b.succeeded("service/api");
        assert!(b.retry_in("service/api", t).is_none());
    }
}
