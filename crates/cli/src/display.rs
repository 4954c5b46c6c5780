//! How results read on a terminal: sizes and times for people.

pub use crate::commands::repo::human;
pub use offsite_api::size::plural;

/// A point in time as people read it in listings: `2026-11-25 11:34:13 UTC`.
pub fn when(time: time::OffsetDateTime) -> String {
    let format = time::macros::format_description!("[year]-[month]-[day] [hour]:[minute]:[second] UTC");
    time.to_offset(time::UtcOffset::UTC).format(&format).unwrap_or_default()
}
