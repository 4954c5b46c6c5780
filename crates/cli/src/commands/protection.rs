//! `offsite admin` commands of a vault's protection: soft-deleted recovery points
//! and their undelete, the vault's soft delete and immutability, the operator's
//! decisions on requests to weaken them, and alerts.

use anyhow::{bail, Result};
use clap::{Args, Subcommand};

use offsite_api::size::ByteSize;
use offsite_api::types::{Immutability, ProtectionChange, ProtectionRequest, VaultProtection};

use super::admin::Session;
use crate::display::when;

#[derive(Subcommand)]
pub(super) enum VaultProtectionCommand {
    /// The vault's soft delete, immutability, alert threshold and requests.
    Show {
        /// Vault name or id.
        vault: String,
    },
    /// Change them. Strengthening applies at once; weakening (soft delete off or
    /// shorter, immutability off, a shorter minimum retention) becomes a request
    /// an operator approves.
    Set(SetProtection),
}

#[derive(Args)]
pub(super) struct SetProtection {
    /// Vault name or id.
    vault: String,
    /// Days a removed file stays restorable (14–180), or `off`.
    #[arg(long, value_name = "DAYS|off")]
    soft_delete: Option<String>,
    /// disabled, enabled or locked (locked is irreversible).
    #[arg(long, value_parser = parse_immutability)]
    immutability: Option<Immutability>,
    /// While immutable: days a recovery point cannot be removed (1–3650).
    #[arg(long, value_name = "DAYS")]
    min_retention_days: Option<u32>,
    /// Alert when a machine removes more than this percent of its recovery points or bytes in a day.
    #[arg(long, value_name = "PERCENT")]
    mass_deletion_percent: Option<u32>,
    /// Lock without asking (locking can never be undone).
    #[arg(long)]
    confirm_lock: bool,
}

#[derive(Subcommand)]
pub(super) enum ProtectionRequestCommand {
    /// Pending requests: all for an operator, the subscription's own otherwise.
    List,
    /// Approve a request: its change applies to the vault (operator).
    Approve {
        id: String,
        /// Why, kept with the request (e.g. who confirmed it, how).
        #[arg(long)]
        note: Option<String>,
    },
    /// Reject a request: the vault keeps its protection (operator).
    Reject {
        id: String,
        #[arg(long)]
        note: Option<String>,
    },
}

fn parse_immutability(text: &str) -> Result<Immutability, String> {
    match text {
        "disabled" => Ok(Immutability::Disabled),
        "enabled" => Ok(Immutability::Enabled),
        "locked" => Ok(Immutability::Locked),
        other => Err(format!("'{other}' is not one of disabled, enabled, locked")),
    }
}

/// `--soft-delete DAYS|off` as the API's days (0: off).
fn soft_delete_days(text: &str) -> Result<u32> {
    if text == "off" {
        return Ok(0);
    }
    match text.parse::<u32>() {
        Ok(0) | Err(_) => bail!("--soft-delete takes a number of days (14–180) or 'off', not '{text}'"),
        Ok(days) => Ok(days),
    }
}

pub(super) fn vault_protection(session: &Session, command: &VaultProtectionCommand) -> Result<()> {
    match command {
        VaultProtectionCommand::Show { vault } => {
            let vault = session.vault(vault)?;
            let protection = session.client.vault_protection(&vault.id)?;
            session.show(&protection, |p| print_protection(&vault.name, p))
        }
        VaultProtectionCommand::Set(set) => {
            let vault = session.vault(&set.vault)?;
            let change = ProtectionChange {
                soft_delete_days: set.soft_delete.as_deref().map(soft_delete_days).transpose()?,
                immutability: set.immutability,
                min_retention_days: set.min_retention_days,
                mass_deletion_percent: set.mass_deletion_percent,
                confirm_lock: set.confirm_lock || confirm_lock(&vault.name, set.immutability)?,
            };
            let outcome = session.client.change_vault_protection(&vault.id, &change)?;
            session.show(&outcome, |o| match &o.request {
                Some(request) => {
                    println!("this change weakens the vault's protection, so it waits for an operator's approval:");
                    print_request(request);
                    println!("an operator approves it with: offsite admin protection-request approve {}", request.id);
                }
                None => {
                    println!("protection of vault '{}' changed", vault.name);
                    print_protection(&vault.name, &o.protection);
                }
            })
        }
    }
}

/// Asks a person at a terminal before locking; in a script `--confirm-lock` is the answer.
fn confirm_lock(vault: &str, wanted: Option<Immutability>) -> Result<bool> {
    if wanted != Some(Immutability::Locked) {
        return Ok(false);
    }
    eprintln!(
        "Locking vault '{vault}' is irreversible: no one, not even the operator, can turn its immutability off or \
         shorten its minimum retention afterwards, and its soft delete stays on for good."
    );
    if !crate::prompt::confirm("Lock it?", false)? {
        bail!("the vault was not locked: confirm at the prompt, or pass --confirm-lock");
    }
    Ok(true)
}

fn print_protection(vault: &str, p: &VaultProtection) {
    let soft = p.soft_delete_days.map(|d| format!("on, {d} days")).unwrap_or_else(|| "off".into());
    println!("vault '{vault}' ({})", p.vault_id);
    println!("  soft delete:        {soft}");
    println!("  immutability:       {}", p.immutability);
    if p.immutability != Immutability::Disabled {
        println!("  minimum retention:  {} days", p.min_retention_days);
    }
    println!("  mass-deletion alert above {}% a day", p.mass_deletion_percent);
    for request in &p.requests {
        print_request(request);
    }
}

fn print_request(r: &ProtectionRequest) {
    let mut what = Vec::new();
    if let Some(days) = r.change.soft_delete_days {
        what.push(if days == 0 { "soft delete off".to_string() } else { format!("soft delete {days} days") });
    }
    if let Some(i) = r.change.immutability {
        what.push(format!("immutability {i}"));
    }
    if let Some(days) = r.change.min_retention_days {
        what.push(format!("minimum retention {days} days"));
    }
    if let Some(percent) = r.change.mass_deletion_percent {
        what.push(format!("alert above {percent}%"));
    }
    let decided = match (&r.decided, &r.decided_by) {
        (Some(at), Some(by)) => format!(" by {by} at {}", when(*at)),
        _ => String::new(),
    };
    println!(
        "  request {}: {} — asked by {} at {}; {}{decided}",
        r.id,
        what.join(", "),
        r.requested_by,
        when(r.requested),
        r.state
    );
}

pub(super) fn protection_request(session: &Session, command: &ProtectionRequestCommand) -> Result<()> {
    match command {
        ProtectionRequestCommand::List => session.show(&session.client.protection_requests()?, |list| {
            if list.is_empty() {
                println!("no request waits for a decision");
            }
            for r in list {
                println!("vault {}", r.vault_id);
                print_request(r);
            }
        }),
        ProtectionRequestCommand::Approve { id, note } | ProtectionRequestCommand::Reject { id, note } => {
            let approve = matches!(command, ProtectionRequestCommand::Approve { .. });
            let decided = session.client.decide_protection_request(id, approve, note.as_deref())?;
            session.show(&decided, |r| {
                println!("request {} {}: vault {}", r.id, r.state, r.vault_id);
                print_request(r);
            })
        }
    }
}

/// `offsite admin machine soft-deleted MACHINE`.
pub(super) fn soft_deleted(session: &Session, machine_id: &str) -> Result<()> {
    let removed = session.client.soft_deleted(machine_id)?;
    session.show(&removed, |s| {
        if s.files == 0 {
            println!("machine {machine_id} has nothing soft-deleted");
            return;
        }
        let (first, last) = (s.next_purge.map(when), s.last_purge.map(when));
        println!(
            "machine {machine_id}: {} files, {} soft-deleted; purged from {} to {}",
            s.files,
            ByteSize(s.bytes),
            first.unwrap_or_default(),
            last.unwrap_or_default()
        );
        for p in &s.recovery_points {
            let at = p.time.map(when).unwrap_or_else(|| "time unknown".into());
            let size = p.size.map(|n| ByteSize(n).to_string()).unwrap_or_else(|| "size unknown".into());
            println!(
                "  recovery point {}  {at}  {size}  removed {}  purged after {}",
                p.snapshot_id,
                when(p.deleted),
                when(p.purge_after)
            );
        }
        println!("bring them back with: offsite admin machine undelete {machine_id} [--point ID]…");
    })
}

/// `offsite admin machine undelete MACHINE [--point ID]…`.
pub(super) fn undelete(session: &Session, machine_id: &str, points: &[String]) -> Result<()> {
    let undeleted = session.client.undelete(machine_id, points)?;
    session.show(&undeleted, |u| {
        println!(
            "brought back {} files ({}) of machine {machine_id}, {} recovery points",
            u.files,
            ByteSize(u.bytes),
            u.recovery_points.len()
        );
        for id in &u.recovery_points {
            println!("  recovery point {id}");
        }
        if !u.recovery_points.is_empty() {
            println!("the machine sees them again; restore with: offsite agent restore --point ID --target FOLDER");
        }
    })
}

/// `offsite admin alert list`.
pub(super) fn alerts(session: &Session) -> Result<()> {
    session.show(&session.client.alerts(session.subscription_id())?, |list| {
        if list.is_empty() {
            println!("no alerts");
        }
        for a in list {
            println!("{}  {}  {}", when(a.raised), a.id, a.message);
        }
    })
}
