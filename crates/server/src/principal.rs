//! Whom a request speaks for, and what each kind of caller may touch. Services
//! check the tenant of every resource they load against it, answering "not found"
//! for another tenant's resources so that ids of others cannot even be probed.
//! [`crate::auth`] makes a `Principal` from a request's credential.

use crate::error::Failure;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Principal {
    Operator,
    /// A subscription's management credential (its publish settings), or a
    /// subscription's portal user.
    Subscription {
        subscription_id: String,
        /// When the credential presented stops working (Unix seconds); `None` for
        /// one that works until revoked, and for a portal user. What it issues
        /// expires no later.
        credential_expires: Option<i64>,
    },
    /// A vault credentials file: may only register one machine to one vault.
    Registration {
        credential_id: String,
        vault_id: String,
    },
    /// A registered machine.
    Machine {
        machine_id: String,
        vault_id: String,
        subscription_id: String,
    },
    /// A subscription's offline-seeding application, by a signed request.
    Application {
        application_id: String,
        subscription_id: String,
        thumbprint: String,
    },
    /// A datacenter's ingest station (a station credential): the station's steps
    /// on the import jobs shipped to that datacenter, nothing else.
    Station {
        credential_id: String,
        datacenter_id: String,
    },
}

impl Principal {
    pub fn require_operator(&self) -> Result<(), Failure> {
        match self {
            Principal::Operator => Ok(()),
            _ => Err(Failure::Forbidden("only the service operator may do this".into())),
        }
    }

    /// Operators and the subscription itself manage a subscription's resources.
    pub fn manages(&self, subscription_id: &str) -> bool {
        match self {
            Principal::Operator => true,
            Principal::Subscription { subscription_id: own, .. } => own == subscription_id,
            _ => false,
        }
    }

    /// Reading a machine's records: the machine itself, its subscription, operators.
    pub fn may_read_machine(&self, machine_id: &str, subscription_id: &str) -> bool {
        match self {
            Principal::Machine { machine_id: own, .. } => own == machine_id,
            other => other.manages(subscription_id),
        }
    }

    /// What offline seeding needs of a subscription (reading it, its storage
    /// accounts and containers, its import jobs and their shipping and repair
    /// drives): its managers, and its own offline-seeding application.
    pub fn seeds(&self, subscription_id: &str) -> bool {
        match self {
            Principal::Application { subscription_id: own, .. } => own == subscription_id,
            other => other.manages(subscription_id),
        }
    }

    /// Running the ingest station for an import job shipped to `datacenter_id`
    /// (receiving its package, reading it, ingesting its drives, their states and
    /// logs, packaging): operators, and that datacenter's station credentials.
    /// Every service that lets a station in asks this, and nothing else does.
    pub fn ingests_at(&self, datacenter_id: &str) -> bool {
        match self {
            Principal::Operator => true,
            Principal::Station { datacenter_id: own, .. } => own == datacenter_id,
            _ => false,
        }
    }

    /// A station credential, which may do nothing but [`Principal::ingests_at`]'s steps.
    pub fn is_station(&self) -> bool {
        matches!(self, Principal::Station { .. })
    }

    /// Caps the expiry of a credential this caller issues at its own: a
    /// credential cannot outlive the one that issued it, so a stolen short-lived
    /// credential cannot mint a lasting one. Returns the expiry to store and
    /// whether it was shortened.
    pub fn cap_expiry(&self, asked: Option<i64>) -> (Option<i64>, bool) {
        let own = match self {
            Principal::Subscription { credential_expires, .. } => *credential_expires,
            _ => None,
        };
        match (asked, own) {
            (_, None) => (asked, false),
            (Some(asked), Some(own)) if asked <= own => (Some(asked), false),
            (_, Some(own)) => (Some(own), true),
        }
    }

    pub fn is_machine(&self, machine_id: &str) -> bool {
        matches!(self, Principal::Machine { machine_id: own, .. } if own == machine_id)
    }
}
