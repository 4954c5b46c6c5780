//! `offsite demo`: the walkthrough a newcomer runs first, on the embedded default:
//! the service on SQLite with a local storage folder, and the whole offline-seeding
//! path of the seed document. The first backup goes to a staging location, onto two
//! encrypted image files, through the datacenter's ingest station into a storage
//! container, and is adopted into the vault; then an incremental backup travels
//! over HTTPS and a restore is compared byte for byte. Every step is the command a
//! user would type, run in this process and printed with its output.

use std::fs;
use std::os::unix::fs::{symlink, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{bail, ensure, Context, Result};
use clap::Args;
use offsite_agent::config::AgentConfig;
use offsite_agent::AgentHome;
use offsite_api::files::PublishSettings;
use offsite_api::types::{JobState, RecoveryPointSource};
use offsite_api::XmlCredentialFile;
use offsite_engine::check::{self, CheckOptions};
use offsite_engine::progress::Progress;
use offsite_server::{Server, ServerConfig};

use crate::display::{human, plural};

#[derive(Args)]
pub struct DemoArgs {
    /// Work in this folder instead of a fresh temporary one (kept afterwards).
    #[arg(long)]
    workdir: Option<PathBuf>,
}

fn step(n: u32, text: &str) {
    println!("\n== step {n}: {text}");
}

/// Runs `offsite ARGS…` as a user would, printing the command line first; any
/// exit code but success stops the demo.
fn offsite(args: &[&str]) -> Result<()> {
    println!("$ offsite {}", args.join(" "));
    let code = crate::run_command_line(args)?;
    ensure!(code == ExitCode::SUCCESS, "`offsite {}` did not succeed ({code:?})", args.join(" "));
    Ok(())
}

fn text(path: &Path) -> &str {
    path.to_str().unwrap_or_default()
}

pub fn run(args: DemoArgs) -> Result<ExitCode> {
    let (workdir, _temp) = match args.workdir {
        Some(dir) => {
            fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
            (dir, None)
        }
        None => {
            let temp = tempfile::Builder::new()
                .prefix("offsite-demo-")
                .tempdir()
                .context("cannot create a temporary folder")?;
            (temp.path().to_path_buf(), Some(temp))
        }
    };
    let workdir = fs::canonicalize(&workdir)?;
    let w = |name: &str| workdir.join(name);
    let (source, restored, staging) = (w("source"), w("restored"), w("staging"));
    let agent_home = w("agent");
    let home = AgentHome::in_folder(&agent_home);
    let ah = text(&agent_home);
    // The demo's state (diskprep journal, shipping details) stays in the work folder.
    std::env::set_var("XDG_STATE_HOME", w("copy-computer"));
    println!("offsite demo in {}", workdir.display());

    step(1, "a sample tree to protect");
    make_sample_tree(&source)?;
    println!("   {} with text, random data, a duplicate, a symlink, a hard link and an empty folder", source.display());

    step(2, "start the service on the embedded default: SQLite, a local storage folder, a self-signed certificate");
    let runtime =
        tokio::runtime::Builder::new_multi_thread().enable_all().build().context("cannot start the runtime")?;
    let mut config = ServerConfig::new(w("server"));
    config.listen = "127.0.0.1:0".parse().context("listen address")?;
    let server = runtime.block_on(Server::start(config))?;
    println!("   listening on {}", server.url);
    println!("   certificate SHA-256 {} (every credentials file pins it)", server.fingerprint);
    let operator = text(&server.operator_credentials).to_string();

    step(
        3,
        "the operator: a subscription (its publish settings go to the customer), a datacenter with an import key, \
         and its ingest station's own credential",
    );
    let publish = w("demo.publishsettings");
    offsite(&["admin", "--operator-credentials", &operator, "subscription", "create", "demo", "-o", text(&publish)])?;
    let import_key = w("ams1.importkey");
    offsite(&[
        "admin",
        "--operator-credentials",
        &operator,
        "datacenter",
        "add",
        "ams1",
        "--address",
        "Offsite Datacenter AMS1\\nReceiving dock 4\\n1011 AB Amsterdam",
        "--import-key-out",
        text(&import_key),
    ])?;
    // The station ingests ams1's jobs with its own credential, never the operator's.
    let station = w("ams1.station-credentials");
    offsite(&[
        "admin",
        "--operator-credentials",
        &operator,
        "datacenter",
        "station-credential",
        "issue",
        "ams1",
        "--output",
        text(&station),
    ])?;
    let settings = PublishSettings::read(&publish)?;
    let subscription = settings.subscription_id.clone();
    let ps = text(&publish);

    step(4, "the customer: a vault, its vault credentials, a storage account and a container for the seed");
    offsite(&["admin", "--publish-settings", ps, "vault", "create", "main"])?;
    let credentials = w("main.vaultcredentials");
    offsite(&["admin", "--publish-settings", ps, "vault", "credentials", "main", "-o", text(&credentials)])?;
    offsite(&["admin", "--publish-settings", ps, "storage-account", "create", "demostore"])?;
    offsite(&["admin", "--publish-settings", ps, "container", "create", "seeds", "--storage-account", "demostore"])?;

    step(5, "register this machine with a passphrase that never leaves it, and protect the sample tree");
    let passphrase = w("passphrase.txt");
    offsite_api::files::write_secret_file(
        &passphrase,
        &std::env::var("OFFSITE_PASSWORD").unwrap_or_else(|_| "demo passphrase, keep it safe".to_string()),
    )?;
    offsite(&[
        "agent",
        "--agent-home",
        ah,
        "register",
        "--vault-credentials",
        text(&credentials),
        "--passphrase-file",
        text(&passphrase),
        "--name",
        "demo-machine",
    ])?;
    offsite(&["agent", "--agent-home", ah, "protect", "add", text(&source), "--exclude", "*.tmp"])?;
    offsite(&["agent", "--agent-home", ah, "schedule", "set", "--times", "02:00"])?;

    step(6, "prepare the server (certgen): the offline-seeding application and its certificate");
    let params = w("OfflineApplicationParams.xml");
    offsite(&[
        "certgen",
        "--agent-home",
        ah,
        "create-application",
        "--subscription",
        &subscription,
        "--publish-settings",
        ps,
        "--params-out",
        text(&params),
    ])?;
    offsite(&[
        "certgen",
        "--agent-home",
        ah,
        "add-agent-entries",
        "--subscription",
        &subscription,
        "--params-file",
        text(&params),
        "--storage-account",
        "demostore",
    ])?;

    step(7, "initiate offline backup: the first full backup goes to the staging location");
    let job = "demo-seed-1";
    offsite(&[
        "agent",
        "--agent-home",
        ah,
        "offline",
        "configure",
        "--staging",
        text(&staging),
        "--import-job",
        job,
        "--subscription",
        &subscription,
        "--storage-account",
        "demostore",
        "--container",
        "seeds",
    ])?;
    offsite(&["agent", "--agent-home", ah, "--quiet", "backup", "--now"])?;
    let staged = dir_size(&staging)?;
    println!("   the staging location holds {} (compressed, deduplicated, encrypted)", human(staged));

    step(8, "a scheduled backup while the seed is not in the vault: it waits, sending nothing large");
    offsite(&["agent", "--agent-home", ah, "--quiet", "backup", "--now"])?;
    let status = offsite_agent::status::status(&home, 1)?;
    let last = status.jobs.first().context("no job recorded")?;
    ensure!(last.report.state == JobState::Waiting, "the backup did not wait: {:?}", last.report.state);
    println!("   job history: {:?}: {}", last.report.state, last.report.message.as_deref().unwrap_or(""));

    step(9, "diskprep: copy the staging location onto two encrypted 4 MiB image files, create the import job");
    let (drive1, drive2) = (w("drive-1.img"), w("drive-2.img"));
    offsite(&[
        "diskprep",
        "--agent-home",
        ah,
        "--staging",
        text(&staging),
        "--drive",
        text(&drive1),
        "--drive",
        text(&drive2),
        "--drive-size",
        "4MiB",
        "--block-size",
        "262144",
        "--yes",
    ])?;

    step(10, "diskprep --update-shipping: carrier and tracking number, committed with Yes");
    offsite(&[
        "diskprep",
        "--agent-home",
        ah,
        "--update-shipping",
        "--carrier",
        "UPS",
        "--tracking-number",
        "1Z999AA10123456784",
        "--return-address",
        "Demo Ltd\\n1 Main Street\\nHometown",
        "--contact",
        "it@demo.example",
        "--yes",
    ])?;

    step(11, "the datacenter's station (its station credential) receives the package and ingests both drives");
    offsite(&["datacenter", "--station-credentials", text(&station), "receive", "--job", job])?;
    for drive in [&drive1, &drive2] {
        offsite(&[
            "datacenter",
            "--station-credentials",
            text(&station),
            "ingest",
            "--drive",
            text(drive),
            "--import-key",
            text(&import_key),
        ])?;
    }
    offsite(&["agent", "--agent-home", ah, "offline", "show"])?;

    step(12, "change the tree, then the next backup: the service adopts the seed, only the change travels");
    fs::write(source.join("docs/notes.txt"), "rewritten notes\n".repeat(200))?;
    fs::write(source.join("docs/new.txt"), "a new file\n")?;
    fs::remove_file(source.join("docs/old.txt"))?;
    offsite(&["agent", "--agent-home", ah, "--quiet", "backup", "--now"])?;
    let status = offsite_agent::status::status(&home, 1)?;
    let last = status.jobs.first().context("no job recorded")?;
    println!("   {}; {} sent", last.report.message.as_deref().unwrap_or(""), human(last.report.bytes_uploaded));
    ensure!(status.adopted_seed.is_some(), "the seed was not adopted");
    ensure!(
        last.report.bytes_uploaded * 10 < staged,
        "the incremental sent {} after a seed of {}",
        last.report.bytes_uploaded,
        staged
    );

    step(13, "recovery points, as the service lists them: the seed came on drives");
    offsite(&["agent", "--agent-home", ah, "recovery-points"])?;
    let registration = offsite_agent::registration::Registration::load(&home)?;
    let points = registration.client()?.recovery_points(&registration.machine_id)?;
    ensure!(
        points.iter().any(|p| p.source == RecoveryPointSource::OfflineSeed),
        "no recovery point from the offline seed"
    );

    step(14, "restore the latest recovery point to another folder and compare every byte");
    offsite(&["agent", "--agent-home", ah, "--quiet", "restore", "--target", text(&restored), "--verify"])?;
    let restored_source = restored.join(source.strip_prefix("/").unwrap_or(&source));
    let compared = compare_trees(&source, &restored_source)?;
    println!("   {} identical to the source", plural(compared, "entry"));

    step(15, "check the vault repository through the service, authenticating every byte");
    let agent_config = AgentConfig::load(&home.config_file)?;
    let secret = fs::read_to_string(&passphrase)?;
    let vault = offsite_agent::repository::open(&registration, &secret, &agent_config.retry, None, None)?;
    let report = check::check(&vault.repo, CheckOptions { read_data: true }, &Progress::default())?;
    if !report.is_ok() {
        bail!("check found errors: {:?}", report.errors);
    }
    println!(
        "   {}, {}, {}: no errors",
        plural(report.snapshots, "recovery point"),
        plural(report.packs, "pack"),
        plural(report.blobs_read, "blob")
    );

    server.shutdown();
    runtime.block_on(server.wait()).context("the service stopped with an error")?;
    println!("\ndemo finished: every step succeeded");
    Ok(ExitCode::SUCCESS)
}

fn dir_size(path: &Path) -> Result<u64> {
    let mut total = 0;
    for entry in fs::read_dir(path)? {
        let entry = entry?;
        let meta = entry.metadata()?;
        total += if meta.is_dir() { dir_size(&entry.path())? } else { meta.len() };
    }
    Ok(total)
}

fn make_sample_tree(root: &Path) -> Result<()> {
    fs::create_dir_all(root.join("docs"))?;
    fs::create_dir_all(root.join("media/raw"))?;
    fs::create_dir_all(root.join("empty"))?;
    let text: String = (0..4000).map(|i| format!("line {i}: offsite keeps the first copy on a drive\n")).collect();
    fs::write(root.join("docs/notes.txt"), &text)?;
    fs::write(root.join("docs/old.txt"), "to be deleted\n")?;
    fs::write(root.join("docs/copy-of-notes.txt"), &text)?;
    let random: Vec<u8> = (0..5 * 1024 * 1024).map(|_| rand_byte()).collect();
    fs::write(root.join("media/raw/random.bin"), &random)?;
    fs::set_permissions(root.join("media/raw/random.bin"), fs::Permissions::from_mode(0o600))?;
    symlink("../docs/notes.txt", root.join("media/link-to-notes"))?;
    fs::hard_link(root.join("docs/notes.txt"), root.join("docs/hardlink-to-notes.txt"))?;
    Ok(())
}

fn rand_byte() -> u8 {
    use std::cell::Cell;
    thread_local!(static STATE: Cell<u64> = const { Cell::new(0x9E37_79B9_7F4A_7C15) });
    STATE.with(|s| {
        let mut x = s.get();
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        s.set(x);
        (x >> 24) as u8
    })
}

/// Compares two trees entry by entry (type, content, mode, symlink target); returns
/// how many entries matched.
fn compare_trees(a: &Path, b: &Path) -> Result<usize> {
    let mut count = 0;
    let mut names: Vec<_> = fs::read_dir(a)?.map(|e| e.map(|e| e.file_name())).collect::<Result<_, _>>()?;
    names.sort();
    let mut other: Vec<_> = fs::read_dir(b)?.map(|e| e.map(|e| e.file_name())).collect::<Result<_, _>>()?;
    other.sort();
    ensure!(names == other, "{} and {} hold different entries", a.display(), b.display());
    for name in names {
        let (pa, pb) = (a.join(&name), b.join(&name));
        let (ma, mb) = (fs::symlink_metadata(&pa)?, fs::symlink_metadata(&pb)?);
        ensure!(ma.file_type() == mb.file_type(), "{} changed type", pb.display());
        ensure!(
            ma.permissions().mode() == mb.permissions().mode() || ma.file_type().is_symlink(),
            "{} has another mode",
            pb.display()
        );
        if ma.is_dir() {
            count += compare_trees(&pa, &pb)?;
        } else if ma.file_type().is_symlink() {
            ensure!(fs::read_link(&pa)? == fs::read_link(&pb)?, "{} points elsewhere", pb.display());
        } else {
            ensure!(fs::read(&pa)? == fs::read(&pb)?, "{} has other content", pb.display());
        }
        count += 1;
    }
    Ok(count)
}
