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
