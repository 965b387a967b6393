//! The streaming server's request cache, as upstream's (kubelet/cri/streaming/request_cache.go):
//! a CRI Exec/Attach/PortForward call stores its request under a random single-use token that
//! expires after a minute; the URL handed to the kubelet carries the token. Pure: time is passed in.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use base64::Engine;

/// Tokens live this long (upstream `CacheTTL`).
pub const TTL: Duration = Duration::from_secs(60);
/// At most this many unconsumed requests (upstream `MaxInFlight` default).
pub const MAX_IN_FLIGHT: usize = 1000;

/// Cache errors.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CacheError {
    #[error("maximum number of in-flight requests exceeded")]
    Full,
}

/// A fresh token: 8 random bytes, unpadded base64url (URL-safe, 11 characters).
pub fn new_token() -> String {
    let b: [u8; 8] = rand::random();
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b)
}

/// Single-use, expiring tokens for requests of type `T`.
pub struct RequestCache<T> {
    ttl: Duration,
    max: usize,
    entries: HashMap<String, (Instant, T)>,
}

impl<T> RequestCache<T> {
    pub fn new(ttl: Duration, max: usize) -> Self {
        RequestCache {
            ttl,
            max,
            entries: HashMap::new(),
        }
    }

    fn gc(&mut self, now: Instant) {
        self.entries.retain(|_, (expires, _)| *expires > now);
    }

    /// Stores `req` and returns its token.
    pub fn insert(&mut self, req: T, now: Instant) -> Result<String, CacheError> {
        self.gc(now);
        if self.entries.len() >= self.max {
            return Err(CacheError::Full);
        }
        let mut token = new_token();
        while self.entries.contains_key(&token) {
            token = new_token();
        }
        self.entries.insert(token.clone(), (now + self.ttl, req));
        Ok(token)
    }

    /// Takes the request of `token` out of the cache, unless unknown or expired.
    pub fn consume(&mut self, token: &str, now: Instant) -> Option<T> {
        let (expires, req) = self.entries.remove(token)?;
        self.gc(now);
        (expires > now).then_some(req)
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_single_use_and_expire() {
        let t0 = Instant::now();
        let mut c = RequestCache::new(TTL, 3);
        let a = c.insert("a", t0).unwrap();
        let b = c.insert("b", t0).unwrap();
        assert_ne!(a, b);
        assert_eq!(a.len(), 11);
        assert!(a
            .chars()
            .all(|ch| ch.is_ascii_alphanumeric() || ch == '-' || ch == '_'));
        assert_eq!(c.consume(&a, t0 + Duration::from_secs(1)), Some("a"));
        assert_eq!(
            c.consume(&a, t0 + Duration::from_secs(1)),
            None,
            "single use"
        );
        assert_eq!(c.consume(&b, t0 + TTL), None, "expired at the TTL");
        assert_eq!(c.consume("nope", t0), None);
        assert!(c.is_empty());
    }

    #[test]
    fn in_flight_limit_counts_only_live_tokens() {
        let t0 = Instant::now();
        let mut c = RequestCache::new(TTL, 2);
        c.insert(1, t0).unwrap();
        c.insert(2, t0).unwrap();
        assert_eq!(c.insert(3, t0), Err(CacheError::Full));
        // once the first two expire there is room again
        let later = t0 + TTL + Duration::from_secs(1);
        let t = c.insert(4, later).unwrap();
        assert_eq!(c.len(), 1);
        assert_eq!(c.consume(&t, later), Some(4));
    }
}
