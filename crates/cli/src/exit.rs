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

use offsite_engine::Error;

pub const INCOMPLETE: u8 = 3;

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
    match err.downcast_ref::<Error>() {
        Some(Error::NotARepository { .. }) => 10,
        Some(Error::Locked { .. }) => 11,
        Some(Error::WrongPassphrase { .. }) => 12,
        _ => 1,
    }
}
