//! Request and response bodies of the REST API under `/api/v1`. The server derives
//! its OpenAPI document from these types, so the document and the code cannot drift.

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use utoipa::ToSchema;

mod custody;
mod notifications;
mod protection;
pub use custody::*;
pub use notifications::*;
pub use protection::*;

/// Every error response: a sentence for people and a stable code for programs.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ErrorBody {
    pub error: String,
    pub code: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateSubscription {
    pub name: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Subscription {
    pub id: String,
    pub name: String,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub created: OffsetDateTime,
}

/// A subscription's storage quota and what counts against it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct StorageQuota {
    pub subscription_id: String,
    /// The most its machines' repositories may hold, in bytes; absent: no limit.
    #[serde(default)]
    pub quota_bytes: Option<u64>,
    /// What they hold: every stored repository file, soft-deleted ones included.
    pub used_bytes: u64,
    /// Of `used_bytes`, the soft-deleted files: kept until purged, counted until then.
    pub soft_deleted_bytes: u64,
}

/// Sets a subscription's storage quota (operators only); `null` lifts it.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"quota_bytes": 1_099_511_627_776_u64}))]
pub struct SetStorageQuota {
    /// Bytes; `null` for no quota.
    pub quota_bytes: Option<u64>,
}

/// Returned once, when a subscription is created: the management credential is not
/// stored in clear anywhere and cannot be shown again.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct SubscriptionCreated {
    pub subscription: Subscription,
    pub management_credential: String,
}

/// One of a subscription's management credentials (what a publish-settings file
/// carries), without its secret. The id is the part of the token before the dot.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ManagementCredential {
    pub id: String,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub created: OffsetDateTime,
    /// When it stops working by itself, if ever.
    #[serde(default, with = "time::serde::rfc3339::option")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub expires: Option<OffsetDateTime>,
    /// When it was revoked; it has not worked since.
    #[serde(default, with = "time::serde::rfc3339::option")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub revoked: Option<OffsetDateTime>,
}

/// What a new management credential is for.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct IssueManagementCredential {
    /// Days until it stops working (1 to 3650); without it, until revoked.
    pub valid_days: Option<u32>,
}

/// A new management credential, returned once (as when a subscription is created).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ManagementCredentialIssued {
    pub credential: ManagementCredential,
    pub management_credential: String,
    /// True when its expiry was cut to the issuing credential's: a credential
    /// cannot outlive the one that issued it.
    #[serde(default)]
    pub expires_with_issuer: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateVault {
    pub name: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Vault {
    pub id: String,
    pub subscription_id: String,
    pub name: String,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub created: OffsetDateTime,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateVaultCredentials {
    /// How long the credentials may be used to register a machine (default 48, at most 240).
    pub valid_hours: Option<u32>,
}

/// A one-time registration secret for one vault, valid until `expires`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct VaultCredentialsIssued {
    pub vault_id: String,
    pub vault_name: String,
    pub subscription_id: String,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub expires: OffsetDateTime,
    pub registration_secret: String,
    /// True when `expires` was cut to the issuing credential's expiry: a
    /// credential cannot outlive the one that issued it.
    #[serde(default)]
    pub expires_with_issuer: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RegisterMachine {
    pub name: String,
    pub hostname: String,
    /// A machine of the vault (its id or name) this one replaces: a lost or
    /// rebuilt server. It takes over that machine's repository and recovery
    /// points and goes on incrementally; the old machine's credential stops working.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replaces: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Machine {
    pub id: String,
    pub vault_id: String,
    pub name: String,
    pub hostname: String,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub registered: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339::option", default)]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub removed: Option<OffsetDateTime>,
    #[serde(with = "time::serde::rfc3339::option", default)]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub last_backup: Option<OffsetDateTime>,
    /// When the agent's schedule runs the next backup, as the agent last reported it
    /// (absent without a schedule).
    #[serde(with = "time::serde::rfc3339::option", default)]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub next_backup: Option<OffsetDateTime>,
}

/// Returned once, at registration: the machine's own credential.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct MachineRegistered {
    pub machine: Machine,
    pub machine_credential: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ProtectedItem {
    pub path: String,
    #[serde(default)]
    pub excludes: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum RecoveryPointSource {
    Online,
    OfflineSeed,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct RecoveryPoint {
    pub snapshot_id: String,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub time: OffsetDateTime,
    /// Bytes of file content the point restores.
    pub size: u64,
    pub file_count: u64,
    pub source: RecoveryPointSource,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum JobKind {
    Backup,
    Restore,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum JobState {
    Running,
    Completed,
    CompletedWithWarnings,
    Failed,
    /// A scheduled backup that did not run because the offline seed is still on
    /// its way (the import job is not complete).
    Waiting,
}

impl JobState {
    pub fn is_finished(self) -> bool {
        self != JobState::Running
    }
}

/// What an agent reports about one backup or restore.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct JobReport {
    pub kind: JobKind,
    pub state: JobState,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub started: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339::option", default)]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub finished: Option<OffsetDateTime>,
    #[serde(default)]
    pub bytes_processed: u64,
    /// Bytes sent over the link to the service, every attempt counted (an upload
    /// sent again after a failure counts again).
    #[serde(default)]
    pub bytes_uploaded: u64,
    /// Bytes of repository files the service stored (each file once); at most
    /// `bytes_uploaded`. Absent from older agents' reports (0).
    #[serde(default)]
    pub bytes_stored: u64,
    #[serde(default)]
    pub file_count: u64,
    #[serde(default)]
    pub message: Option<String>,
    #[serde(default)]
    pub errors: Vec<String>,
    /// The agent's next scheduled backup, reported with a job so the service can
    /// show it; kept on the machine, not on the job.
    #[serde(with = "time::serde::rfc3339::option", default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub next_backup: Option<OffsetDateTime>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Job {
    pub id: String,
    pub machine_id: String,
    #[serde(flatten)]
    pub report: JobReport,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateStorageAccount {
    pub name: String,
}

/// A named object-store location owned by one subscription: where ingested drives
/// land before adoption.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct StorageAccount {
    pub id: String,
    pub subscription_id: String,
    pub name: String,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub created: OffsetDateTime,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateContainer {
    pub name: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Container {
    pub id: String,
    pub storage_account_id: String,
    pub name: String,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub created: OffsetDateTime,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateDatacenter {
    pub name: String,
    /// The shipping address, several lines.
    pub address: String,
    /// The X25519 public key drives for this datacenter are encrypted to, 64 hex
    /// digits. Its secret stays with the operator's ingest stations.
    #[schema(example = "8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a")]
    pub import_public_key: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Datacenter {
    pub id: String,
    pub name: String,
    pub address: String,
    /// The X25519 import public key, 64 lowercase hex digits (empty for a
    /// datacenter added before import keys existed: it cannot take drives).
    #[serde(default)]
    pub import_public_key: String,
}

/// One of a datacenter's station credentials, without its secret: what an ingest
/// station presents to receive packages and ingest drives of the import jobs
/// shipped to that datacenter, and nothing else. The id is the part of the token
/// before the dot.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct StationCredential {
    pub id: String,
    pub datacenter_id: String,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub created: OffsetDateTime,
    /// When it stops working by itself, if ever.
    #[serde(default, with = "time::serde::rfc3339::option")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub expires: Option<OffsetDateTime>,
    /// When it was revoked; it has not worked since.
    #[serde(default, with = "time::serde::rfc3339::option")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub revoked: Option<OffsetDateTime>,
    /// The Ed25519 public key (hex) it signs custody events with, if it was issued with one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signing_key: Option<String>,
}

/// Asks for a new station credential of a datacenter.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct IssueStationCredential {
    /// Days until it stops working (1 to 3650); without it, until revoked.
    pub valid_days: Option<u32>,
    /// The Ed25519 public key (64 hex digits) the station signs custody events
    /// with; its private key goes into the station credentials file. Without it
    /// the credential cannot sign custody events.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(example = "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a")]
    pub signing_key: Option<String>,
}

/// A new station credential, returned once: only its hash is stored.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct StationCredentialIssued {
    pub credential: StationCredential,
    pub station_credential: String,
}

/// A file of a machine's repository, as listed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct RepositoryFile {
    pub name: String,
    pub size: u64,
}

/// Who the caller is, as the service sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(tag = "role", rename_all = "snake_case")]
pub enum WhoAmI {
    Operator,
    Subscription {
        subscription_id: String,
    },
    Machine {
        machine_id: String,
        vault_id: String,
        subscription_id: String,
    },
    /// A subscription's offline-seeding application, signing with one of its certificates.
    Application {
        application_id: String,
        subscription_id: String,
        thumbprint: String,
    },
    /// A datacenter's ingest station (a station credential).
    Station {
        credential_id: String,
        datacenter_id: String,
    },
}

/// The names a resource may take: 1–64 letters, digits, `-`, `_`, `.`, starting with
/// a letter or digit. Checked on both sides so a user hears it before the round trip.
pub fn check_name(what: &str, name: &str) -> Result<(), String> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name.chars().next().is_some_and(|c| c.is_ascii_alphanumeric())
        && name.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if ok {
        Ok(())
    } else {
        Err(format!(
            "'{name}' is not a valid {what} name: use 1 to 64 letters, digits, '-', '_' or '.', starting with a letter or digit"
        ))
    }
}

// ------------------------------------------------------------------ import jobs

/// The state of an import job (after the public import services' model):
/// `creating → shipping → received → transferring → packaging → completed`, or
/// `closed` (cancelled, or expired when the drives did not arrive in time).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ImportJobState {
    Creating,
    Shipping,
    Received,
    Transferring,
    Packaging,
    Completed,
    Closed,
}

/// The state of one drive of an import job: `specified → received → transferring →
/// completed | completed_more_info`, `specified → never_received`, and a received
/// drive may end `shipped_back`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ImportDriveState {
    Specified,
    Received,
    Transferring,
    Completed,
    /// Ingested with errors: the error log in the container names what is missing.
    CompletedMoreInfo,
    NeverReceived,
    ShippedBack,
}

/// One drive of a new import job, as `diskprep` wrote it.
impl ImportJobState {
    /// The state in the seed's words, as people read it ("Shipping", "Completed").
    pub fn name(self) -> &'static str {
        match self {
            ImportJobState::Creating => "Creating",
            ImportJobState::Shipping => "Shipping",
            ImportJobState::Received => "Received",
            ImportJobState::Transferring => "Transferring",
            ImportJobState::Packaging => "Packaging",
            ImportJobState::Completed => "Completed",
            ImportJobState::Closed => "Closed",
        }
    }
}

impl std::fmt::Display for ImportJobState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl std::fmt::Display for ImportDriveState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl ImportDriveState {
    /// The state in the seed's words ("Transferring", "CompletedMoreInfo").
    pub fn name(self) -> &'static str {
        match self {
            ImportDriveState::Specified => "Specified",
            ImportDriveState::Received => "Received",
            ImportDriveState::Transferring => "Transferring",
            ImportDriveState::Completed => "Completed",
            ImportDriveState::CompletedMoreInfo => "CompletedMoreInfo",
            ImportDriveState::NeverReceived => "NeverReceived",
            ImportDriveState::ShippedBack => "ShippedBack",
        }
    }

    /// Ingest is over for this drive, well or not: it needs nothing more from a station.
    pub fn is_done(self) -> bool {
        !matches!(self, ImportDriveState::Specified | ImportDriveState::Received | ImportDriveState::Transferring)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ImportJobDriveSpec {
    /// The drive id from the drive header, hex.
    #[schema(example = "3f9c0a1b2c3d4e5f")]
    pub drive_id: String,
    /// The drive's place in the drive set, from 0.
    pub index: u32,
    /// The drive header's fingerprint (64 hex digits), so the ingest station and
    /// the service can tell the drive diskprep registered from another with the
    /// same id. Required: the service takes files only from drives registered
    /// with it (an `Option` only so that a request without it hears which drive).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(required = true, example = "5d1c1f0f1e2d3c4b5a69788796a5b4c3d2e1f00112233445566778899aabbccd")]
    pub fingerprint: Option<String>,
    /// How many bytes of the staging location the drive holds, so ingest progress
    /// can be shown against it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data_bytes: Option<u64>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateImportJob {
    /// Unique across the service: 3 to 64 letters, digits, `-` or `_`.
    pub name: String,
    /// The name of the subscription's storage account the drives are ingested into.
    pub storage_account: String,
    /// The name of a container of that storage account.
    pub container: String,
    /// The name of the datacenter the drives are shipped to.
    pub datacenter: String,
    pub drives: Vec<ImportJobDriveSpec>,
}

/// What the customer tells the service about the package.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ShippingDetails {
    pub carrier: String,
    /// Unique across all import jobs: 4 to 40 letters, digits or `-`.
    pub tracking_number: String,
    /// How many drives the package holds: all of the job's drives.
    pub drive_count: u32,
    /// The day the package was handed to the carrier, `YYYY-MM-DD`.
    #[schema(example = "2026-11-02")]
    pub ship_date: String,
    /// Where the datacenter ships the drives back.
    pub return_address: String,
    /// Who to contact about the package: a name, email or phone number.
    pub contact: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ImportJobDrive {
    pub drive_id: String,
    pub index: u32,
    pub state: ImportDriveState,
    /// The drive header's fingerprint diskprep registered (none only for a drive
    /// registered before fingerprints were required: it brings no files).
    #[serde(default)]
    pub fingerprint: Option<String>,
    /// The ingest logs the datacenter stored for this drive (`error`, `verbose`):
    /// `GET /import-jobs/{id}/drives/{drive_id}/logs/{kind}` reads one.
    #[serde(default)]
    pub logs: Vec<String>,
    /// The bytes of the staging location on the drive, when diskprep said.
    #[serde(default)]
    pub data_bytes: Option<u64>,
    /// What the ingest station has stored from the drive so far.
    #[serde(default)]
    pub bytes_received: u64,
}

/// One state change of the job (`drive_id` absent) or of one of its drives.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ImportJobEvent {
    #[serde(default)]
    pub drive_id: Option<String>,
    /// An [`ImportJobState`] for the job, an [`ImportDriveState`] for a drive (snake_case).
    pub state: String,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub at: OffsetDateTime,
    /// Who did it: `operator`, the subscription id, `service (deadline)`.
    pub actor: String,
    #[serde(default)]
    pub message: Option<String>,
}

/// The datacenter an import job ships to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ImportJobDatacenter {
    pub name: String,
    /// The shipping address, several lines.
    pub address: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ImportJobView {
    pub id: String,
    pub name: String,
    pub subscription_id: String,
    pub state: ImportJobState,
    /// Storage account name.
    pub storage_account: String,
    /// Container name.
    pub container: String,
    pub datacenter: ImportJobDatacenter,
    #[serde(default)]
    pub shipping: Option<ShippingDetails>,
    /// The time by which the drives must arrive, once shipping details exist.
    #[serde(with = "time::serde::rfc3339::option", default)]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub arrival_deadline: Option<OffsetDateTime>,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub created: OffsetDateTime,
    pub drives: Vec<ImportJobDrive>,
    /// Every state change, oldest first.
    pub timeline: Vec<ImportJobEvent>,
    /// The files the drive set carries, once diskprep registered them
    /// (`PUT /import-jobs/{id}/file-list`): the job completes only when every one
    /// of them is whole in the container.
    #[serde(default)]
    pub file_list: Option<ImportFileListSummary>,
}

/// What an import job's file list holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ImportFileListSummary {
    pub files: u64,
    pub bytes: u64,
    /// Hex BLAKE3 of the list (over each path and size, in path order), as diskprep
    /// computed it from the staging location.
    pub digest: String,
}

/// A drive's new state, set by the datacenter.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DriveStateUpdate {
    pub state: ImportDriveState,
    /// What happened, e.g. which blocks are missing; kept in the timeline.
    #[serde(default)]
    pub message: Option<String>,
}

/// The body of an import job's step without other data (cancel, receive,
/// complete): an optional note kept in the timeline, e.g. why it was cancelled.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ImportJobNote {
    #[serde(default)]
    pub message: Option<String>,
}

// ------------------------------------------------------------------ offline seeding

/// A certificate to register for a subscription's offline-seeding application.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UploadCertificate {
    /// The certificate only (never its private key): PEM, or base64 DER. Its key
    /// must be ECDSA P-256 or Ed25519.
    pub certificate: String,
    /// Proof that the uploader holds the certificate's key: required. Optional
    /// here only so that a missing proof gets a sentence saying how to make one.
    #[serde(default)]
    pub possession: Option<PossessionProof>,
}

/// A signature with a certificate's key over a challenge the service gave out
/// (`POST /subscriptions/{id}/application/challenge`); see `offsite_api::possession`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PossessionProof {
    pub challenge: String,
    /// Base64 signature over `offsite-certificate-possession-v1\n<challenge>\n<thumbprint>`
    /// (ECDSA P-256 SHA-256 as ASN.1 DER, or Ed25519).
    pub signature: String,
}

/// The body of a request for a challenge: nothing yet (`{}`).
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewCertificateChallenge {}

/// A challenge to sign with a certificate's key before uploading it: single use,
/// for this subscription only.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct CertificateChallenge {
    pub challenge: String,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub expires: OffsetDateTime,
}

/// A certificate of an application, named by its thumbprint.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ApplicationCertificate {
    /// Uppercase hex SHA-256 of the DER certificate.
    pub thumbprint: String,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub added: OffsetDateTime,
    /// The end of the certificate's validity, when it could be read.
    #[serde(with = "time::serde::rfc3339::option", default)]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub not_after: Option<OffsetDateTime>,
    /// When the service stops accepting its signatures: the expiry of the
    /// management credential that registered it (a credential cannot outlive its
    /// issuer); absent when that one had none.
    #[serde(with = "time::serde::rfc3339::option", default)]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub expires: Option<OffsetDateTime>,
}

/// The offline-seeding application identity of a subscription (the seed's Azure AD
/// application): it signs requests with the private key of one of its certificates.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Application {
    pub id: String,
    pub subscription_id: String,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub created: OffsetDateTime,
    pub certificates: Vec<ApplicationCertificate>,
}

/// A whole file ingested into an import job's container (a path of the staging
/// repository, e.g. `data/3f/3f…`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ImportFile {
    pub path: String,
    pub size: u64,
}

/// A part of a file that a drive held, stored in the import job's container and
/// waiting to be assembled into its file when the job is packaged.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ImportPart {
    pub path: String,
    /// Where the part starts in its file.
    pub offset: u64,
    pub length: u64,
}

/// Which import job's seed a machine adopts into its vault repository.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AdoptSeed {
    /// The import job's name.
    pub import_job: String,
}

/// The seed of an import job copied into a machine's vault repository.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Adoption {
    /// The import job's name.
    pub import_job: String,
    /// Files and bytes of the seed now in the vault repository.
    pub files: u64,
    pub bytes: u64,
    /// True when an earlier request adopted it; the numbers are that adoption's.
    pub already_adopted: bool,
}

// ------------------------------------------------------------------ portal users

/// Someone who may sign in to the web portal (created by operators).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreatePortalUser {
    pub email: String,
    /// At least 12 characters; kept only as an Argon2id hash.
    pub password: String,
    /// The subscription the user belongs to; absent for an operator.
    #[serde(default)]
    pub subscription_id: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct PortalUser {
    pub id: String,
    pub email: String,
    /// Absent for an operator.
    #[serde(default)]
    pub subscription_id: Option<String>,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub created: OffsetDateTime,
    /// Since when an operator has disabled the user: no sign-in, no session.
    #[serde(default, with = "time::serde::rfc3339::option")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub disabled: Option<OffsetDateTime>,
}

/// Disables or enables a portal user (operators only); disabling ends the user's sessions.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SetPortalUserDisabled {
    pub disabled: bool,
}

/// A portal user's new password (operators only); the user's sessions end.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SetPortalUserPassword {
    /// At least 12 characters; kept only as an Argon2id hash.
    pub password: String,
}

// ------------------------------------------------------------------ export jobs

/// The state of an export job (offline restore): `requested → preparing →
/// shipping → delivered → completed`, or `closed` (cancelled before shipping).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ExportJobState {
    /// Asked for and sized; waiting for the datacenter.
    Requested,
    /// A station is writing the drives.
    Preparing,
    /// The drives are on their way back to the customer.
    Shipping,
    /// The customer has the drives.
    Delivered,
    /// The customer restored from them.
    Completed,
    Closed,
}

impl ExportJobState {
    /// The snake_case name, as JSON has it.
    pub fn name(self) -> &'static str {
        match self {
            ExportJobState::Requested => "requested",
            ExportJobState::Preparing => "preparing",
            ExportJobState::Shipping => "shipping",
            ExportJobState::Delivered => "delivered",
            ExportJobState::Completed => "completed",
            ExportJobState::Closed => "closed",
        }
    }
}

impl std::fmt::Display for ExportJobState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// What one machine's part of an export carries: repository paths (`config`,
/// `keys/…`, `index/…`, `snapshots/…`, `data/ab/…`) as the agent selected them for
/// its recovery points, or none for the machine's whole repository.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ExportMachine {
    pub machine_id: String,
    /// The repository files to carry; empty: every file of the repository.
    #[serde(default)]
    #[schema(example = json!([]))]
    pub files: Vec<String>,
    /// The recovery points (snapshot ids) these files restore, for people to read.
    #[serde(default)]
    pub points: Vec<String>,
}

/// An export request, and (to `…/preview`) what to size.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateExportJob {
    /// 3 to 64 letters, digits, `-` or `_`: it names the drives too.
    pub name: String,
    /// The datacenter that writes the drives (its name or id).
    pub datacenter: String,
    /// The capacity of each drive, in bytes.
    #[schema(example = 1_000_000_000_000u64)]
    pub drive_size: u64,
    /// The X25519 public key (64 hex digits) the drives' keys are wrapped to: the
    /// requesting agent's. Absent: the drives open with their recovery keys only.
    #[serde(default)]
    #[schema(example = "8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a")]
    pub export_public_key: Option<String>,
    /// Where the drives go.
    #[serde(default)]
    pub return_address: Option<String>,
    pub machines: Vec<ExportMachine>,
}

/// What an export carries and the drives it needs (the seed service's PreviewExport).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ExportSizing {
    pub files: u64,
    pub bytes: u64,
    pub drive_size: u64,
    /// Drives of `drive_size` the files fill, in the drive format (header, block
    /// tags and manifest included).
    pub drives_needed: u32,
}

/// A drive the station wrote for an export job.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ExportDrive {
    /// The drive id from its header, hex.
    #[schema(example = "3f9c0a1b2c3d4e5f3f9c0a1b2c3d4e5f")]
    pub drive_id: String,
    /// Its place in the set, from 0.
    pub index: u32,
    /// BLAKE3 of its header (64 hex digits): the customer can tell it is the drive written.
    #[schema(example = "5d1c1f0f1e2d3c4b5a69788796a5b4c3d2e1f00112233445566778899aabbccd")]
    pub fingerprint: String,
    /// Stream bytes it holds.
    pub bytes: u64,
    /// The drive's recovery key (8 groups of 8 hex digits): shown to the customer
    /// only; absent in answers to anyone else.
    #[serde(default)]
    #[schema(example = "3F2A9C01-00112233-44556677-8899AABB-CCDDEEFF-00112233-44556677-8899AABB")]
    pub recovery_key: Option<String>,
}

/// An event of an export job's timeline.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ExportJobEvent {
    pub state: ExportJobState,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub at: OffsetDateTime,
    /// Who: `operator`, the subscription id, a machine id, `station <credential id>`.
    pub actor: String,
    #[serde(default)]
    pub message: Option<String>,
}

/// An export job.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ExportJobView {
    pub id: String,
    pub name: String,
    pub subscription_id: String,
    pub vault_id: String,
    pub datacenter_id: String,
    pub state: ExportJobState,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub created: OffsetDateTime,
    pub sizing: ExportSizing,
    pub machines: Vec<ExportMachineSummary>,
    #[serde(default)]
    pub export_public_key: Option<String>,
    #[serde(default)]
    pub return_address: Option<String>,
    /// The return shipment, once the drives leave.
    #[serde(default)]
    pub carrier: Option<String>,
    #[serde(default)]
    pub tracking_number: Option<String>,
    pub drives: Vec<ExportDrive>,
    pub timeline: Vec<ExportJobEvent>,
}

/// One machine's share of an export job.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ExportMachineSummary {
    pub machine_id: String,
    pub files: u64,
    pub bytes: u64,
    pub points: Vec<String>,
}

/// One file an export job carries, for the station.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ExportFile {
    pub machine_id: String,
    /// The repository path (`data/ab/…`).
    pub path: String,
    pub size: u64,
}

/// The return shipment of an export job's drives.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ExportShipment {
    pub carrier: String,
    pub tracking_number: String,
}
