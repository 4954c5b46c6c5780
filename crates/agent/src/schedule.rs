//! When scheduled backups run: times of day on chosen days of the week, as
//! the agent's "schedule backup" settings offer. This module owns the
//! schedule's vocabulary ([`TimeOfDay`], [`Weekday`]), its validation and text
//! forms, and the one calculation the scheduler needs: the next run after a
//! given instant, in the machine's local time, across DST changes.

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Datelike, Duration, MappedLocalTime, NaiveDateTime, NaiveTime, TimeZone, Timelike};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// The most times a day a schedule may run: every half hour.
pub const MAX_TIMES_PER_DAY: usize = 48;

/// Why a schedule, time of day or day of week was refused. Each message names
/// the offending item and says what would be accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScheduleError {
    #[error("'{0}' is not a time of day: use HH:MM, e.g. 02:30")]
    BadTime(String),
    #[error(
        "'{0}' is not a day of the week: use mon, tue, wed, thu, fri, sat or sun (or the full name), \
         a range such as mon-fri, or 'daily'"
    )]
    BadDay(String),
    #[error("a schedule needs at least one time of day, e.g. 02:00")]
    NoTimes,
    #[error("a schedule may run at most {max} times a day, not {0}", max = MAX_TIMES_PER_DAY)]
    TooManyTimes(usize),
}

/// A time of day at minute precision, written "HH:MM" (24-hour clock).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TimeOfDay(NaiveTime);

impl TimeOfDay {
    /// `hour` 0–23 and `minute` 0–59; `None` otherwise.
    pub fn new(hour: u32, minute: u32) -> Option<TimeOfDay> {
        NaiveTime::from_hms_opt(hour, minute, 0).map(TimeOfDay)
    }

    pub fn hour(self) -> u32 {
        self.0.hour()
    }

    pub fn minute(self) -> u32 {
        self.0.minute()
    }

    /// The same time as a chrono time (seconds are always zero).
    pub fn as_naive(self) -> NaiveTime {
        self.0
    }
}

impl FromStr for TimeOfDay {
    type Err = ScheduleError;

    fn from_str(s: &str) -> Result<TimeOfDay, ScheduleError> {
        let bad = || ScheduleError::BadTime(shown(s));
        let (hour, minute) = s.trim().split_once(':').ok_or_else(bad)?;
        // Digits only: u32::from_str would also take "+2", and "2:5" reads as 02:05 to some and 02:50 to others.
        let digits = |part: &str, lengths: &[usize]| {
            if lengths.contains(&part.len()) && part.bytes().all(|b| b.is_ascii_digit()) {
                part.parse::<u32>().ok()
            } else {
                None
            }
        };
        let hour = digits(hour, &[1, 2]).ok_or_else(bad)?;
        let minute = digits(minute, &[2]).ok_or_else(bad)?;
        TimeOfDay::new(hour, minute).ok_or_else(bad)
    }
}

impl fmt::Display for TimeOfDay {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:02}:{:02}", self.hour(), self.minute())
    }
}

impl Serialize for TimeOfDay {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for TimeOfDay {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<TimeOfDay, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

/// A day of the week, written "mon" … "sun". Our own type rather than
/// chrono's so that its text form (and so the configuration file) does not
/// depend on chrono's formatting.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Weekday {
    Mon,
    Tue,
    Wed,
    Thu,
    Fri,
    Sat,
    Sun,
}

impl Weekday {
    /// Monday to Sunday, in order.
    pub const ALL: [Weekday; 7] =
        [Weekday::Mon, Weekday::Tue, Weekday::Wed, Weekday::Thu, Weekday::Fri, Weekday::Sat, Weekday::Sun];

    /// The short name: "mon" … "sun".
    pub fn short_name(self) -> &'static str {
        ["mon", "tue", "wed", "thu", "fri", "sat", "sun"][self.index()]
    }

    /// The full name: "monday" … "sunday".
    pub fn full_name(self) -> &'static str {
        ["monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"][self.index()]
    }

    /// The day after this one (Sunday is followed by Monday).
    pub fn succ(self) -> Weekday {
        Weekday::ALL[(self.index() + 1) % 7]
    }

    /// The day before this one (Monday is preceded by Sunday).
    pub fn pred(self) -> Weekday {
        Weekday::ALL[(self.index() + 6) % 7]
    }

    fn index(self) -> usize {
        self as usize
    }
}

impl From<chrono::Weekday> for Weekday {
    fn from(day: chrono::Weekday) -> Weekday {
        Weekday::ALL[day.num_days_from_monday() as usize]
    }
}

impl From<Weekday> for chrono::Weekday {
    fn from(day: Weekday) -> chrono::Weekday {
        [
            chrono::Weekday::Mon,
            chrono::Weekday::Tue,
            chrono::Weekday::Wed,
            chrono::Weekday::Thu,
            chrono::Weekday::Fri,
            chrono::Weekday::Sat,
            chrono::Weekday::Sun,
        ][day.index()]
    }
}

impl FromStr for Weekday {
    type Err = ScheduleError;

    /// "mon" or "monday", in any case.
    fn from_str(s: &str) -> Result<Weekday, ScheduleError> {
        let wanted = s.trim();
        Weekday::ALL
            .into_iter()
            .find(|day| wanted.eq_ignore_ascii_case(day.short_name()) || wanted.eq_ignore_ascii_case(day.full_name()))
            .ok_or_else(|| ScheduleError::BadDay(shown(s)))
    }
}

impl fmt::Display for Weekday {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.short_name())
    }
}

impl Serialize for Weekday {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.short_name())
    }
}

impl<'de> Deserialize<'de> for Weekday {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Weekday, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

/// Parses a comma-separated list of days: names ("mon", "Monday"), ranges
/// ("mon-fri"; "fri-mon" wraps over the weekend), or "daily" alone for all
/// seven. The result is sorted Monday first, without repeats; "" gives an
/// empty list (what an empty list means is up to the caller).
pub fn parse_days(list: &str) -> Result<Vec<Weekday>, ScheduleError> {
    if list.trim().eq_ignore_ascii_case("daily") {
        return Ok(Weekday::ALL.to_vec());
    }
    let mut days = Vec::new();
    for item in list.split(',').map(str::trim).filter(|item| !item.is_empty()) {
        match item.split_once('-') {
            Some((first, last)) => {
                let bad = |_| ScheduleError::BadDay(shown(item));
                let (first, last) = (first.parse::<Weekday>().map_err(bad)?, last.parse::<Weekday>().map_err(bad)?);
                let mut day = first;
                days.push(day);
                while day != last {
                    day = day.succ();
                    days.push(day);
                }
            }
            None => days.push(item.parse()?),
        }
    }
    days.sort();
    days.dedup();
    Ok(days)
}

/// When scheduled backups run: each of `times` on each of `days`, in the
/// machine's local time.
///
/// Built by [`Schedule::new`] (or [`Schedule::parse`], or deserialised, which
/// goes through `new`), `times` is sorted without repeats and holds 1 to
/// [`MAX_TIMES_PER_DAY`] times; `days` is sorted without repeats, and empty
/// means every day (naming all seven is stored as empty).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "ScheduleFields")]
pub struct Schedule {
    pub times: Vec<TimeOfDay>,
    pub days: Vec<Weekday>,
}

/// What a configuration file holds, before [`Schedule::new`] checks it.
#[derive(Deserialize)]
struct ScheduleFields {
    times: Vec<TimeOfDay>,
    #[serde(default)]
    days: Vec<Weekday>,
}

impl TryFrom<ScheduleFields> for Schedule {
    type Error = ScheduleError;

    fn try_from(fields: ScheduleFields) -> Result<Schedule, ScheduleError> {
        Schedule::new(fields.times, fields.days)
    }
}

impl Schedule {
    /// A schedule running at each of `times` on each of `days` (every day if
    /// `days` is empty). Refuses no times, and more than [`MAX_TIMES_PER_DAY`]
    /// distinct times.
    pub fn new(mut times: Vec<TimeOfDay>, mut days: Vec<Weekday>) -> Result<Schedule, ScheduleError> {
        times.sort();
        times.dedup();
        if times.is_empty() {
            return Err(ScheduleError::NoTimes);
        }
        if times.len() > MAX_TIMES_PER_DAY {
            return Err(ScheduleError::TooManyTimes(times.len()));
        }
        days.sort();
        days.dedup();
        if days.len() == Weekday::ALL.len() {
            days.clear();
        }
        Ok(Schedule { times, days })
    }

    /// A schedule from comma-separated lists: `times` such as "02:00,13:30";
    /// `days` such as "mon,wed,fri" or "mon-fri", or "daily" or "" for every day.
    pub fn parse(times: &str, days: &str) -> Result<Schedule, ScheduleError> {
        let times = times
            .split(',')
            .map(str::trim)
            .filter(|item| !item.is_empty())
            .map(TimeOfDay::from_str)
            .collect::<Result<Vec<_>, _>>()?;
        Schedule::new(times, parse_days(days)?)
    }

    /// Whether the schedule runs on `day`.
    pub fn runs_on(&self, day: Weekday) -> bool {
        self.days.is_empty() || self.days.contains(&day)
    }

    /// The first scheduled instant strictly after `now`, in `now`'s time zone.
    ///
    /// Times are wall-clock times in that zone. A time that does not exist on
    /// a day (skipped by a DST change) runs at the first instant after the
    /// gap, once however many scheduled times fall in it; a time that occurs
    /// twice (clocks going back) runs at its first occurrence only.
    ///
    /// A schedule with no times, possible only by building the struct by
    /// hand, never runs: the answer is then a week after `now`.
    pub fn next_after<Tz: TimeZone>(&self, now: &DateTime<Tz>) -> DateTime<Tz> {
        let zone = now.timezone();
        let today = now.naive_local().date();
        // Start a day early: where clocks go back over midnight, today's local
        // date can be behind a day whose runs are still to come. A week and a
        // day ahead covers the same weekday next week. Local times map to
        // instants in order, so the first candidate after `now` is the earliest.
        for offset in -1..=8 {
            let Some(date) = today.checked_add_signed(Duration::days(offset)) else { continue };
            if !self.runs_on(date.weekday().into()) {
                continue;
            }
            for time in &self.times {
                if let Some(at) = resolve(&zone, date.and_time(time.as_naive())) {
                    if at > *now {
                        return at;
                    }
                }
            }
        }
        now.clone().checked_add_signed(Duration::days(7)).unwrap_or_else(|| now.clone())
    }
}

/// The instant a scheduled wall-clock time means in `zone`: the time itself,
/// the earlier of two, or, inside a DST gap, the first valid instant after it.
fn resolve<Tz: TimeZone>(zone: &Tz, local: NaiveDateTime) -> Option<DateTime<Tz>> {
    match zone.from_local_datetime(&local) {
        MappedLocalTime::Single(at) => Some(at),
        MappedLocalTime::Ambiguous(earlier, _) => Some(earlier),
        MappedLocalTime::None => {
            // Transitions fall on whole minutes in every zone's modern rules, so
            // the first minute that exists is where the gap ends. Gaps last an
            // hour or so; the longest on record skipped a whole day (Samoa, 2011).
            let mut minute = local;
            for _ in 0..2 * 24 * 60 {
                minute = minute.checked_add_signed(Duration::minutes(1))?;
                if let Some(at) = zone.from_local_datetime(&minute).earliest() {
                    return Some(at);
                }
            }
            None
        }
    }
}

impl fmt::Display for Schedule {
    /// "02:00, 13:30 on mon, wed, fri" or "02:00 every day".
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_list(f, &self.times)?;
        if self.days.is_empty() || Weekday::ALL.iter().all(|day| self.days.contains(day)) {
            f.write_str(" every day")
        } else {
            f.write_str(" on ")?;
            write_list(f, &self.days)
        }
    }
}

fn write_list<T: fmt::Display>(f: &mut fmt::Formatter<'_>, items: &[T]) -> fmt::Result {
    for (i, item) in items.iter().enumerate() {
        if i > 0 {
            f.write_str(", ")?;
        }
        write!(f, "{item}")?;
    }
    Ok(())
}

/// `s` as an error message quotes it: trimmed, and cut short, since it may be
/// a whole line of someone's configuration file.
pub(crate) fn shown(s: &str) -> String {
    const MAX_CHARS: usize = 40;
    let s = s.trim();
    match s.char_indices().nth(MAX_CHARS) {
        Some((end, _)) => format!("{}…", &s[..end]),
        None => s.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{FixedOffset, NaiveDate, Offset, Utc};
    use proptest::prelude::*;

    fn at(date: &str, time: &str) -> DateTime<Utc> {
        let naive = NaiveDateTime::parse_from_str(&format!("{date} {time}"), "%Y-%m-%d %H:%M:%S").unwrap();
        Utc.from_utc_datetime(&naive)
    }

    fn schedule(times: &str, days: &str) -> Schedule {
        Schedule::parse(times, days).unwrap()
    }

    // 2024-06-03 is a Monday.

    #[test]
    fn next_run_is_later_the_same_day() {
        let s = schedule("02:00,13:30", "");
        assert_eq!(s.next_after(&at("2024-06-03", "09:15:00")), at("2024-06-03", "13:30:00"));
        assert_eq!(s.next_after(&at("2024-06-03", "00:00:00")), at("2024-06-03", "02:00:00"));
    }

    #[test]
    fn next_run_is_tomorrow_after_the_last_time() {
        let s = schedule("02:00,13:30", "daily");
        assert_eq!(s.next_after(&at("2024-06-03", "13:30:01")), at("2024-06-04", "02:00:00"));
    }

    #[test]
    fn the_scheduled_instant_itself_is_not_after_it() {
        let s = schedule("02:00,13:30", "");
        assert_eq!(s.next_after(&at("2024-06-03", "02:00:00")), at("2024-06-03", "13:30:00"));
        assert_eq!(s.next_after(&at("2024-06-03", "01:59:59")), at("2024-06-03", "02:00:00"));
    }

    #[test]
    fn days_not_selected_are_skipped() {
        let s = schedule("02:00", "mon,wed,fri");
        // Monday after the run: Wednesday is next, not Tuesday.
        assert_eq!(s.next_after(&at("2024-06-03", "03:00:00")), at("2024-06-05", "02:00:00"));
        // Tuesday early: still Wednesday, Tuesday's 02:00 does not count.
        assert_eq!(s.next_after(&at("2024-06-04", "01:00:00")), at("2024-06-05", "02:00:00"));
    }

    #[test]
    fn the_week_wraps_to_the_next_one() {
        let s = schedule("23:00", "mon");
        // Monday after the run: next Monday, a full week later.
        assert_eq!(s.next_after(&at("2024-06-03", "23:00:00")), at("2024-06-10", "23:00:00"));
        // Sunday night: the Monday just after midnight.
        let s = schedule("00:30", "mon");
        assert_eq!(s.next_after(&at("2024-06-09", "23:59:00")), at("2024-06-10", "00:30:00"));
    }

    #[test]
    fn wall_clock_times_in_a_fixed_zone() {
        let zone = FixedOffset::east_opt(5 * 3600 + 30 * 60).unwrap();
        let now = zone.with_ymd_and_hms(2024, 6, 3, 1, 0, 0).unwrap();
        let next = schedule("02:00", "").next_after(&now);
        assert_eq!(next, zone.with_ymd_and_hms(2024, 6, 3, 2, 0, 0).unwrap());
        assert_eq!(next.with_timezone(&Utc), at("2024-06-02", "20:30:00"));
    }

    #[test]
    fn parse_sorts_deduplicates_and_normalises_every_day() {
        let s = schedule(" 13:30, 02:00,13:30,", "fri, Monday,WED,mon");
        assert_eq!(s.times, vec![TimeOfDay::new(2, 0).unwrap(), TimeOfDay::new(13, 30).unwrap()]);
        assert_eq!(s.days, vec![Weekday::Mon, Weekday::Wed, Weekday::Fri]);
        assert_eq!(s.to_string(), "02:00, 13:30 on mon, wed, fri");

        let every_day = schedule("2:00", "mon,tue,wed,thu,fri,sat,sun");
        assert_eq!(every_day, schedule("02:00", "daily"));
        assert_eq!(every_day, schedule("02:00", ""));
        assert!(every_day.days.is_empty());
        assert_eq!(every_day.to_string(), "02:00 every day");
    }

    #[test]
    fn day_ranges_include_both_ends_and_wrap() {
        assert_eq!(parse_days("mon-fri").unwrap(), Weekday::ALL[..5].to_vec());
        assert_eq!(parse_days("fri-mon").unwrap(), vec![Weekday::Mon, Weekday::Fri, Weekday::Sat, Weekday::Sun]);
        assert_eq!(parse_days("sat-sat").unwrap(), vec![Weekday::Sat]);
        assert_eq!(parse_days("").unwrap(), vec![]);
        assert_eq!(parse_days("Daily").unwrap(), Weekday::ALL.to_vec());
    }

    #[test]
    fn parse_errors_name_the_bad_item() {
        let err = Schedule::parse("02:00,25:00", "").unwrap_err();
        assert_eq!(err, ScheduleError::BadTime("25:00".into()));
        assert_eq!(err.to_string(), "'25:00' is not a time of day: use HH:MM, e.g. 02:30");

        for bad in ["2", "02:5", "02:60", "-1:00", "+2:00", "02:00:00", "02h00", "٠٢:٠٠", "024:00"] {
            assert_eq!(bad.parse::<TimeOfDay>(), Err(ScheduleError::BadTime(bad.into())), "{bad}");
        }

        let err = Schedule::parse("02:00", "mon, funday ,fri").unwrap_err();
        assert_eq!(err, ScheduleError::BadDay("funday".into()));
        assert!(err.to_string().starts_with("'funday' is not a day of the week"), "{err}");
        assert_eq!(parse_days("mon-fry"), Err(ScheduleError::BadDay("mon-fry".into())));
        assert_eq!(parse_days("mon,daily"), Err(ScheduleError::BadDay("daily".into())));

        assert_eq!(Schedule::parse("", "daily"), Err(ScheduleError::NoTimes));
        assert_eq!(Schedule::parse(" , ", "daily"), Err(ScheduleError::NoTimes));

        let long = "x".repeat(1000);
        let ScheduleError::BadTime(quoted) = long.parse::<TimeOfDay>().unwrap_err() else { panic!() };
        assert_eq!(quoted.chars().count(), 41, "long input is cut short in the message");
    }

    #[test]
    fn at_most_48_times_a_day() {
        let every_half_hour: Vec<_> = (0..48).map(|i| TimeOfDay::new(i / 2, (i % 2) * 30).unwrap()).collect();
        let s = Schedule::new(every_half_hour.clone(), vec![]).unwrap();
        assert_eq!(s.times.len(), 48);
        // Repeats do not count against the limit.
        let mut twice = every_half_hour.clone();
        twice.extend(every_half_hour);
        assert_eq!(Schedule::new(twice, vec![]).unwrap(), s);

        let mut too_many = s.times.clone();
        too_many.push(TimeOfDay::new(0, 15).unwrap());
        assert_eq!(Schedule::new(too_many, vec![]), Err(ScheduleError::TooManyTimes(49)));
    }

    #[test]
    fn weekday_names_and_chrono_conversion() {
        for day in Weekday::ALL {
            assert_eq!(day.short_name().parse::<Weekday>().unwrap(), day);
            assert_eq!(day.full_name().to_uppercase().parse::<Weekday>().unwrap(), day);
            assert_eq!(Weekday::from(chrono::Weekday::from(day)), day);
            assert_eq!(day.succ().pred(), day);
        }
        assert_eq!(Weekday::from(NaiveDate::from_ymd_opt(2024, 6, 9).unwrap().weekday()), Weekday::Sun);
        assert_eq!(Weekday::Sun.succ(), Weekday::Mon);
    }

    #[test]
    fn serde_uses_the_text_forms_and_validates() {
        let s = schedule("13:30,02:00", "wed,mon");
        let json = serde_json::to_string(&s).unwrap();
        assert_eq!(json, r#"{"times":["02:00","13:30"],"days":["mon","wed"]}"#);
        assert_eq!(serde_json::from_str::<Schedule>(&json).unwrap(), s);

        // Files written by hand are put in order and may say "Monday" or leave days out.
        let s: Schedule = serde_json::from_str(r#"{"times":["13:30","02:00"],"days":["Friday","mon"]}"#).unwrap();
        assert_eq!(s, schedule("02:00,13:30", "mon,fri"));
        let s: Schedule = serde_json::from_str(r#"{"times":["02:00"]}"#).unwrap();
        assert!(s.days.is_empty());

        let err = serde_json::from_str::<Schedule>(r#"{"times":[]}"#).unwrap_err();
        assert!(err.to_string().contains("at least one time"), "{err}");
        let err = serde_json::from_str::<Schedule>(r#"{"times":["24:00"]}"#).unwrap_err();
        assert!(err.to_string().contains("'24:00' is not a time of day"), "{err}");
    }

    /// A zone with Central European rules for 2024 only: UTC+1, and UTC+2
    /// from 31 March 01:00 UTC (02:00 local jumps to 03:00) to 27 October
    /// 01:00 UTC (03:00 local falls back to 02:00). Enough to exercise gaps
    /// and folds without a time zone database.
    #[derive(Debug, Clone, Copy)]
    struct Cet2024;

    impl Cet2024 {
        fn summer_starts() -> NaiveDateTime {
            NaiveDate::from_ymd_opt(2024, 3, 31).unwrap().and_hms_opt(1, 0, 0).unwrap()
        }
        fn summer_ends() -> NaiveDateTime {
            NaiveDate::from_ymd_opt(2024, 10, 27).unwrap().and_hms_opt(1, 0, 0).unwrap()
        }
        fn offset_at_utc(utc: &NaiveDateTime) -> FixedOffset {
            let summer = *utc >= Self::summer_starts() && *utc < Self::summer_ends();
            FixedOffset::east_opt(if summer { 7200 } else { 3600 }).unwrap()
        }
    }

    impl TimeZone for Cet2024 {
        type Offset = FixedOffset;

        fn from_offset(_: &FixedOffset) -> Cet2024 {
            Cet2024
        }

        fn offset_from_local_date(&self, local: &NaiveDate) -> MappedLocalTime<FixedOffset> {
            self.offset_from_local_datetime(&local.and_time(NaiveTime::MIN))
        }

        fn offset_from_local_datetime(&self, local: &NaiveDateTime) -> MappedLocalTime<FixedOffset> {
            // Each offset the zone uses is a candidate if it maps back to itself.
            let fits = |seconds: i32| {
                let offset = FixedOffset::east_opt(seconds).unwrap();
                let utc = *local - offset;
                (Self::offset_at_utc(&utc) == offset).then_some(offset)
            };
            match (fits(7200), fits(3600)) {
                (Some(summer), Some(winter)) => MappedLocalTime::Ambiguous(summer, winter),
                (Some(only), None) | (None, Some(only)) => MappedLocalTime::Single(only),
                (None, None) => MappedLocalTime::None,
            }
        }

        fn offset_from_utc_date(&self, utc: &NaiveDate) -> FixedOffset {
            Self::offset_at_utc(&utc.and_time(NaiveTime::MIN))
        }

        fn offset_from_utc_datetime(&self, utc: &NaiveDateTime) -> FixedOffset {
            Self::offset_at_utc(utc)
        }
    }

    fn cet(date: &str, time: &str) -> DateTime<Cet2024> {
        Cet2024.from_utc_datetime(&at(date, time).naive_utc())
    }

    #[test]
    fn a_time_skipped_by_dst_runs_when_the_gap_ends() {
        // 02:30 does not exist on 31 March; clocks read 03:00 at 01:00 UTC.
        let s = schedule("02:30", "");
        let next = s.next_after(&cet("2024-03-30", "23:00:00"));
        assert_eq!(next, cet("2024-03-31", "01:00:00"));
        assert_eq!(next.naive_local().time(), NaiveTime::from_hms_opt(3, 0, 0).unwrap());
        assert_eq!(next.offset().fix().local_minus_utc(), 7200);
        // The day after, 02:30 exists again.
        assert_eq!(s.next_after(&next), cet("2024-04-01", "00:30:00"));

        // Several times in the gap run once, at its end; 03:00 itself is the same instant.
        let s = schedule("02:00,02:15,02:45,03:00,03:30", "");
        let first = s.next_after(&cet("2024-03-30", "23:00:00"));
        assert_eq!(first, cet("2024-03-31", "01:00:00"));
        assert_eq!(s.next_after(&first), cet("2024-03-31", "01:30:00"));
    }

    #[test]
    fn a_time_repeated_by_dst_runs_once_at_its_first_occurrence() {
        // 02:30 happens twice on 27 October: 00:30 UTC (summer) and 01:30 UTC (winter).
        let s = schedule("02:30", "");
        let first = s.next_after(&cet("2024-10-26", "22:00:00"));
        assert_eq!(first, cet("2024-10-27", "00:30:00"));
        // Just after it, and during the repeated hour, the next run is the next day's.
        assert_eq!(s.next_after(&first), cet("2024-10-28", "01:30:00"));
        assert_eq!(s.next_after(&cet("2024-10-27", "01:15:00")), cet("2024-10-28", "01:30:00"));
    }

    fn any_schedule() -> impl Strategy<Value = Schedule> {
        let times = prop::collection::vec((0u32..24, 0u32..60), 1..6);
        let days = prop::collection::vec(0usize..7, 0..7);
        (times, days).prop_map(|(times, days)| {
            let times = times.into_iter().map(|(h, m)| TimeOfDay::new(h, m).unwrap()).collect();
            Schedule::new(times, days.into_iter().map(|d| Weekday::ALL[d]).collect()).unwrap()
        })
    }

    /// Instants from 1970 to 2100, to the second.
    fn any_instant() -> impl Strategy<Value = i64> {
        0i64..4_102_444_800
    }

    proptest! {
        #[test]
        fn next_after_is_a_scheduled_time_within_a_week(
            s in any_schedule(),
            seconds in any_instant(),
            offset_minutes in -14 * 60..=14 * 60i32,
        ) {
            let zone = FixedOffset::east_opt(offset_minutes * 60).unwrap();
            let now = zone.timestamp_opt(seconds, 0).unwrap();
            let next = s.next_after(&now);
            prop_assert!(next > now);
            prop_assert!(next <= now + Duration::days(7));
            let local = next.naive_local();
            prop_assert!(s.runs_on(local.weekday().into()), "{s} gave {local}");
            prop_assert!(s.times.iter().any(|t| t.as_naive() == local.time()), "{s} gave {local}");
            // Nothing scheduled was skipped: from just before it, the answer is the same.
            prop_assert_eq!(s.next_after(&(next - Duration::seconds(1))), next);
        }

        #[test]
        fn next_after_across_dst_changes_is_later_and_stable(
            s in any_schedule(),
            seconds in 1_704_067_200i64..1_735_603_200, // 2024
        ) {
            let now = Cet2024.timestamp_opt(seconds, 0).unwrap();
            let next = s.next_after(&now);
            prop_assert!(next > now);
            prop_assert!(next <= now + Duration::days(7) + Duration::hours(1));
            prop_assert!(s.runs_on(next.naive_local().weekday().into()));
            prop_assert_eq!(s.next_after(&(next - Duration::seconds(1))), next);
        }
    }
}
