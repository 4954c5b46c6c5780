//! The portal's limit on failed sign-ins: a leaf the portal and the shared state
//! both use, with nothing of the web layers in it.
//!
//! An attempt is counted when it begins, before its password is checked, under the
//! same lock that checks the limit: attempts sent at once cannot all pass the check
//! before the first of them is counted, so the limit is also the most passwords
//! (Argon2 runs) a burst gets. A right password then takes its attempt back.
//!
//! Attempts are counted per address and source, so someone who knows an address
//! and guesses from one source locks only that source out, and per address over
//! all sources, a higher ceiling for guessing spread over many sources (which
//! then locks the address out everywhere until the window passes).

use std::collections::HashMap;
use std::net::IpAddr;

pub use crate::source::Source;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Failed sign-ins allowed per address from one source within [`FAILURE_WINDOW`]:
/// a person who mistyped waits at worst a quarter of an hour.
pub const MAX_FAILURES_PER_SOURCE: u32 = 5;
/// Failed sign-ins allowed per address from all sources together within the window.
pub const MAX_FAILURES_PER_ADDRESS: u32 = 50;
pub const FAILURE_WINDOW: Duration = Duration::from_secs(15 * 60);
/// Tallies kept before the expired ones are swept out.
const SWEEP_AT: usize = 100_000;

/// Attempts counted since `since`; a window that passed starts again at 0.
#[derive(Debug, Clone, Copy)]
struct Tally {
    count: u32,
    since: Instant,
}

impl Tally {
    fn new(now: Instant) -> Tally {
        Tally { count: 0, since: now }
    }

    fn expired(&self, now: Instant) -> bool {
        now.duration_since(self.since) >= FAILURE_WINDOW
    }

    fn renew(&mut self, now: Instant) {
        if self.expired(now) {
            *self = Tally::new(now);
        }
    }

    fn minutes_left(&self, now: Instant) -> u64 {
        FAILURE_WINDOW.saturating_sub(now.duration_since(self.since)).as_secs().div_ceil(60).max(1)
    }
}

#[derive(Default)]
struct Tallies {
    by_source: HashMap<(String, Source), Tally>,
    by_address: HashMap<String, Tally>,
}

/// Sign-in attempts by address (known or not, so the limit says nothing about
/// which addresses exist) and by address and source. In memory: each replica
/// counts its own, which bounds guessing per replica; the Argon2id cost bounds it
/// further.
#[derive(Default)]
pub struct SignInFailures {
    tallies: Mutex<Tallies>,
    /// Passwords checked (Argon2 runs) by sign-ins, for `/metrics`.
    password_checks: AtomicU64,
}

/// Why an attempt may not begin.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// This source used up its tries for the address.
    FromThisSource { minutes: u64 },
    /// The address used up its tries from all sources together.
    ForTheAddress { minutes: u64 },
}

/// A sign-in attempt that was counted as failed when it began. Dropping it keeps
/// it counted; [`Attempt::succeeded`] or [`Attempt::withdraw`] takes it back.
#[must_use = "an attempt stays counted as failed unless it is settled"]
pub struct Attempt<'a> {
    limit: &'a SignInFailures,
    email: String,
    source: Source,
}

impl SignInFailures {
    /// Counts an attempt for `email` from `ip`, or refuses it when the source or
    /// the address has used up its tries: one step under one lock.
    pub fn begin(&self, email: &str, ip: IpAddr) -> Result<Attempt<'_>, Refusal> {
        let now = Instant::now();
        let source = Source::of(ip);
        let mut guard = self.tallies.lock().unwrap_or_else(|e| e.into_inner());
        let tallies = &mut *guard;
        if tallies.by_source.len() + tallies.by_address.len() > SWEEP_AT {
            tallies.by_source.retain(|_, tally| !tally.expired(now));
            tallies.by_address.retain(|_, tally| !tally.expired(now));
        }
        let address = tallies.by_address.entry(email.to_string()).or_insert_with(|| Tally::new(now));
        address.renew(now);
        if address.count >= MAX_FAILURES_PER_ADDRESS {
            return Err(Refusal::ForTheAddress { minutes: address.minutes_left(now) });
        }
        let from_source = tallies.by_source.entry((email.to_string(), source)).or_insert_with(|| Tally::new(now));
        from_source.renew(now);
        if from_source.count >= MAX_FAILURES_PER_SOURCE {
            return Err(Refusal::FromThisSource { minutes: from_source.minutes_left(now) });
        }
        from_source.count += 1;
        address.count += 1;
        Ok(Attempt { limit: self, email: email.to_string(), source })
    }

    /// Notes one password checked by a sign-in.
    pub fn password_checked(&self) {
        self.password_checks.fetch_add(1, Ordering::Relaxed);
    }

    /// Passwords checked by sign-ins since the service started.
    pub fn password_checks(&self) -> u64 {
        self.password_checks.load(Ordering::Relaxed)
    }
}

impl Attempt<'_> {
    /// The password was right: the source starts afresh for this address, and the
    /// address's count gives this attempt back (the failures of others stay).
    pub fn succeeded(self) {
        let mut tallies = self.limit.tallies.lock().unwrap_or_else(|e| e.into_inner());
        tallies.by_source.remove(&(self.email.clone(), self.source));
        if let Some(address) = tallies.by_address.get_mut(&self.email) {
            address.count = address.count.saturating_sub(1);
        }
    }

    /// The attempt ended before its password was judged (the service failed
    /// inside): it does not count.
    pub fn withdraw(self) {
        let mut tallies = self.limit.tallies.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(from_source) = tallies.by_source.get_mut(&(self.email.clone(), self.source)) {
            from_source.count = from_source.count.saturating_sub(1);
        }
        if let Some(address) = tallies.by_address.get_mut(&self.email) {
            address.count = address.count.saturating_sub(1);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: &str = "it@a.example";

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn a_source_gets_five_tries_and_a_right_password_starts_it_afresh() {
        let limit = SignInFailures::default();
        for _ in 0..4 {
            drop(limit.begin(A, ip("192.0.2.1")).unwrap());
        }
        limit.begin(A, ip("192.0.2.1")).unwrap().succeeded();
        for _ in 0..5 {
            drop(limit.begin(A, ip("192.0.2.1")).unwrap());
        }
        assert!(matches!(limit.begin(A, ip("192.0.2.1")), Err(Refusal::FromThisSource { minutes: 15 })));
        assert!(limit.begin(A, ip("192.0.2.2")).is_ok(), "another source is not locked out");
        assert!(limit.begin("other@a.example", ip("192.0.2.1")).is_ok(), "another address is not locked out");
    }

    #[test]
    fn a_withdrawn_attempt_does_not_count() {
        let limit = SignInFailures::default();
        for _ in 0..20 {
            limit.begin(A, ip("192.0.2.1")).unwrap().withdraw();
        }
        assert!(limit.begin(A, ip("192.0.2.1")).is_ok());
    }

    #[test]
    fn the_address_has_a_ceiling_over_all_sources() {
        let limit = SignInFailures::default();
        for n in 0..MAX_FAILURES_PER_ADDRESS {
            let source = IpAddr::from([198, 51, 100, (n / MAX_FAILURES_PER_SOURCE) as u8]);
            drop(limit.begin(A, source).unwrap());
        }
        assert!(matches!(limit.begin(A, ip("203.0.113.9")), Err(Refusal::ForTheAddress { .. })));
    }
}
