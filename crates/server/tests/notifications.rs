//! Notifications against a real SMTP server (aiosmtpd) and a real HTTP receiver:
//! a failed backup, a missed one, an import job's steps, a mass deletion and a
//! request to weaken a vault's protection reach the subscription's channels once
//! each, webhooks signed; a receiver that fails is retried.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::{content_name, running_backup, Service, SharedBackends};
use offsite_api::types::*;

/// A request as the receiver saw it: its headers (names lowercased) and body.
type Seen = (Vec<(String, String)>, String);

/// An HTTP receiver on loopback that records each request's headers and body,
/// answering 500 to the first `fail_first` requests, 200 after.
struct Receiver {
    url: String,
    seen: Arc<Mutex<Vec<Seen>>>,
}

impl Receiver {
    /// A receiver that fails the first `fail_first` deliveries of each event.
    fn start(fail_first: usize) -> Receiver {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}/hooks/offsite", listener.local_addr().unwrap());
        let seen = Arc::new(Mutex::new(Vec::new()));
        let record = seen.clone();
        std::thread::spawn(move || {
            // Deliveries answered, per event: each event's first `fail_first` fail,
            // whatever order the service sends several events in.
            let mut answered: std::collections::HashMap<String, usize> = Default::default();
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { continue };
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let mut headers = Vec::new();
                let mut line = String::new();
                reader.read_line(&mut line).unwrap();
                loop {
                    line.clear();
                    reader.read_line(&mut line).unwrap();
                    let trimmed = line.trim_end();
                    if trimmed.is_empty() {
                        break;
                    }
                    if let Some((name, value)) = trimmed.split_once(':') {
                        headers.push((name.trim().to_ascii_lowercase(), value.trim().to_string()));
                    }
                }
                let length: usize =
                    headers.iter().find(|(n, _)| n == "content-length").map(|(_, v)| v.parse().unwrap()).unwrap_or(0);
                let mut body = vec![0u8; length];
                reader.read_exact(&mut body).unwrap();
                let event = serde_json::from_slice::<serde_json::Value>(&body)
                    .ok()
                    .and_then(|b| b["event"].as_str().map(str::to_string))
                    .unwrap_or_default();
                let count = answered.entry(event).or_default();
                *count += 1;
                let status = if *count <= fail_first { "500 Internal Server Error" } else { "200 OK" };
                let _ = write!(stream, "HTTP/1.1 {status}\r\ncontent-length: 0\r\nconnection: close\r\n\r\n");
                record.lock().unwrap().push((headers, String::from_utf8(body).unwrap()));
            }
        });
        Receiver { url, seen }
    }

    fn bodies(&self) -> Vec<serde_json::Value> {
        self.seen.lock().unwrap().iter().map(|(_, body)| serde_json::from_str(body).unwrap()).collect()
    }
}

fn wait_for(what: &str, limit: Duration, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !done() {
        assert!(Instant::now() < deadline, "{what}: not within {limit:?}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn kinds(receiver: &Receiver) -> Vec<String> {
    receiver.bodies().iter().map(|b| b["kind"].as_str().unwrap().to_string()).collect()
}

#[test]
fn events_reach_email_and_a_signed_webhook_once_each() {
    let smtp = offsite_testbed::SmtpServer::start().expect("aiosmtpd for tests (run scripts/test)");
    let service = Service::start_with_smtp(&smtp.url());
    let tenant = service.tenant("alpha");
    let subscription = service.client(&tenant.subscription_token);
    // The fixture's own webhook (nothing listens there) is not this test's.
    subscription.remove_notification_channel(&tenant.subscription_id, &tenant.notification_channel_id).unwrap();
    let receiver = Receiver::start(0);
    let hook = CreateNotificationChannel { webhook_url: Some(receiver.url.clone()), ..Default::default() };
    let created = subscription.add_notification_channel(&tenant.subscription_id, &hook).unwrap();
    let secret = created.webhook_secret.expect("a webhook's secret, once");
    let mail = CreateNotificationChannel { email: Some("backup-team@alpha.example".into()), ..Default::default() };
    subscription.add_notification_channel(&tenant.subscription_id, &mail).unwrap();
    // Another tenant's channel hears nothing of alpha.
    let other = service.tenant("bravo");
    let bravo_receiver = Receiver::start(0);
    let bravo_hook = CreateNotificationChannel { webhook_url: Some(bravo_receiver.url.clone()), ..Default::default() };
    service.client(&other.subscription_token).add_notification_channel(&other.subscription_id, &bravo_hook).unwrap();

    // A failed backup.
    let machine = service.client(&tenant.machine_token);
    let job = machine.create_job(&tenant.machine_id, &running_backup()).unwrap();
    let failed = JobReport {
        state: JobState::Failed,
        errors: vec!["cannot read /srv/alpha: permission denied".into()],
        ..running_backup()
    };
    machine.update_job(&tenant.machine_id, &job.id, &failed).unwrap();
    // A mass deletion: three of the machine's four recovery points removed.
    let snapshots: Vec<String> = (0..4u8)
        .map(|n| {
            let bytes = vec![n; 1000];
            let name = content_name(&bytes);
            machine.put_file(&tenant.machine_id, "snapshots", &name, Bytes::from(bytes)).unwrap();
            name
        })
        .collect();
    for name in &snapshots[..3] {
        machine.delete_file(&tenant.machine_id, "snapshots", name).unwrap();
    }
    // The import job's shipping details.
    let app = service.app_client(&tenant.application);
    let shipping = ShippingDetails {
        carrier: "DHL".into(),
        tracking_number: "JD0001234".into(),
        drive_count: 1,
        ship_date: "2026-11-02".into(),
        return_address: "Ann Example\n2 Return Lane\nHometown".into(),
        contact: "ann@alpha.example".into(),
    };
    app.set_import_job_shipping(&tenant.import_job_id, &shipping).unwrap();

    let wanted = ["backup_failed", "mass_deletion", "import_job_shipped"];
    wait_for("the webhook's messages", Duration::from_secs(30), || {
        let seen = kinds(&receiver);
        wanted.iter().all(|k| seen.iter().any(|s| s == k))
    });
    wait_for("the e-mails", Duration::from_secs(30), || smtp.messages().len() >= wanted.len());
    std::thread::sleep(Duration::from_millis(800));

    // Each event once, signed over its time and body with the channel's secret.
    let seen = kinds(&receiver);
    for kind in wanted {
        assert_eq!(seen.iter().filter(|s| *s == kind).count(), 1, "{kind} once: {seen:?}");
    }
    for (headers, body) in receiver.seen.lock().unwrap().iter() {
        let signature = &headers.iter().find(|(n, _)| n == "x-offsite-signature").expect("a signature").1;
        let t: i64 = signature.strip_prefix("t=").unwrap().split(',').next().unwrap().parse().unwrap();
        assert_eq!(signature, &offsite_server::notify::webhook::signature(&secret, t, body));
        assert!((time::OffsetDateTime::now_utc().unix_timestamp() - t).abs() < 120);
    }
    let failed = receiver.bodies().into_iter().find(|b| b["kind"] == "backup_failed").unwrap();
    assert_eq!(failed["subscription_id"], tenant.subscription_id.as_str());
    assert!(failed["subject"].as_str().unwrap().contains("permission denied"), "{failed}");
    let mails = smtp.messages();
    assert!(mails.iter().all(|m| m.contains("To: backup-team@alpha.example")), "{mails:?}");
    assert!(mails.iter().any(|m| m.contains("Subject: [offsite] The backup of alpha-web01 failed")), "{mails:?}");
    // The subscription's list shows them sent; bravo heard nothing of alpha.
    let sent = subscription.notifications(&tenant.subscription_id).unwrap();
    let wanted_sent = sent.iter().filter(|n| wanted.contains(&serde_json::to_value(n.kind).unwrap().as_str().unwrap()));
    assert!(wanted_sent.clone().count() == 2 * wanted.len(), "one per channel: {sent:?}");
    assert!(wanted_sent.into_iter().all(|n| n.state == NotificationState::Sent), "{sent:?}");
    let alpha_ids = [tenant.machine_id.as_str(), tenant.subscription_id.as_str(), tenant.import_job_id.as_str()];
    for body in bravo_receiver.bodies() {
        assert!(alpha_ids.iter().all(|id| !body.to_string().contains(id)), "bravo heard of alpha: {body}");
    }
    let bravo_sees = service.client(&other.subscription_token).notifications(&other.subscription_id).unwrap();
    assert!(bravo_sees.iter().all(|n| n.details.to_string().find(&tenant.machine_id).is_none()));
}

#[test]
fn a_failing_receiver_is_retried_and_a_missed_backup_is_reported() {
    let service = Service::start();
    let tenant = service.tenant("alpha");
    let subscription = service.client(&tenant.subscription_token);
    // The fixture's own webhook (nothing listens there) is not this test's.
    subscription.remove_notification_channel(&tenant.subscription_id, &tenant.notification_channel_id).unwrap();
    // No SMTP relay: an e-mail channel is refused, naming what is missing.
    let mail = CreateNotificationChannel { email: Some("ops@alpha.example".into()), ..Default::default() };
    let refused = subscription.add_notification_channel(&tenant.subscription_id, &mail).unwrap_err();
    assert_eq!(refused.status(), Some(409));
    assert!(refused.to_string().contains("--smtp-url"), "{refused}");
    let both = CreateNotificationChannel {
        email: Some("ops@alpha.example".into()),
        webhook_url: Some("https://hooks.example.com/x".into()),
        ..Default::default()
    };
    assert_eq!(subscription.add_notification_channel(&tenant.subscription_id, &both).unwrap_err().status(), Some(400));

    let receiver = Receiver::start(1);
    let hook = CreateNotificationChannel {
        webhook_url: Some(receiver.url.clone()),
        missed_backup_days: Some(1),
        ..Default::default()
    };
    subscription.add_notification_channel(&tenant.subscription_id, &hook).unwrap();
    // Two days on, the machine (its last point is from the fixture, long ago) has
    // missed its backups; the first attempt fails, the retry 30 s later is seen
    // here sooner by moving the clock on again.
    let service = service.restart_with_clock_offset(2 * 86_400);
    let subscription = service.client(&tenant.subscription_token);
    let missed_seen = || receiver.bodies().iter().any(|b| b["kind"] == "backup_missed");
    wait_for("the first attempt", Duration::from_secs(20), missed_seen);
    let pending = subscription.notifications(&tenant.subscription_id).unwrap();
    let missed = pending.iter().find(|n| n.kind == NotificationKind::BackupMissed).expect("a missed backup");
    assert_eq!((missed.state, missed.attempts), (NotificationState::Pending, 1), "{missed:?}");
    assert!(missed.last_error.as_deref().is_some_and(|e| e.contains("500")), "{missed:?}");
    let service = service.restart_with_clock_offset(2 * 86_400 + 60);
    let subscription = service.client(&tenant.subscription_token);
    wait_for("the retry", Duration::from_secs(20), || {
        subscription.notifications(&tenant.subscription_id).unwrap().iter().any(|n| n.state == NotificationState::Sent)
    });
    let bodies = receiver.bodies();
    assert!(bodies.iter().all(|b| b["kind"] == "backup_missed"), "{bodies:?}");
    // The service before the clock moved may have sent the same day's event
    // already (another event key): this event's deliveries are two.
    let ours: Vec<_> = bodies.iter().filter(|b| b["event"] == missed.event_key.as_str()).collect();
    assert_eq!(ours.len(), 2, "one failed attempt, one delivery: {bodies:?}");
    assert_eq!(ours[0]["details"]["machine_id"], tenant.machine_id.as_str());
}

/// Background work on three replicas of one service (one PostgreSQL): an import
/// job past its arrival deadline that nobody reads is closed by the first
/// replica's maintenance round, once, and its subscription told once; a
/// notification a replica claimed and never delivered (it died) is delivered by
/// another once the claim is old, once. No event reaches the receiver twice.
#[test]
fn background_work_on_three_replicas_runs_once_and_outlives_a_replica_that_dies() {
    const DAY: i64 = 86_400;
    let shared = SharedBackends::start();
    // A replica that runs no background work: it only queues what requests cause.
    let front = shared.replica(0, false);
    let tenant = front.tenant("alpha");
    let subscription = front.client(&tenant.subscription_token);
    subscription.remove_notification_channel(&tenant.subscription_id, &tenant.notification_channel_id).unwrap();
    let receiver = Receiver::start(0);
    let hook = CreateNotificationChannel { webhook_url: Some(receiver.url.clone()), ..Default::default() };
    subscription.add_notification_channel(&tenant.subscription_id, &hook).unwrap();
    let jobs: Vec<String> = (0..3)
        .map(|n| {
            let job = common::new_job(&tenant, &format!("alpha-late-{n}"), &[&format!("ee0000000000010{n}")]);
            let job = subscription.create_import_job(&tenant.subscription_id, &job).unwrap();
            let shipping = ShippingDetails {
                carrier: "UPS".into(),
                tracking_number: format!("1Z999AC{n}"),
                drive_count: 1,
                ship_date: "2026-11-02".into(),
                return_address: "Ann Example\n2 Return Lane\nHometown".into(),
                contact: "ann@alpha.example".into(),
            };
            subscription.set_import_job_shipping(&job.id, &shipping).unwrap();
            job.id
        })
        .collect();
    drop(front);

    // Fifteen days on, a replica claims the three "shipped" messages and dies
    // before delivering them.
    let rt = tokio::runtime::Runtime::new().unwrap();
    let dead = rt.block_on(async {
        let clock = offsite_server::clock::Clock::new(15 * DAY);
        let db = offsite_server::db::Db::connect(shared.database_url(), clock).await.unwrap();
        db.claim_notifications(db.clock().unix(), 100).await.unwrap()
    });
    assert_eq!(dead.len(), 3, "the dying replica held the three shipped messages: {dead:?}");

    // Three replicas, their maintenance every 200 ms: each overdue job is closed
    // once and each closing told once; the dead replica's claim still holds.
    let replicas: Vec<Service> = (0..3).map(|_| shared.replica(15 * DAY, true)).collect();
    let expired = |receiver: &Receiver| kinds(receiver).iter().filter(|k| *k == "import_job_expired").count();
    wait_for("the closings' messages", Duration::from_secs(30), || expired(&receiver) == jobs.len());
    std::thread::sleep(Duration::from_secs(2));
    for (n, job) in jobs.iter().enumerate() {
        let view = replicas[n].client(&tenant.subscription_token).import_job(job).unwrap();
        assert_eq!(view.state, ImportJobState::Closed, "{view:?}");
        let closings: Vec<_> = view.timeline.iter().filter(|e| e.state == "closed").collect();
        assert_eq!(closings.len(), 1, "closed once: {:?}", view.timeline);
        assert_eq!(closings[0].actor, "service (deadline)");
    }
    assert_eq!(expired(&receiver), jobs.len(), "{:?}", kinds(&receiver));
    assert!(!kinds(&receiver).iter().any(|k| k == "import_job_shipped"), "a live claim is not taken over");

    // Six minutes later the claim is old: one replica delivers each message.
    let mut replicas = replicas;
    let first = replicas.remove(0).restart_with_clock_offset(15 * DAY + 360);
    let shipped = |receiver: &Receiver| kinds(receiver).iter().filter(|k| *k == "import_job_shipped").count();
    wait_for("the dead replica's messages", Duration::from_secs(30), || shipped(&receiver) == jobs.len());
    std::thread::sleep(Duration::from_secs(1));
    let mut events: Vec<String> =
        receiver.bodies().iter().map(|b| b["event"].as_str().unwrap_or_default().to_string()).collect();
    let delivered = events.len();
    events.sort();
    events.dedup();
    assert_eq!(events.len(), delivered, "no event reached the receiver twice: {:?}", kinds(&receiver));
    drop((first, replicas));
}
