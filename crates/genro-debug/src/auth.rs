//! Authentication: the shared secret, the challenge-response, and the per-IP limit on failed
//! logins.
//!
//! The server sends a fresh random nonce; the client answers
//! `HMAC-SHA256(secret, nonce ‖ context)` in hex, where `context` names the protocol and the
//! `Host` the client connected to, so an answer cannot be replayed to another console or
//! another session. The secret never crosses the wire. HMAC comes from the RustCrypto `hmac` and
//! `sha2` crates, and the answer is checked with `Mac::verify_slice`, which compares in
//! constant time (the `subtle` crate underneath).

use std::{
    collections::{HashMap, VecDeque},
    fmt,
    net::IpAddr,
    sync::{Arc, Mutex, PoisonError},
    time::Duration,
};

use hmac::{Hmac, Mac};
use sha2::Sha256;
use tokio::time::Instant;

/// The fewest bytes a secret may have.
pub const MIN_SECRET_LEN: usize = 16;

// Bytes of a challenge's nonce.
pub(crate) const NONCE_LEN: usize = 32;

/// The shared secret of the console. Its `Debug` never shows it.
#[derive(Clone)]
pub struct Secret(Arc<[u8]>);

impl Secret {
    /// The secret made of these bytes.
    #[must_use]
    pub fn new(bytes: impl AsRef<[u8]>) -> Self {
        Self(Arc::from(bytes.as_ref()))
    }

    /// Its length in bytes.
    #[must_use]
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether it is empty.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub(crate) fn mac(&self) -> Hmac<Sha256> {
        // HMAC takes a key of any length.
        Hmac::<Sha256>::new_from_slice(&self.0).expect("HMAC accepts any key length")
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Secret(<{} bytes, hidden>)", self.0.len())
    }
}

/// A fresh random nonce, in hex.
///
/// # Panics
///
/// When the operating system has no random source (getrandom fails), which no supported system
/// does.
#[must_use]
pub(crate) fn nonce() -> String {
    let mut bytes = [0u8; NONCE_LEN];
    getrandom::fill(&mut bytes).expect("the operating system's random source");
    hex::encode(bytes)
}

/// Whether `answer` is the right answer, compared in constant time. An answer that is not hex,
/// or not 32 bytes, is wrong.
#[must_use]
pub(crate) fn verify(secret: &Secret, nonce: &str, context: &str, answer: &str) -> bool {
    let Ok(given) = hex::decode(answer) else {
        return false;
    };
    let mut mac = secret.mac();
    mac.update(nonce.as_bytes());
    mac.update(context.as_bytes());
    mac.verify_slice(&given).is_ok()
}

/// The limits on failed logins.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FailureLimit {
    /// Failures from one IP within `window` that lock it out.
    pub failures: u32,
    /// The window the failures are counted in.
    pub window: Duration,
    /// How long a locked-out IP's wrong answers are refused (each a second late); its right
    /// answer still logs in, so that failing logins cannot lock the operator out.
    pub lockout: Duration,
}

impl Default for FailureLimit {
    fn default() -> Self {
        Self {
            failures: 10,
            window: Duration::from_secs(60),
            lockout: Duration::from_secs(60),
        }
    }
}

/// Most addresses remembered at once; past it the one seen longest ago is forgotten.
const MAX_TRACKED: usize = 4096;

#[derive(Debug, Default)]
struct Record {
    failures: VecDeque<Instant>,
    locked_until: Option<Instant>,
    last: Option<Instant>,
}

/// Failed logins per IP. An IP with too many failures has its wrong answers refused as
/// rate-limited for a while; other IPs are not affected (there is no global lockout for an
/// attacker to trigger), and a right answer is never refused.
#[derive(Debug)]
pub(crate) struct Limiter {
    limit: FailureLimit,
    by_ip: Mutex<HashMap<IpAddr, Record>>,
}

impl Limiter {
    pub(crate) fn new(limit: FailureLimit) -> Self {
        Self {
            limit,
            by_ip: Mutex::default(),
        }
    }

    /// How long `ip` stays locked out, if it is.
    pub(crate) fn locked(&self, ip: IpAddr) -> Option<Duration> {
        let now = Instant::now();
        let map = self.by_ip.lock().unwrap_or_else(PoisonError::into_inner);
        map.get(&ip)
            .and_then(|r| r.locked_until)
            .filter(|until| *until > now)
            .map(|until| until - now)
    }

    /// Counts a failure from `ip`; returns whether it is now locked out.
    pub(crate) fn failed(&self, ip: IpAddr) -> bool {
        let now = Instant::now();
        let mut map = self.by_ip.lock().unwrap_or_else(PoisonError::into_inner);
        if map.len() >= MAX_TRACKED && !map.contains_key(&ip) {
            let oldest = map.iter().min_by_key(|(_, r)| r.last).map(|(ip, _)| *ip);
            if let Some(oldest) = oldest {
                map.remove(&oldest);
            }
        }
        let record = map.entry(ip).or_default();
        record.last = Some(now);
        let window = self.limit.window;
        while record
            .failures
            .front()
            .is_some_and(|t| now.saturating_duration_since(*t) > window)
        {
            record.failures.pop_front();
        }
        record.failures.push_back(now);
        if record.failures.len() >= self.limit.failures as usize {
            record.failures.clear();
            record.locked_until = Some(now + self.limit.lockout);
            return true;
        }
        false
    }

    /// A successful login from `ip` clears its failures.
    pub(crate) fn succeeded(&self, ip: IpAddr) {
        let mut map = self.by_ip.lock().unwrap_or_else(PoisonError::into_inner);
        map.remove(&ip);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn ten_failures_lock_one_ip_out_for_the_lockout_and_no_other() {
        let limiter = Limiter::new(FailureLimit::default());
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        let b: IpAddr = "10.0.0.2".parse().unwrap();
        for _ in 0..9 {
            assert!(!limiter.failed(a));
        }
        assert!(limiter.locked(a).is_none());
        assert!(limiter.failed(a));
        assert!(limiter.locked(a).is_some());
        assert!(limiter.locked(b).is_none(), "no global lockout");
        tokio::time::advance(Duration::from_secs(61)).await;
        assert!(limiter.locked(a).is_none(), "the lockout ends");
        // Failures spread wider than the window never lock.
        for _ in 0..20 {
            assert!(!limiter.failed(b));
            tokio::time::advance(Duration::from_secs(7)).await;
        }
    }
}
