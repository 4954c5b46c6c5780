//! A vault's protection against a compromised machine: soft delete, immutability,
//! the two-person rule for weakening them, what is soft-deleted and alerts.

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use utoipa::ToSchema;

/// The soft-delete window a vault may have, in days.
pub const SOFT_DELETE_DAYS: std::ops::RangeInclusive<u32> = 14..=180;
/// The minimum retention an immutable vault may have, in days.
pub const MIN_RETENTION_DAYS: std::ops::RangeInclusive<u32> = 1..=3650;

/// How a vault protects its machines' backups from a machine that turned hostile.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct VaultProtection {
    pub vault_id: String,
    /// Days a repository file a machine removed stays restorable before the
    /// service purges it (14 to 180); absent when soft delete is off.
    pub soft_delete_days: Option<u32>,
    pub immutability: Immutability,
    /// While immutability is enabled or locked, a recovery point younger than this
    /// cannot be removed, and the data it needs is kept at least as long.
    pub min_retention_days: u32,
    /// A mass-deletion alert is raised when a machine removes more than this
    /// share (in percent) of its recovery points, or of its bytes, within a day.
    pub mass_deletion_percent: u32,
    /// Requests to weaken the protection, newest first.
    pub requests: Vec<ProtectionRequest>,
}

/// `disabled → enabled → locked`; `enabled → disabled` only with an operator's
/// approval, and `locked` never changes again.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Immutability {
    Disabled,
    Enabled,
    Locked,
}

impl std::fmt::Display for Immutability {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Immutability::Disabled => "disabled",
            Immutability::Enabled => "enabled",
            Immutability::Locked => "locked",
        })
    }
}

/// A change to a vault's protection; what is absent stays as it is. A change that
/// weakens the protection becomes a request an operator approves.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ProtectionChange {
    /// 14 to 180 days, or 0 to turn soft delete off.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(example = 30)]
    pub soft_delete_days: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub immutability: Option<Immutability>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_retention_days: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mass_deletion_percent: Option<u32>,
    /// Locking is irreversible: it takes this set to true.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub confirm_lock: bool,
}

/// What became of a [`ProtectionChange`]: applied, or waiting for an operator.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ProtectionChangeOutcome {
    /// The protection now in force.
    pub protection: VaultProtection,
    /// The request made, when the change weakens the protection.
    pub request: Option<ProtectionRequest>,
}

/// A request to weaken a vault's protection, and its decision.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ProtectionRequest {
    pub id: String,
    pub vault_id: String,
    pub change: ProtectionChange,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub requested: OffsetDateTime,
    pub requested_by: String,
    pub state: ProtectionRequestState,
    #[serde(default, with = "time::serde::rfc3339::option")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub decided: Option<OffsetDateTime>,
    pub decided_by: Option<String>,
    /// What the operator said with the decision.
    #[serde(default)]
    pub decision_note: Option<String>,
}

/// An operator's decision on a request, with why.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ProtectionDecision {
    /// Why (e.g. "confirmed by phone with the customer's IT lead"); kept with the request.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ProtectionRequestState {
    Pending,
    Approved,
    Rejected,
}

impl std::fmt::Display for ProtectionRequestState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            ProtectionRequestState::Pending => "pending",
            ProtectionRequestState::Approved => "approved",
            ProtectionRequestState::Rejected => "rejected",
        })
    }
}

/// What a machine removed that the service still keeps: invisible to the
/// machine, restorable by its subscription until it is purged.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct SoftDeleted {
    pub machine_id: String,
    pub files: u64,
    pub bytes: u64,
    /// When the first of these bytes are purged (their space returns).
    #[serde(default, with = "time::serde::rfc3339::option")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub next_purge: Option<OffsetDateTime>,
    /// When the last of them are purged.
    #[serde(default, with = "time::serde::rfc3339::option")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub last_purge: Option<OffsetDateTime>,
    /// The recovery points among them, oldest first.
    pub recovery_points: Vec<SoftDeletedPoint>,
}

/// A recovery point a machine removed, as it was last reported.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct SoftDeletedPoint {
    pub snapshot_id: String,
    /// The point's time, size and file count, when the machine had reported it.
    #[serde(default, with = "time::serde::rfc3339::option")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub time: Option<OffsetDateTime>,
    pub size: Option<u64>,
    pub file_count: Option<u64>,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub deleted: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub purge_after: OffsetDateTime,
}

/// Which soft-deleted recovery points to bring back; none named: everything the
/// machine removed.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Undelete {
    #[serde(default)]
    #[schema(example = json!([]))]
    pub recovery_points: Vec<String>,
}

/// What an undelete brought back.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Undeleted {
    pub machine_id: String,
    pub files: u64,
    pub bytes: u64,
    pub recovery_points: Vec<String>,
}

/// Something the service noticed that a person should look at.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Alert {
    pub id: String,
    pub subscription_id: String,
    pub vault_id: String,
    pub machine_id: Option<String>,
    pub kind: AlertKind,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub raised: OffsetDateTime,
    pub message: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum AlertKind {
    /// A machine removed more than its vault's share of recovery points or bytes in a day.
    MassDeletion,
}
