//! The ship-or-upload planner: how long the first full backup, and a full restore,
//! take over the network and on drives, and whether the daily incremental fits the
//! uplink at all. Pure arithmetic, no I/O: `offsite plan` and the portal's
//! offline-backup page both call [`plan`] with the same [`PlanInputs`], and the text
//! forms people type (`12TiB`, `50Mbit/s`, `1%/day`) are read here too, so the two
//! faces refuse the same inputs with the same words.
//!
//! The model, step by step (every rate is an input; `offsite plan` fills in the ones
//! this machine measured, [`crate::measured`]):
//! - over the network: the seed's bytes at the link's rate times
//!   [`PlanInputs::network_efficiency`] (the share of the nominal rate a transfer
//!   gets: TCP, TLS, HTTP and other traffic take the rest);
//! - on drives, the first backup: the staging backup reads the source
//!   ([`PlanInputs::source_size`] at [`PlanInputs::backup_rate`]), diskprep writes
//!   the seed onto drives ([`PlanInputs::prep_rate`]), the carrier takes
//!   [`PlanInputs::shipping_days`], the station ingests it ([`PlanInputs::ingest_rate`]);
//! - on drives, a full restore: the datacenter writes the drives
//!   ([`PlanInputs::export_rate`]), the carrier, and the restore at the site, which
//!   reads the drives and writes the source back (at the staging backup's rate:
//!   the same work the other way round);
//! - the daily incremental: [`PlanInputs::change_rate`] of the seed a day, over the
//!   uplink at the same efficiency.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::drive::{block::capacity_blocks, DEFAULT_BLOCK_SIZE};

const SECONDS_PER_DAY: f64 = 86_400.0;

/// Why a planner input was refused; each message quotes the input and shows the
/// form that is accepted. The caller names the option or field it came from.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum PlanInputError {
    #[error("'{0}' is not a size: use a number and a unit, e.g. 12TiB, 10TB, 500GB or 1.5TiB")]
    Size(String),
    #[error("'{0}' is not a rate: use a number and a unit, e.g. 50Mbit/s, 1Gbit/s, 20MB/s or 100MiB/s")]
    Rate(String),
    #[error("'{0}' is not a change rate: use a percentage of the data per day, e.g. 1%/day or 0.5%/day")]
    ChangeRate(String),
    #[error("'{0}' is not a number of days: use e.g. 3 or 1.5")]
    Days(String),
    #[error("'{0}' is not a network efficiency: use a share of the link's rate above 0 and at most 1, e.g. 0.9")]
    Efficiency(String),
    #[error("'{0}' must be more than zero")]
    Zero(String),
}

/// A throughput in bytes per second.
#[derive(Debug, Clone, Copy, PartialEq, PartialOrd, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Rate(pub f64);

impl Rate {
    pub fn bytes_per_second(self) -> f64 {
        self.0
    }

    /// The rate in bits, as links are sold: `50 Mbit/s`, `1 Gbit/s`.
    pub fn bits(self) -> String {
        scaled(self.0 * 8.0, &[("Gbit/s", 1e9), ("Mbit/s", 1e6), ("kbit/s", 1e3)], "bit/s")
    }

    /// The rate in bytes, as disks are measured: `210 MB/s`.
    pub fn bytes(self) -> String {
        scaled(self.0, &[("GB/s", 1e9), ("MB/s", 1e6), ("kB/s", 1e3)], "B/s")
    }

    /// Days to move `bytes` at this rate.
    fn days_for(self, bytes: f64) -> f64 {
        bytes / self.0 / SECONDS_PER_DAY
    }
}

/// `value` in the largest unit it reaches, with up to three significant digits.
fn scaled(value: f64, units: &[(&str, f64)], base: &str) -> String {
    for (name, size) in units {
        if value >= *size {
            return format!("{} {name}", significant(value / size));
        }
    }
    format!("{} {base}", significant(value))
}

fn significant(value: f64) -> String {
    let text = if value >= 100.0 {
        format!("{value:.0}")
    } else if value >= 10.0 {
        format!("{value:.1}")
    } else {
        format!("{value:.2}")
    };
    if text.contains('.') {
        text.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        text
    }
}

/// A number and the rest of the text after it (`"1.5TiB"` → 1.5, `"TiB"`).
fn number_prefix(text: &str) -> Option<(f64, &str)> {
    let len = text.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(text.len());
    let (number, rest) = text.split_at(len);
    if number.is_empty() || number.starts_with('.') || number.ends_with('.') {
        return None;
    }
    let value: f64 = number.parse().ok()?;
    value.is_finite().then_some((value, rest.trim()))
}

/// What a decimal or binary prefix multiplies by (`k`, `Ki`, `M`, `Mi`, … any case).
fn prefix(prefix: &str) -> Option<f64> {
    Some(match prefix.to_ascii_lowercase().as_str() {
        "" => 1.0,
        "k" => 1e3,
        "ki" => 1024.0,
        "m" => 1e6,
        "mi" => 1024f64.powi(2),
        "g" => 1e9,
        "gi" => 1024f64.powi(3),
        "t" => 1e12,
        "ti" => 1024f64.powi(4),
        "p" => 1e15,
        "pi" => 1024f64.powi(5),
        _ => return None,
    })
}

/// A byte count: `12TiB`, `10TB`, `500GB`, `1.5TiB`, `64MiB`, or a bare number of
/// bytes. TB, GB, MB are powers of 1000; TiB, GiB, MiB powers of 1024. Zero is
/// refused: nothing to plan.
pub fn parse_size(text: &str) -> Result<u64, PlanInputError> {
    let refused = || PlanInputError::Size(text.to_string());
    let (number, unit) = number_prefix(text.trim()).ok_or_else(refused)?;
    let multiplier = match unit {
        "" => 1.0,
        _ => unit.strip_suffix('B').and_then(prefix).ok_or_else(refused)?,
    };
    let bytes = (number * multiplier).round();
    if bytes < 1.0 {
        return Err(PlanInputError::Zero(text.to_string()));
    }
    if bytes >= u64::MAX as f64 {
        return Err(refused());
    }
    Ok(bytes as u64)
}

/// A rate: in bits as links are sold (`50Mbit/s`, `1Gbit/s`, `100Mbps`, `100Mb/s`)
/// or in bytes as disks are measured (`20MB/s`, `100MiB/s`). A capital B is a byte,
/// a lowercase b or `bit` a bit.
pub fn parse_rate(text: &str) -> Result<Rate, PlanInputError> {
    let refused = || PlanInputError::Rate(text.to_string());
    let (number, unit) = number_prefix(text.trim()).ok_or_else(refused)?;
    let unit = unit.strip_suffix("/s").or_else(|| unit.strip_suffix("ps")).ok_or_else(refused)?;
    let bytes_per_second = if let Some(p) = unit.strip_suffix("bit").or_else(|| unit.strip_suffix('b')) {
        number * prefix(p).ok_or_else(refused)? / 8.0
    } else if let Some(p) = unit.strip_suffix('B') {
        number * prefix(p).ok_or_else(refused)?
    } else {
        return Err(refused());
    };
    if bytes_per_second <= 0.0 {
        return Err(PlanInputError::Zero(text.to_string()));
    }
    Ok(Rate(bytes_per_second))
}

/// A change rate: the share of the data that changes a day, `1%/day`, `0.5%/d` or
/// `2%`. Zero is allowed (data that never changes); above 100% is not a rate.
pub fn parse_change_rate(text: &str) -> Result<f64, PlanInputError> {
    let refused = || PlanInputError::ChangeRate(text.to_string());
    let (number, unit) = number_prefix(text.trim()).ok_or_else(refused)?;
    let per_day = unit.strip_prefix('%').map(str::trim).ok_or_else(refused)?;
    if !matches!(per_day, "" | "/day" | "/d" | "per day") || number > 100.0 {
        return Err(refused());
    }
    Ok(number / 100.0)
}

/// A number of days, whole or not (`3`, `1.5`); zero is allowed (a courier on site).
pub fn parse_days(text: &str) -> Result<f64, PlanInputError> {
    let text_trimmed = text.trim();
    let (number, rest) = number_prefix(text_trimmed).ok_or_else(|| PlanInputError::Days(text.to_string()))?;
    if !matches!(rest, "" | "d" | "day" | "days") {
        return Err(PlanInputError::Days(text.to_string()));
    }
    Ok(number)
}

/// The share of a link's nominal rate a transfer gets, above 0 and at most 1.
pub fn parse_efficiency(text: &str) -> Result<f64, PlanInputError> {
    let refused = || PlanInputError::Efficiency(text.to_string());
    let (number, rest) = number_prefix(text.trim()).ok_or_else(refused)?;
    let share = match rest {
        "" => number,
        "%" => number / 100.0,
        _ => return Err(refused()),
    };
    if share <= 0.0 || share > 1.0 {
        return Err(refused());
    }
    Ok(share)
}

/// The drive size most seeds travel on (Azure Import/Export takes 10 TB and larger).
pub const DEFAULT_DRIVE_SIZE: u64 = 10_000_000_000_000;
/// A courier across a country.
pub const DEFAULT_SHIPPING_DAYS: f64 = 3.0;
/// The share of a link's nominal rate a long transfer gets: `scripts/bench-wan`
/// measured a full restore at 0.92 of the downstream rate at a 40 ms round trip.
pub const DEFAULT_NETWORK_EFFICIENCY: f64 = 0.9;
/// Read the source, chunk, compress, encrypt and write it: a server's disks and
/// cores, when this machine has not measured its own.
pub const DEFAULT_BACKUP_RATE: Rate = Rate(150e6);
/// diskprep onto one USB 3 or SATA hard drive (sequential writes of ~200 MB/s).
pub const DEFAULT_PREP_RATE: Rate = Rate(200e6);
/// A datacenter station ingesting one drive into the storage account.
pub const DEFAULT_INGEST_RATE: Rate = Rate(200e6);
/// A datacenter station writing one export drive.
pub const DEFAULT_EXPORT_RATE: Rate = Rate(200e6);
/// The daily change of a typical file server.
pub const DEFAULT_CHANGE_RATE: f64 = 0.01;

/// Everything a plan depends on; every field is an input, none is looked up.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PlanInputs {
    /// Bytes the seed holds: the staging backup's size (compressed, deduplicated),
    /// which is what travels over the network or on drives.
    pub size: u64,
    /// Bytes of the protected data the staging backup reads, and a restore writes
    /// back (`size` when not known).
    pub source_size: u64,
    pub uplink: Rate,
    pub downlink: Rate,
    /// Share of `size` that changes a day (0.01 for 1%/day).
    pub change_rate: f64,
    /// Bytes per drive.
    pub drive_size: u64,
    pub shipping_days: f64,
    /// Share of a link's nominal rate a transfer gets.
    pub network_efficiency: f64,
    /// The staging backup's throughput over the source bytes; also the restore's at the site.
    pub backup_rate: Rate,
    /// diskprep's throughput onto drives.
    pub prep_rate: Rate,
    /// The datacenter station's ingest throughput.
    pub ingest_rate: Rate,
    /// The datacenter station's throughput writing export drives.
    pub export_rate: Rate,
}

impl PlanInputs {
    /// Inputs with the documented defaults for everything but the size and uplink
    /// (the downlink is the uplink's rate).
    pub fn new(size: u64, uplink: Rate) -> PlanInputs {
        PlanInputs {
            size,
            source_size: size,
            uplink,
            downlink: uplink,
            change_rate: DEFAULT_CHANGE_RATE,
            drive_size: DEFAULT_DRIVE_SIZE,
            shipping_days: DEFAULT_SHIPPING_DAYS,
            network_efficiency: DEFAULT_NETWORK_EFFICIENCY,
            backup_rate: DEFAULT_BACKUP_RATE,
            prep_rate: DEFAULT_PREP_RATE,
            ingest_rate: DEFAULT_INGEST_RATE,
            export_rate: DEFAULT_EXPORT_RATE,
        }
    }
}

/// Over the network or on drives.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Route {
    Network,
    Drives,
}

impl fmt::Display for Route {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Route::Network => "over the network",
            Route::Drives => "on drives",
        })
    }
}

/// One step of the drive route and how long it takes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Step {
    /// What happens: `staging backup`, `diskprep`, `shipping`, `ingest`, …
    pub name: String,
    pub days: f64,
    /// The throughput it was computed at (none for shipping).
    pub rate: Option<Rate>,
}

/// One transfer (the first backup or a full restore) both ways, and the choice.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TransferPlan {
    pub network_days: f64,
    /// The link's rate the network figure is computed at (nominal, before efficiency).
    pub link: Rate,
    pub drive_steps: Vec<Step>,
    pub drive_days: f64,
    pub drives_needed: u64,
    pub recommended: Route,
    /// One sentence: why.
    pub reason: String,
}

/// The daily incremental against the uplink.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IncrementalPlan {
    pub bytes_per_day: u64,
    /// Share of a day the uplink is busy sending it (above 1: it never catches up).
    pub share_of_day: f64,
    pub fits: bool,
    /// The nominal uplink that would send it in a whole day.
    pub uplink_needed: Rate,
}

/// The planner's answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Plan {
    pub inputs: PlanInputs,
    pub initial_backup: TransferPlan,
    pub full_restore: TransferPlan,
    pub daily_incremental: IncrementalPlan,
}

/// Bytes of the stream one drive of `drive_size` carries: whole encrypted blocks of
/// the default size after the header region (`docs/DRIVE-FORMAT.md`).
pub fn drive_payload(drive_size: u64) -> u64 {
    capacity_blocks(DEFAULT_BLOCK_SIZE, drive_size) * u64::from(DEFAULT_BLOCK_SIZE)
}

/// Drives needed for `size` bytes (at least one).
pub fn drives_needed(size: u64, drive_size: u64) -> u64 {
    size.div_ceil(drive_payload(drive_size).max(1)).max(1)
}

/// Estimates both transfers and the incremental. Inputs are taken as given
/// ([`parse_size`] and the other parsers refuse the meaningless ones).
pub fn plan(inputs: &PlanInputs) -> Plan {
    let size = inputs.size as f64;
    let source = inputs.source_size as f64;
    let efficiency = inputs.network_efficiency;
    let shipping = Step { name: "shipping".into(), days: inputs.shipping_days, rate: None };
    let drives = drives_needed(inputs.size, inputs.drive_size);

    let initial_steps = vec![
        step("staging backup", source, inputs.backup_rate),
        step("diskprep", size, inputs.prep_rate),
        shipping.clone(),
        step("ingest at the datacenter", size, inputs.ingest_rate),
    ];
    let initial = transfer(
        Rate(inputs.uplink.0 * efficiency).days_for(size),
        inputs.uplink,
        initial_steps,
        drives,
        "the first backup",
    );
    let restore_steps = vec![
        step("export at the datacenter", size, inputs.export_rate),
        shipping,
        step("restore from the drives", source, inputs.backup_rate),
    ];
    let restore = transfer(
        Rate(inputs.downlink.0 * efficiency).days_for(size),
        inputs.downlink,
        restore_steps,
        drives,
        "a full restore",
    );

    let bytes_per_day = size * inputs.change_rate;
    let share_of_day = Rate(inputs.uplink.0 * efficiency).days_for(bytes_per_day);
    let daily_incremental = IncrementalPlan {
        bytes_per_day: bytes_per_day.round() as u64,
        share_of_day,
        fits: share_of_day <= 1.0,
        uplink_needed: Rate(bytes_per_day / SECONDS_PER_DAY / efficiency),
    };
    Plan { inputs: inputs.clone(), initial_backup: initial, full_restore: restore, daily_incremental }
}

fn step(name: &str, bytes: f64, rate: Rate) -> Step {
    Step { name: name.into(), days: rate.days_for(bytes), rate: Some(rate) }
}

fn transfer(network_days: f64, link: Rate, drive_steps: Vec<Step>, drives: u64, what: &str) -> TransferPlan {
    let drive_days: f64 = drive_steps.iter().map(|s| s.days).sum();
    let (recommended, reason) = if drive_days < network_days {
        (
            Route::Drives,
            format!(
                "{what} on drives takes {} against {} over the network.",
                duration(drive_days),
                duration(network_days)
            ),
        )
    } else {
        let shipping = drive_steps.iter().find(|s| s.rate.is_none()).map_or(0.0, |s| s.days);
        let because = if network_days <= shipping && shipping > 0.0 {
            format!(" (shipping alone takes {})", duration(shipping))
        } else {
            String::new()
        };
        (
            Route::Network,
            format!(
                "{what} over the network takes {} against {} on drives{because}.",
                duration(network_days),
                duration(drive_days)
            ),
        )
    };
    TransferPlan { network_days, link, drive_steps, drive_days, drives_needed: drives, recommended, reason }
}

/// A span as people read it: `51 days`, `2.4 days`, `5.3 hours`, `12 minutes`.
pub fn duration(days: f64) -> String {
    let hours = days * 24.0;
    if days >= 1.0 {
        format!("{} days", significant(days))
    } else if hours >= 1.0 {
        format!("{} hours", significant(hours))
    } else {
        let minutes = hours * 60.0;
        if minutes >= 1.0 {
            format!("{} minutes", significant(minutes))
        } else {
            format!("{} seconds", significant(minutes * 60.0))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TIB: u64 = 1 << 40;

    fn close(a: f64, b: f64, tolerance: f64) -> bool {
        (a - b).abs() <= tolerance
    }

    #[test]
    fn sizes_read_in_decimal_and_binary_units() {
        for (text, bytes) in [
            ("12TiB", 12 * TIB),
            ("10TB", 10_000_000_000_000),
            ("500GB", 500_000_000_000),
            ("1.5TiB", 3 * TIB / 2),
            ("64MiB", 64 << 20),
            ("4096", 4096),
            (" 2 GiB ", 2 << 30),
            ("1tB", 1_000_000_000_000),
        ] {
            assert_eq!(parse_size(text), Ok(bytes), "{text}");
        }
        for bad in ["", "TiB", "12XB", "12 TiBs", "-1TiB", ".5TB", "5.TB", "1e6", "12Tb", "1tb"] {
            assert_eq!(parse_size(bad), Err(PlanInputError::Size(bad.into())), "{bad}");
        }
        assert_eq!(parse_size("0GB"), Err(PlanInputError::Zero("0GB".into())));
        let message = parse_size("12XB").unwrap_err().to_string();
        assert!(message.contains("'12XB'") && message.contains("12TiB"), "{message}");
    }

    #[test]
    fn rates_read_in_bits_or_bytes() {
        for (text, bytes_per_second) in [
            ("50Mbit/s", 6.25e6),
            ("1Gbit/s", 125e6),
            ("100Mbps", 12.5e6),
            ("100Mb/s", 12.5e6),
            ("20MB/s", 20e6),
            ("100MiB/s", 100.0 * 1024.0 * 1024.0),
            ("512kbit/s", 64e3),
            ("1.5 Gbit/s", 187.5e6),
        ] {
            assert_eq!(parse_rate(text), Ok(Rate(bytes_per_second)), "{text}");
        }
        for bad in ["", "fast", "50", "50Mbit", "50Xbit/s", "50MB/h", "Mbit/s"] {
            assert_eq!(parse_rate(bad), Err(PlanInputError::Rate(bad.into())), "{bad}");
        }
        assert_eq!(parse_rate("0Mbit/s"), Err(PlanInputError::Zero("0Mbit/s".into())));
        assert_eq!(Rate(6.25e6).bits(), "50 Mbit/s");
        assert_eq!(Rate(125e6).bits(), "1 Gbit/s");
        assert_eq!(Rate(210e6).bytes(), "210 MB/s");
        assert_eq!(Rate(1.5e6).bytes(), "1.5 MB/s");
    }

    #[test]
    fn change_rates_days_and_efficiency_read_as_written() {
        assert_eq!(parse_change_rate("1%/day"), Ok(0.01));
        assert_eq!(parse_change_rate("0.5%/d"), Ok(0.005));
        assert_eq!(parse_change_rate("2%"), Ok(0.02));
        assert_eq!(parse_change_rate("0%/day"), Ok(0.0));
        for bad in ["1", "1/day", "1%/week", "150%/day", "%/day"] {
            assert_eq!(parse_change_rate(bad), Err(PlanInputError::ChangeRate(bad.into())), "{bad}");
        }
        assert_eq!(parse_days("3"), Ok(3.0));
        assert_eq!(parse_days("1.5 days"), Ok(1.5));
        assert_eq!(parse_days("three"), Err(PlanInputError::Days("three".into())));
        assert_eq!(parse_efficiency("0.9"), Ok(0.9));
        assert_eq!(parse_efficiency("80%"), Ok(0.8));
        assert_eq!(parse_efficiency("1.2"), Err(PlanInputError::Efficiency("1.2".into())));
        assert_eq!(parse_efficiency("0"), Err(PlanInputError::Efficiency("0".into())));
    }

    #[test]
    fn ten_tib_at_twenty_megabits_is_fifty_one_days_over_the_network() {
        // 10 × 2^40 bytes × 8 bits ÷ 20e6 bit/s = 4,398,046.5 s = 50.90 days.
        let mut inputs = PlanInputs::new(10 * TIB, parse_rate("20Mbit/s").unwrap());
        inputs.network_efficiency = 1.0;
        let plan = plan(&inputs);
        assert!(close(plan.initial_backup.network_days, 50.90, 0.01), "{}", plan.initial_backup.network_days);
        assert!(close(plan.full_restore.network_days, 50.90, 0.01));
        // At the default efficiency of 0.9 the same link takes a ninth longer.
        inputs.network_efficiency = DEFAULT_NETWORK_EFFICIENCY;
        let slower = super::plan(&inputs);
        assert!(close(slower.initial_backup.network_days, 50.90 / 0.9, 0.01));
    }

    #[test]
    fn drive_route_adds_its_steps_and_wins_on_a_thin_link() {
        // 10 TiB read at 150 MB/s, written at 200 MB/s, 3 days shipping, ingested at 200 MB/s.
        let inputs = PlanInputs::new(10 * TIB, parse_rate("20Mbit/s").unwrap());
        let plan = plan(&inputs);
        let size = 10.0 * TIB as f64;
        let expected = size / 150e6 / 86_400.0 + size / 200e6 / 86_400.0 + 3.0 + size / 200e6 / 86_400.0;
        assert!(close(plan.initial_backup.drive_days, expected, 1e-9), "{}", plan.initial_backup.drive_days);
        assert!(close(expected, 5.12, 0.01), "{expected}");
        let names: Vec<&str> = plan.initial_backup.drive_steps.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(names, ["staging backup", "diskprep", "shipping", "ingest at the datacenter"]);
        assert_eq!(plan.initial_backup.recommended, Route::Drives);
        assert!(
            plan.initial_backup.reason.contains("on drives takes 5.12 days against 56.6 days over the network"),
            "{}",
            plan.initial_backup.reason
        );
        assert_eq!(plan.full_restore.recommended, Route::Drives);
        let names: Vec<&str> = plan.full_restore.drive_steps.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(names, ["export at the datacenter", "shipping", "restore from the drives"]);
    }

    #[test]
    fn a_fast_link_sends_the_seed_before_a_courier_arrives() {
        // 500 GB at 1 Gbit/s × 0.9: 4444 s, 1.2 hours, against 3 days of shipping.
        let inputs = PlanInputs::new(500_000_000_000, parse_rate("1Gbit/s").unwrap());
        let plan = plan(&inputs);
        assert!(close(plan.initial_backup.network_days * 86_400.0, 4444.4, 0.1));
        assert_eq!(plan.initial_backup.recommended, Route::Network);
        assert!(plan.initial_backup.reason.contains("(shipping alone takes 3 days)"), "{}", plan.initial_backup.reason);
        assert_eq!(plan.initial_backup.drives_needed, 1);
    }

    #[test]
    fn an_asymmetric_link_can_upload_the_seed_but_restore_by_drive() {
        let mut inputs = PlanInputs::new(2 * TIB, parse_rate("10Mbit/s").unwrap());
        inputs.downlink = parse_rate("1Gbit/s").unwrap();
        let plan = plan(&inputs);
        assert_eq!(plan.initial_backup.recommended, Route::Drives);
        assert_eq!(plan.full_restore.recommended, Route::Network);
        assert!(plan.full_restore.network_days < plan.initial_backup.network_days / 50.0);
    }

    #[test]
    fn a_change_rate_the_uplink_cannot_carry_is_named() {
        // 12 TiB × 1% = 131.9 GB a day; 10 Mbit/s × 0.9 sends 97.2 GB a day.
        let inputs = PlanInputs::new(12 * TIB, parse_rate("10Mbit/s").unwrap());
        let incremental = plan(&inputs).daily_incremental;
        assert_eq!(incremental.bytes_per_day, (12.0 * TIB as f64 * 0.01).round() as u64);
        assert!(close(incremental.share_of_day, 131.94e9 / 97.2e9, 0.001), "{}", incremental.share_of_day);
        assert!(!incremental.fits);
        // 131.9 GB / 86400 s / 0.9 = 1.697 MB/s = 13.6 Mbit/s would carry it.
        assert_eq!(incremental.uplink_needed.bits(), "13.6 Mbit/s");

        // 50 Mbit/s carries the same change in about a quarter of the day.
        let inputs = PlanInputs::new(12 * TIB, parse_rate("50Mbit/s").unwrap());
        let incremental = plan(&inputs).daily_incremental;
        assert!(incremental.fits);
        assert!(close(incremental.share_of_day, 0.2714, 0.001), "{}", incremental.share_of_day);
    }

    #[test]
    fn drives_needed_counts_the_format_overhead() {
        // A 10 TB drive carries 9,999,999,934,464 bytes of 1 MiB blocks (64 KiB header,
        // a 16-byte tag per block): 9.09 TiB.
        let payload = drive_payload(DEFAULT_DRIVE_SIZE);
        assert_eq!(payload, (DEFAULT_DRIVE_SIZE - 65_536) / (1_048_576 + 16) * 1_048_576);
        assert_eq!(drives_needed(10 * TIB, DEFAULT_DRIVE_SIZE), 2);
        assert_eq!(drives_needed(12 * TIB, DEFAULT_DRIVE_SIZE), 2);
        assert_eq!(drives_needed(payload, DEFAULT_DRIVE_SIZE), 1);
        assert_eq!(drives_needed(payload + 1, DEFAULT_DRIVE_SIZE), 2);
        assert_eq!(drives_needed(1, DEFAULT_DRIVE_SIZE), 1);
        let inputs = PlanInputs { drive_size: 2_000_000_000_000, ..PlanInputs::new(12 * TIB, Rate(1e6)) };
        assert_eq!(plan(&inputs).initial_backup.drives_needed, 7);
    }

    #[test]
    fn durations_read_in_the_unit_that_fits() {
        assert_eq!(duration(50.9), "50.9 days");
        assert_eq!(duration(2.0), "2 days");
        assert_eq!(duration(0.25), "6 hours");
        assert_eq!(duration(0.01), "14.4 minutes");
        assert_eq!(duration(1.0 / 86_400.0 * 12.0), "12 seconds");
    }
}
