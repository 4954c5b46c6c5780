//! The chain of custody of a job's drives: every event a drive goes through
//! (prepared, shipped, received, ingested or written, returned, wiped,
//! destroyed) is signed by whoever handled it and names the hash of the event
//! before, so that a missing, re-ordered, altered or forged event is found and
//! named by anyone holding the log and the actors' public keys.
//!
//! This module is the whole of the rules, without HTTP: the canonical encoding
//! and its hash ([`canonical`], [`event_hash`]), signing ([`CustodySigner`],
//! [`seal`]), verification ([`verify`], which names each problem as a
//! [`CustodyProblem`] and says who handled each drive when), and the order a
//! drive's events must keep ([`check_order`]). The service checks each event it
//! appends with the same functions and the portal shows [`verify`]'s report;
//! `offsite diskprep --verify-custody` runs it on the client. [`Recorder`]
//! appends an event through any [`CustodyService`], retrying when another
//! appender got there first. The format is specified in docs/CUSTODY.md.
//!
//! ```
//! use offsite_seeding::custody::{seal, verify, Draft, StationKey};
//! use offsite_api::types::CustodyEventKind;
//!
//! let key = StationKey::generate();
//! let signer = key.signer("stn_1");
//! let at = time::OffsetDateTime::from_unix_timestamp(1_800_000_000).unwrap();
//! let draft = Draft::new("import", "imp_1", Some("00aa11bb".into()), CustodyEventKind::Received, at, "");
//! let event = seal(&draft, &[], &signer).unwrap();
//! let report = verify("import", "imp_1", &[event], &[key.public_record("stn_1", "station stn_1", at)]);
//! assert!(report.verified(), "{:?}", report.problems);
//! ```

use std::collections::BTreeMap;
use std::fmt;

use base64::Engine;
use ring::signature::{self, Ed25519KeyPair, KeyPair, UnparsedPublicKey};
use time::OffsetDateTime;

use offsite_api::application_auth::Signer as ApplicationSigner;
use offsite_api::client::ApiResult;
use offsite_api::types::{CustodyEvent, CustodyEventKind, CustodyKey, CustodyLog};
use offsite_api::Client;

/// The first line of every event's canonical encoding.
pub const ENCODING_CONTEXT: &str = "offsite-custody-event-v1";
/// The first line of the message an actor signs (followed by the event's hash).
pub const SIGNATURE_CONTEXT: &str = "offsite-custody-signature-v1";
/// The `prev` of a log's first event.
pub const ZERO_HASH: &str = "0000000000000000000000000000000000000000000000000000000000000000";
/// The job kind of import jobs' logs.
pub const IMPORT: &str = "import";
/// The job kind of export jobs' logs.
pub const EXPORT: &str = "export";
/// The longest `details` an event may carry, in bytes.
pub const MAX_DETAILS: usize = 1000;
/// How far an appended event's time may be from the service's clock.
pub const MAX_SKEW_SECONDS: i64 = 300;
pub const ECDSA_P256: &str = "ecdsa-p256-sha256";
pub const ED25519: &str = "ed25519";

/// The actor string of an application's certificate.
pub fn application_actor(application_id: &str, thumbprint: &str) -> String {
    format!("application:{application_id}:{}", thumbprint.to_ascii_uppercase())
}

/// The actor string of a station credential.
pub fn station_actor(credential_id: &str) -> String {
    format!("station:{credential_id}")
}

/// Whose kind of actor may record an event of `kind`: on an import job the
/// application records what happens on the customer's side (`prepared`,
/// `shipped`), a station what happens at the datacenter.
fn application_may_record(kind: CustodyEventKind) -> bool {
    matches!(kind, CustodyEventKind::Prepared | CustodyEventKind::Shipped)
}

/// The event kinds a datacenter's station records on an import job.
fn station_may_record(kind: CustodyEventKind) -> bool {
    !application_may_record(kind)
}

/// Whether `actor` (an actor string) may record `kind` in a log of `job_kind`.
/// An export job's drives are all the datacenter's until they leave: its
/// station records `written`, `shipped` and, for a drive that never leaves,
/// `wiped` or `destroyed`; the customer's side holds no signing key for them.
pub fn may_record(job_kind: &str, actor: &str, kind: CustodyEventKind) -> bool {
    let station = actor.starts_with("station:");
    let application = actor.starts_with("application:");
    match job_kind {
        IMPORT => (application && application_may_record(kind)) || (station && station_may_record(kind)),
        EXPORT => {
            station
                && matches!(
                    kind,
                    CustodyEventKind::Written
                        | CustodyEventKind::Shipped
                        | CustodyEventKind::Wiped
                        | CustodyEventKind::Destroyed
                )
        }
        _ => false,
    }
}

// ------------------------------------------------------------------ encoding

/// An event before it is chained and signed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Draft {
    pub job_kind: String,
    pub job_id: String,
    pub drive_id: Option<String>,
    pub kind: CustodyEventKind,
    /// Whole seconds (anything finer is dropped).
    pub at: OffsetDateTime,
    pub details: String,
}

impl Draft {
    pub fn new(
        job_kind: &str,
        job_id: &str,
        drive_id: Option<String>,
        kind: CustodyEventKind,
        at: OffsetDateTime,
        details: &str,
    ) -> Draft {
        Draft {
            job_kind: job_kind.to_string(),
            job_id: job_id.to_string(),
            drive_id,
            kind,
            at: whole_seconds(at),
            details: details.to_string(),
        }
    }
}

fn whole_seconds(at: OffsetDateTime) -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp(at.unix_timestamp()).unwrap_or(at)
}

/// Why an event cannot be encoded (a field the format does not allow).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EncodingError {
    #[error("the custody event's {field} must be 1 to {max} characters without control characters or spaces")]
    BadField { field: &'static str, max: usize },
    #[error("the custody event's details must be at most {MAX_DETAILS} bytes without control characters")]
    BadDetails,
    #[error("the custody event's {field} must be 64 lowercase hex digits")]
    BadHash { field: &'static str },
    #[error("the custody event's time must be a whole second")]
    FractionalTime,
    #[error("signing the custody event failed: {0}")]
    Signing(String),
}

fn plain(field: &'static str, value: &str, max: usize) -> Result<(), EncodingError> {
    let ok = !value.is_empty() && value.len() <= max && !value.chars().any(|c| c.is_control() || c.is_whitespace());
    if ok {
        Ok(())
    } else {
        Err(EncodingError::BadField { field, max })
    }
}

fn is_hash(text: &str) -> bool {
    text.len() == 64 && text.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// The canonical encoding of an event (its `hash` and `signature` left out): UTF-8
/// lines joined by `\n`, no final newline:
///
/// ```text
/// offsite-custody-event-v1
/// job_kind <job kind>
/// job <job id>
/// seq <decimal>
/// drive <drive id, or ->
/// kind <kind>
/// at <unix seconds, decimal>
/// actor <actor>
/// prev <64 hex digits>
/// details <details, to the end>
/// ```
///
/// No field but `details` may hold a space or a control character, and `details`
/// (last) no control character, so an encoding has one reading.
pub fn canonical(event: &CustodyEvent) -> Result<String, EncodingError> {
    plain("job kind", &event.job_kind, 32)?;
    plain("job id", &event.job_id, 128)?;
    if let Some(drive) = &event.drive_id {
        plain("drive id", drive, 64)?;
        if drive == "-" {
            return Err(EncodingError::BadField { field: "drive id", max: 64 });
        }
    }
    plain("actor", &event.actor, 256)?;
    if event.details.len() > MAX_DETAILS || event.details.chars().any(char::is_control) {
        return Err(EncodingError::BadDetails);
    }
    if !is_hash(&event.prev) {
        return Err(EncodingError::BadHash { field: "prev" });
    }
    if event.at.nanosecond() != 0 {
        return Err(EncodingError::FractionalTime);
    }
    Ok(format!(
        "{ENCODING_CONTEXT}\njob_kind {}\njob {}\nseq {}\ndrive {}\nkind {}\nat {}\nactor {}\nprev {}\ndetails {}",
        event.job_kind,
        event.job_id,
        event.seq,
        event.drive_id.as_deref().unwrap_or("-"),
        event.kind.name(),
        event.at.unix_timestamp(),
        event.actor,
        event.prev,
        event.details
    ))
}

/// The event's hash: BLAKE3 of [`canonical`], 64 lowercase hex digits.
pub fn event_hash(event: &CustodyEvent) -> Result<String, EncodingError> {
    Ok(blake3::hash(canonical(event)?.as_bytes()).to_hex().to_string())
}

/// The bytes an actor signs for an event whose hash is `hash` (hex).
pub fn signed_message(hash: &str) -> Vec<u8> {
    format!("{SIGNATURE_CONTEXT}\n{hash}").into_bytes()
}

// ------------------------------------------------------------------ signing

/// A station's Ed25519 signing key (its 32-byte seed), kept in the station
/// credentials file.
#[derive(Clone)]
pub struct StationKey {
    seed: [u8; 32],
}

impl fmt::Debug for StationKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StationKey").field("public_key", &self.public_hex()).finish()
    }
}

impl StationKey {
    pub fn generate() -> StationKey {
        use rand::RngCore;
        let mut seed = [0u8; 32];
        rand::rngs::OsRng.fill_bytes(&mut seed);
        StationKey { seed }
    }

    /// From the 64 hex digits of a station credentials file.
    pub fn from_hex(text: &str) -> Result<StationKey, String> {
        let bytes = hex::decode(text.trim()).map_err(|_| "the station's signing key is not hex".to_string())?;
        let seed = <[u8; 32]>::try_from(bytes)
            .map_err(|_| "the station's signing key must be 64 hex digits (an Ed25519 seed)".to_string())?;
        Ok(StationKey { seed })
    }

    /// The seed in hex, for the station credentials file (a secret).
    pub fn secret_hex(&self) -> String {
        hex::encode(self.seed)
    }

    fn pair(&self) -> Ed25519KeyPair {
        Ed25519KeyPair::from_seed_unchecked(&self.seed).expect("any 32 bytes are an Ed25519 seed")
    }

    /// The public key, 64 hex digits, as the service registers it.
    pub fn public_hex(&self) -> String {
        hex::encode(self.pair().public_key().as_ref())
    }

    /// The signer of the station credential `credential_id`.
    pub fn signer(&self, credential_id: &str) -> CustodySigner {
        CustodySigner::Station { actor: station_actor(credential_id), key: self.pair() }
    }

    /// The key as a log lists it (for tests and offline verification).
    pub fn public_record(&self, credential_id: &str, description: &str, registered: OffsetDateTime) -> CustodyKey {
        CustodyKey {
            actor: station_actor(credential_id),
            algorithm: ED25519.into(),
            public_key: self.public_hex(),
            description: description.into(),
            registered,
        }
    }
}

/// Whoever signs custody events: the application (its certificate's key) or a
/// station (its Ed25519 key).
pub enum CustodySigner {
    Application(ApplicationSigner),
    Station { actor: String, key: Ed25519KeyPair },
}

impl fmt::Debug for CustodySigner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CustodySigner").field("actor", &self.actor()).finish()
    }
}

impl CustodySigner {
    /// The actor the signed events name.
    pub fn actor(&self) -> String {
        match self {
            CustodySigner::Application(signer) => application_actor(signer.application_id(), signer.thumbprint()),
            CustodySigner::Station { actor, .. } => actor.clone(),
        }
    }

    fn sign(&self, message: &[u8]) -> Result<Vec<u8>, EncodingError> {
        match self {
            CustodySigner::Application(signer) => signer.sign(message).map_err(EncodingError::Signing),
            CustodySigner::Station { key, .. } => Ok(key.sign(message).as_ref().to_vec()),
        }
    }
}

/// The event `draft` becomes after the log `before` (in order), signed: the next
/// sequence number, the last event's hash as `prev`, its own hash and signature.
pub fn seal(draft: &Draft, before: &[CustodyEvent], signer: &CustodySigner) -> Result<CustodyEvent, EncodingError> {
    let (seq, prev) = match before.last() {
        Some(last) => (last.seq + 1, last.hash.clone()),
        None => (1, ZERO_HASH.to_string()),
    };
    let mut event = CustodyEvent {
        job_kind: draft.job_kind.clone(),
        job_id: draft.job_id.clone(),
        seq,
        drive_id: draft.drive_id.clone(),
        kind: draft.kind,
        at: whole_seconds(draft.at),
        actor: signer.actor(),
        details: draft.details.clone(),
        prev,
        hash: String::new(),
        signature: String::new(),
    };
    event.hash = event_hash(&event)?;
    let signature = signer.sign(&signed_message(&event.hash))?;
    event.signature = base64::engine::general_purpose::STANDARD.encode(signature);
    Ok(event)
}

/// Whether `event`'s signature verifies under `key`.
pub fn signature_verifies(event: &CustodyEvent, key: &CustodyKey) -> bool {
    let Ok(public) = hex::decode(&key.public_key) else { return false };
    let Ok(signature) = base64::engine::general_purpose::STANDARD.decode(&event.signature) else { return false };
    let algorithm: &dyn signature::VerificationAlgorithm = match key.algorithm.as_str() {
        ECDSA_P256 => &signature::ECDSA_P256_SHA256_ASN1,
        ED25519 => &signature::ED25519,
        _ => return false,
    };
    UnparsedPublicKey::new(algorithm, public).verify(&signed_message(&event.hash), &signature).is_ok()
}

// ------------------------------------------------------------------ order

/// Where an event kind stands in an import drive's life: a drive's events never
/// go back (a drive is not prepared after it was received), and nothing follows
/// its destruction. Other job kinds (exports) keep no order here yet.
fn import_stage(kind: CustodyEventKind) -> u8 {
    match kind {
        CustodyEventKind::Prepared => 0,
        CustodyEventKind::Shipped => 1,
        CustodyEventKind::Received => 2,
        CustodyEventKind::Ingested | CustodyEventKind::Written => 3,
        CustodyEventKind::Returned | CustodyEventKind::Wiped => 4,
        CustodyEventKind::Destroyed => 5,
    }
}

/// An export drive's life: written at the datacenter, then shipped to the
/// customer (or wiped or destroyed there instead).
fn export_stage(kind: CustodyEventKind) -> u8 {
    match kind {
        CustodyEventKind::Written => 0,
        CustodyEventKind::Shipped | CustodyEventKind::Wiped => 1,
        _ => 2,
    }
}

/// Whether `kind` may follow the drive's earlier events `before` (of the same
/// drive, in order); `Err` names the event it may not follow.
pub fn check_order(job_kind: &str, before: &[&CustodyEvent], kind: CustodyEventKind) -> Result<(), CustodyEventKind> {
    let stage = match job_kind {
        IMPORT => import_stage,
        EXPORT => export_stage,
        _ => return Ok(()),
    };
    for earlier in before {
        let destroyed = earlier.kind == CustodyEventKind::Destroyed;
        if destroyed || stage(earlier.kind) > stage(kind) {
            return Err(earlier.kind);
        }
    }
    Ok(())
}

// ------------------------------------------------------------------ verification

/// One thing wrong with a custody log, naming the event.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(tag = "problem", rename_all = "snake_case")]
pub enum CustodyProblem {
    /// Events `from ..= to` are not in the log (removed): the next one's `prev`
    /// names a hash no listed event has.
    Missing { from: u64, to: u64 },
    /// Event `seq` is listed after event `after`, which comes later in the chain.
    Reordered { seq: u64, after: u64 },
    /// Two events carry the sequence number `seq`.
    Duplicate { seq: u64 },
    /// Event `seq`'s content does not hash to its recorded hash: it was changed
    /// after it was signed.
    Altered { seq: u64 },
    /// Event `seq`'s `prev` is not the hash of the event before it: an event was
    /// replaced or put in.
    BrokenLink { seq: u64 },
    /// Event `seq`'s signature does not verify under its actor's key: forged.
    BadSignature { seq: u64, actor: String },
    /// No key is known for event `seq`'s actor.
    UnknownKey { seq: u64, actor: String },
    /// Event `seq` belongs to another job's log (or cannot be encoded).
    WrongJob { seq: u64 },
    /// Event `seq` (`kind`) of drive `drive` comes after its `after` event, which
    /// a drive's life does not allow.
    OutOfOrder { seq: u64, drive: String, kind: CustodyEventKind, after: CustodyEventKind },
    /// Event `seq` names an actor kind that may not record its kind of event.
    NotItsActor { seq: u64, actor: String, kind: CustodyEventKind },
}

impl CustodyProblem {
    /// The first event it names (for sorting).
    pub fn seq(&self) -> u64 {
        match self {
            CustodyProblem::Missing { from, .. } => *from,
            CustodyProblem::Reordered { seq, .. }
            | CustodyProblem::Duplicate { seq }
            | CustodyProblem::Altered { seq }
            | CustodyProblem::BrokenLink { seq }
            | CustodyProblem::BadSignature { seq, .. }
            | CustodyProblem::UnknownKey { seq, .. }
            | CustodyProblem::WrongJob { seq }
            | CustodyProblem::OutOfOrder { seq, .. }
            | CustodyProblem::NotItsActor { seq, .. } => *seq,
        }
    }
}

impl fmt::Display for CustodyProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CustodyProblem::Missing { from, to } if from == to => {
                write!(f, "event {from} is missing: the log goes from event {} to {}", from - 1, to + 1)
            }
            CustodyProblem::Missing { from, to } => {
                write!(f, "events {from} to {to} are missing: the log goes from event {} to {}", from - 1, to + 1)
            }
            CustodyProblem::Reordered { seq, after } => {
                write!(f, "event {seq} is listed after event {after}: the events were re-ordered")
            }
            CustodyProblem::Duplicate { seq } => write!(f, "event {seq} appears twice"),
            CustodyProblem::Altered { seq } => {
                write!(f, "event {seq} was altered: its content does not match the hash it was signed with")
            }
            CustodyProblem::BrokenLink { seq } => write!(
                f,
                "event {seq} does not follow the event before it (its prev is not that event's hash): an event was \
                 replaced or inserted"
            ),
            CustodyProblem::BadSignature { seq, actor } => {
                write!(f, "event {seq} is forged: its signature does not verify under the key of {actor}")
            }
            CustodyProblem::UnknownKey { seq, actor } => {
                write!(f, "event {seq} names {actor}, whose key is unknown: it cannot be verified")
            }
            CustodyProblem::WrongJob { seq } => write!(f, "event {seq} belongs to another job's log"),
            CustodyProblem::OutOfOrder { seq, drive, kind, after } => write!(
                f,
                "event {seq} ({} of drive {drive}) comes after the drive was {}, which a drive's life does not allow",
                kind.name(),
                after.name()
            ),
            CustodyProblem::NotItsActor { seq, actor, kind } => {
                write!(f, "event {seq} ({}) was recorded by {actor}, who does not record such events", kind.name())
            }
        }
    }
}

/// One step of a drive's custody, as the report shows it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Handling {
    pub seq: u64,
    pub kind: CustodyEventKind,
    #[serde(with = "time::serde::rfc3339")]
    pub at: OffsetDateTime,
    pub actor: String,
    /// The actor's key's description (who that is), when the key is known.
    pub handler: String,
    pub details: String,
    /// This event alone verified (hash, link, signature, order).
    pub verified: bool,
}

/// Who handled a drive, and when.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct DriveCustody {
    /// The drive id, or `-` for events of the whole job.
    pub drive_id: String,
    pub events: Vec<Handling>,
}

/// What [`verify`] found.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct CustodyReport {
    pub job_kind: String,
    pub job_id: String,
    pub events: usize,
    /// The last event's hash: a verifier that keeps it sees a later log that
    /// lost events at its end.
    pub head: String,
    pub problems: Vec<CustodyProblem>,
    /// Per drive, in the order of their first event.
    pub drives: Vec<DriveCustody>,
}

impl CustodyReport {
    pub fn verified(&self) -> bool {
        self.problems.is_empty()
    }
}

/// Verifies a job's log as listed: the sequence numbers (a gap is named as the
/// missing events, a decrease as a re-ordering), each event's hash, its link to
/// the one before, its signature under its actor's key in `keys`, that its actor
/// may record it and that its drive's events keep their order. Every event is
/// looked at, so every problem is named, not only the first.
pub fn verify(job_kind: &str, job_id: &str, events: &[CustodyEvent], keys: &[CustodyKey]) -> CustodyReport {
    let mut problems = Vec::new();
    let mut bad: std::collections::BTreeSet<usize> = Default::default();
    let keys: BTreeMap<&str, &CustodyKey> = keys.iter().map(|k| (k.actor.as_str(), k)).collect();
    // The chain as the hashes say: which hash each listed event carries.
    let mut highest = 0u64;
    let mut seen = std::collections::BTreeSet::new();
    for (i, event) in events.iter().enumerate() {
        // This event's problems; an event with one (or after a gap) does not verify.
        let mut found: Vec<CustodyProblem> = Vec::new();
        let mut after_gap = false;
        let seq = event.seq;
        if event.job_kind != job_kind || event.job_id != job_id {
            found.push(CustodyProblem::WrongJob { seq });
        }
        // Sequence numbers: 1, 2, 3 … in the order listed.
        if !seen.insert(seq) {
            found.push(CustodyProblem::Duplicate { seq });
        } else if seq <= highest {
            found.push(CustodyProblem::Reordered { seq, after: highest });
        } else if seq > highest + 1 && !(highest + 1..seq).all(|s| events.iter().any(|e| e.seq == s)) {
            let from = highest + 1;
            // Events listed later (re-ordered) are not missing.
            let missing: Vec<u64> = (from..seq).filter(|s| !events.iter().any(|e| e.seq == *s)).collect();
            if let (Some(&first), Some(&last)) = (missing.first(), missing.last()) {
                found.push(CustodyProblem::Missing { from: first, to: last });
            }
        } else if seq > highest + 1 {
            // The events between are listed, later: this one comes early.
            found.push(CustodyProblem::Reordered { seq: highest + 1, after: seq });
        }
        highest = highest.max(seq);
        // Its content against its hash.
        match event_hash(event) {
            Ok(hash) if hash == event.hash => {}
            Ok(_) => found.push(CustodyProblem::Altered { seq }),
            Err(_) => found.push(CustodyProblem::WrongJob { seq }),
        }
        // The link: the event with the sequence number before, wherever listed.
        let expected_prev = if seq == 1 {
            Some(ZERO_HASH.to_string())
        } else {
            events.iter().find(|e| e.seq == seq - 1).map(|e| e.hash.clone())
        };
        match expected_prev {
            Some(prev) if prev == event.prev => {}
            Some(_) => found.push(CustodyProblem::BrokenLink { seq }),
            // Named as missing above.
            None => after_gap = true,
        }
        // The signature under the actor's key.
        match keys.get(event.actor.as_str()) {
            None => found.push(CustodyProblem::UnknownKey { seq, actor: event.actor.clone() }),
            Some(key) if !signature_verifies(event, key) => {
                found.push(CustodyProblem::BadSignature { seq, actor: event.actor.clone() })
            }
            Some(_) => {}
        }
        if !may_record(job_kind, &event.actor, event.kind) {
            found.push(CustodyProblem::NotItsActor { seq, actor: event.actor.clone(), kind: event.kind });
        }
        if let Some(drive) = &event.drive_id {
            let before: Vec<&CustodyEvent> =
                events[..i].iter().filter(|e| e.drive_id.as_ref() == Some(drive)).collect();
            if let Err(after) = check_order(job_kind, &before, event.kind) {
                found.push(CustodyProblem::OutOfOrder { seq, drive: drive.clone(), kind: event.kind, after });
            }
        }
        if after_gap || !found.is_empty() {
            bad.insert(i);
        }
        problems.extend(found);
    }
    problems.sort_by_key(CustodyProblem::seq);
    problems.dedup();

    let mut drives: Vec<DriveCustody> = Vec::new();
    for (i, event) in events.iter().enumerate() {
        let drive_id = event.drive_id.clone().unwrap_or_else(|| "-".into());
        let handling = Handling {
            seq: event.seq,
            kind: event.kind,
            at: event.at,
            actor: event.actor.clone(),
            handler: keys.get(event.actor.as_str()).map(|k| k.description.clone()).unwrap_or_default(),
            details: event.details.clone(),
            verified: !bad.contains(&i),
        };
        match drives.iter_mut().find(|d| d.drive_id == drive_id) {
            Some(drive) => drive.events.push(handling),
            None => drives.push(DriveCustody { drive_id, events: vec![handling] }),
        }
    }
    CustodyReport {
        job_kind: job_kind.to_string(),
        job_id: job_id.to_string(),
        events: events.len(),
        head: events.iter().max_by_key(|e| e.seq).map(|e| e.hash.clone()).unwrap_or_else(|| ZERO_HASH.to_string()),
        problems,
        drives,
    }
}

/// Verifies a log as the service serves it.
pub fn verify_log(log: &CustodyLog) -> CustodyReport {
    verify(&log.job_kind, &log.job_id, &log.events, &log.keys)
}

// ------------------------------------------------------------------ appending

/// The service calls that read and extend a job's custody log (the API client
/// implements it; tests fake it).
pub trait CustodyService {
    /// The log of the `job_kind` ([`IMPORT`], [`EXPORT`]) job `job_id`.
    fn custody_log(&self, job_kind: &str, job_id: &str) -> ApiResult<CustodyLog>;
    /// Appends one sealed event; 409 when the log grew meanwhile.
    fn append_custody_event(&self, job_kind: &str, job_id: &str, event: &CustodyEvent) -> ApiResult<CustodyEvent>;
}

impl CustodyService for Client {
    fn custody_log(&self, job_kind: &str, job_id: &str) -> ApiResult<CustodyLog> {
        match job_kind {
            EXPORT => self.export_job_custody(job_id),
            _ => self.import_job_custody(job_id),
        }
    }

    fn append_custody_event(&self, job_kind: &str, job_id: &str, event: &CustodyEvent) -> ApiResult<CustodyEvent> {
        match job_kind {
            EXPORT => self.append_export_job_custody(job_id, event),
            _ => self.append_import_job_custody(job_id, event),
        }
    }
}

/// Why an event was not appended.
#[derive(Debug, thiserror::Error)]
pub enum RecordError {
    #[error(transparent)]
    Encoding(#[from] EncodingError),
    #[error(transparent)]
    Service(#[from] offsite_api::ApiError),
}

/// Appends events to one job's log as one signer.
pub struct Recorder<'a, S> {
    service: &'a S,
    signer: &'a CustodySigner,
    job_kind: &'static str,
    job_id: String,
}

/// How many times an append is tried when others keep appending first.
const APPEND_ATTEMPTS: usize = 5;

impl<'a, S: CustodyService> Recorder<'a, S> {
    /// For an import job's log.
    pub fn new(service: &'a S, signer: &'a CustodySigner, job_id: &str) -> Self {
        Recorder { service, signer, job_kind: IMPORT, job_id: job_id.to_string() }
    }

    /// For an export job's log.
    pub fn export(service: &'a S, signer: &'a CustodySigner, job_id: &str) -> Self {
        Recorder { service, signer, job_kind: EXPORT, job_id: job_id.to_string() }
    }

    /// Appends an event of `kind` for `drive_id` now: reads the log, seals the
    /// event after its last one and sends it. When another appender got there
    /// first (409 and a longer log), it reads the log again and signs anew.
    pub fn record(
        &self,
        drive_id: Option<&str>,
        kind: CustodyEventKind,
        details: &str,
    ) -> Result<CustodyEvent, RecordError> {
        let mut last_error = None;
        let mut seen_head = None;
        for _ in 0..APPEND_ATTEMPTS {
            let log = self.service.custody_log(self.job_kind, &self.job_id)?;
            let head = log.events.last().map(|e| e.hash.clone());
            if last_error.is_some() && head == seen_head {
                // Refused for another reason than a race: the log did not move.
                break;
            }
            seen_head = head;
            let draft = Draft::new(
                &log.job_kind,
                &self.job_id,
                drive_id.map(str::to_string),
                kind,
                OffsetDateTime::now_utc(),
                details,
            );
            let event = seal(&draft, &log.events, self.signer)?;
            match self.service.append_custody_event(self.job_kind, &self.job_id, &event) {
                Ok(stored) => return Ok(stored),
                Err(err) if err.status() == Some(409) => last_error = Some(err),
                Err(err) => return Err(err.into()),
            }
        }
        Err(last_error.expect("an attempt was made").into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(offset: i64) -> OffsetDateTime {
        OffsetDateTime::from_unix_timestamp(1_800_000_000 + offset).unwrap()
    }

    struct World {
        app: CustodySigner,
        app_key: CustodyKey,
        station: StationKey,
        events: Vec<CustodyEvent>,
    }

    fn application() -> (CustodySigner, CustodyKey) {
        let generated = crate::application::generate("sub_1").unwrap();
        let identity = offsite_api::application_auth::ApplicationIdentity {
            application_id: "app_1".into(),
            thumbprint: generated.thumbprint.clone(),
            key_pem: generated.key_pem.clone(),
        };
        let signer = ApplicationSigner::new(&identity).unwrap();
        let key = CustodyKey {
            actor: application_actor("app_1", &generated.thumbprint),
            algorithm: ECDSA_P256.into(),
            public_key: hex::encode(signer.public_key()),
            description: "application app_1".into(),
            registered: at(0),
        };
        (CustodySigner::Application(signer), key)
    }

    /// A two-drive job's whole custody: prepared and shipped by the application,
    /// received, ingested and wiped by a station.
    fn world() -> World {
        let (app, app_key) = application();
        let station = StationKey::generate();
        let stn = station.signer("stn_1");
        let mut events = Vec::new();
        let steps: [(&CustodySigner, &str, CustodyEventKind, &str); 8] = [
            (&app, "aa01", CustodyEventKind::Prepared, ""),
            (&app, "bb02", CustodyEventKind::Prepared, ""),
            (&app, "aa01", CustodyEventKind::Shipped, "UPS 1Z999"),
            (&app, "bb02", CustodyEventKind::Shipped, "UPS 1Z999"),
            (&stn, "aa01", CustodyEventKind::Received, ""),
            (&stn, "bb02", CustodyEventKind::Received, ""),
            (&stn, "aa01", CustodyEventKind::Ingested, "completed"),
            (&stn, "aa01", CustodyEventKind::Wiped, "method=crypto-erase"),
        ];
        for (i, (signer, drive, kind, details)) in steps.into_iter().enumerate() {
            let draft = Draft::new(IMPORT, "imp_1", Some(drive.into()), kind, at(i as i64 * 60), details);
            events.push(seal(&draft, &events, signer).unwrap());
        }
        World { app, app_key, station, events }
    }

    impl World {
        fn keys(&self) -> Vec<CustodyKey> {
            vec![self.app_key.clone(), self.station.public_record("stn_1", "station stn_1 of ams1", at(0))]
        }

        fn verify(&self, events: &[CustodyEvent]) -> CustodyReport {
            verify(IMPORT, "imp_1", events, &self.keys())
        }
    }

    #[test]
    fn a_whole_chain_verifies_and_says_who_handled_each_drive_when() {
        let world = world();
        let report = world.verify(&world.events);
        assert!(report.verified(), "{:?}", report.problems);
        assert_eq!(report.events, 8);
        assert_eq!(report.head, world.events[7].hash);
        let first = &report.drives[0];
        assert_eq!(first.drive_id, "aa01");
        let kinds: Vec<_> = first.events.iter().map(|h| h.kind.name()).collect();
        assert_eq!(kinds, ["prepared", "shipped", "received", "ingested", "wiped"]);
        assert_eq!(first.events[4].handler, "station stn_1 of ams1");
        assert_eq!(first.events[4].details, "method=crypto-erase");
        assert_eq!(first.events[0].handler, "application app_1");
        assert!(first.events.iter().all(|h| h.verified));
        assert_eq!(report.drives[1].events.len(), 3);
        assert_eq!(world.events[0].prev, ZERO_HASH);
    }

    /// An export job's drives are the station's from writing to shipping: its
    /// chain verifies; the application's event in it, or a drive written after
    /// it was shipped, is named.
    #[test]
    fn an_export_chain_is_the_stations_and_keeps_its_order() {
        let world = world();
        let stn = world.station.signer("stn_1");
        let mut events = Vec::new();
        for (i, (drive, kind)) in
            [("cc03", CustodyEventKind::Written), ("cc03", CustodyEventKind::Shipped)].into_iter().enumerate()
        {
            let draft = Draft::new(EXPORT, "exp_1", Some(drive.into()), kind, at(i as i64 * 60), "");
            events.push(seal(&draft, &events, &stn).unwrap());
        }
        assert!(verify(EXPORT, "exp_1", &events, &world.keys()).verified());

        let mut forged = events.clone();
        let draft = Draft::new(EXPORT, "exp_1", Some("cc03".into()), CustodyEventKind::Written, at(200), "");
        forged.push(seal(&draft, &forged, &stn).unwrap());
        let draft = Draft::new(EXPORT, "exp_1", Some("cc03".into()), CustodyEventKind::Shipped, at(300), "");
        forged.push(seal(&draft, &forged, &world.app).unwrap());
        let problems = verify(EXPORT, "exp_1", &forged, &world.keys()).problems;
        assert!(problems.iter().any(|p| matches!(p, CustodyProblem::OutOfOrder { seq: 3, .. })), "{problems:?}");
        assert!(problems.iter().any(|p| matches!(p, CustodyProblem::NotItsActor { seq: 4, .. })), "{problems:?}");
        assert!(may_record(EXPORT, "station:stn_1", CustodyEventKind::Written));
        assert!(!may_record(EXPORT, "application:app_1:AB", CustodyEventKind::Shipped));
        assert!(!may_record(EXPORT, "station:stn_1", CustodyEventKind::Received));
    }

    #[test]
    fn a_removed_event_is_named_as_missing() {
        let world = world();
        let mut events = world.events.clone();
        events.remove(3);
        let report = world.verify(&events);
        assert_eq!(report.problems, [CustodyProblem::Missing { from: 4, to: 4 }], "{:?}", report.problems);
        assert_eq!(report.problems[0].to_string(), "event 4 is missing: the log goes from event 3 to 5");
        // The event after the gap is marked, the rest still verify.
        let flags: Vec<(u64, bool)> =
            report.drives.iter().flat_map(|d| &d.events).map(|h| (h.seq, h.verified)).collect();
        assert!(flags.contains(&(5, false)) && flags.contains(&(3, true)), "{flags:?}");

        let mut events = world.events.clone();
        events.drain(0..2);
        let report = world.verify(&events);
        assert_eq!(report.problems, [CustodyProblem::Missing { from: 1, to: 2 }], "{:?}", report.problems);
    }

    #[test]
    fn swapped_events_are_named_as_reordered() {
        let world = world();
        let mut events = world.events.clone();
        events.swap(4, 5);
        let report = world.verify(&events);
        assert!(!report.verified());
        assert!(report.problems.iter().any(|p| matches!(p, CustodyProblem::Reordered { .. })), "{:?}", report.problems);
        assert!(!report.problems.iter().any(|p| matches!(p, CustodyProblem::Missing { .. })), "{:?}", report.problems);
        // Swapping their sequence numbers too alters both and breaks the links.
        let mut events = world.events.clone();
        events.swap(4, 5);
        events[4].seq = 5;
        events[5].seq = 6;
        let report = world.verify(&events);
        assert!(report.problems.contains(&CustodyProblem::Altered { seq: 5 }), "{:?}", report.problems);
        assert!(report.problems.contains(&CustodyProblem::BrokenLink { seq: 5 }), "{:?}", report.problems);
    }

    #[test]
    fn an_altered_field_is_named() {
        let world = world();
        for change in 0..4 {
            let mut events = world.events.clone();
            let event = &mut events[7];
            match change {
                0 => event.details = "method=overwrite".into(),
                1 => event.at = at(5),
                2 => event.kind = CustodyEventKind::Destroyed,
                _ => event.drive_id = Some("bb02".into()),
            }
            let report = world.verify(&events);
            assert!(report.problems.contains(&CustodyProblem::Altered { seq: 8 }), "{change}: {:?}", report.problems);
            assert!(report.problems[0].to_string().starts_with("event 8 was altered"), "{:?}", report.problems);
        }
    }

    #[test]
    fn an_event_re_signed_with_another_key_is_named_forged_or_unknown() {
        let world = world();
        // The hash recomputed and signed by a key that is not the station's.
        let other = StationKey::generate();
        let mut events = world.events.clone();
        let draft = Draft::new(IMPORT, "imp_1", Some("aa01".into()), CustodyEventKind::Destroyed, at(900), "");
        let forged = seal(&draft, &events[..7], &other.signer("stn_1")).unwrap();
        events[7] = forged;
        let report = world.verify(&events);
        assert_eq!(
            report.problems,
            [CustodyProblem::BadSignature { seq: 8, actor: "station:stn_1".into() }],
            "{:?}",
            report.problems
        );
        assert!(report.problems[0].to_string().contains("forged"));
        // The same, naming an actor no key is known for.
        let forged = seal(&draft, &world.events[..7], &other.signer("stn_9")).unwrap();
        let mut events = world.events.clone();
        events[7] = forged;
        let report = world.verify(&events);
        assert_eq!(report.problems, [CustodyProblem::UnknownKey { seq: 8, actor: "station:stn_9".into() }]);
        // The application's key does not sign for a station step.
        let draft = Draft::new(IMPORT, "imp_1", Some("bb02".into()), CustodyEventKind::Ingested, at(900), "");
        let mut events = world.events.clone();
        events.push(seal(&draft, &events, &world.app).unwrap());
        let report = world.verify(&events);
        assert!(matches!(report.problems[..], [CustodyProblem::NotItsActor { seq: 9, .. }]), "{:?}", report.problems);
    }

    #[test]
    fn an_inserted_event_breaks_the_link_after_it() {
        let world = world();
        let mut events = world.events.clone();
        // A validly signed event put in place of event 6, chained to event 5.
        let draft = Draft::new(IMPORT, "imp_1", Some("bb02".into()), CustodyEventKind::Received, at(400), "again");
        events[5] = seal(&draft, &events[..5], &world.station.signer("stn_1")).unwrap();
        let report = world.verify(&events);
        assert_eq!(report.problems, [CustodyProblem::BrokenLink { seq: 7 }], "{:?}", report.problems);
    }

    #[test]
    fn a_drive_does_not_go_back_in_its_life() {
        let world = world();
        let before: Vec<&CustodyEvent> =
            world.events.iter().filter(|e| e.drive_id.as_deref() == Some("aa01")).collect();
        assert_eq!(check_order(IMPORT, &before, CustodyEventKind::Prepared), Err(CustodyEventKind::Shipped));
        assert_eq!(check_order(IMPORT, &before, CustodyEventKind::Returned), Ok(()));
        assert_eq!(check_order(IMPORT, &before, CustodyEventKind::Destroyed), Ok(()));
        assert_eq!(check_order("export", &before, CustodyEventKind::Prepared), Ok(()));
        let mut events = world.events.clone();
        let draft = Draft::new(IMPORT, "imp_1", Some("aa01".into()), CustodyEventKind::Prepared, at(999), "");
        events.push(seal(&draft, &events, &world.app).unwrap());
        let report = world.verify(&events);
        assert!(matches!(report.problems[..], [CustodyProblem::OutOfOrder { seq: 9, .. }]), "{:?}", report.problems);
    }

    #[test]
    fn the_encoding_has_one_reading() {
        let world = world();
        let mut event = world.events[2].clone();
        assert!(canonical(&event).unwrap().ends_with("\ndetails UPS 1Z999"));
        event.details = "x\nprev 00".into();
        assert_eq!(canonical(&event), Err(EncodingError::BadDetails));
        event.details = String::new();
        event.actor = "station:a b".into();
        assert!(matches!(canonical(&event), Err(EncodingError::BadField { field: "actor", .. })));
        event.actor = "station:a".into();
        event.prev = "AB".repeat(32);
        assert_eq!(canonical(&event), Err(EncodingError::BadHash { field: "prev" }));
    }

    #[test]
    fn station_keys_round_trip_through_hex() {
        let key = StationKey::generate();
        let again = StationKey::from_hex(&key.secret_hex()).unwrap();
        assert_eq!(again.public_hex(), key.public_hex());
        assert!(StationKey::from_hex("abc").is_err());
        assert!(!format!("{key:?}").contains(&key.secret_hex()));
    }
}
