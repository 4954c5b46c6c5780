//! A job's chain of custody: every event a drive goes through, signed by whoever
//! handled it, each event naming the hash of the one before. The encoding, the
//! hashing and the verification are `offsite_seeding::custody`'s; these are the
//! values the API carries (docs/CUSTODY.md specifies them).

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use utoipa::ToSchema;

/// What happened to a drive.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum CustodyEventKind {
    /// Written by diskprep on the copy computer (the application signs).
    Prepared,
    /// Handed to the carrier in the job's package (the application signs).
    Shipped,
    /// Arrived at the datacenter (its station signs).
    Received,
    /// Read by the ingest station, with the verification's outcome.
    Ingested,
    /// Written by a station (an export job's drives).
    Written,
    /// Sent back to the customer.
    Returned,
    /// Erased at the datacenter, with the method.
    Wiped,
    /// Physically destroyed at the datacenter.
    Destroyed,
}

impl CustodyEventKind {
    pub const ALL: [CustodyEventKind; 8] = [
        CustodyEventKind::Prepared,
        CustodyEventKind::Shipped,
        CustodyEventKind::Received,
        CustodyEventKind::Ingested,
        CustodyEventKind::Written,
        CustodyEventKind::Returned,
        CustodyEventKind::Wiped,
        CustodyEventKind::Destroyed,
    ];

    /// The wire spelling, as the canonical encoding writes it.
    pub fn name(self) -> &'static str {
        match self {
            CustodyEventKind::Prepared => "prepared",
            CustodyEventKind::Shipped => "shipped",
            CustodyEventKind::Received => "received",
            CustodyEventKind::Ingested => "ingested",
            CustodyEventKind::Written => "written",
            CustodyEventKind::Returned => "returned",
            CustodyEventKind::Wiped => "wiped",
            CustodyEventKind::Destroyed => "destroyed",
        }
    }

    pub fn parse(text: &str) -> Option<CustodyEventKind> {
        CustodyEventKind::ALL.into_iter().find(|k| k.name() == text)
    }
}

/// One signed event of a custody log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CustodyEvent {
    /// The kind of job the log belongs to: `import` (export jobs will use `export`).
    #[schema(example = "import")]
    pub job_kind: String,
    /// The job's id.
    pub job_id: String,
    /// 1 for the first event, then one more for each.
    pub seq: u64,
    /// The drive the event concerns (hex, as its header spells it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub drive_id: Option<String>,
    pub kind: CustodyEventKind,
    /// When it happened, in whole seconds (within 5 minutes of the service's clock
    /// when appended).
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub at: OffsetDateTime,
    /// Who signed: `application:<application id>:<certificate thumbprint>` or
    /// `station:<station credential id>`.
    pub actor: String,
    /// What else there is to say (a wipe's method, an ingest's outcome, a tracking
    /// number): at most 1000 characters, no control characters.
    #[serde(default)]
    pub details: String,
    /// The hash of the event before (64 hex digits; 64 zeros for the first).
    pub prev: String,
    /// BLAKE3 of the event's canonical encoding (64 hex digits).
    pub hash: String,
    /// The actor's signature over the hash (base64): ECDSA P-256 SHA-256 (ASN.1
    /// DER) or Ed25519.
    pub signature: String,
}

/// The public key an actor signs custody events with.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct CustodyKey {
    /// The actor, as events name it.
    pub actor: String,
    /// `ecdsa-p256-sha256` or `ed25519`.
    pub algorithm: String,
    /// Hex: the SEC1 uncompressed point (ECDSA) or the 32 bytes (Ed25519).
    pub public_key: String,
    /// Whom the key belongs to, for people.
    pub description: String,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub registered: OffsetDateTime,
}

/// A job's custody log as stored, with the keys its events name.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct CustodyLog {
    pub job_kind: String,
    pub job_id: String,
    /// The job's name, for people.
    pub job_name: String,
    /// In the order of their sequence numbers.
    pub events: Vec<CustodyEvent>,
    pub keys: Vec<CustodyKey>,
}
