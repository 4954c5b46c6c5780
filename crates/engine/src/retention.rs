//! Retention: which snapshots a `forget` policy keeps, and why.
//!
//! Snapshots are grouped by host and paths; within a group, newest first, a rule
//! "keep N daily" keeps the newest snapshot of each of the N most recent days that
//! have one (likewise weekly, monthly, yearly), and "keep last N" the N newest.

use serde::Serialize;
use time::OffsetDateTime;

use crate::id::Id;
use crate::repofile::snapshot::Snapshot;

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct RetentionPolicy {
    pub keep_last: u32,
    pub keep_daily: u32,
    pub keep_weekly: u32,
    pub keep_monthly: u32,
    pub keep_yearly: u32,
}

impl RetentionPolicy {
    pub fn is_empty(&self) -> bool {
        *self == RetentionPolicy::default()
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Decision {
    pub id: Id,
    #[serde(with = "time::serde::rfc3339")]
    pub time: OffsetDateTime,
    pub keep: bool,
    /// The rules that keep it ("last", "daily", …).
    pub reasons: Vec<&'static str>,
}

type Bucket = fn(OffsetDateTime) -> (i32, u32);

/// Decides for every snapshot. An empty policy keeps everything: forgetting all
/// snapshots is never what someone meant.
pub fn decide(snapshots: &[(Id, Snapshot)], policy: &RetentionPolicy) -> Vec<Decision> {
    // Snapshots of the same host and paths form one history.
    type Group<'a> = Vec<&'a (Id, Snapshot)>;
    let mut groups: std::collections::BTreeMap<(String, Vec<String>), Group> = Default::default();
    for entry in snapshots {
        groups.entry((entry.1.hostname.clone(), entry.1.path_set())).or_default().push(entry);
    }
    let rules: [(&'static str, u32, Bucket); 4] = [
        ("daily", policy.keep_daily, |t| (t.year(), t.ordinal() as u32)),
        ("weekly", policy.keep_weekly, |t| {
            let (year, week, _) = t.to_iso_week_date();
            (year, week as u32)
        }),
        ("monthly", policy.keep_monthly, |t| (t.year(), t.month() as u32)),
        ("yearly", policy.keep_yearly, |t| (t.year(), 0)),
    ];
    let mut out = Vec::new();
    for (_, mut group) in groups {
        group.sort_by_key(|entry| std::cmp::Reverse(entry.1.time));
        let mut last_bucket: [Option<(i32, u32)>; 4] = [None; 4];
        let mut kept_in_rule = [0u32; 4];
        for (position, (id, snapshot)) in group.into_iter().enumerate() {
            let mut reasons = Vec::new();
            if policy.is_empty() {
                reasons.push("no policy");
            }
            if (position as u32) < policy.keep_last {
                reasons.push("last");
            }
            for (r, (name, count, bucket)) in rules.iter().enumerate() {
                let b = bucket(snapshot.time);
                if kept_in_rule[r] < *count && last_bucket[r] != Some(b) {
                    last_bucket[r] = Some(b);
                    kept_in_rule[r] += 1;
                    reasons.push(name);
                }
            }
            out.push(Decision { id: *id, time: snapshot.time, keep: !reasons.is_empty(), reasons });
        }
    }
    out.sort_by_key(|d| d.time);
    out
}

/// Applies a policy: removes the snapshot files it does not keep (unless `dry_run`).
/// Data is freed later by `prune`.
pub fn forget(
    repo: &crate::repository::Repository,
    policy: &RetentionPolicy,
    dry_run: bool,
) -> crate::error::Result<Vec<Decision>> {
    if policy.is_empty() {
        return Err(crate::error::Error::Refused(
            "no --keep-* rule was given; forget refuses to remove every snapshot".into(),
        ));
    }
    let _lock = crate::lock::RepositoryLock::acquire(repo, true, "forget")?;
    let decisions = decide(&repo.snapshots()?, policy);
    if !dry_run {
        for decision in decisions.iter().filter(|d| !d.keep) {
            repo.backend().remove(crate::backend::FileKind::Snapshot, &decision.id.to_hex())?;
        }
    }
    Ok(decisions)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::repofile::snapshot::BackupSummary;

    fn snap(day: u32, hour: u8) -> (Id, Snapshot) {
        let time = time::macros::datetime!(2026-01-01 00:00 UTC)
            + time::Duration::days(day as i64)
            + time::Duration::hours(hour as i64);
        (
            Id::random(),
            Snapshot {
                time,
                tree: Id::default(),
                paths: vec!["/data".into()],
                hostname: "h".into(),
                username: "u".into(),
                tags: vec![],
                parent: None,
                program_version: "t".into(),
                summary: BackupSummary::default(),
            },
        )
    }

    #[test]
    fn daily_keeps_newest_of_each_day() {
        let snaps: Vec<_> = (0..5).flat_map(|d| [snap(d, 1), snap(d, 20)]).collect();
        let decisions = decide(&snaps, &RetentionPolicy { keep_daily: 3, ..Default::default() });
        let kept: Vec<_> = decisions.iter().filter(|d| d.keep).map(|d| d.time).collect();
        assert_eq!(kept.len(), 3);
        assert!(kept.iter().all(|t| t.hour() == 20));
        assert_eq!(kept[0].day(), 3);
    }

    #[test]
    fn keep_last_and_empty_policy() {
        let snaps: Vec<_> = (0..4).map(|d| snap(d, 0)).collect();
        let d = decide(&snaps, &RetentionPolicy { keep_last: 1, ..Default::default() });
        assert_eq!(d.iter().filter(|d| d.keep).count(), 1);
        assert!(d.last().unwrap().keep);
        assert!(decide(&snaps, &RetentionPolicy::default()).iter().all(|d| d.keep));
    }

    #[test]
    fn monthly_and_yearly_count_distinct_periods() {
        let snaps: Vec<_> = (0..400).step_by(10).map(|d| snap(d, 0)).collect();
        let d = decide(&snaps, &RetentionPolicy { keep_monthly: 6, keep_yearly: 2, ..Default::default() });
        let monthly = d.iter().filter(|d| d.reasons.contains(&"monthly")).count();
        let yearly = d.iter().filter(|d| d.reasons.contains(&"yearly")).count();
        assert_eq!((monthly, yearly), (6, 2));
    }
}
