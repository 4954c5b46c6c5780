//! A vault's protection against a machine that turned hostile: its soft-delete
//! window, immutability, the mass-deletion threshold, and the two-person rule:
//! a change that weakens the protection is only a request until an operator
//! approves it (the seed service's multi-user authorization), and a locked
//! vault's immutability never changes again.

use offsite_api::types::{
    Alert, Immutability, NotificationKind, ProtectionChange, ProtectionChangeOutcome, ProtectionDecision,
    ProtectionRequest, ProtectionRequestState, VaultProtection, MIN_RETENTION_DAYS, SOFT_DELETE_DAYS,
};

use crate::db::protection::ProtectionSettings;
use crate::error::{ApiResult, Failure};
use crate::notify;
use crate::principal::Principal;
use crate::secrets;
use crate::services::subscriptions::managed;
use crate::services::vaults::managed_vault;
use crate::state::AppState;

/// What a change does to the settings in force.
#[derive(Debug, PartialEq, Eq)]
pub struct Assessment {
    pub next: ProtectionSettings,
    /// Whether it takes an operator's approval.
    pub weakens: bool,
}

/// Checks a change against the settings in force: values in range, a lock
/// confirmed, nothing a lock forbids; and whether it weakens the protection.
pub fn assess(current: ProtectionSettings, change: &ProtectionChange) -> Result<Assessment, Failure> {
    let locked = current.immutability == Immutability::Locked;
    let mut next = current;
    let mut weakens = false;
    if let Some(days) = change.soft_delete_days {
        if days == 0 {
            if locked {
                return Err(Failure::Conflict(
                    "this vault's immutability is locked, and a locked vault keeps soft delete on for good".into(),
                ));
            }
            weakens |= current.soft_delete_days.is_some();
            next.soft_delete_days = None;
        } else {
            if !SOFT_DELETE_DAYS.contains(&days) {
                return Err(Failure::BadRequest(format!(
                    "the soft-delete window is {} to {} days (or 0 to turn soft delete off), not {days}",
                    SOFT_DELETE_DAYS.start(),
                    SOFT_DELETE_DAYS.end()
                )));
            }
            weakens |= current.soft_delete_days.is_some_and(|now| days < now);
            next.soft_delete_days = Some(days);
        }
    }
    if let Some(days) = change.min_retention_days {
        if !MIN_RETENTION_DAYS.contains(&days) {
            return Err(Failure::BadRequest(format!(
                "the minimum retention is {} to {} days, not {days}",
                MIN_RETENTION_DAYS.start(),
                MIN_RETENTION_DAYS.end()
            )));
        }
        if days < current.min_retention_days {
            if locked {
                return Err(Failure::Conflict(format!(
                    "this vault's immutability is locked: its minimum retention of {} days can grow but never shrink",
                    current.min_retention_days
                )));
            }
            weakens |= current.immutability == Immutability::Enabled;
        }
        next.min_retention_days = days;
    }
    if let Some(wanted) = change.immutability {
        match (current.immutability, wanted) {
            (now, wanted) if now == wanted => {}
            (Immutability::Locked, _) => {
                return Err(Failure::Conflict(
                    "this vault's immutability is locked: it can never be turned off or unlocked".into(),
                ))
            }
            (_, Immutability::Locked) if !change.confirm_lock => {
                return Err(Failure::BadRequest(
                    "locking immutability is irreversible: no one, not even the operator, can unlock the vault or \
                     shorten its minimum retention afterwards. Confirm with confirm_lock (offsite admin vault \
                     protection set … --immutability locked --confirm-lock)"
                        .into(),
                ))
            }
            (Immutability::Enabled, Immutability::Disabled) => weakens = true,
            _ => {}
        }
        next.immutability = wanted;
    }
    if let Some(percent) = change.mass_deletion_percent {
        if !(1..=100).contains(&percent) {
            return Err(Failure::BadRequest(format!("the mass-deletion threshold is 1 to 100 percent, not {percent}")));
        }
        next.mass_deletion_percent = percent;
    }
    Ok(Assessment { next, weakens })
}

async fn settings_of(state: &AppState, vault_id: &str) -> ApiResult<ProtectionSettings> {
    state.db.protection_settings(vault_id).await?.ok_or_else(|| Failure::not_found(format!("vault {vault_id}")))
}

async fn view(state: &AppState, vault_id: &str) -> ApiResult<VaultProtection> {
    let settings = settings_of(state, vault_id).await?;
    Ok(settings.view(vault_id, state.db.protection_requests_of(vault_id).await?))
}

/// Who asked or decided, as the timeline names them.
fn actor(principal: &Principal) -> String {
    match principal {
        Principal::Operator => "operator".into(),
        Principal::Subscription { subscription_id, .. } => format!("subscription {subscription_id}"),
        other => format!("{other:?}"),
    }
}

pub async fn get(state: &AppState, principal: &Principal, vault_id: &str) -> ApiResult<VaultProtection> {
    let vault = managed_vault(state, principal, vault_id).await?;
    view(state, &vault.id).await
}

/// Applies a change that strengthens the protection; a weakening one becomes a
/// pending request, asked by the subscription and decided by an operator.
pub async fn change(
    state: &AppState,
    principal: &Principal,
    vault_id: &str,
    change: ProtectionChange,
) -> ApiResult<ProtectionChangeOutcome> {
    let vault = managed_vault(state, principal, vault_id).await?;
    let assessment = assess(settings_of(state, &vault.id).await?, &change)?;
    if !assessment.weakens {
        if !state.db.set_protection_settings(&vault.id, assessment.next).await? {
            return Err(Failure::Conflict("the vault's immutability was locked meanwhile; read it again".into()));
        }
        if assessment.next.immutability == Immutability::Locked && change.confirm_lock {
            tracing::warn!(vault = %vault.id, by = %actor(principal), "vault immutability locked for good");
        }
        tracing::info!(vault = %vault.id, by = %actor(principal), ?change, "vault protection changed");
        return Ok(ProtectionChangeOutcome { protection: view(state, &vault.id).await?, request: None });
    }
    if matches!(principal, Principal::Operator) {
        return Err(Failure::Forbidden(
            "weakening a vault's protection takes two people: the subscription asks for it (with its publish \
             settings), then an operator approves it with offsite admin protection-request approve ID"
                .into(),
        ));
    }
    let request = ProtectionRequest {
        id: secrets::new_id("preq"),
        vault_id: vault.id.clone(),
        change,
        requested: state.now(),
        requested_by: actor(principal),
        state: ProtectionRequestState::Pending,
        decided: None,
        decided_by: None,
        decision_note: None,
    };
    state.db.insert_protection_request(&request).await?;
    let event = notify::Event::new(
        format!("protection_request:{}", request.id),
        NotificationKind::ProtectionChangeRequested,
        format!("A change weakening the protection of vault {} waits for an operator", vault.name),
        serde_json::json!({ "vault_id": vault.id, "request_id": request.id, "change": request.change,
            "requested_by": request.requested_by }),
    );
    notify::publish(state, &vault.subscription_id, event).await;
    tracing::warn!(vault = %vault.id, request = %request.id, change = ?request.change,
        "a weakening of the vault's protection awaits an operator's approval");
    Ok(ProtectionChangeOutcome { protection: view(state, &vault.id).await?, request: Some(request) })
}

/// Pending requests: every one for an operator, the subscription's own otherwise.
pub async fn pending(state: &AppState, principal: &Principal) -> ApiResult<Vec<ProtectionRequest>> {
    match principal {
        Principal::Operator => Ok(state.db.pending_protection_requests(None).await?),
        Principal::Subscription { subscription_id, .. } => {
            Ok(state.db.pending_protection_requests(Some(subscription_id)).await?)
        }
        _ => Err(Failure::Forbidden("protection requests are read by subscriptions and operators".into())),
    }
}

/// An operator approves (applying the change to the settings in force then) or
/// rejects a pending request.
pub async fn decide(
    state: &AppState,
    principal: &Principal,
    request_id: &str,
    approve: bool,
    decision: ProtectionDecision,
) -> ApiResult<ProtectionRequest> {
    principal.require_operator()?;
    if decision.note.as_ref().is_some_and(|n| n.len() > 1000) {
        return Err(Failure::BadRequest("a decision's note is at most 1000 bytes".into()));
    }
    let missing = || Failure::not_found(format!("protection request {request_id}"));
    let request = state.db.protection_request(request_id).await?.ok_or_else(missing)?;
    if request.state != ProtectionRequestState::Pending {
        return Err(Failure::Conflict(format!("protection request {request_id} was {} already", request.state)));
    }
    let outcome = if approve {
        let assessment = assess(settings_of(state, &request.vault_id).await?, &request.change)?;
        if !state.db.set_protection_settings(&request.vault_id, assessment.next).await? {
            return Err(Failure::Conflict("the vault's immutability was locked meanwhile; reject the request".into()));
        }
        ProtectionRequestState::Approved
    } else {
        ProtectionRequestState::Rejected
    };
    if !state.db.decide_protection_request(&request.id, outcome, &actor(principal), decision.note.as_deref()).await? {
        return Err(Failure::Conflict(format!("protection request {request_id} was decided meanwhile")));
    }
    tracing::warn!(request = %request.id, vault = %request.vault_id, %outcome, note = ?decision.note,
        "protection request decided");
    state.db.protection_request(&request.id).await?.ok_or_else(missing)
}

/// The alerts of a subscription, newest first.
pub async fn alerts(state: &AppState, principal: &Principal, subscription_id: &str) -> ApiResult<Vec<Alert>> {
    let subscription = managed(state, principal, subscription_id).await?;
    Ok(state.db.alerts_of(&subscription.id).await?)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings() -> ProtectionSettings {
        ProtectionSettings {
            soft_delete_days: Some(14),
            immutability: Immutability::Disabled,
            min_retention_days: 30,
            mass_deletion_percent: 50,
        }
    }

    fn change() -> ProtectionChange {
        ProtectionChange::default()
    }

    #[test]
    fn a_longer_window_applies_and_a_shorter_or_none_needs_approval() {
        let longer = assess(settings(), &ProtectionChange { soft_delete_days: Some(30), ..change() }).unwrap();
        assert!(!longer.weakens);
        assert_eq!(longer.next.soft_delete_days, Some(30));
        let at30 = ProtectionSettings { soft_delete_days: Some(30), ..settings() };
        assert!(assess(at30, &ProtectionChange { soft_delete_days: Some(20), ..change() }).unwrap().weakens);
        let off = assess(settings(), &ProtectionChange { soft_delete_days: Some(0), ..change() }).unwrap();
        assert!(off.weakens);
        assert_eq!(off.next.soft_delete_days, None);
        let was_off = ProtectionSettings { soft_delete_days: None, ..settings() };
        assert!(!assess(was_off, &ProtectionChange { soft_delete_days: Some(14), ..change() }).unwrap().weakens);
    }

    #[test]
    fn out_of_range_values_are_refused() {
        for days in [1, 13, 181] {
            let refused = assess(settings(), &ProtectionChange { soft_delete_days: Some(days), ..change() });
            assert!(matches!(refused, Err(Failure::BadRequest(_))), "{days}");
        }
        assert!(assess(settings(), &ProtectionChange { min_retention_days: Some(0), ..change() }).is_err());
        assert!(assess(settings(), &ProtectionChange { mass_deletion_percent: Some(101), ..change() }).is_err());
    }

    #[test]
    fn locking_needs_confirmation_and_is_final() {
        let lock = ProtectionChange { immutability: Some(Immutability::Locked), ..change() };
        assert!(matches!(assess(settings(), &lock), Err(Failure::BadRequest(_))));
        let locked = assess(settings(), &ProtectionChange { confirm_lock: true, ..lock }).unwrap();
        assert!(!locked.weakens);
        let locked = locked.next;
        for undo in [
            ProtectionChange { immutability: Some(Immutability::Disabled), ..change() },
            ProtectionChange { immutability: Some(Immutability::Enabled), ..change() },
            ProtectionChange { soft_delete_days: Some(0), ..change() },
            ProtectionChange { min_retention_days: Some(29), ..change() },
        ] {
            assert!(matches!(assess(locked, &undo), Err(Failure::Conflict(_))), "{undo:?}");
        }
        // Longer still goes.
        assert!(assess(locked, &ProtectionChange { min_retention_days: Some(60), ..change() }).is_ok());
    }

    #[test]
    fn turning_enabled_immutability_off_or_shortening_its_retention_needs_approval() {
        let enabled = ProtectionSettings { immutability: Immutability::Enabled, ..settings() };
        let off = ProtectionChange { immutability: Some(Immutability::Disabled), ..change() };
        assert!(assess(enabled, &off).unwrap().weakens);
        assert!(assess(enabled, &ProtectionChange { min_retention_days: Some(7), ..change() }).unwrap().weakens);
        assert!(!assess(settings(), &ProtectionChange { min_retention_days: Some(7), ..change() }).unwrap().weakens);
        let on = ProtectionChange { immutability: Some(Immutability::Enabled), ..change() };
        assert!(!assess(settings(), &on).unwrap().weakens);
    }
}
