//! Bandwidth throttling for uploads, as the agent's "work hours" setting
//! offers: one limit during work hours (chosen days, a start and an end time)
//! and another outside them. This module owns the [`Rate`] type and its text
//! forms, the [`BandwidthPolicy`] that says which limit applies when, and the
//! [`Throttle`] that uploader threads share to keep to it, slice by slice as
//! the bytes go onto the wire (it is the [`Pacer`] of paced uploads).

use std::fmt;
use std::str::FromStr;
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use chrono::{DateTime, Datelike, FixedOffset, Local, TimeZone};
use offsite_api::Pacer;
use serde::{de, Deserialize, Deserializer, Serialize, Serializer};

use crate::schedule::{shown, TimeOfDay, Weekday};

/// Why a rate was refused. Each message quotes the input and says what would
/// be accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RateError {
    #[error("'{0}' is not a rate: use a number and a unit, e.g. 512KiB/s, 2MiB/s, 10MB/s or 1.5MiB/s")]
    Malformed(String),
    #[error("'{0}' is in bits: give bandwidth limits in bytes, e.g. 10MB/s rather than 10Mb/s")]
    Bits(String),
    #[error("'{0}' is below the smallest limit, 1KiB/s; use 'unlimited' for no limit")]
    TooSmall(String),
    #[error("'{0}' is too large to be a rate")]
    TooLarge(String),
    #[error("'unlimited' is not a rate; it is allowed only where a limit may be left out")]
    Unlimited,
}

/// A bandwidth limit in bytes per second, at least [`Rate::MIN`].
///
/// Written as a number and a unit: "512KiB/s", "2MiB/s", "10MB/s", "1.5MiB/s"
/// ("/s" may be left out, and a bare number is bytes per second). KB, MB and
/// GB are powers of 1000; KiB, MiB and GiB powers of 1024.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Rate(u64);

/// The units a rate may be written in, largest first so that Display picks
/// the largest that fits.
const UNITS: [(&str, u64); 6] =
    [("GiB", 1 << 30), ("GB", 1_000_000_000), ("MiB", 1 << 20), ("MB", 1_000_000), ("KiB", 1 << 10), ("KB", 1_000)];

impl Rate {
    /// The smallest limit: below it, uploads would stall rather than trickle.
    pub const MIN: Rate = Rate(1024);

    /// A rate of `bytes_per_second`, refused below [`Rate::MIN`].
    pub fn new(bytes_per_second: u64) -> Result<Rate, RateError> {
        if bytes_per_second < Rate::MIN.0 {
            return Err(RateError::TooSmall(format!("{bytes_per_second}B/s")));
        }
        Ok(Rate(bytes_per_second))
    }

    pub fn bytes_per_second(self) -> u64 {
        self.0
    }
}

impl FromStr for Rate {
    type Err = RateError;

    fn from_str(s: &str) -> Result<Rate, RateError> {
        let text = s.trim();
        if text.eq_ignore_ascii_case("unlimited") {
            return Err(RateError::Unlimited);
        }
        let malformed = || RateError::Malformed(shown(s));
        let body = text.strip_suffix("/s").unwrap_or(text);
        let number_len = body.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(body.len());
        let (number, unit) = (&body[..number_len], body[number_len..].trim());

        let multiplier = if unit.is_empty() {
            1
        } else if let Some(multiplier) = unit.strip_suffix('B').and_then(prefix_multiplier) {
            multiplier
        } else if unit.strip_suffix('b').and_then(prefix_multiplier).is_some() {
            // A lowercase b is a bit: 10Mb/s is an eighth of what 10MB/s would allow.
            return Err(RateError::Bits(shown(s)));
        } else {
            return Err(malformed());
        };

        // Exact decimal arithmetic, so that "1.5MiB/s" is 1572864 bytes and
        // Display's output always parses back to the same rate.
        let (whole, fraction) = number.split_once('.').unwrap_or((number, ""));
        let digits_ok = |part: &str| part.bytes().all(|b| b.is_ascii_digit());
        if whole.is_empty() || !digits_ok(whole) || !digits_ok(fraction) || number.ends_with('.') {
            return Err(malformed());
        }
        // Nanobytes are as fine as anyone needs; longer inputs are refused rather than overflowing.
        if whole.len() > 20 || fraction.len() > 9 {
            return Err(if whole.len() > 20 { RateError::TooLarge(shown(s)) } else { malformed() });
        }
        let scale = 10u128.pow(fraction.len() as u32);
        let whole: u128 = whole.parse().map_err(|_| malformed())?;
        let fraction: u128 = if fraction.is_empty() { 0 } else { fraction.parse().map_err(|_| malformed())? };
        let scaled = (whole * scale + fraction) * u128::from(multiplier);
        let bytes = (scaled + scale / 2) / scale; // to the nearest byte
        let bytes = u64::try_from(bytes).map_err(|_| RateError::TooLarge(shown(s)))?;
        if bytes < Rate::MIN.0 {
            return Err(RateError::TooSmall(shown(s)));
        }
        Ok(Rate(bytes))
    }
}

/// What a unit's prefix ("Ki", "M", "g", …; any case) multiplies by.
fn prefix_multiplier(prefix: &str) -> Option<u64> {
    Some(match prefix.to_ascii_lowercase().as_str() {
        "" => 1,
        "k" => 1_000,
        "ki" => 1 << 10,
        "m" => 1_000_000,
        "mi" => 1 << 20,
        "g" => 1_000_000_000,
        "gi" => 1 << 30,
        _ => return None,
    })
}

impl fmt::Display for Rate {
    /// The largest unit in which the rate has at most two decimals: "2MiB/s",
    /// "1.5MiB/s", "10MB/s", "1000B/s" would be "1KB/s" (were it allowed).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let bytes = u128::from(self.0);
        for (name, size) in UNITS {
            let size = u128::from(size);
            if bytes >= size && (bytes * 100) % size == 0 {
                let hundredths = bytes * 100 / size;
                let (whole, fraction) = (hundredths / 100, hundredths % 100);
                return match fraction {
                    0 => write!(f, "{whole}{name}/s"),
                    _ if fraction % 10 == 0 => write!(f, "{whole}.{}{name}/s", fraction / 10),
                    _ => write!(f, "{whole}.{fraction:02}{name}/s"),
                };
            }
        }
        write!(f, "{}B/s", self.0)
    }
}

/// A limit as a configuration file writes it: a rate, or "unlimited".
pub fn parse_limit(s: &str) -> Result<Option<Rate>, RateError> {
    match s.parse() {
        Ok(rate) => Ok(Some(rate)),
        Err(RateError::Unlimited) => Ok(None),
        Err(err) => Err(err),
    }
}

/// Reads a limit from its text form or a number of bytes per second.
struct LimitVisitor;

impl<'de> de::Visitor<'de> for LimitVisitor {
    type Value = Option<Rate>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a rate such as \"2MiB/s\", or \"unlimited\"")
    }

    fn visit_str<E: de::Error>(self, s: &str) -> Result<Option<Rate>, E> {
        parse_limit(s).map_err(E::custom)
    }

    fn visit_u64<E: de::Error>(self, bytes_per_second: u64) -> Result<Option<Rate>, E> {
        Rate::new(bytes_per_second).map(Some).map_err(E::custom)
    }

    fn visit_i64<E: de::Error>(self, bytes_per_second: i64) -> Result<Option<Rate>, E> {
        let bytes = u64::try_from(bytes_per_second)
            .map_err(|_| E::custom(RateError::TooSmall(bytes_per_second.to_string())))?;
        self.visit_u64(bytes)
    }

    fn visit_unit<E: de::Error>(self) -> Result<Option<Rate>, E> {
        Ok(None)
    }

    fn visit_none<E: de::Error>(self) -> Result<Option<Rate>, E> {
        Ok(None)
    }

    fn visit_some<D: Deserializer<'de>>(self, deserializer: D) -> Result<Option<Rate>, D::Error> {
        deserializer.deserialize_any(LimitVisitor)
    }
}

impl Serialize for Rate {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Rate {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Rate, D::Error> {
        deserializer.deserialize_any(LimitVisitor)?.ok_or_else(|| de::Error::custom(RateError::Unlimited))
    }
}

/// Serde for the policy's optional limits: "unlimited" rather than null, which
/// TOML cannot write, so that a configuration file says what it means.
mod limit_serde {
    use super::*;

    pub fn serialize<S: Serializer>(limit: &Option<Rate>, serializer: S) -> Result<S::Ok, S::Error> {
        match limit {
            Some(rate) => serializer.collect_str(rate),
            None => serializer.serialize_str("unlimited"),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<Rate>, D::Error> {
        deserializer.deserialize_any(LimitVisitor)
    }
}

/// Which limit applies when: `work_limit` during work hours, `other_limit`
/// the rest of the time (`None` is no limit).
///
/// Work hours run from `work_start` to `work_end` on each of `work_days`. If
/// `work_end` is before `work_start` the window spans midnight and belongs to
/// the day it starts on: with fri 22:00–06:00, Saturday 03:00 is work hours
/// and Monday 03:00 is not. Equal start and end mean no work hours, as does
/// an empty `work_days`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct BandwidthPolicy {
    pub work_days: Vec<Weekday>,
    pub work_start: TimeOfDay,
    pub work_end: TimeOfDay,
    #[serde(with = "limit_serde")]
    pub work_limit: Option<Rate>,
    #[serde(with = "limit_serde")]
    pub other_limit: Option<Rate>,
}

impl Default for BandwidthPolicy {
    /// Monday to Friday, 09:00 to 18:00, and no limits.
    fn default() -> BandwidthPolicy {
        let time = |hour| TimeOfDay::new(hour, 0).expect("a whole hour before 24 is a time of day");
        BandwidthPolicy {
            work_days: Weekday::ALL[..5].to_vec(),
            work_start: time(9),
            work_end: time(18),
            work_limit: None,
            other_limit: None,
        }
    }
}

impl BandwidthPolicy {
    /// Whether `t`, read as a wall-clock time in its own zone, is in work hours.
    pub fn in_work_hours<Tz: TimeZone>(&self, t: &DateTime<Tz>) -> bool {
        let local = t.naive_local();
        let (day, time) = (Weekday::from(local.weekday()), local.time());
        let (start, end) = (self.work_start.as_naive(), self.work_end.as_naive());
        if start <= end {
            self.work_days.contains(&day) && start <= time && time < end
        } else {
            (self.work_days.contains(&day) && start <= time) || (self.work_days.contains(&day.pred()) && time < end)
        }
    }

    /// The limit in force at `t`: `None` is no limit.
    pub fn limit_at<Tz: TimeZone>(&self, t: &DateTime<Tz>) -> Option<Rate> {
        if self.in_work_hours(t) {
            self.work_limit
        } else {
            self.other_limit
        }
    }

    fn never_limits(&self) -> bool {
        self.work_limit.is_none() && self.other_limit.is_none()
    }
}

/// Where a [`Throttle`] reads the time and how it waits: the real clocks in
/// use, a simulated one in tests so that hours pass instantly.
trait Clock: Send + Sync {
    /// Now, in the zone whose wall-clock time the policy reads.
    fn wall(&self) -> DateTime<FixedOffset>;
    /// Monotonic time since some fixed start, for measuring rates.
    fn elapsed(&self) -> Duration;
    fn sleep(&self, duration: Duration);
}

struct SystemClock {
    start: Instant,
}

impl Clock for SystemClock {
    fn wall(&self) -> DateTime<FixedOffset> {
        Local::now().fixed_offset()
    }

    fn elapsed(&self) -> Duration {
        self.start.elapsed()
    }

    fn sleep(&self, duration: Duration) {
        std::thread::sleep(duration)
    }
}

/// Token amounts are in nanobytes (a billionth of a byte), so that a rate of
/// r bytes per second adds exactly r of them each nanosecond: no rounding,
/// however often the bucket is refilled.
const NANOBYTES_PER_BYTE: i128 = 1_000_000_000;

/// How often, at least, the throttle re-reads the policy, and the longest a
/// caller sleeps before looking again at the rate.
const RECHECK: Duration = Duration::from_secs(1);

/// The most an idle throttle saves up: a twentieth of a second at the rate.
/// What callers take over any second then stays within 5% of the limit, where
/// a full second's burst let them take twice the limit.
const BURST: Duration = Duration::from_millis(50);

/// The largest slice of a paced upload, whatever the rate: 64 KiB, the
/// twentieth of a second at 1.25 MiB/s. Below that rate slices are smaller.
const LARGEST_SLICE: u64 = 64 * 1024;

/// A token bucket shared by the uploader threads, whose rate follows a
/// [`BandwidthPolicy`] at the machine's local time.
///
/// Callers [`consume`](Throttle::consume) the bytes they are about to send
/// and are held back just long enough that, together, they keep to the limit
/// in force, with bursts of at most a twentieth of a second's worth. Large
/// amounts may be consumed at once: the caller runs up a debt and sleeps it
/// off, and later callers queue behind it. But what is consumed at once is sent
/// at once, so uploads consume slice by slice, each slice just before it goes
/// onto the wire (the [`Pacer`] implementation, see [`offsite_api::pacing`]):
/// the link, not only the average, keeps to the limit. When the limit changes
/// (work hours end, say), it applies within a second, to callers already
/// waiting too.
pub struct Throttle {
    policy: BandwidthPolicy,
    clock: Box<dyn Clock>,
    bucket: Mutex<Bucket>,
}

struct Bucket {
    /// The rate in force, as last read from the policy.
    rate: Option<Rate>,
    /// When the policy was last read (`Clock::elapsed`); `None` before the first time.
    read_at: Option<Duration>,
    /// When tokens were last added.
    refilled_at: Duration,
    /// Nanobytes that may be sent now, at most [`BURST`]'s worth; negative
    /// while callers owe for what they already took.
    tokens: i128,
    /// Every nanobyte ever added. A caller that takes more than there is
    /// waits for this to reach its ticket, so callers queue in arrival order
    /// and each waits only for the debt that was ahead of it and its own.
    added: i128,
}

impl Throttle {
    /// A throttle that keeps to `policy` at the local time.
    pub fn new(policy: BandwidthPolicy) -> Throttle {
        Throttle::with_clock(policy, Box::new(SystemClock { start: Instant::now() }))
    }

    /// A throttle that never waits.
    pub fn unlimited() -> Throttle {
        Throttle::new(BandwidthPolicy::default())
    }

    fn with_clock(policy: BandwidthPolicy, clock: Box<dyn Clock>) -> Throttle {
        let now = clock.elapsed();
        let bucket = Bucket { rate: None, read_at: None, refilled_at: now, tokens: 0, added: 0 };
        Throttle { policy, clock, bucket: Mutex::new(bucket) }
    }

    /// The policy this throttle follows.
    pub fn policy(&self) -> &BandwidthPolicy {
        &self.policy
    }

    /// The limit in force now: `None` is no limit.
    pub fn current_limit(&self) -> Option<Rate> {
        self.limit(true)
    }

    /// The limit in force, the policy re-read if `force` or as often as
    /// [`Throttle::consume`] does.
    fn limit(&self, force: bool) -> Option<Rate> {
        if self.policy.never_limits() {
            return None;
        }
        let mut bucket = self.lock();
        self.advance(&mut bucket, force);
        bucket.rate
    }

    /// Accounts for `bytes` about to be sent, sleeping the calling thread as
    /// long as the limit requires. Returns at once when there is no limit.
    pub fn consume(&self, bytes: u64) {
        if bytes == 0 || self.policy.never_limits() {
            return;
        }
        let mut ticket = None;
        loop {
            let wait = {
                let mut bucket = self.lock();
                self.advance(&mut bucket, false);
                let Some(rate) = bucket.rate else { return };
                let ticket = *ticket.get_or_insert_with(|| {
                    bucket.tokens = bucket.tokens.saturating_sub(i128::from(bytes) * NANOBYTES_PER_BYTE);
                    bucket.added.saturating_add(bucket.tokens.min(0).saturating_neg())
                });
                let owed = ticket.saturating_sub(bucket.added);
                if owed <= 0 {
                    return;
                }
                // Nanoseconds until `added` reaches the ticket at this rate, rounded up.
                let nanos = owed.unsigned_abs().div_ceil(u128::from(rate.bytes_per_second()));
                Duration::from_nanos(u64::try_from(nanos).unwrap_or(u64::MAX))
            };
            // Wake at least every second, so that a new limit applies to waiting callers too.
            self.clock.sleep(wait.min(RECHECK));
        }
    }

    /// Adds the tokens earned since the last call, and re-reads the policy if
    /// `force` or a second has passed since it was last read.
    fn advance(&self, bucket: &mut Bucket, force: bool) {
        let now = self.clock.elapsed();
        if let Some(rate) = bucket.rate {
            let nanos = i128::try_from(now.saturating_sub(bucket.refilled_at).as_nanos()).unwrap_or(i128::MAX);
            let earned = nanos.saturating_mul(i128::from(rate.bytes_per_second()));
            bucket.added = bucket.added.saturating_add(earned);
            bucket.tokens = bucket.tokens.saturating_add(earned).min(burst_of(rate));
        }
        bucket.refilled_at = bucket.refilled_at.max(now);

        if force || bucket.read_at.is_none_or(|read_at| now.saturating_sub(read_at) >= RECHECK) {
            let limit = self.policy.limit_at(&self.clock.wall());
            bucket.read_at = Some(now);
            match (bucket.rate, limit) {
                // No limit from now on: whatever is owed is forgiven, which
                // releases every waiting caller (no ticket is beyond `added`
                // plus the debt).
                (_, None) => {
                    bucket.added = bucket.added.saturating_add(bucket.tokens.min(0).saturating_neg());
                    bucket.tokens = 0;
                }
                // A limit starts with a full burst, as at startup.
                (None, Some(rate)) => bucket.tokens = burst_of(rate),
                // A new limit keeps any debt, repaid at the new rate.
                (Some(_), Some(rate)) => bucket.tokens = bucket.tokens.min(burst_of(rate)),
            }
            bucket.rate = limit;
        }
    }

    fn lock(&self) -> MutexGuard<'_, Bucket> {
        // The bucket is only numbers, always left consistent: a thread that
        // panicked elsewhere while holding it leaves nothing to repair.
        self.bucket.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// [`BURST`]'s worth of `rate`, in nanobytes: a rate of r bytes per second is r
/// nanobytes per nanosecond.
fn burst_of(rate: Rate) -> i128 {
    i128::from(rate.bytes_per_second()) * BURST.as_nanos() as i128
}

/// Paced uploads take their tokens a slice at a time.
impl Pacer for Throttle {
    /// A twentieth of a second at the limit in force, at most 64 KiB (no limit:
    /// 64 KiB, and pacing costs nothing).
    fn slice_len(&self) -> usize {
        let per_twentieth = self.limit(false).map_or(LARGEST_SLICE, |rate| rate.bytes_per_second() / 20);
        per_twentieth.clamp(1, LARGEST_SLICE) as usize
    }

    fn pace(&self, bytes: usize) {
        self.consume(bytes as u64);
    }

    fn slowest_rate(&self) -> Option<u64> {
        [self.policy.work_limit, self.policy.other_limit].into_iter().flatten().map(Rate::bytes_per_second).min()
    }
}

impl fmt::Debug for Throttle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Throttle").field("policy", &self.policy).finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    fn rate(s: &str) -> Rate {
        s.parse().unwrap()
    }

    fn time(s: &str) -> TimeOfDay {
        s.parse().unwrap()
    }

    /// 2024-06-03 is a Monday; `day` counts from it.
    fn local(day: u32, hour: u32, minute: u32) -> DateTime<FixedOffset> {
        let zone = FixedOffset::east_opt(3600).unwrap();
        zone.with_ymd_and_hms(2024, 6, 3 + day, hour, minute, 0).unwrap()
    }

    fn office_policy() -> BandwidthPolicy {
        BandwidthPolicy { work_limit: Some(rate("512KiB/s")), other_limit: Some(rate("10MB/s")), ..Default::default() }
    }

    #[test]
    fn rates_parse_in_each_unit() {
        let cases = [
            ("512KiB/s", 512 * 1024),
            ("2MiB/s", 2 << 20),
            ("10MB/s", 10_000_000),
            ("1.5MiB/s", 1_572_864),
            ("100KB", 100_000),
            (" 3 GiB/s ", 3 << 30),
            ("2gB/s", 2_000_000_000),
            ("2 miB/s", 2 << 20),
            ("4096", 4096),
            ("1.25KiB", 1280),
            ("1.0001MB/s", 1_000_100),
        ];
        for (text, bytes) in cases {
            assert_eq!(text.parse::<Rate>().map(Rate::bytes_per_second), Ok(bytes), "{text}");
        }
    }

    #[test]
    fn rates_display_in_the_most_natural_unit_and_round_trip() {
        let cases = [
            ("512KiB/s", "512KiB/s"),
            ("2MiB/s", "2MiB/s"),
            ("2048KiB/s", "2MiB/s"),
            ("10MB/s", "10MB/s"),
            ("1.5MiB/s", "1.5MiB/s"),
            ("1.25MiB/s", "1.25MiB/s"),
            ("100KB", "100KB/s"),
            ("1GiB/s", "1GiB/s"),
            ("1500000", "1.5MB/s"),
            ("1025", "1025B/s"),
        ];
        for (text, shown) in cases {
            let parsed = rate(text);
            assert_eq!(parsed.to_string(), shown, "{text}");
            assert_eq!(rate(shown), parsed, "{shown} reads back");
        }
        for bytes in [1024, 1025, 999_999, 1_000_001, 1_572_864, 123_456_789, u64::MAX] {
            let r = Rate::new(bytes).unwrap();
            assert_eq!(rate(&r.to_string()), r, "{r}");
        }
    }

    #[test]
    fn bad_rates_are_refused_with_a_reason() {
        assert_eq!("0".parse::<Rate>(), Err(RateError::TooSmall("0".into())));
        assert_eq!("0KiB/s".parse::<Rate>(), Err(RateError::TooSmall("0KiB/s".into())));
        assert_eq!("1000B/s".parse::<Rate>(), Err(RateError::TooSmall("1000B/s".into())));
        assert_eq!("1KB/s".parse::<Rate>(), Err(RateError::TooSmall("1KB/s".into())));
        assert_eq!(Rate::new(1023), Err(RateError::TooSmall("1023B/s".into())));
        assert_eq!("1KiB/s".parse::<Rate>(), Ok(Rate::MIN));
        assert_eq!("2gb/s".parse::<Rate>(), Err(RateError::Bits("2gb/s".into())));
        let err = "10Mb/s".parse::<Rate>().unwrap_err();
        assert_eq!(err, RateError::Bits("10Mb/s".into()));
        assert!(err.to_string().contains("10MB/s rather than 10Mb/s"), "{err}");
        for bad in ["", "fast", "MiB/s", "1.MiB/s", ".5MiB/s", "1.2.3MiB/s", "2 TiB/s", "2MiB/h", "-2MiB/s", "1e6"] {
            assert_eq!(bad.parse::<Rate>(), Err(RateError::Malformed(bad.trim().into())), "{bad}");
        }
        assert_eq!("20GiB/s".parse::<Rate>().map(Rate::bytes_per_second), Ok(20 << 30));
        assert_eq!("17179869184GiB/s".parse::<Rate>(), Err(RateError::TooLarge("17179869184GiB/s".into())));
        assert_eq!(
            "99999999999999999999999".parse::<Rate>(),
            Err(RateError::TooLarge("99999999999999999999999".into()))
        );
        assert_eq!("unlimited".parse::<Rate>(), Err(RateError::Unlimited));
        assert_eq!(parse_limit("Unlimited"), Ok(None));
        assert_eq!(parse_limit("2MiB/s"), Ok(Some(rate("2MiB/s"))));
        assert_eq!(parse_limit("2Mib/s"), Err(RateError::Bits("2Mib/s".into())));
    }

    #[test]
    fn limit_follows_work_hours_on_work_days() {
        let policy = office_policy();
        let (work, other) = (policy.work_limit, policy.other_limit);
        assert_eq!(policy.limit_at(&local(0, 8, 59)), other, "Monday before work");
        assert_eq!(policy.limit_at(&local(0, 9, 0)), work, "Monday as work starts");
        assert_eq!(policy.limit_at(&local(2, 12, 30)), work, "Wednesday midday");
        assert_eq!(policy.limit_at(&local(4, 17, 59)), work, "Friday just before the end");
        assert_eq!(policy.limit_at(&local(4, 18, 0)), other, "Friday as work ends");
        assert_eq!(policy.limit_at(&local(5, 12, 0)), other, "Saturday");
        assert_eq!(policy.limit_at(&local(6, 12, 0)), other, "Sunday");
        // The wall-clock time in the instant's own zone decides, not UTC's.
        assert_eq!(policy.limit_at(&local(0, 9, 30).with_timezone(&chrono::Utc)), other, "08:30 UTC");
    }

    #[test]
    fn a_window_spanning_midnight_belongs_to_the_day_it_starts() {
        let policy = BandwidthPolicy {
            work_days: vec![Weekday::Fri],
            work_start: time("22:00"),
            work_end: time("06:00"),
            work_limit: Some(rate("1MiB/s")),
            other_limit: None,
        };
        assert_eq!(policy.limit_at(&local(4, 21, 59)), None, "Friday evening");
        assert_eq!(policy.limit_at(&local(4, 22, 0)), policy.work_limit, "Friday night");
        assert_eq!(policy.limit_at(&local(5, 3, 0)), policy.work_limit, "small hours of Saturday");
        assert_eq!(policy.limit_at(&local(5, 6, 0)), None, "Saturday morning");
        assert_eq!(policy.limit_at(&local(5, 23, 0)), None, "Saturday night");
        assert_eq!(policy.limit_at(&local(4, 3, 0)), None, "small hours of Friday belong to Thursday");

        let no_hours = BandwidthPolicy { work_end: time("22:00"), ..policy };
        assert_eq!(no_hours.limit_at(&local(4, 22, 0)), None, "equal start and end: no work hours");
    }

    #[test]
    fn policy_serde_writes_units_and_unlimited() {
        let policy = office_policy();
        let json = serde_json::to_value(&policy).unwrap();
        assert_eq!(
            json,
            serde_json::json!({
                "work_days": ["mon", "tue", "wed", "thu", "fri"],
                "work_start": "09:00",
                "work_end": "18:00",
                "work_limit": "512KiB/s",
                "other_limit": "10MB/s",
            })
        );
        assert_eq!(serde_json::from_value::<BandwidthPolicy>(json).unwrap(), policy);

        let written = toml::to_string(&BandwidthPolicy::default()).unwrap();
        assert!(written.contains("work_limit = \"unlimited\""), "{written}");
        assert_eq!(toml::from_str::<BandwidthPolicy>(&written).unwrap(), BandwidthPolicy::default());

        // Hand-written: anything left out takes the default; a number is bytes per second.
        let policy: BandwidthPolicy = toml::from_str("work_limit = 1048576\nother_limit = \"unlimited\"").unwrap();
        assert_eq!(policy, BandwidthPolicy { work_limit: Some(rate("1MiB/s")), ..Default::default() });
        let err = toml::from_str::<BandwidthPolicy>("work_limit = \"8Mb/s\"").unwrap_err();
        assert!(err.to_string().contains("'8Mb/s' is in bits"), "{err}");
        let err = serde_json::from_str::<Rate>("\"unlimited\"").unwrap_err();
        assert!(err.to_string().contains("'unlimited' is not a rate"), "{err}");
        assert_eq!(serde_json::from_str::<Rate>("\"2MiB/s\"").unwrap(), rate("2MiB/s"));
    }

    /// Simulated time: sleeping moves it on at once, and the wall clock moves with it.
    struct FakeClock {
        start: DateTime<FixedOffset>,
        state: Mutex<FakeTime>,
    }

    #[derive(Default)]
    struct FakeTime {
        elapsed: Duration,
        slept: Duration,
        longest_sleep: Duration,
    }

    impl FakeClock {
        fn starting_at(start: DateTime<FixedOffset>) -> Arc<FakeClock> {
            Arc::new(FakeClock { start, state: Mutex::default() })
        }

        fn pass(&self, duration: Duration) {
            self.state.lock().unwrap().elapsed += duration;
        }

        fn slept(&self) -> Duration {
            self.state.lock().unwrap().slept
        }

        fn longest_sleep(&self) -> Duration {
            self.state.lock().unwrap().longest_sleep
        }
    }

    impl Clock for Arc<FakeClock> {
        fn wall(&self) -> DateTime<FixedOffset> {
            self.start + self.elapsed()
        }

        fn elapsed(&self) -> Duration {
            self.state.lock().unwrap().elapsed
        }

        fn sleep(&self, duration: Duration) {
            let mut state = self.state.lock().unwrap();
            state.elapsed += duration;
            state.slept += duration;
            state.longest_sleep = state.longest_sleep.max(duration);
        }
    }

    fn simulated(policy: BandwidthPolicy, start: DateTime<FixedOffset>) -> (Throttle, Arc<FakeClock>) {
        let clock = FakeClock::starting_at(start);
        (Throttle::with_clock(policy, Box::new(clock.clone())), clock)
    }

    const MIB: u64 = 1 << 20;

    #[test]
    fn the_limit_switches_when_work_hours_end_and_start() {
        let policy = office_policy();
        let (throttle, clock) = simulated(policy.clone(), local(0, 17, 59));
        assert_eq!(throttle.current_limit(), policy.work_limit);
        clock.pass(Duration::from_secs(60));
        assert_eq!(throttle.current_limit(), policy.other_limit);
        clock.pass(Duration::from_secs(15 * 3600));
        assert_eq!(throttle.current_limit(), policy.work_limit, "Tuesday 09:00");
        clock.pass(Duration::from_secs(4 * 24 * 3600));
        assert_eq!(throttle.current_limit(), policy.other_limit, "Saturday 09:00");
    }

    #[test]
    fn a_large_amount_sleeps_it_off_in_steps_of_at_most_a_second() {
        let policy = BandwidthPolicy { work_limit: Some(rate("1MiB/s")), ..Default::default() };
        let (throttle, clock) = simulated(policy, local(0, 10, 0));
        // A full bucket covers the first 50 ms' worth; the rest takes a second a MiB.
        throttle.consume(16 * MIB);
        assert_eq!(clock.slept(), Duration::from_millis(15_950));
        assert_eq!(clock.longest_sleep(), Duration::from_secs(1));
        // The bucket is now empty: another MiB takes another second.
        throttle.consume(MIB);
        assert_eq!(clock.slept(), Duration::from_millis(16_950));
    }

    #[test]
    fn the_burst_is_a_twentieth_of_a_second_of_the_rate() {
        let policy = BandwidthPolicy { work_limit: Some(rate("1MB/s")), ..Default::default() };
        let (throttle, clock) = simulated(policy, local(0, 10, 0));
        throttle.consume(50_000);
        assert_eq!(clock.slept(), Duration::ZERO, "the bucket starts full");
        throttle.consume(50_000);
        assert_eq!(clock.slept(), Duration::from_millis(50));
        // An idle minute saves up no more than 50 ms' worth.
        clock.pass(Duration::from_secs(60));
        throttle.consume(50_000);
        assert_eq!(clock.slept(), Duration::from_millis(50));
        throttle.consume(500_000);
        assert_eq!(clock.slept(), Duration::from_millis(550));
    }

    #[test]
    fn slices_are_a_twentieth_of_a_second_at_the_limit_and_at_most_64_kib() {
        let slice = |limit: Option<&str>| {
            let limit = limit.map(rate);
            let policy = BandwidthPolicy { work_limit: limit, other_limit: limit, ..Default::default() };
            let throttle = Throttle::new(policy);
            (throttle.slice_len(), throttle.slowest_rate())
        };
        assert_eq!(slice(Some("1MB/s")), (50_000, Some(1_000_000)));
        assert_eq!(slice(Some("1KiB/s")), (51, Some(1024)));
        assert_eq!(slice(Some("100MiB/s")), (64 * 1024, Some(100 * MIB)));
        assert_eq!(slice(None), (64 * 1024, None));
        // The slowest rate is the lower of the two limits, whichever is in force.
        let policy = BandwidthPolicy { other_limit: Some(rate("5MiB/s")), ..office_policy() };
        assert_eq!(Throttle::new(policy.clone()).slowest_rate(), policy.work_limit.map(Rate::bytes_per_second));
    }

    #[test]
    fn waiting_callers_are_released_when_the_limit_lifts() {
        // Work hours end ten seconds into a transfer that would take 99 seconds at the work limit.
        let policy = BandwidthPolicy { work_limit: Some(rate("1MiB/s")), ..Default::default() };
        let (throttle, clock) = simulated(policy, local(0, 17, 59));
        clock.pass(Duration::from_secs(50));
        throttle.consume(100 * MIB);
        let slept = clock.slept();
        assert!(slept >= Duration::from_secs(10) && slept <= Duration::from_secs(11), "slept {slept:?}");
        // And nothing is owed afterwards.
        throttle.consume(100 * MIB);
        assert_eq!(clock.slept(), slept);
    }

    #[test]
    fn debt_is_repaid_at_the_new_rate_when_the_limit_changes() {
        // 2 MiB/s at work, 1 MiB/s after 18:00; the transfer starts at 17:59:55.
        let policy = BandwidthPolicy {
            work_limit: Some(rate("2MiB/s")),
            other_limit: Some(rate("1MiB/s")),
            ..Default::default()
        };
        let (throttle, clock) = simulated(policy, local(0, 17, 59));
        clock.pass(Duration::from_secs(55));
        // 0.1 MiB from the burst, 10 MiB in the five work seconds, the last 9.9 MiB at 1 MiB/s.
        throttle.consume(20 * MIB);
        assert_eq!(clock.slept(), Duration::from_millis(14_900));
    }

    #[test]
    fn a_limit_starting_mid_transfer_applies_to_what_follows() {
        let policy = BandwidthPolicy { other_limit: None, ..office_policy() };
        let (throttle, clock) = simulated(policy, local(0, 8, 59));
        throttle.consume(u64::MAX);
        assert_eq!(clock.slept(), Duration::ZERO, "no limit before work hours");
        clock.pass(Duration::from_secs(60));
        // 512KiB/s from 09:00: a full bucket (50 ms' worth), then the rest of a MiB at that rate.
        throttle.consume(MIB);
        assert_eq!(clock.slept(), Duration::from_millis(1_950));
    }

    #[test]
    fn callers_queue_for_the_debt_ahead_of_them() {
        // Two real threads share a throttle whose limit is the same at all hours.
        let limit = Some(rate("400KiB/s"));
        let policy = BandwidthPolicy { work_limit: limit, other_limit: limit, ..Default::default() };
        let throttle = Arc::new(Throttle::new(policy));
        let started = Instant::now();
        let threads: Vec<_> = (0..2)
            .map(|_| {
                let throttle = Arc::clone(&throttle);
                std::thread::spawn(move || {
                    for _ in 0..4 {
                        throttle.consume(50 * 1024);
                    }
                })
            })
            .collect();
        for thread in threads {
            thread.join().unwrap();
        }
        // 400 KiB at 400 KiB/s, less the 20 KiB the full bucket lets through at once.
        let elapsed = started.elapsed();
        assert!(elapsed >= Duration::from_millis(940), "took only {elapsed:?}");
        assert_eq!(throttle.current_limit(), limit);
    }

    /// Simulated time shared by several threads: a thread that sleeps waits until
    /// every thread taking part sleeps too (or has finished), and then time jumps
    /// to the earliest wake-up. Between sleeps a thread takes no time at all, so
    /// what it reads from the clock is exactly when it was let go.
    struct SimClock {
        start: DateTime<FixedOffset>,
        state: Mutex<SimTime>,
        woken: std::sync::Condvar,
    }

    struct SimTime {
        now: Duration,
        /// Threads taking part that are not asleep.
        running: usize,
        /// When each sleeping thread wakes.
        wakes: Vec<Duration>,
    }

    impl SimClock {
        fn new(start: DateTime<FixedOffset>, threads: usize) -> Arc<SimClock> {
            let state = SimTime { now: Duration::ZERO, running: threads, wakes: Vec::new() };
            Arc::new(SimClock { start, state: Mutex::new(state), woken: std::sync::Condvar::new() })
        }

        /// A thread taking part has finished.
        fn leave(&self) {
            let mut time = self.state.lock().unwrap();
            time.running -= 1;
            self.advance(&mut time);
        }

        /// Once nobody runs, moves time on to the next wake-up and counts those
        /// who wake then as running (before they have noticed).
        fn advance(&self, time: &mut SimTime) {
            if time.running > 0 {
                return;
            }
            let Some(&next) = time.wakes.iter().min() else { return };
            time.now = next;
            let before = time.wakes.len();
            time.wakes.retain(|&wake| wake > next);
            time.running += before - time.wakes.len();
            self.woken.notify_all();
        }
    }

    impl Clock for Arc<SimClock> {
        fn wall(&self) -> DateTime<FixedOffset> {
            self.start + self.elapsed()
        }

        fn elapsed(&self) -> Duration {
            self.state.lock().unwrap().now
        }

        fn sleep(&self, duration: Duration) {
            if duration.is_zero() {
                return;
            }
            let mut time = self.state.lock().unwrap();
            let wake = time.now + duration;
            time.wakes.push(wake);
            time.running -= 1;
            self.advance(&mut time);
            while time.now < wake {
                time = self.woken.wait(time).unwrap();
            }
        }
    }

    /// What an upload does next: send so many bytes, or stay idle so long.
    enum Step {
        Send(u64),
        Idle(Duration),
    }

    /// Runs each upload on its own thread through one throttle at `limit`, in
    /// simulated time, pacing every slice as a paced upload does; returns when
    /// each slice was let go and its size.
    fn paced_uploads(limit: &str, uploads: Vec<Vec<Step>>) -> Vec<(Duration, u64)> {
        let limit = Some(rate(limit));
        let policy = BandwidthPolicy { work_limit: limit, other_limit: limit, ..Default::default() };
        let clock = SimClock::new(local(0, 10, 0), uploads.len());
        let throttle = Throttle::with_clock(policy, Box::new(clock.clone()));
        let released = Mutex::new(Vec::new());
        std::thread::scope(|scope| {
            for steps in uploads {
                let (clock, throttle, released) = (&clock, &throttle, &released);
                scope.spawn(move || {
                    struct Leave<'a>(&'a SimClock);
                    impl Drop for Leave<'_> {
                        fn drop(&mut self) {
                            self.0.leave();
                        }
                    }
                    let _leave = Leave(clock);
                    for step in steps {
                        match step {
                            Step::Idle(duration) => clock.sleep(duration),
                            Step::Send(mut left) => {
                                while left > 0 {
                                    let slice = (throttle.slice_len() as u64).min(left);
                                    throttle.pace(slice as usize);
                                    released.lock().unwrap().push((clock.elapsed(), slice));
                                    left -= slice;
                                }
                            }
                        }
                    }
                });
            }
        });
        let mut released = released.into_inner().unwrap();
        released.sort();
        released
    }

    /// The bytes let go in each `window` that starts when a slice was let go and
    /// ends before the last one was (windows that run past the end are left out,
    /// unless there is only one).
    fn windows(released: &[(Duration, u64)], window: Duration) -> Vec<u64> {
        let end = released.last().map_or(Duration::ZERO, |&(at, _)| at);
        let starts = released.iter().filter(|&&(at, _)| at + window <= end || at == released[0].0);
        starts
            .map(|&(start, _)| {
                released.iter().filter(|&&(at, _)| at >= start && at < start + window).map(|&(_, bytes)| bytes).sum()
            })
            .collect()
    }

    #[test]
    fn paced_uploads_keep_every_second_within_a_tenth_of_the_limit() {
        // Two uploads of 16 MiB packs at 1 MiB/s; the second pauses between packs,
        // so the bucket fills up again while the first goes on.
        let pack = 16 * MIB;
        let pause = || Step::Idle(Duration::from_millis(2_500));
        let uploads = vec![
            vec![Step::Send(pack), Step::Send(pack)],
            vec![pause(), Step::Send(pack), pause(), Step::Send(pack / 4)],
        ];
        let released = paced_uploads("1MiB/s", uploads);
        assert_eq!(released.iter().map(|&(_, bytes)| bytes).sum::<u64>(), 2 * pack + pack + pack / 4);
        assert!(released.iter().all(|&(_, bytes)| bytes <= MIB / 20), "slices are 50 ms at the rate");

        let seconds = windows(&released, Duration::from_secs(1));
        assert!(seconds.len() > 500, "{} windows", seconds.len());
        let busiest = seconds.iter().max().copied().unwrap_or(0);
        assert!(busiest as f64 <= 1.1 * MIB as f64, "{busiest} bytes in a second at 1 MiB/s");
        // A sliver of a second holds no more than the burst and a slice.
        let busiest = windows(&released, Duration::from_millis(10)).into_iter().max().unwrap_or(0);
        assert!(busiest <= MIB / 10 + 1, "{busiest} bytes in 10 ms at 1 MiB/s");
    }

    #[test]
    fn paced_uploads_keep_every_minute_within_five_percent_of_the_limit() {
        // Two uploads sending at once for more than a minute share the limit:
        // every minute carries the limit's worth, no more and hardly less.
        let uploads = (0..2).map(|_| vec![Step::Send(50 * MIB)]).collect();
        let released = paced_uploads("1MiB/s", uploads);
        let minutes = windows(&released, Duration::from_secs(60));
        assert!(minutes.len() > 500, "{} windows", minutes.len());
        let (least, most) = (minutes.iter().min().copied().unwrap(), minutes.iter().max().copied().unwrap());
        assert!(most as f64 <= 1.05 * 60.0 * MIB as f64, "{most} bytes in a minute at 1 MiB/s");
        assert!(least as f64 >= 0.95 * 60.0 * MIB as f64, "{least} bytes in a minute at 1 MiB/s");
        // The whole took the limit's time: 100 MiB at 1 MiB/s, less the burst.
        assert_eq!(released.last().unwrap().0, Duration::from_millis(99_950));
    }

    #[test]
    fn unlimited_never_sleeps() {
        let started = Instant::now();
        let throttle = Throttle::unlimited();
        for _ in 0..1000 {
            throttle.consume(u64::MAX);
        }
        assert_eq!(throttle.current_limit(), None);
        Throttle::new(BandwidthPolicy::default()).consume(16 * MIB);
        assert!(started.elapsed() < Duration::from_secs(1));
    }

    #[test]
    fn throttle_can_be_shared_between_threads() {
        fn shareable<T: Send + Sync>() {}
        shareable::<Throttle>();
    }
}
