//! How results read on a terminal: sizes and times for people.

pub use crate::commands::repo::human;
pub use offsite_api::size::plural;

/// A point in time as people read it in listings: `2026-11-25 11:34:13 UTC`.
pub fn when(time: time::OffsetDateTime) -> String {
    let format = time::macros::format_description!("[year]-[month]-[day] [hour]:[minute]:[second] UTC");
    time.to_offset(time::UtcOffset::UTC).format(&format).unwrap_or_default()
}

/// One line about a file restore could not bring back: `PATH: why`, and where what
/// could be read of it was kept.
pub fn restore_failure(failure: &offsite_engine::restorer::RestoreFailure) -> String {
    match &failure.partial {
        Some(partial) => format!("{}: {} (what could be read is in {partial})", failure.path, failure.reason),
        None => format!("{}: {}", failure.path, failure.reason),
    }
}
