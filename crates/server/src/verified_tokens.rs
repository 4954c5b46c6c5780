//! The cache of bearer tokens whose Argon2 check passed, so the check runs once per
//! token and not per request. In memory, per replica: a replica that has not seen
//! a token checks it once itself.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Tokens verified recently.
/// The credential row is still read on every request, so revocation is immediate.
#[derive(Default)]
pub struct VerifiedTokens {
    entries: Mutex<HashMap<[u8; 32], Instant>>,
}

const VERIFIED_FOR: Duration = Duration::from_secs(600);

impl VerifiedTokens {
    pub fn is_verified(&self, token: &str) -> bool {
        let key = *blake3::hash(token.as_bytes()).as_bytes();
        let entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        entries.get(&key).is_some_and(|at| at.elapsed() < VERIFIED_FOR)
    }

    pub fn remember(&self, token: &str) {
        let key = *blake3::hash(token.as_bytes()).as_bytes();
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        if entries.len() > 100_000 {
            entries.retain(|_, at| at.elapsed() < VERIFIED_FOR);
        }
        entries.insert(key, Instant::now());
    }
}
