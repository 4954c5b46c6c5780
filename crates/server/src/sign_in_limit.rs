//! The portal's limit on failed sign-ins: a leaf the portal and the shared state
//! both use, with nothing of the web layers in it.
//!
//! An attempt is counted when it begins, before its password is checked, by one
//! conditional UPDATE of its tally in the database (`sign_in_tallies`), which
//! every replica shares: attempts sent at once, to one replica or spread over
//! several, cannot all pass the check before the first of them is counted, so the
//! limit is also the most passwords (Argon2 runs) a burst gets. A right password
//! then takes its attempt back.
//!
//! Attempts are counted per address and source, so someone who knows an address
//! and guesses from one source locks only that source out, and per address over
//! all sources, a higher ceiling for guessing spread over many sources (which
//! then locks the address out everywhere until the window passes).

use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use crate::db::{Db, DbResult};
pub use crate::source::Source;

/// Failed sign-ins allowed per address from one source within [`FAILURE_WINDOW`]:
/// a person who mistyped waits at worst a quarter of an hour.
pub const MAX_FAILURES_PER_SOURCE: u32 = 5;
/// Failed sign-ins allowed per address from all sources together within the window.
pub const MAX_FAILURES_PER_ADDRESS: u32 = 50;
pub const FAILURE_WINDOW: Duration = Duration::from_secs(15 * 60);

/// The per-replica side of the limit: how many passwords this replica checked
/// (the counts themselves are in the database).
#[derive(Default)]
pub struct SignInFailures {
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
    db: &'a Db,
    address: String,
    from_source: String,
}

/// The window's seconds left after `now`, in whole minutes (at least one).
fn minutes_left(since: i64, now: i64) -> u64 {
    let left = (since + FAILURE_WINDOW.as_secs() as i64 - now).max(0) as u64;
    left.div_ceil(60).max(1)
}

impl SignInFailures {
    /// Counts an attempt for `email` from `ip` at `now` (unix seconds), or
    /// refuses it when the source or the address has used up its tries.
    pub async fn begin<'a>(
        &self,
        db: &'a Db,
        email: &str,
        ip: IpAddr,
        now: i64,
    ) -> DbResult<Result<Attempt<'a>, Refusal>> {
        let source = Source::of(ip);
        let address = format!("address {email}");
        let from_source = format!("source {} {email}", source.key());
        let expired_before = now - FAILURE_WINDOW.as_secs() as i64;
        if let Err(since) = db.count_sign_in(&address, MAX_FAILURES_PER_ADDRESS.into(), now, expired_before).await? {
            return Ok(Err(Refusal::ForTheAddress { minutes: minutes_left(since, now) }));
        }
        if let Err(since) = db.count_sign_in(&from_source, MAX_FAILURES_PER_SOURCE.into(), now, expired_before).await? {
            db.uncount_sign_in(&address).await?;
            return Ok(Err(Refusal::FromThisSource { minutes: minutes_left(since, now) }));
        }
        Ok(Ok(Attempt { db, address, from_source }))
    }

    /// Notes one password checked by a sign-in.
    pub fn password_checked(&self) {
        self.password_checks.fetch_add(1, Ordering::Relaxed);
    }

    /// Passwords checked by sign-ins on this replica since it started.
    pub fn password_checks(&self) -> u64 {
        self.password_checks.load(Ordering::Relaxed)
    }
}

impl Attempt<'_> {
    /// The password was right: the source starts afresh for this address, and the
    /// address's count gives this attempt back (the failures of others stay).
    pub async fn succeeded(self) -> DbResult<()> {
        self.db.clear_sign_in(&self.from_source).await?;
        self.db.uncount_sign_in(&self.address).await
    }

    /// The attempt ended before its password was judged (the service failed
    /// inside): it does not count.
    pub async fn withdraw(self) -> DbResult<()> {
        self.db.uncount_sign_in(&self.from_source).await?;
        self.db.uncount_sign_in(&self.address).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::Clock;

    const A: &str = "it@a.example";
    const NOW: i64 = 1_800_000_000;

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    async fn db() -> Db {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}?mode=rwc", dir.path().join("t.db").display());
        let db = Db::connect(&url, Clock::new(0)).await.unwrap();
        std::mem::forget(dir);
        db
    }

    #[tokio::test]
    async fn a_source_gets_five_tries_and_a_right_password_starts_it_afresh() {
        let (db, limit) = (db().await, SignInFailures::default());
        for _ in 0..4 {
            drop(limit.begin(&db, A, ip("192.0.2.1"), NOW).await.unwrap().unwrap());
        }
        limit.begin(&db, A, ip("192.0.2.1"), NOW).await.unwrap().unwrap().succeeded().await.unwrap();
        for _ in 0..5 {
            drop(limit.begin(&db, A, ip("192.0.2.1"), NOW).await.unwrap().unwrap());
        }
        let refused = limit.begin(&db, A, ip("192.0.2.1"), NOW + 60).await.unwrap();
        assert!(matches!(refused, Err(Refusal::FromThisSource { minutes: 14 })));
        assert!(limit.begin(&db, A, ip("192.0.2.2"), NOW).await.unwrap().is_ok(), "another source is not locked out");
        let other = limit.begin(&db, "other@a.example", ip("192.0.2.1"), NOW).await.unwrap();
        assert!(other.is_ok(), "another address is not locked out");
        // The window passes: the source may try again.
        let later = NOW + FAILURE_WINDOW.as_secs() as i64;
        assert!(limit.begin(&db, A, ip("192.0.2.1"), later).await.unwrap().is_ok());
    }

    #[tokio::test]
    async fn a_withdrawn_attempt_does_not_count() {
        let (db, limit) = (db().await, SignInFailures::default());
        for _ in 0..20 {
            limit.begin(&db, A, ip("192.0.2.1"), NOW).await.unwrap().unwrap().withdraw().await.unwrap();
        }
        assert!(limit.begin(&db, A, ip("192.0.2.1"), NOW).await.unwrap().is_ok());
    }

    #[tokio::test]
    async fn the_address_has_a_ceiling_over_all_sources() {
        let (db, limit) = (db().await, SignInFailures::default());
        for n in 0..MAX_FAILURES_PER_ADDRESS {
            let source = IpAddr::from([198, 51, 100, (n / MAX_FAILURES_PER_SOURCE) as u8]);
            drop(limit.begin(&db, A, source, NOW).await.unwrap().unwrap());
        }
        let refused = limit.begin(&db, A, ip("203.0.113.9"), NOW).await.unwrap();
        assert!(matches!(refused, Err(Refusal::ForTheAddress { .. })));
    }

    /// Two replicas (two limits, one database) share the counts.
    #[tokio::test]
    async fn replicas_share_the_counts() {
        let db = db().await;
        let replicas = [SignInFailures::default(), SignInFailures::default(), SignInFailures::default()];
        for n in 0..MAX_FAILURES_PER_SOURCE as usize {
            drop(replicas[n % 3].begin(&db, A, ip("192.0.2.1"), NOW).await.unwrap().unwrap());
        }
        for replica in &replicas {
            let refused = replica.begin(&db, A, ip("192.0.2.1"), NOW).await.unwrap();
            assert!(matches!(refused, Err(Refusal::FromThisSource { .. })));
        }
    }
}
