//! `offsite repo …`: the engine's operations on one repository.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{bail, Context, Result};
use clap::{Args, Subcommand};
use offsite_engine::archiver::{self, BackupOptions, ParentChoice};
use offsite_engine::browse;
use offsite_engine::cache::{self, CacheSettings};
use offsite_engine::check::{self, CheckOptions};
use offsite_engine::crypto::KdfParams;
use offsite_engine::progress::Progress;
use offsite_engine::restorer::{self, RestoreOptions};
use offsite_engine::retention::{self, RetentionPolicy};
use offsite_engine::{backend, lock, prune, InitOptions, Repository};
use serde::Serialize;

use offsite_seeding::drive::{DriveKey, RecoveryKey};
use offsite_seeding::drive_set::{DriveSetBackend, FillingBackend};

use crate::display::plural;
use crate::exit::INCOMPLETE;
use crate::passphrase;
use crate::progress_bar::Bar;

#[derive(Args)]
pub struct RepoArgs {
    /// Repository location: a folder, s3://bucket/prefix, az://container/prefix or gs://bucket/prefix.
    #[arg(long, global = true, env = "OFFSITE_REPOSITORY")]
    repo: Option<String>,
    /// Read the passphrase from this file (otherwise OFFSITE_PASSWORD, or a prompt).
    #[arg(long, global = true, env = "OFFSITE_PASSWORD_FILE")]
    password_file: Option<PathBuf>,
    /// Print results as JSON.
    #[arg(long, global = true)]
    json: bool,
    /// No progress bars and no summaries; errors only.
    #[arg(short, long, global = true)]
    quiet: bool,
    /// Keep the local cache of a remote repository (s3://, az://, gs://) here
    /// [default: $XDG_CACHE_HOME/offsite, or ~/.cache/offsite].
    #[arg(long, global = true, env = "OFFSITE_CACHE_DIR", conflicts_with = "no_cache")]
    cache_dir: Option<PathBuf>,
    /// Read everything from the repository, keeping no local cache.
    #[arg(long, global = true)]
    no_cache: bool,
    #[command(subcommand)]
    command: RepoCommand,
}

#[derive(Subcommand)]
enum RepoCommand {
    /// Create a repository.
    Init {
        /// zstd level for new data (0 stores it uncompressed).
        #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(i32).range(0..=22))]
        compression: i32,
        /// Target pack size in MiB.
        #[arg(long, default_value_t = 16, value_parser = clap::value_parser!(u32).range(1..=1024))]
        pack_size: u32,
    },
    /// Back up files and folders into a new snapshot.
    Backup {
        #[arg(required = true)]
        paths: Vec<PathBuf>,
        /// Leave out matching entries (a name glob, or a path glob when it has a '/').
        #[arg(long)]
        exclude: Vec<String>,
        #[arg(long)]
        tag: Vec<String>,
        /// Compare with this snapshot instead of the latest of the same paths.
        #[arg(long, conflicts_with = "force")]
        parent: Option<String>,
        /// Read every file, ignoring earlier snapshots.
        #[arg(long)]
        force: bool,
    },
    /// List snapshots.
    Snapshots,
    /// List the files of a snapshot.
    Ls { snapshot: String, path: Option<String> },
    /// Restore a snapshot, or parts of it, into a folder.
    Restore {
        snapshot: String,
        #[arg(long)]
        target: PathBuf,
        /// Restore only this path of the snapshot (repeatable).
        #[arg(long)]
        include: Vec<String>,
        /// Read the restored files back and check them against the snapshot.
        #[arg(long)]
        verify: bool,
        #[command(flatten)]
        drives: FromDrives,
    },
    /// Show what changed between two snapshots.
    Diff { first: String, second: String },
    /// Check the repository for damage.
    Check {
        /// Also read and authenticate every byte of every pack.
        #[arg(long)]
        read_data: bool,
    },
    /// Remove snapshots according to a retention policy.
    Forget {
        #[arg(long, default_value_t = 0)]
        keep_last: u32,
        #[arg(long, default_value_t = 0)]
        keep_daily: u32,
        #[arg(long, default_value_t = 0)]
        keep_weekly: u32,
        #[arg(long, default_value_t = 0)]
        keep_monthly: u32,
        #[arg(long, default_value_t = 0)]
        keep_yearly: u32,
        /// Free the space of the forgotten snapshots' data right away.
        #[arg(long)]
        prune: bool,
        /// Show what would be removed, remove nothing.
        #[arg(long)]
        dry_run: bool,
    },
    /// Free the space of data that no snapshot uses.
    Prune,
    /// Show repository statistics.
    Stats,
    /// Manage the passphrases that open the repository.
    Key {
        #[command(subcommand)]
        command: KeyCommand,
    },
    /// Remove stale locks (or all locks with --remove-all).
    Unlock {
        #[arg(long)]
        remove_all: bool,
    },
    /// The local cache of a remote repository: what it holds, or empty it.
    #[command(subcommand)]
    Cache(CacheCommand),
}

/// Restoring from a set of drives (docs/DRIVE-FORMAT.md, "Reading a set as a
/// repository") instead of the repository's storage.
#[derive(Args)]
struct FromDrives {
    /// Read the repository from this drive of a drive set (an export's, or a seed's):
    /// a device, an image file or a folder holding offsite-drive.img; repeat for
    /// every drive you have. With --repo as well, what the drives lack or hold
    /// damaged is read from that repository.
    #[arg(long = "from-drive", value_name = "PATH")]
    from_drive: Vec<PathBuf>,
    /// The X25519 secret key file that opens the drives (64 hex digits: the key the
    /// export was made for, or a datacenter's import key for a seed's drives).
    #[arg(long, value_name = "FILE", requires = "from_drive")]
    drive_key: Option<PathBuf>,
    /// A drive's recovery key (each drive has its own; repeat for each drive).
    #[arg(long, value_name = "KEY", requires = "from_drive")]
    recovery_key: Vec<String>,
    /// Read every block of the drives first and list the damage found.
    #[arg(long, requires = "from_drive")]
    verify_drives: bool,
}

#[derive(Subcommand)]
enum CacheCommand {
    /// What the cache of this repository holds.
    Info,
    /// Empty the cache of this repository (the next command fetches what it needs again).
    Clear,
}

#[derive(Subcommand)]
enum KeyCommand {
    /// List key files.
    List,
    /// Add a passphrase.
    Add {
        /// Read the new passphrase from this file (otherwise OFFSITE_NEW_PASSWORD, or a prompt).
        #[arg(long)]
        new_password_file: Option<PathBuf>,
    },
    /// Remove a passphrase by key id (or unique prefix).
    Remove { id: String },
}

struct RepoSession {
    url: String,
    password_file: Option<PathBuf>,
    json: bool,
    quiet: bool,
    /// The local cache for remote repositories; `None` with --no-cache.
    cache: Option<CacheSettings>,
}

impl RepoSession {
    fn backend(&self) -> Result<Arc<dyn backend::Backend>> {
        Ok(backend::open(&self.url, &[])?)
    }

    /// The cache to use: for a remote repository only (a local folder is as fast
    /// to read as a cache of it would be).
    fn cache(&self) -> Option<&CacheSettings> {
        self.cache.as_ref().filter(|_| backend::is_remote(&self.url))
    }

    fn open(&self) -> Result<Repository> {
        let backend = self.backend()?;
        // Check the location before asking for a passphrase nobody can use.
        Repository::read_config(backend.as_ref())?;
        let passphrase = passphrase::read(self.password_file.as_deref(), false)?;
        Ok(Repository::open_cached(backend, &passphrase, self.cache())?)
    }

    fn say(&self, text: impl AsRef<str>) {
        if !self.quiet && !self.json {
            println!("{}", text.as_ref());
        }
    }

    fn print_json<T: Serialize>(&self, value: &T) -> Result<()> {
        println!("{}", serde_json::to_string_pretty(value)?);
        Ok(())
    }
}

pub fn run(args: RepoArgs) -> Result<ExitCode> {
    let from_drives = matches!(&args.command, RepoCommand::Restore { drives, .. } if !drives.from_drive.is_empty());
    let url = match args.repo {
        Some(url) => url,
        // Restoring from drives alone needs no repository location.
        None if from_drives => String::new(),
        None => bail!("no repository given: pass --repo LOCATION or set OFFSITE_REPOSITORY"),
    };
    let cache = match (args.no_cache, args.cache_dir) {
        (true, _) => None,
        (false, Some(dir)) => Some(CacheSettings::at(dir)),
        (false, None) => cache::default_root().map(CacheSettings::at),
    };
    let ctx = RepoSession { url, password_file: args.password_file, json: args.json, quiet: args.quiet, cache };
    match args.command {
        RepoCommand::Init { compression, pack_size } => init(&ctx, compression, pack_size),
        RepoCommand::Backup { paths, exclude, tag, parent, force } => {
            let parent = match (parent, force) {
                (_, true) => ParentChoice::None,
                (Some(spec), _) => ParentChoice::Snapshot(spec),
                (None, _) => ParentChoice::Latest,
            };
            backup(&ctx, paths, exclude, tag, parent)
        }
        RepoCommand::Snapshots => snapshots(&ctx),
        RepoCommand::Ls { snapshot, path } => ls(&ctx, &snapshot, path.as_deref().unwrap_or("/")),
        RepoCommand::Restore { snapshot, target, include, verify, drives } => {
            restore(&ctx, &snapshot, target, include, verify, &drives)
        }
        RepoCommand::Diff { first, second } => diff(&ctx, &first, &second),
        RepoCommand::Check { read_data } => check(&ctx, read_data),
        RepoCommand::Forget { keep_last, keep_daily, keep_weekly, keep_monthly, keep_yearly, prune, dry_run } => {
            let policy = RetentionPolicy { keep_last, keep_daily, keep_weekly, keep_monthly, keep_yearly };
            forget(&ctx, policy, prune, dry_run)
        }
        RepoCommand::Prune => prune_cmd(&ctx),
        RepoCommand::Stats => stats(&ctx),
        RepoCommand::Key { command } => key(&ctx, command),
        RepoCommand::Unlock { remove_all } => unlock(&ctx, remove_all),
        RepoCommand::Cache(command) => cache_cmd(&ctx, command),
    }
}

fn cache_cmd(ctx: &RepoSession, command: CacheCommand) -> Result<ExitCode> {
    // The repository's id names its cache; reading it needs no passphrase.
    let id = Repository::read_config(ctx.backend()?.as_ref())?.id;
    let Some(settings) = ctx.cache() else {
        let why = if backend::is_remote(&ctx.url) { "--no-cache was given" } else { "it is a local folder" };
        if ctx.json {
            ctx.print_json(&serde_json::json!({ "repository": id, "cache": null, "reason": why }))?;
        } else {
            println!("no local cache for the repository at {}: {why}", ctx.url);
        }
        return Ok(ExitCode::SUCCESS);
    };
    match command {
        CacheCommand::Info => {
            let usage = cache::caches_under(settings)
                .with_context(|| format!("cannot read the cache folder {}", settings.root.display()))?
                .into_iter()
                .find(|u| u.repository == id.to_hex());
            if ctx.json {
                ctx.print_json(&serde_json::json!({ "repository": id, "cache": usage }))?;
            } else {
                match usage {
                    Some(u) => print_cache_usage(&u),
                    None => println!(
                        "the cache of repository {} is empty (it fills at the next command, in {})",
                        id.short(),
                        settings.root.display()
                    ),
                }
            }
        }
        CacheCommand::Clear => {
            let cleared = cache::clear_caches(settings, Some(&id))
                .with_context(|| format!("cannot empty the cache folder {}", settings.root.display()))?;
            let bytes: u64 = cleared.iter().map(|u| u.bytes).sum();
            if ctx.json {
                ctx.print_json(&serde_json::json!({ "repository": id, "cleared_bytes": bytes }))?;
            } else {
                ctx.say(format!("emptied the cache of repository {}: {} freed", id.short(), human(bytes)));
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// One repository's cache, as `repo cache info` and `agent cache info` show it.
pub fn print_cache_usage(u: &cache::CacheUsage) {
    println!("cache of repository {} in {}", &u.repository[..8.min(u.repository.len())], u.folder.display());
    println!(
        "  {} in {} ({} at most): {}, {}, {}, {}",
        human(u.bytes),
        plural(u.files as usize, "file"),
        human(u.max_bytes),
        plural(u.index_files as usize, "index file"),
        plural(u.snapshot_files as usize, "snapshot"),
        plural(u.key_files as usize, "key file"),
        plural(u.packs as usize, "tree pack"),
    );
}

fn init(ctx: &RepoSession, compression: i32, pack_size: u32) -> Result<ExitCode> {
    let backend = ctx.backend()?;
    let passphrase = passphrase::read(ctx.password_file.as_deref(), true)?;
    let options = InitOptions { compression, pack_size: pack_size << 20, ..InitOptions::default() };
    let repo = Repository::init(backend, &passphrase, options)?;
    if ctx.json {
        ctx.print_json(&serde_json::json!({ "id": repo.config().id, "location": repo.location() }))?;
    }
    ctx.say(format!("created repository {} at {}", repo.config().id.short(), repo.location()));
    ctx.say("keep the passphrase safe: without it the backups cannot be read");
    Ok(ExitCode::SUCCESS)
}

fn backup(
    ctx: &RepoSession,
    paths: Vec<PathBuf>,
    excludes: Vec<String>,
    tags: Vec<String>,
    parent: ParentChoice,
) -> Result<ExitCode> {
    let repo = ctx.open()?;
    let progress = Arc::new(Progress::default());
    let show = !ctx.quiet && std::io::IsTerminal::is_terminal(&std::io::stderr());
    let options = BackupOptions { excludes, tags, parent, scan_totals: show, ..BackupOptions::new(paths) };
    let outcome = {
        let _bar = Bar::show("backup", progress.clone(), ctx.quiet);
        archiver::backup(&repo, &options, &progress)?
    };
    for item in &outcome.skipped {
        eprintln!("offsite: could not read {}: {}", item.path, item.reason);
    }
    let s = &outcome.snapshot.summary;
    if ctx.json {
        ctx.print_json(&serde_json::json!({
            "snapshot": outcome.snapshot_id,
            "summary": s,
            "skipped": outcome.skipped,
            "recovered_packs": outcome.recovered_packs,
        }))?;
    } else {
        ctx.say(format!(
            "files: {} new, {} changed, {} unmodified; dirs: {}",
            s.files_new, s.files_changed, s.files_unmodified, s.dirs
        ));
        ctx.say(format!(
            "read {} of {}, added {} ({} stored) in {:.1}s",
            human(s.bytes_read),
            human(s.total_bytes),
            human(s.data_added),
            human(s.data_added_stored),
            s.duration_seconds
        ));
        if outcome.recovered_packs > 0 {
            ctx.say(format!("reused {} left by an interrupted backup", plural(outcome.recovered_packs, "pack")));
        }
        ctx.say(format!("snapshot {} saved", outcome.snapshot_id.short()));
    }
    if !outcome.skipped.is_empty() {
        eprintln!(
            "offsite: snapshot {} is incomplete: {} could not be read (listed above)",
            outcome.snapshot_id.short(),
            plural(outcome.skipped.len(), "item")
        );
        return Ok(ExitCode::from(INCOMPLETE));
    }
    Ok(ExitCode::SUCCESS)
}

fn snapshots(ctx: &RepoSession) -> Result<ExitCode> {
    let repo = ctx.open()?;
    let (all, damaged) = repo.load_all_snapshots()?;
    // The readable ones are listed; the damaged ones are named and make the exit non-zero.
    let fail_on_damage = || -> Result<ExitCode> {
        for (id, err) in &damaged {
            eprintln!("offsite: snapshot {}: {err}", id.short());
        }
        if damaged.is_empty() {
            Ok(ExitCode::SUCCESS)
        } else {
            bail!(
                "{} damaged; run 'offsite repo check' and restore from the others",
                match damaged.len() {
                    1 => "1 snapshot file is".to_string(),
                    n => format!("{} are", plural(n, "snapshot file")),
                }
            )
        }
    };
    if ctx.json {
        let list: Vec<_> =
            all.iter().map(|(id, s)| serde_json::json!({ "id": id, "short_id": id.short(), "snapshot": s })).collect();
        ctx.print_json(&list)?;
        return fail_on_damage();
    }
    println!("{:<10} {:<20} {:<16} {:>10}  Paths", "ID", "Time", "Host", "Size");
    for (id, s) in &all {
        let time = listing_time(s.time)?;
        println!(
            "{:<10} {:<20} {:<16} {:>10}  {}",
            id.short(),
            time,
            s.hostname,
            human(s.summary.total_bytes),
            s.paths.join(", ")
        );
    }
    println!("{}", plural(all.len(), "snapshot"));
    fail_on_damage()
}

fn ls(ctx: &RepoSession, spec: &str, path: &str) -> Result<ExitCode> {
    let repo = ctx.open()?;
    let (id, snapshot) = repo.find_snapshot(spec)?;
    let index = repo.load_index()?;
    let entries = browse::list(&repo, &index, &snapshot.tree, path, &id.short())?;
    if ctx.json {
        ctx.print_json(&entries)?;
    } else {
        for e in entries {
            match e.link_target {
                Some(target) => println!("{:<8} {:>12}  {} -> {}", e.kind, e.size, e.path, target),
                None => println!("{:<8} {:>12}  {}", e.kind, e.size, e.path),
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// The repository on a set of drives, filled from `--repo` when given.
fn open_drives(ctx: &RepoSession, drives: &FromDrives) -> Result<(Repository, Option<Arc<FillingBackend>>)> {
    let mut keys = Vec::new();
    if let Some(file) = &drives.drive_key {
        let secret = offsite_api::import_key::read_import_secret(file)?;
        keys.push(DriveKey::Import(x25519_dalek::StaticSecret::from(secret)));
    }
    for text in &drives.recovery_key {
        keys.push(DriveKey::Recovery(text.parse::<RecoveryKey>()?));
    }
    if keys.is_empty() {
        bail!("no key for the drives: pass --drive-key FILE, or --recovery-key KEY for each drive");
    }
    let set = Arc::new(DriveSetBackend::open_with_keys(&drives.from_drive, &keys)?);
    for absent in set.absent_drives() {
        eprintln!(
            "offsite: {absent} of the set was not given: what it holds {}",
            if ctx.url.is_empty() { "cannot be restored" } else { "is read from the repository" }
        );
    }
    if drives.verify_drives {
        let report = set.verify();
        for file in &report.damaged_files {
            for range in &file.ranges {
                eprintln!(
                    "offsite: {}: bytes {}..{}: {}",
                    file.path,
                    range.offset,
                    range.offset + range.length,
                    range.cause
                );
            }
        }
        ctx.say(format!(
            "read {} of {}: {}, {} with damage",
            plural(report.drives.iter().map(|d| d.report.blocks_read).sum::<u64>(), "block"),
            plural(report.drives.len() as u64, "drive"),
            plural(report.bad_blocks() as u64, "bad block"),
            plural(report.damaged_files.len() as u64, "repository file")
        ));
    }
    let (backend, filling): (Arc<dyn backend::Backend>, _) = match ctx.url.as_str() {
        "" => (set, None),
        url => {
            let filling = Arc::new(FillingBackend::new(set, backend::open(url, &[])?));
            (filling.clone(), Some(filling))
        }
    };
    let passphrase = passphrase::read(ctx.password_file.as_deref(), false)?;
    Ok((Repository::open(backend, &passphrase)?, filling))
}

fn restore(
    ctx: &RepoSession,
    spec: &str,
    target: PathBuf,
    includes: Vec<String>,
    verify: bool,
    drives: &FromDrives,
) -> Result<ExitCode> {
    let (repo, filling) = match drives.from_drive.is_empty() {
        true => (ctx.open()?, None),
        false => open_drives(ctx, drives)?,
    };
    let (id, snapshot) = repo.find_snapshot(spec)?;
    let progress = Arc::new(Progress::default());
    let options = RestoreOptions { target: target.clone(), includes, verify, ..Default::default() };
    let outcome = {
        let _bar = Bar::show("restore", progress.clone(), ctx.quiet);
        restorer::restore(&repo, &snapshot, &options, &progress)?
    };
    // Listed whatever --quiet or --json say: these files are not at the target.
    for failure in &outcome.failures {
        eprintln!("offsite: could not restore {}", crate::display::restore_failure(failure));
    }
    if ctx.json {
        ctx.print_json(&serde_json::json!({ "snapshot": id, "outcome": outcome }))?;
    } else {
        ctx.say(format!(
            "restored snapshot {} to {}: {}, {}, {}",
            id.short(),
            target.display(),
            plural(outcome.files, "file"),
            plural(outcome.dirs, "folder"),
            human(outcome.bytes)
        ));
        if verify {
            ctx.say(format!("verified {} against the snapshot", plural(outcome.verified, "file")));
        }
    }
    if let Some(filling) = filling {
        let stats = filling.stats();
        if stats.reads > 0 {
            ctx.say(format!(
                "read from {} for the drives: {} of {}",
                ctx.url,
                human(stats.bytes),
                plural(stats.files.len() as u64, "repository file")
            ));
        }
    }
    if !outcome.failures.is_empty() {
        eprintln!(
            "offsite: restore incomplete: {} could not be restored (listed above)",
            plural(outcome.failures.len(), "item")
        );
        return Ok(ExitCode::from(INCOMPLETE));
    }
    Ok(ExitCode::SUCCESS)
}

fn diff(ctx: &RepoSession, first: &str, second: &str) -> Result<ExitCode> {
    let repo = ctx.open()?;
    let (_, a) = repo.find_snapshot(first)?;
    let (_, b) = repo.find_snapshot(second)?;
    let index = repo.load_index()?;
    let changes = browse::diff(&repo, &index, &a.tree, &b.tree)?;
    if ctx.json {
        ctx.print_json(&changes)?;
    } else {
        for change in &changes {
            println!("{}  {}", change.change.sign(), change.path);
        }
        ctx.say(plural(changes.len(), "change"));
    }
    Ok(ExitCode::SUCCESS)
}

fn check(ctx: &RepoSession, read_data: bool) -> Result<ExitCode> {
    let repo = ctx.open()?;
    let progress = Arc::new(Progress::default());
    let report = {
        let _bar = Bar::show("check", progress.clone(), ctx.quiet || !read_data);
        check::check(&repo, CheckOptions { read_data }, &progress)?
    };
    if ctx.json {
        ctx.print_json(&report)?;
    } else {
        for warning in &report.warnings {
            ctx.say(format!("warning: {warning}"));
        }
        for error in &report.errors {
            eprintln!("error: {error}");
        }
        ctx.say(format!(
            "checked {}, {}, {}{}",
            plural(report.snapshots, "snapshot"),
            plural(report.trees, "tree"),
            plural(report.packs, "pack"),
            if read_data {
                format!(", read {} ({})", plural(report.blobs_read, "blob"), human(report.bytes_read))
            } else {
                String::new()
            }
        ));
    }
    if report.is_ok() {
        ctx.say("no errors found");
        Ok(ExitCode::SUCCESS)
    } else {
        let place = if ctx.json { "in the JSON report" } else { "listed above" };
        bail!("the repository has {} ({place})", plural(report.errors.len(), "error"))
    }
}

fn forget(ctx: &RepoSession, policy: RetentionPolicy, prune_after: bool, dry_run: bool) -> Result<ExitCode> {
    let repo = ctx.open()?;
    let decisions = retention::forget(&repo, &policy, dry_run)?;
    let report = if prune_after && !dry_run { Some(prune::prune(&repo)?) } else { None };
    if ctx.json {
        ctx.print_json(&serde_json::json!({ "decisions": decisions, "dry_run": dry_run, "prune": report }))?;
        return Ok(ExitCode::SUCCESS);
    }
    for d in &decisions {
        let verb = if d.keep {
            "keep  "
        } else if dry_run {
            "would remove"
        } else {
            "remove"
        };
        ctx.say(format!("{verb} {} {} {}", d.id.short(), d.time, d.reasons.join(",")));
    }
    if let Some(report) = report {
        print_prune(ctx, &report);
    }
    Ok(ExitCode::SUCCESS)
}

fn print_prune(ctx: &RepoSession, r: &prune::PruneReport) {
    ctx.say(format!(
        "prune: removed {}, rewrote {}, kept {}; {} -> {}",
        plural(r.packs_removed + r.unindexed_packs_removed, "pack"),
        r.packs_repacked,
        r.packs_kept,
        human(r.bytes_before),
        human(r.bytes_after)
    ));
}

fn prune_cmd(ctx: &RepoSession) -> Result<ExitCode> {
    let repo = ctx.open()?;
    let report = prune::prune(&repo)?;
    if ctx.json {
        ctx.print_json(&report)?;
    } else {
        print_prune(ctx, &report);
    }
    Ok(ExitCode::SUCCESS)
}

fn stats(ctx: &RepoSession) -> Result<ExitCode> {
    let repo = ctx.open()?;
    let s = browse::stats(&repo)?;
    if ctx.json {
        ctx.print_json(&s)?;
    } else {
        println!("snapshots:        {}", s.snapshots);
        println!("packs:            {} ({} index files)", s.packs, s.index_files);
        println!("blobs:            {} ({} trees)", s.blobs, s.tree_blobs);
        println!("stored:           {}", human(s.stored_bytes));
        println!("unique data:      {}", human(s.unique_bytes));
        println!("all snapshots:    {}", human(s.restore_bytes));
        println!("space saving:     {:.2}x", s.space_saving_ratio);
    }
    Ok(ExitCode::SUCCESS)
}

fn key(ctx: &RepoSession, command: KeyCommand) -> Result<ExitCode> {
    let repo = ctx.open()?;
    match command {
        KeyCommand::List => {
            let keys = repo.list_keys()?;
            if ctx.json {
                // RFC 3339, like every other time in the JSON output.
                let list = keys
                    .iter()
                    .map(|k| {
                        let created = k.file.created.format(&time::format_description::well_known::Rfc3339)?;
                        Ok(serde_json::json!({ "id": k.id, "current": k.current, "created": created, "hostname": k.file.hostname, "username": k.file.username }))
                    })
                    .collect::<Result<Vec<_>>>()?;
                ctx.print_json(&list)?;
            } else {
                for k in keys {
                    println!(
                        "{} {:<10} {} {}@{}",
                        if k.current { "*" } else { " " },
                        k.id.short(),
                        listing_time(k.file.created)?,
                        k.file.username,
                        k.file.hostname
                    );
                }
            }
        }
        KeyCommand::Add { new_password_file } => {
            let new = match (new_password_file, std::env::var("OFFSITE_NEW_PASSWORD")) {
                (Some(file), _) => passphrase::read(Some(&file), false)?,
                (None, Ok(value)) if !value.is_empty() => value.into_bytes(),
                _ => {
                    if !std::io::IsTerminal::is_terminal(&std::io::stdin()) {
                        bail!("no new passphrase given: pass --new-password-file FILE or set OFFSITE_NEW_PASSWORD");
                    }
                    let first = rpassword::prompt_password("New passphrase: ").context("cannot read the passphrase")?;
                    let again = rpassword::prompt_password("Repeat it: ").context("cannot read the passphrase")?;
                    if first != again || first.is_empty() {
                        bail!("the passphrases differ or are empty; nothing was changed");
                    }
                    first.into_bytes()
                }
            };
            let id = repo.add_key(&new, KdfParams::default())?;
            if ctx.json {
                ctx.print_json(&serde_json::json!({ "id": id }))?;
            }
            ctx.say(format!("added key {}", id.short()));
        }
        KeyCommand::Remove { id } => {
            let removed = repo.remove_key(&id)?;
            if ctx.json {
                ctx.print_json(&serde_json::json!({ "removed": removed }))?;
            }
            ctx.say(format!("removed key {}", removed.short()));
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn unlock(ctx: &RepoSession, all: bool) -> Result<ExitCode> {
    let repo = ctx.open()?;
    let removed = lock::unlock(&repo, all)?;
    if ctx.json {
        let list: Vec<String> = removed.iter().map(|l| l.describe()).collect();
        ctx.print_json(&list)?;
    } else {
        for l in &removed {
            ctx.say(format!("removed lock of {}", l.describe()));
        }
        ctx.say(format!("{} removed", plural(removed.len(), "lock")));
    }
    Ok(ExitCode::SUCCESS)
}

/// Times in listings: 2026-01-31 23:59:59 (UTC).
fn listing_time(t: time::OffsetDateTime) -> Result<String> {
    Ok(t.format(&time::macros::format_description!("[year]-[month]-[day] [hour]:[minute]:[second]"))?)
}

/// A byte count as people read it.
pub fn human(bytes: u64) -> String {
    offsite_api::size::ByteSize(bytes).to_string()
}
