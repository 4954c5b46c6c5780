//! The cache of bearer tokens whose Argon2 check passed, so the check runs once per
//! token and not per request. In memory, per replica: a replica that has not seen
//! a token checks it once itself.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Tokens verified and used recently, by a digest of the token (the token itself
/// is not kept). The credential row is still read on every request, so a
/// revocation or an expiry is refused at once whatever this says.
#[derive(Default)]
pub struct VerifiedTokens {
    entries: Mutex<HashMap<[u8; 32], Instant>>,
}

/// How long a verified token stays verified after its last use. A day and an
/// hour, so a client that backs up every night is not checked again each night:
/// with several replicas, and every agent starting at the same hour, those
/// checks queue (each is ~35 ms of Argon2, one at a time per source).
const VERIFIED_FOR: Duration = Duration::from_secs(25 * 3600);

/// Entries kept before the idle ones are swept.
const SWEEP_ABOVE: usize = 100_000;

impl VerifiedTokens {
    /// Whether `token` passed its check and was used within [`VERIFIED_FOR`]; a
    /// hit counts as a use.
    pub fn is_verified(&self, token: &str) -> bool {
        self.is_verified_at(token, Instant::now())
    }

    pub fn remember(&self, token: &str) {
        self.remember_at(token, Instant::now())
    }

    fn is_verified_at(&self, token: &str, now: Instant) -> bool {
        let key = *blake3::hash(token.as_bytes()).as_bytes();
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        match entries.get_mut(&key) {
            Some(used) if now.saturating_duration_since(*used) < VERIFIED_FOR => {
                *used = now;
                true
            }
            _ => false,
        }
    }

    fn remember_at(&self, token: &str, now: Instant) {
        let key = *blake3::hash(token.as_bytes()).as_bytes();
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        if entries.len() > SWEEP_ABOVE {
            entries.retain(|_, used| now.saturating_duration_since(*used) < VERIFIED_FOR);
        }
        entries.insert(key, now);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_in_use_stays_verified_and_an_idle_one_lapses() {
        let tokens = VerifiedTokens::default();
        let start = Instant::now();
        assert!(!tokens.is_verified_at("crd_a.secret", start), "not before its check");
        tokens.remember_at("crd_a.secret", start);
        tokens.remember_at("crd_b.secret", start);
        // Used every night: verified night after night.
        for night in 1..=5 {
            assert!(tokens.is_verified_at("crd_a.secret", start + Duration::from_secs(night * 86_400)));
        }
        // Idle longer than VERIFIED_FOR: checked again.
        assert!(!tokens.is_verified_at("crd_b.secret", start + VERIFIED_FOR + Duration::from_secs(1)));
        assert!(!tokens.is_verified_at("crd_a.other-secret", start), "another secret is another token");
    }
}
