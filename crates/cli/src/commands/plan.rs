//! `offsite plan`: ship the first backup on drives, or upload it? The estimate is
//! `offsite_seeding::plan` (the portal's offline-backup page shows the same); this
//! command fills in the rates this machine measured (a finished diskprep, an ingest,
//! a staging backup or `offsite agent offline estimate`, recorded in
//! `measured-rates.json`) and prints which rates were measured and which assumed.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Result;
use clap::Args;
use serde::Serialize;

use offsite_agent::AgentHome;
use offsite_seeding::measured::{MeasuredRates, MeasuredStep, Measurement};
use offsite_seeding::plan::{
    self, duration, parse_change_rate, parse_days, parse_efficiency, parse_rate, parse_size, Plan, PlanInputs, Rate,
    TransferPlan,
};

use crate::display::{human, plural};

#[derive(Args)]
pub struct PlanArgs {
    /// What the first backup holds (compressed and deduplicated: `offsite agent offline
    /// estimate` measures it), e.g. 12TiB, 10TB, 500GB.
    #[arg(long, value_parser = parse_size)]
    size: u64,
    /// The site's upload rate, e.g. 50Mbit/s, 1Gbit/s, 20MB/s.
    #[arg(long, value_parser = parse_rate)]
    uplink: Rate,
    /// The site's download rate, for a full restore [default: the uplink's].
    #[arg(long, value_parser = parse_rate)]
    downlink: Option<Rate>,
    /// Share of the data that changes a day, e.g. 1%/day or 0.5%/day.
    #[arg(long, default_value = "1%/day", value_parser = parse_change_rate)]
    change_rate: f64,
    /// Bytes per drive, e.g. 10TB, 8TB, 2TiB.
    #[arg(long, default_value = "10TB", value_parser = parse_size)]
    drive_size: u64,
    /// Days the carrier takes each way, e.g. 3 or 1.5.
    #[arg(long, default_value = "3", value_parser = parse_days)]
    shipping_days: f64,
    /// Bytes of protected data the staging backup reads and a restore writes back
    /// (before compression and deduplication) [default: --size].
    #[arg(long, value_parser = parse_size)]
    source_size: Option<u64>,
    /// The staging backup's rate over the source [default: measured on this machine,
    /// else 150MB/s].
    #[arg(long, value_parser = parse_rate)]
    backup_rate: Option<Rate>,
    /// diskprep's rate onto drives [default: this machine's last diskprep, else 200MB/s].
    #[arg(long, value_parser = parse_rate)]
    prep_rate: Option<Rate>,
    /// The datacenter's ingest rate [default: measured by an ingest on this machine,
    /// else 200MB/s].
    #[arg(long, value_parser = parse_rate)]
    ingest_rate: Option<Rate>,
    /// The datacenter's rate writing export drives [default: 200MB/s].
    #[arg(long, value_parser = parse_rate)]
    export_rate: Option<Rate>,
    /// Share of a link's nominal rate a long transfer gets, e.g. 0.9 or 90%.
    #[arg(long, default_value = "0.9", value_parser = parse_efficiency)]
    network_efficiency: f64,
    /// Read the measured rates kept with these agent files instead of the user's
    /// state folder (~/.local/state/offsite/measured-rates.json).
    #[arg(long, env = "OFFSITE_AGENT_HOME")]
    agent_home: Option<PathBuf>,
    /// Print the plan as JSON.
    #[arg(long)]
    json: bool,
}

/// Where this machine's measured rates are kept ([`AgentHome::measured_rates_file`]):
/// with `None`, the user's state folder.
pub fn measured_rates_file(agent_home: Option<&Path>) -> PathBuf {
    agent_home.map(AgentHome::in_folder).unwrap_or_else(AgentHome::default_locations).measured_rates_file()
}

/// Records a measured throughput for the planner. Failing to record it costs only
/// a later estimate's accuracy, so it is logged, never the command's failure.
pub fn record_rate(agent_home: Option<&Path>, step: MeasuredStep, measurement: Option<Measurement>) {
    let Some(measurement) = measurement else { return };
    let path = measured_rates_file(agent_home);
    match MeasuredRates::record(&path, step, measurement) {
        Ok(()) => tracing::info!("recorded the measured {step:?} rate in {}", path.display()),
        Err(err) => tracing::warn!("{err}"),
    }
}

/// Where a rate came from.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "source", rename_all = "snake_case")]
enum Origin {
    /// From a command-line option.
    Given,
    /// Recorded by a run on this machine.
    Measured { what: String, measured: String, estimated: bool },
    /// The planner's default.
    Assumed,
}

#[derive(Serialize)]
struct RateChoice {
    step: &'static str,
    rate: Rate,
    #[serde(flatten)]
    origin: Origin,
}

#[derive(Serialize)]
struct PlanReport<'a> {
    #[serde(flatten)]
    plan: &'a Plan,
    rates: Vec<RateChoice>,
    measured_rates_files: Vec<PathBuf>,
}

pub fn run(args: PlanArgs) -> Result<ExitCode> {
    // The user's file (diskprep and ingest without --agent-home), then the agent's.
    let load = |path: &Path| {
        MeasuredRates::load(path).unwrap_or_else(|err| {
            tracing::warn!("{err}");
            MeasuredRates::default()
        })
    };
    let mut files = vec![measured_rates_file(None)];
    if args.agent_home.is_some() {
        files.push(measured_rates_file(args.agent_home.as_deref()));
    }
    let measured = files.iter().map(|f| load(f)).fold(MeasuredRates::default(), MeasuredRates::merged);
    let choose = |step: &'static str, given: Option<Rate>, kind: Option<MeasuredStep>, default: Rate| {
        if let Some(rate) = given {
            return RateChoice { step, rate, origin: Origin::Given };
        }
        match kind.and_then(|k| measured.get(k)) {
            Some(m) => RateChoice {
                step,
                rate: m.rate(),
                origin: Origin::Measured {
                    what: m.what.clone(),
                    measured: crate::display::when(m.measured),
                    estimated: m.estimated,
                },
            },
            None => RateChoice { step, rate: default, origin: Origin::Assumed },
        }
    };
    let rates = vec![
        choose("staging backup", args.backup_rate, Some(MeasuredStep::StagingBackup), plan::DEFAULT_BACKUP_RATE),
        choose("diskprep", args.prep_rate, Some(MeasuredStep::Diskprep), plan::DEFAULT_PREP_RATE),
        choose("ingest", args.ingest_rate, Some(MeasuredStep::Ingest), plan::DEFAULT_INGEST_RATE),
        choose("export", args.export_rate, None, plan::DEFAULT_EXPORT_RATE),
    ];
    let inputs = PlanInputs {
        size: args.size,
        source_size: args.source_size.unwrap_or(args.size),
        uplink: args.uplink,
        downlink: args.downlink.unwrap_or(args.uplink),
        change_rate: args.change_rate,
        drive_size: args.drive_size,
        shipping_days: args.shipping_days,
        network_efficiency: args.network_efficiency,
        backup_rate: rates[0].rate,
        prep_rate: rates[1].rate,
        ingest_rate: rates[2].rate,
        export_rate: rates[3].rate,
    };
    let plan = plan::plan(&inputs);
    tracing::info!(
        "plan: first backup {:?}, restore {:?}, incremental fits {}",
        plan.initial_backup.recommended,
        plan.full_restore.recommended,
        plan.daily_incremental.fits
    );
    if args.json {
        let report = PlanReport { plan: &plan, rates, measured_rates_files: files };
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print_plan(&plan, &rates, &files);
    }
    Ok(ExitCode::SUCCESS)
}

fn print_plan(plan: &Plan, rates: &[RateChoice], files: &[PathBuf]) {
    let i = &plan.inputs;
    let source =
        if i.source_size == i.size { String::new() } else { format!(" (from {} of data)", human(i.source_size)) };
    println!(
        "{}{source}; uplink {}, downlink {}; {}%/day changes; {} drives; {} shipping",
        human(i.size),
        i.uplink.bits(),
        i.downlink.bits(),
        percent(i.change_rate),
        decimal(i.drive_size),
        duration(i.shipping_days)
    );
    let rate_of = |step: &str| rates.iter().find(|r| r.step == step);
    let print_transfer = |title: &str, t: &TransferPlan| {
        println!();
        println!("{title}");
        println!(
            "  over the network  {:>12}  at {} ({:.0}% of it)",
            duration(t.network_days),
            t.link.bits(),
            i.network_efficiency * 100.0
        );
        println!("  on drives         {:>12}  {}", duration(t.drive_days), plural(t.drives_needed, "drive"));
        for step in &t.drive_steps {
            let how = match step.rate {
                None => String::new(),
                Some(rate) => {
                    let origin = match rate_of(step_rate_name(&step.name)).map(|r| &r.origin) {
                        Some(Origin::Given) => " (given)".to_string(),
                        Some(Origin::Measured { estimated: true, .. }) => " (measured by an estimate)".to_string(),
                        Some(Origin::Measured { .. }) => " (measured)".to_string(),
                        _ => " (assumed)".to_string(),
                    };
                    format!("  at {}{origin}", rate.bytes())
                }
            };
            println!("    {:<26}{:>12}{how}", step.name, duration(step.days));
        }
        println!("  recommended: {}. {}", t.recommended, capitalised(&t.reason));
    };
    print_transfer("First backup", &plan.initial_backup);
    print_transfer("Full restore", &plan.full_restore);

    let d = &plan.daily_incremental;
    println!();
    println!("Daily incremental");
    if d.fits {
        println!(
            "  {} a day fits the uplink: it is busy {:.0}% of the day sending it.",
            human(d.bytes_per_day),
            d.share_of_day * 100.0
        );
    } else {
        println!(
            "  {} a day does NOT fit the uplink: sending it takes {} a day. Backups would fall further behind \
             every day; the uplink would need at least {} (or less data changing).",
            human(d.bytes_per_day),
            duration(d.share_of_day),
            d.uplink_needed.bits()
        );
    }

    println!();
    let mut measured = Vec::new();
    let mut assumed = Vec::new();
    for r in rates {
        match &r.origin {
            Origin::Measured { what, measured: when, .. } => {
                measured.push(format!("{} {} ({what}, {when})", r.step, r.rate.bytes()))
            }
            Origin::Given => measured.push(format!("{} {} (given)", r.step, r.rate.bytes())),
            Origin::Assumed => assumed.push(format!("{} {}", r.step, r.rate.bytes())),
        }
    }
    if !measured.is_empty() {
        println!("Rates measured or given: {}.", measured.join("; "));
    }
    if !assumed.is_empty() {
        println!(
            "Rates assumed: {}; network efficiency {:.0}%. Measured rates are read from {}.",
            assumed.join(", "),
            i.network_efficiency * 100.0,
            files.iter().map(|f| f.display().to_string()).collect::<Vec<_>>().join(" and ")
        );
    }
}

/// The rate a drive step is computed at, by the step's name in the plan.
fn step_rate_name(step: &str) -> &'static str {
    match step {
        "diskprep" => "diskprep",
        "ingest at the datacenter" => "ingest",
        "export at the datacenter" => "export",
        _ => "staging backup",
    }
}

fn capitalised(text: &str) -> String {
    let mut chars = text.chars();
    chars.next().map(|c| c.to_uppercase().chain(chars).collect()).unwrap_or_default()
}

fn percent(share: f64) -> String {
    let text = format!("{:.2}", share * 100.0);
    text.trim_end_matches('0').trim_end_matches('.').to_string()
}

/// Drive sizes as they are sold: `10 TB`.
fn decimal(bytes: u64) -> String {
    let units = [("TB", 1e12), ("GB", 1e9), ("MB", 1e6)];
    for (name, size) in units {
        if bytes as f64 >= size {
            let value = format!("{:.1}", bytes as f64 / size);
            return format!("{} {name}", value.trim_end_matches(".0"));
        }
    }
    format!("{bytes} B")
}
