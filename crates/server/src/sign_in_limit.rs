//! The portal's limit on failed sign-ins: a leaf the portal and the shared state
//! both use, with nothing of the web layers in it.

/// Failed sign-ins allowed per address within [`FAILURE_WINDOW`] before the address
/// is refused until the window has passed: password guessing gets five tries a
/// quarter of an hour, a person who mistyped waits at worst that long.
const MAX_FAILURES: u32 = 5;
const FAILURE_WINDOW: std::time::Duration = std::time::Duration::from_secs(15 * 60);

/// Failed sign-ins by address (known or not, so the limit says nothing about which
/// addresses exist). In memory: each replica counts its own, which bounds guessing
/// per replica; the Argon2id cost bounds it further.
#[derive(Default)]
pub struct SignInFailures {
    by_email: std::sync::Mutex<std::collections::HashMap<String, (u32, std::time::Instant)>>,
}

impl SignInFailures {
    /// Minutes to wait, when the address has used up its tries.
    pub fn blocked_for(&self, email: &str) -> Option<u64> {
        let map = self.by_email.lock().unwrap_or_else(|e| e.into_inner());
        let (count, since) = map.get(email)?;
        let left = FAILURE_WINDOW.checked_sub(since.elapsed())?;
        (*count >= MAX_FAILURES).then(|| left.as_secs().div_ceil(60).max(1))
    }

    pub fn failed(&self, email: &str) {
        let mut map = self.by_email.lock().unwrap_or_else(|e| e.into_inner());
        if map.len() > 100_000 {
            map.retain(|_, (_, since)| since.elapsed() < FAILURE_WINDOW);
        }
        let entry = map.entry(email.to_string()).or_insert((0, std::time::Instant::now()));
        if entry.1.elapsed() >= FAILURE_WINDOW {
            *entry = (0, std::time::Instant::now());
        }
        entry.0 += 1;
    }

    pub fn succeeded(&self, email: &str) {
        self.by_email.lock().unwrap_or_else(|e| e.into_inner()).remove(email);
    }
}
