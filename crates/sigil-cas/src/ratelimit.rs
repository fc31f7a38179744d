//! A token bucket per client IP address (used in front of `/v1/attest`).

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::Instant;

/// Most addresses tracked; beyond it, full (idle) buckets are forgotten,
/// and while none is idle a new address gets no token (bounded memory; the
/// launcher retries 429).
const MAX_TRACKED: usize = 10_000;

/// The bucket key of an address: IPv4 addresses one by one, IPv6 by /64
/// (one host usually holds a whole /64, so per-address buckets would let it
/// pick a fresh bucket for every request).
fn bucket_of(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let s = v6.segments();
                IpAddr::V6(std::net::Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
            }
        },
    }
}

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
        let ip = bucket_of(ip);
        let Ok(mut b) = self.buckets.lock() else {
            return false;
        };
        if b.len() >= MAX_TRACKED && !b.contains_key(&ip) {
            let (rate, burst) = (self.rate_per_sec, self.burst);
            b.retain(|_, (tokens, t)| {
                *tokens + now.saturating_duration_since(*t).as_secs_f64() * rate < burst
            });
            if b.len() >= MAX_TRACKED {
                return false;
            }
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

    #[test]
    fn tracked_addresses_stay_bounded_when_none_is_idle() {
        let r = RateLimiter::new(0.001, 5);
        let t0 = Instant::now();
        let ip = |i: u32| IpAddr::from(std::net::Ipv4Addr::from(0x0a00_0000 + i));
        for i in 0..MAX_TRACKED as u32 {
            assert!(r.allow_at(ip(i), t0));
        }
        // Every bucket has spent a token: none is idle, none is forgotten.
        assert!(!r.allow_at(ip(MAX_TRACKED as u32), t0));
        assert!(!r.allow_at(ip(MAX_TRACKED as u32 + 1), t0));
        assert_eq!(r.buckets.lock().unwrap().len(), MAX_TRACKED);
        // Known addresses keep their buckets.
        assert!(r.allow_at(ip(0), t0));
        // Once buckets are full again (idle), new addresses get room.
        let later = t0 + Duration::from_secs(100_000);
        assert!(r.allow_at(ip(MAX_TRACKED as u32 + 2), later));
        assert!(r.buckets.lock().unwrap().len() <= MAX_TRACKED);
    }

    #[test]
    fn ipv6_addresses_share_a_bucket_per_64() {
        let r = RateLimiter::new(0.001, 2);
        let t0 = Instant::now();
        let a: IpAddr = "2001:db8:1:2::1".parse().unwrap();
        let b: IpAddr = "2001:db8:1:2:ffff::9".parse().unwrap();
        let other: IpAddr = "2001:db8:1:3::1".parse().unwrap();
        assert!(r.allow_at(a, t0));
        assert!(r.allow_at(b, t0));
        // Same /64: the bucket is empty whatever the interface id.
        assert!(!r.allow_at("2001:db8:1:2::77".parse().unwrap(), t0));
        assert!(r.allow_at(other, t0));
        // IPv4-mapped addresses count as their IPv4 address.
        let v4: IpAddr = "192.0.2.1".parse().unwrap();
        let mapped: IpAddr = "::ffff:192.0.2.1".parse().unwrap();
        assert!(r.allow_at(v4, t0));
        assert!(r.allow_at(mapped, t0));
        assert!(!r.allow_at(v4, t0));
    }
}
