//! A customer site for the offline-seeding tests: a subscription with a vault,
//! storage account, container and datacenter, an agent protecting a source tree,
//! and the commands of each step of the seed's workflow.

use std::path::{Path, PathBuf};

use super::service::{Agent, Service, Tenant};
use super::*;

pub const JOB: &str = "seed-2026-12";
pub const DRIVE_SIZE: &str = "5MiB";
/// Small blocks keep the test drives small; the format is the same.
pub const BLOCK_SIZE: &str = "262144";

pub struct Site {
    pub root: PathBuf,
    pub tenant: Tenant,
    pub agent: Agent,
    pub source: PathBuf,
    pub staging: PathBuf,
    pub import_key: PathBuf,
    /// The datacenter's station credentials: what its ingest station runs with.
    pub station: PathBuf,
}

impl Site {
    /// A subscription with a vault, a storage account and container, a datacenter
    /// with its import key and a station credential, and an agent registered and protecting a source tree
    /// of about 8 MiB.
    pub fn new(service: &Service, root: &Path) -> Site {
        Site::with_source(service, root, 16, |source| {
            write_noise_file(&source.join("big.bin"), 7 << 20, 21);
            small_tree(&source.join("docs"));
            write(&source.join("empty.txt"), b"");
        })
    }

    /// A site whose repository closes packs at `pack_mib` MiB, protecting what
    /// `fill` writes into its source folder.
    pub fn with_source(service: &Service, root: &Path, pack_mib: u32, fill: impl FnOnce(&Path)) -> Site {
        let tenant = service.subscription("contoso");
        tenant.create_vault("main");
        tenant.admin(["storage-account", "create", "contosostore"]).run().ok();
        tenant.admin(["container", "create", "seeds", "--storage-account", "contosostore"]).run().ok();
        let import_key = root.join("ams1.importkey");
        service
            .admin([
                "datacenter",
                "add",
                "ams1",
                "--address",
                "Dock 4\\nAmsterdam",
                "--import-key-out",
                utf8(&import_key),
            ])
            .run()
            .ok();
        let station = root.join("ams1.station-credentials");
        service.admin(["datacenter", "station-credential", "issue", "ams1", "--output", utf8(&station)]).run().ok();
        let source = root.join("source");
        std::fs::create_dir_all(&source).unwrap();
        fill(&source);
        let pack_size = pack_mib.to_string();
        let agent =
            Agent::registered_with(root, &tenant, "main", "fs01", &[&source], &["--pack-size", pack_size.as_str()]);
        Site { root: root.to_path_buf(), tenant, agent, source, staging: root.join("staging"), import_key, station }
    }

    pub fn certgen(&self, args: &[&str]) -> Cli {
        let mut all = vec!["certgen", "--agent-home", utf8(&self.agent.home)];
        all.extend_from_slice(args);
        offsite(all)
    }

    /// diskprep on the copy computer, with the subscription's publish settings.
    pub fn diskprep(&self, args: &[&str]) -> Cli {
        let mut all =
            vec!["diskprep", "--staging", utf8(&self.staging), "--publish-settings", utf8(&self.tenant.publish)];
        all.extend_from_slice(args);
        offsite(all).env("XDG_STATE_HOME", self.root.join("copy-computer"))
    }

    pub fn drive(&self, n: u32) -> PathBuf {
        self.root.join(format!("drive-{n}.img"))
    }

    /// certgen and offline configure: the next backup goes into staging.
    pub fn configure_offline(&self) {
        let params = self.root.join("OfflineApplicationParams.xml");
        self.certgen(&[
            "create-application",
            "--subscription",
            &self.tenant.id,
            "--publish-settings",
            utf8(&self.tenant.publish),
            "--params-out",
            utf8(&params),
        ])
        .run()
        .ok();
        self.certgen(&[
            "add-agent-entries",
            "--subscription",
            &self.tenant.id,
            "--params-file",
            utf8(&params),
            "--storage-account",
            "contosostore",
        ])
        .run()
        .ok();
        self.agent.configure_offline(&self.staging, JOB, &self.tenant.id).ok();
    }

    /// certgen, offline configure and the first backup into staging.
    pub fn stage(&self) -> serde_json::Value {
        self.configure_offline();
        let staged = self.agent.backup();
        assert_eq!(staged["report"]["state"], "completed", "{staged}");
        assert_eq!(staged["report"]["bytes_uploaded"], 0, "the seed went over the network: {staged}");
        staged
    }

    pub fn prepare_two_drives(&self) -> serde_json::Value {
        self.prepare_two_drives_with(|args| self.diskprep(args))
    }

    /// [`Site::prepare_two_drives`] through another diskprep (e.g. on the source
    /// machine, with the agent's files).
    pub fn prepare_two_drives_with(&self, diskprep: impl Fn(&[&str]) -> Cli) -> serde_json::Value {
        diskprep(&[
            "--drive",
            utf8(&self.drive(1)),
            "--drive",
            utf8(&self.drive(2)),
            "--drive",
            utf8(&self.drive(3)),
            "--drive-size",
            DRIVE_SIZE,
            "--block-size",
            BLOCK_SIZE,
            "--yes",
            "--json",
        ])
        .run()
        .ok()
        .json()
    }

    pub fn ship(&self, tracking: &str) -> Run {
        self.ship_with(tracking, |args| self.diskprep(args))
    }

    /// [`Site::ship`] through another diskprep.
    pub fn ship_with(&self, tracking: &str, diskprep: impl Fn(&[&str]) -> Cli) -> Run {
        diskprep(&[
            "--update-shipping",
            "--carrier",
            "UPS",
            "--tracking-number",
            tracking,
            "--ship-date",
            "2026-12-01",
            "--return-address",
            "Contoso\\n1 Main St",
            "--contact",
            "it@contoso.example",
            "--yes",
        ])
        .run()
    }

    /// `offsite datacenter …` at the datacenter's station, with its station credentials.
    pub fn datacenter(&self, _service: &Service, args: &[&str]) -> Cli {
        let mut all = vec!["datacenter", "--station-credentials", utf8(&self.station)];
        all.extend_from_slice(args);
        offsite(all)
    }

    pub fn ingest(&self, _service: &Service, drive: &Path) -> Run {
        ingest(&self.station, &self.import_key, drive)
    }

    pub fn job_state(&self) -> String {
        let shown = self.diskprep(&["--status", "--json"]).run().ok().json();
        shown["state"].as_str().unwrap_or_default().to_string()
    }
}

/// `offsite datacenter ingest --drive DRIVE --json` at a station with these
/// station credentials and import key (owned paths only: stations run on threads).
pub fn ingest(station_credentials: &Path, import_key: &Path, drive: &Path) -> Run {
    offsite([
        "datacenter",
        "--station-credentials",
        utf8(station_credentials),
        "ingest",
        "--drive",
        utf8(drive),
        "--import-key",
        utf8(import_key),
        "--json",
    ])
    .run()
}
