//! Soft delete and immutability through the API: what a machine removes stays
//! stored, hidden from it, until the vault's window has passed; the subscription
//! brings it back; the purge removes it for good, once; an immutable vault keeps
//! young recovery points; weakening the protection takes an operator.

mod common;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::{content_name, Body, Service, Tenant};
use offsite_api::types::{Immutability, ProtectionChange, RecoveryPoint, RecoveryPointSource};

const DAY: i64 = 86_400;

/// Bytes of a repository file, different for each `seed`.
fn file_bytes(seed: u32) -> Vec<u8> {
    (0..10_000u32).map(|i| (i.wrapping_mul(2_654_435_761).wrapping_add(seed) >> 11) as u8).collect()
}

/// Uploads a file as the tenant's machine; returns its name.
fn upload(service: &Service, tenant: &Tenant, folder: &str, seed: u32) -> String {
    let bytes = file_bytes(seed);
    let name = content_name(&bytes);
    service.client(&tenant.machine_token).put_file(&tenant.machine_id, folder, &name, Bytes::from(bytes)).unwrap();
    name
}

fn remove(service: &Service, tenant: &Tenant, folder: &str, name: &str) -> u16 {
    let path = format!("/api/v1/machines/{}/repository/{folder}/{name}", tenant.machine_id);
    service.call("DELETE", &path, Some(&tenant.machine_token), &Body::Empty).status
}

fn visible(service: &Service, tenant: &Tenant, folder: &str) -> Vec<String> {
    let files = service.client(&tenant.machine_token).list_files(&tenant.machine_id, folder).unwrap();
    files.into_iter().map(|f| f.name).collect()
}

/// Where the storage keeps a file of the tenant's repository.
fn stored_path(service: &Service, tenant: &Tenant, folder: &str, name: &str) -> PathBuf {
    let root = service.data_dir().join("storage/vaults").join(&tenant.vault_id).join(&tenant.machine_id);
    match folder {
        "data" => root.join("data").join(&name[..2]).join(name),
        other => root.join(other).join(name),
    }
}

fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !done() {
        assert!(Instant::now() < deadline, "{what}: not within 20 s");
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn point(snapshot_id: &str, day: i64) -> RecoveryPoint {
    RecoveryPoint {
        snapshot_id: snapshot_id.to_string(),
        time: time::OffsetDateTime::from_unix_timestamp(1_760_000_000 + day * DAY).unwrap(),
        size: 1000,
        file_count: 3,
        source: RecoveryPointSource::Online,
    }
}

#[test]
fn a_removed_file_is_hidden_kept_and_purged_only_after_the_window() {
    hidden_kept_and_purged(Service::start());
}

#[test]
fn a_removed_file_is_hidden_kept_and_purged_only_after_the_window_on_postgresql() {
    let postgres = offsite_testbed::Postgres::start().expect("PostgreSQL for tests (run scripts/test)");
    hidden_kept_and_purged(Service::start_on(&postgres.url()));
}

fn hidden_kept_and_purged(service: Service) {
    let tenant = service.tenant("alpha");
    let pack = upload(&service, &tenant, "data", 1);
    let machine = service.client(&tenant.machine_token);

    assert_eq!(remove(&service, &tenant, "data", &pack), 204);
    // To the machine it is gone; the storage still holds it.
    assert!(!visible(&service, &tenant, "data").contains(&pack));
    assert_eq!(machine.get_file(&tenant.machine_id, "data", &pack, None).unwrap_err().status(), Some(404));
    assert_eq!(machine.file_size(&tenant.machine_id, "data", &pack).unwrap(), None);
    assert!(stored_path(&service, &tenant, "data", &pack).exists());
    // Removing it again changes nothing.
    assert_eq!(remove(&service, &tenant, "data", &pack), 204);
    let removed = service.client(&tenant.subscription_token).soft_deleted(&tenant.machine_id).unwrap();
    assert_eq!((removed.files, removed.bytes), (1, 10_000), "{removed:?}");
    let purge = removed.next_purge.unwrap() - time::OffsetDateTime::now_utc();
    assert!((13..=14).contains(&purge.whole_days()), "the default window is 14 days: {purge}");

    // A day before the window ends, rounds of the purge leave it.
    let service = service.restart_with_clock_offset(13 * DAY);
    std::thread::sleep(Duration::from_millis(800));
    assert!(stored_path(&service, &tenant, "data", &pack).exists(), "purged before its window ended");
    // After it, the purge removes it from the storage and the ledger.
    let service = service.restart_with_clock_offset(15 * DAY);
    wait_until("the purge", || !stored_path(&service, &tenant, "data", &pack).exists());
    let subscription = service.client(&tenant.subscription_token);
    wait_until("the ledger forgets it", || subscription.soft_deleted(&tenant.machine_id).unwrap().files == 0);
    // Live files were not touched.
    assert!(stored_path(&service, &tenant, "data", &tenant.file_name).exists());
}

#[test]
fn undeleting_a_recovery_point_brings_back_the_data_removed_with_or_after_it() {
    undelete_points(Service::start());
}

#[test]
fn undeleting_a_recovery_point_on_postgresql() {
    let postgres = offsite_testbed::Postgres::start().expect("PostgreSQL for tests (run scripts/test)");
    undelete_points(Service::start_on(&postgres.url()));
}

fn undelete_points(service: Service) {
    let tenant = service.tenant("alpha");
    let machine = service.client(&tenant.machine_token);
    let (old_pack, first, second, new_pack) = (
        upload(&service, &tenant, "data", 10),
        upload(&service, &tenant, "snapshots", 11),
        upload(&service, &tenant, "snapshots", 12),
        upload(&service, &tenant, "data", 13),
    );
    machine.set_recovery_points(&tenant.machine_id, &[point(&first, 1), point(&second, 2)]).unwrap();
    // A pack pruned before the first point was forgotten: the point did not need it.
    assert_eq!(remove(&service, &tenant, "data", &old_pack), 204);
    std::thread::sleep(Duration::from_millis(1100));
    // Forget both points, then prune the pack they used; the agent reports none left.
    for name in [&first, &second] {
        assert_eq!(remove(&service, &tenant, "snapshots", name), 204);
    }
    assert_eq!(remove(&service, &tenant, "data", &new_pack), 204);
    machine.set_recovery_points(&tenant.machine_id, &[]).unwrap();
    assert!(machine.recovery_points(&tenant.machine_id).unwrap().is_empty());

    // The subscription sees both points with what the machine last said of them.
    let subscription = service.client(&tenant.subscription_token);
    let removed = subscription.soft_deleted(&tenant.machine_id).unwrap();
    let ids: Vec<&str> = removed.recovery_points.iter().map(|p| p.snapshot_id.as_str()).collect();
    assert_eq!(ids, [first.as_str(), second.as_str()]);
    assert_eq!(removed.recovery_points[0].time, Some(point(&first, 1).time));
    // The machine itself cannot undo its removals.
    let refused = machine.undelete(&tenant.machine_id, &[]).unwrap_err();
    assert_eq!(refused.status(), Some(403), "{refused}");
    let unknown = subscription.undelete(&tenant.machine_id, &[content_name(b"never stored")]).unwrap_err();
    assert_eq!(unknown.status(), Some(404), "{unknown}");

    let back = subscription.undelete(&tenant.machine_id, std::slice::from_ref(&first)).unwrap();
    assert_eq!(back.recovery_points, std::slice::from_ref(&first));
    assert_eq!(back.files, 2, "the point and the pack removed after it: {back:?}");
    let snapshots = visible(&service, &tenant, "snapshots");
    assert!(snapshots.contains(&first) && !snapshots.contains(&second), "{snapshots:?}");
    let packs = visible(&service, &tenant, "data");
    assert!(packs.contains(&new_pack) && !packs.contains(&old_pack), "{packs:?}");
    let points = machine.recovery_points(&tenant.machine_id).unwrap();
    assert_eq!(points.iter().map(|p| p.snapshot_id.as_str()).collect::<Vec<_>>(), [first.as_str()]);

    // Everything else: the second point and the old pack.
    let rest = subscription.undelete(&tenant.machine_id, &[]).unwrap();
    assert_eq!((rest.files, rest.recovery_points.clone()), (2, vec![second.clone()]));
    assert_eq!(subscription.soft_deleted(&tenant.machine_id).unwrap().files, 0);
}

#[test]
fn the_same_bytes_stored_again_are_live_and_escape_the_purge() {
    let service = Service::start();
    let tenant = service.tenant("alpha");
    let pack = upload(&service, &tenant, "data", 20);
    assert_eq!(remove(&service, &tenant, "data", &pack), 204);
    assert_eq!(upload(&service, &tenant, "data", 20), pack);
    assert!(visible(&service, &tenant, "data").contains(&pack));
    let service = service.restart_with_clock_offset(30 * DAY);
    std::thread::sleep(Duration::from_millis(800));
    assert!(stored_path(&service, &tenant, "data", &pack).exists(), "a live file was purged");
    assert!(visible(&service, &tenant, "data").contains(&pack));
}

#[test]
fn an_immutable_vault_keeps_young_recovery_points_and_a_lock_is_final() {
    let service = Service::start();
    let tenant = service.tenant("alpha");
    let subscription = service.client(&tenant.subscription_token);
    let snapshot = upload(&service, &tenant, "snapshots", 30);
    let pack = upload(&service, &tenant, "data", 31);

    let enable = ProtectionChange { immutability: Some(Immutability::Enabled), ..Default::default() };
    let enabled = subscription.change_vault_protection(&tenant.vault_id, &enable).unwrap();
    assert!(enabled.request.is_none(), "enabling is not a weakening");
    assert_eq!(enabled.protection.immutability, Immutability::Enabled);
    let path = format!("/api/v1/machines/{}/repository/snapshots/{snapshot}", tenant.machine_id);
    let refused = service.call("DELETE", &path, Some(&tenant.machine_token), &Body::Empty);
    assert_eq!(refused.status, 403, "{}", refused.text());
    assert!(refused.text().contains("immutable") && refused.text().contains("30 days"), "{}", refused.text());
    assert!(visible(&service, &tenant, "snapshots").contains(&snapshot));
    // A pack goes (prune must work), but is kept for the minimum retention.
    assert_eq!(remove(&service, &tenant, "data", &pack), 204);
    let removed = subscription.soft_deleted(&tenant.machine_id).unwrap();
    let kept = removed.last_purge.unwrap() - time::OffsetDateTime::now_utc();
    assert!(kept.whole_days() >= 29, "kept {kept} although the vault keeps 30 days");

    // Locking wants a confirmation, and then nothing undoes it.
    let lock = ProtectionChange { immutability: Some(Immutability::Locked), ..Default::default() };
    let unconfirmed = subscription.change_vault_protection(&tenant.vault_id, &lock).unwrap_err();
    assert_eq!(unconfirmed.status(), Some(400), "{unconfirmed}");
    let confirmed = ProtectionChange { confirm_lock: true, ..lock };
    subscription.change_vault_protection(&tenant.vault_id, &confirmed).unwrap();
    for undo in [
        ProtectionChange { immutability: Some(Immutability::Disabled), ..Default::default() },
        ProtectionChange { soft_delete_days: Some(0), ..Default::default() },
        ProtectionChange { min_retention_days: Some(7), ..Default::default() },
    ] {
        for client in [&subscription, &service.operator()] {
            let refused = client.change_vault_protection(&tenant.vault_id, &undo).unwrap_err();
            assert_eq!(refused.status(), Some(409), "{undo:?}: {refused}");
        }
    }
    // The request made before the lock cannot slip through either.
    let late = service.operator().decide_protection_request(&tenant.protection_request_id, true, None).unwrap_err();
    assert_eq!(late.status(), Some(409), "{late}");
    // Past the minimum retention, the point may go.
    let service = service.restart_with_clock_offset(31 * DAY);
    assert_eq!(remove(&service, &tenant, "snapshots", &snapshot), 204);
}

#[test]
fn weakening_the_protection_waits_for_an_operator() {
    let service = Service::start();
    let tenant = service.tenant("alpha");
    let subscription = service.client(&tenant.subscription_token);
    let operator = service.operator();

    // The tenant's own request to turn soft delete off is pending; nothing changed.
    let protection = subscription.vault_protection(&tenant.vault_id).unwrap();
    assert_eq!(protection.soft_delete_days, Some(14));
    assert_eq!(protection.requests.len(), 1);
    let shorter = ProtectionChange { soft_delete_days: Some(14), ..Default::default() };
    assert!(subscription.change_vault_protection(&tenant.vault_id, &shorter).unwrap().request.is_none());
    let longer = ProtectionChange { soft_delete_days: Some(60), ..Default::default() };
    subscription.change_vault_protection(&tenant.vault_id, &longer).unwrap();
    // (Times are kept to the second: a second later, so the timeline's order is known.)
    std::thread::sleep(Duration::from_millis(1100));
    let back = ProtectionChange { soft_delete_days: Some(20), ..Default::default() };
    let asked = subscription.change_vault_protection(&tenant.vault_id, &back).unwrap();
    assert_eq!(asked.protection.soft_delete_days, Some(60), "a shorter window waits for approval");
    // The operator alone cannot weaken it; a machine cannot even ask.
    assert_eq!(operator.change_vault_protection(&tenant.vault_id, &back).unwrap_err().status(), Some(403));
    let machine = service.client(&tenant.machine_token);
    assert_eq!(machine.change_vault_protection(&tenant.vault_id, &back).unwrap_err().status(), Some(404));
    // The subscription cannot approve its own request.
    let own = subscription.decide_protection_request(&tenant.protection_request_id, true, None).unwrap_err();
    assert_eq!(own.status(), Some(403), "{own}");

    let pending = operator.protection_requests().unwrap();
    assert_eq!(pending.len(), 2, "{pending:?}");
    operator.decide_protection_request(&asked.request.unwrap().id, false, None).unwrap();
    let approved = operator.decide_protection_request(&tenant.protection_request_id, true, None).unwrap();
    assert_eq!(approved.decided_by.as_deref(), Some("operator"));
    let protection = subscription.vault_protection(&tenant.vault_id).unwrap();
    assert_eq!(protection.soft_delete_days, None, "{protection:?}");
    let states: Vec<String> = protection.requests.iter().map(|r| r.state.to_string()).collect();
    assert_eq!(states, ["rejected", "approved"], "the timeline, newest first");

    // Without soft delete, a removal is immediate.
    let pack = upload(&service, &tenant, "data", 40);
    assert_eq!(remove(&service, &tenant, "data", &pack), 204);
    assert!(!stored_path(&service, &tenant, "data", &pack).exists());
}

#[test]
fn removing_most_recovery_points_in_a_day_raises_one_alert() {
    let service = Service::start();
    let tenant = service.tenant("alpha");
    let snapshots: Vec<String> = (0..4).map(|n| upload(&service, &tenant, "snapshots", 50 + n)).collect();
    assert_eq!(remove(&service, &tenant, "snapshots", &snapshots[0]), 204);
    std::thread::sleep(Duration::from_millis(800));
    let subscription = service.client(&tenant.subscription_token);
    assert!(subscription.alerts(&tenant.subscription_id).unwrap().is_empty(), "a quarter is not a mass deletion");

    for name in &snapshots[1..3] {
        assert_eq!(remove(&service, &tenant, "snapshots", name), 204);
    }
    wait_until("the alert", || !subscription.alerts(&tenant.subscription_id).unwrap().is_empty());
    std::thread::sleep(Duration::from_millis(600));
    let alerts = subscription.alerts(&tenant.subscription_id).unwrap();
    assert_eq!(alerts.len(), 1, "one alert a machine a day: {alerts:?}");
    assert!(alerts[0].message.contains("removed 3 of its 4 recovery points"), "{}", alerts[0].message);
    assert_eq!(alerts[0].machine_id.as_deref(), Some(tenant.machine_id.as_str()));
    let other = service.tenant("bravo");
    assert!(service.client(&other.subscription_token).alerts(&other.subscription_id).unwrap().is_empty());
    let metrics = service.call("GET", "/metrics", Some(&service.operator_token), &Body::Empty).text();
    assert!(metrics.contains("offsite_mass_deletion_alerts 1"), "{metrics}");
}

/// Replicas purging at once: each file is claimed by exactly one of them, and a
/// claim whose replica died is taken over once it is old.
#[test]
fn replicas_purging_at_once_claim_each_file_once() {
    let service = Service::start();
    let tenant = service.tenant("alpha");
    let packs: Vec<String> = (0..40).map(|n| upload(&service, &tenant, "data", 100 + n)).collect();
    for pack in &packs {
        assert_eq!(remove(&service, &tenant, "data", pack), 204);
    }
    let url = format!("sqlite://{}", service.data_dir().join("offsite.db").display());
    let rt = tokio::runtime::Runtime::new().unwrap();
    let later = |days: i64| offsite_server::clock::Clock::new(days * DAY);
    // Three replicas whose clocks say the window has passed; none finishes its purges.
    let claimed: Vec<Vec<String>> = rt.block_on(async {
        let replicas: Vec<_> = (0..3)
            .map(|_| {
                let url = url.clone();
                tokio::spawn(async move {
                    let db = offsite_server::db::Db::connect(&url, later(15)).await.unwrap();
                    let mut mine = Vec::new();
                    loop {
                        let claims = db.claim_purges(db.clock().unix(), 7).await.unwrap();
                        if claims.is_empty() {
                            break mine;
                        }
                        mine.extend(claims.into_iter().map(|c| c.name));
                    }
                })
            })
            .collect();
        let mut claimed = Vec::new();
        for replica in replicas {
            claimed.push(replica.await.unwrap());
        }
        claimed
    });
    let mut all: Vec<&String> = claimed.iter().flatten().collect();
    all.sort();
    let total = all.len();
    all.dedup();
    assert_eq!((total, all.len()), (packs.len(), packs.len()), "each file claimed once: {claimed:?}");
    rt.block_on(async {
        // Five minutes on, the claims still hold; eleven, they are taken over.
        let soon = offsite_server::db::Db::connect(&url, later(15)).await.unwrap();
        assert!(soon.claim_purges(soon.clock().unix() + 300, 100).await.unwrap().is_empty());
        let taken = soon.claim_purges(soon.clock().unix() + 660, 100).await.unwrap();
        assert_eq!(taken.len(), packs.len());
    });
}
