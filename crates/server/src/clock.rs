//! The service's one clock.

use time::OffsetDateTime;

/// The service's idea of the current time: the system clock plus the configured
/// offset (`ServerConfig::clock_offset_seconds`), so deadlines can be tested
/// without waiting. Everything the service stamps or compares reads this one.
#[derive(Debug, Clone, Copy, Default)]
pub struct Clock {
    offset_seconds: i64,
}

impl Clock {
    pub fn new(offset_seconds: i64) -> Clock {
        Clock { offset_seconds }
    }

    pub fn now(&self) -> OffsetDateTime {
        OffsetDateTime::now_utc() + time::Duration::seconds(self.offset_seconds)
    }

    /// [`Clock::now`] in seconds since the epoch, as the database stores times.
    pub fn unix(&self) -> i64 {
        self.now().unix_timestamp()
    }
}

/// A time as messages and logs show it (RFC 3339).
pub fn format_time(time: OffsetDateTime) -> String {
    time.format(&time::format_description::well_known::Rfc3339).unwrap_or_else(|_| time.to_string())
}

/// [`format_time`] of seconds since the epoch, as the database stores times.
pub fn format_seconds(seconds: i64) -> String {
    OffsetDateTime::from_unix_timestamp(seconds).map(format_time).unwrap_or_else(|_| seconds.to_string())
}
