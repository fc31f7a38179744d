//! A token bucket per client IP address (used in front of `/v1/attest`).

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::Instant;

/// Most addresses tracked; beyond it, full (idle) buckets are forgotten.
const MAX_TRACKED: usize = 10_000;

/// Per-IP token buckets.
#[derive(Debug)]
pub struct RateLimiter {
    rate_per_sec: f64,
    burst: f64,
    buckets: Mutex<HashMap<IpAddr, (f64, Instant)>>,
}

impl RateLimiter {
    /// `rate_per_sec` tokens refill per second, up to `burst`.
    pub fn new(rate_per_sec: f64, burst: u32) -> Self {
        RateLimiter {
            rate_per_sec,
            burst: f64::from(burst.max(1)),
            buckets: Mutex::new(HashMap::new()),
        }
    }

    /// Takes a token for `ip` at time `now`; false if the bucket is empty.
    pub fn allow_at(&self, ip: IpAddr, now: Instant) -> bool {
        let Ok(mut b) = self.buckets.lock() else {
            return false;
        };
        if b.len() >= MAX_TRACKED && !b.contains_key(&ip) {
            let (rate, burst) = (self.rate_per_sec, self.burst);
            b.retain(|_, (tokens, t)| {
                *tokens + now.saturating_duration_since(*t).as_secs_f64() * rate < burst
            });
        }
        let (tokens, last) = b.entry(ip).or_insert((self.burst, now));
        let refilled = (*tokens
            + now.saturating_duration_since(*last).as_secs_f64() * self.rate_per_sec)
            .min(self.burst);
        *last = now;
        if refilled >= 1.0 {
            *tokens = refilled - 1.0;
            true
        } else {
            *tokens = refilled;
            false
        }
    }

    /// [`RateLimiter::allow_at`] now.
    pub fn allow(&self, ip: IpAddr) -> bool {
        self.allow_at(ip, Instant::now())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn burst_then_refill_per_address() {
        let r = RateLimiter::new(2.0, 3);
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        let b: IpAddr = "10.0.0.2".parse().unwrap();
        let t0 = Instant::now();
        assert!(r.allow_at(a, t0));
        assert!(r.allow_at(a, t0));
        assert!(r.allow_at(a, t0));
        assert!(!r.allow_at(a, t0));
        // Another address has its own bucket.
        assert!(r.allow_at(b, t0));
        // Half a second refills one token at 2/s.
        assert!(r.allow_at(a, t0 + Duration::from_millis(500)));
        assert!(!r.allow_at(a, t0 + Duration::from_millis(500)));
    }
}
