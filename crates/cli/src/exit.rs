//! Exit codes and error messages at the binary's edge.
//!
//! | code | meaning |
//! |---|---|
//! | 0 | success |
//! | 1 | failure (the message says what and what to do) |
//! | 2 | wrong command-line usage |
//! | 3 | finished, but some items could not be read or restored (they are named) |
//! | 10 | the location is not a repository |
//! | 11 | the repository is locked by another process |
//! | 12 | wrong passphrase |
//! | 13 | the service cannot be reached |
//! | 14 | the service refused the credential (expired, used, revoked, unknown) |
//! | 15 | this machine is not registered |
//! | 16 | nothing was done: steps by hand are needed, and they are printed (certgen: the application exists) |
//! | 17 | a drive was refused or read with damage: the report names what to do |
//! | 18 | a chain of custody does not verify: the report names each event at fault |

use offsite_engine::Error;

pub const INCOMPLETE: u8 = 3;
pub const MANUAL_STEPS: u8 = 16;
pub const DRIVE_PROBLEM: u8 = 17;
pub const CUSTODY_BROKEN: u8 = 18;

/// What the user reads: the error chain joined, without debug dumps.
pub fn describe(err: &anyhow::Error) -> String {
    let mut parts: Vec<String> = Vec::new();
    for cause in err.chain() {
        let text = cause.to_string();
        if !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
    }
    parts.join(": ")
}

pub fn code_for(err: &anyhow::Error) -> u8 {
    use offsite_agent::AgentError;
    use offsite_api::ApiError;
    let api = err.downcast_ref::<ApiError>().or(match err.downcast_ref::<AgentError>() {
        Some(AgentError::Api(api)) => Some(api),
        _ => None,
    });
    match api {
        Some(ApiError::Unreachable { .. }) => return 13,
        Some(ApiError::Refused { status: 401, .. }) => return 14,
        _ => {}
    }
    // Failures of the vault storage reach here inside engine errors.
    let backend = match err.downcast_ref::<AgentError>() {
        Some(AgentError::Engine(Error::Backend(b))) => Some(b),
        _ => match err.downcast_ref::<Error>() {
            Some(Error::Backend(b)) => Some(b),
            _ => err.downcast_ref::<offsite_engine::backend::BackendError>(),
        },
    };
    match backend {
        Some(offsite_engine::backend::BackendError::Unreachable { .. }) => return 13,
        Some(offsite_engine::backend::BackendError::Refused { status: 401, .. }) => return 14,
        _ => {}
    }
    let engine = err.downcast_ref::<Error>().or(match err.downcast_ref::<AgentError>() {
        Some(AgentError::Engine(e)) => Some(e),
        Some(AgentError::NotRegistered { .. }) => return 15,
        Some(AgentError::CredentialsExpired { .. }) => return 14,
        Some(AgentError::WrongPassphrase) => return 12,
        _ => None,
    });
    match engine {
        Some(Error::NotARepository { .. }) => 10,
        Some(Error::Locked { .. }) => 11,
        Some(Error::WrongPassphrase { .. }) => 12,
        _ => 1,
    }
}
