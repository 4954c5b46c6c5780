//! `offsite demo`: the walkthrough a newcomer runs first, on the embedded default
//! (a repository in a local folder). Each step prints what it does and what it
//! found, and the run fails if the restored files differ from the originals.

use std::fs;
use std::os::unix::fs::{symlink, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{bail, ensure, Context, Result};
use clap::Args;
use offsite_engine::archiver::{self, BackupOptions};
use offsite_engine::check::{self, CheckOptions};
use offsite_engine::progress::Progress;
use offsite_engine::restorer::{self, RestoreOptions};
use offsite_engine::{backend, browse, InitOptions, Repository};

use super::repo::human;

#[derive(Args)]
pub struct DemoArgs {
    /// Work in this folder instead of a fresh temporary one (kept afterwards).
    #[arg(long)]
    workdir: Option<PathBuf>,
}

fn step(n: u32, text: &str) {
    println!("\n== step {n}: {text}");
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
    let source = workdir.join("source");
    let repo_dir = workdir.join("repository");
    let restored = workdir.join("restored");
    println!("offsite demo in {}", workdir.display());

    step(1, "create a sample tree to protect");
    make_sample_tree(&source)?;
    println!("   {} with text, random data, a duplicate, a symlink, a hard link and an empty folder", source.display());

    step(2, "create an encrypted repository (the embedded default: a local folder)");
    let passphrase = std::env::var("OFFSITE_PASSWORD").unwrap_or_else(|_| "demo passphrase, keep it safe".to_string());
    let repo = Repository::init(
        backend::open(&repo_dir.display().to_string(), &[])?,
        passphrase.as_bytes(),
        InitOptions::default(),
    )?;
    println!("   repository {} at {}", repo.config().id.short(), repo_dir.display());

    step(3, "first backup: every file is read, chunked, deduplicated, compressed and encrypted");
    let progress = Progress::default();
    let options = BackupOptions::new(vec![source.clone()]);
    let first = archiver::backup(&repo, &options, &progress)?;
    let s = &first.snapshot.summary;
    println!(
        "   snapshot {}: {} files, {} read, {} stored after dedup+compression",
        first.snapshot_id.short(),
        s.files_new,
        human(s.bytes_read),
        human(s.data_added_stored)
    );

    step(4, "change the tree: edit one file, add one, delete one");
    fs::write(source.join("docs/notes.txt"), "rewritten notes\n".repeat(200))?;
    fs::write(source.join("docs/new.txt"), "a new file\n")?;
    fs::remove_file(source.join("docs/old.txt"))?;

    step(5, "second backup: unchanged files are recognised by metadata and not read again");
    let second = archiver::backup(&repo, &options, &progress)?;
    let s = &second.snapshot.summary;
    println!(
        "   snapshot {}: {} new, {} changed, {} unmodified; read {}, added {}",
        second.snapshot_id.short(),
        s.files_new,
        s.files_changed,
        s.files_unmodified,
        human(s.bytes_read),
        human(s.data_added_stored)
    );
    ensure!(s.files_unmodified > 0, "the second backup read every file again");

    step(6, "what changed between the two snapshots");
    let index = repo.load_index()?;
    for change in browse::diff(&repo, &index, &first.snapshot.tree, &second.snapshot.tree)? {
        println!("   {}  {}", change.change.sign(), change.path);
    }

    step(7, "restore the latest snapshot and verify it");
    let (_, latest) = repo.find_snapshot("latest")?;
    let outcome = restorer::restore(
        &repo,
        &latest,
        &RestoreOptions { target: restored.clone(), verify: true, ..Default::default() },
        &progress,
    )?;
    ensure!(outcome.failures.is_empty(), "restore reported failures: {:?}", outcome.failures);
    let restored_source = restored.join(source.strip_prefix("/").unwrap_or(&source));
    let compared = compare_trees(&source, &restored_source)?;
    println!(
        "   restored {} files to {}; {compared} entries identical to the source",
        outcome.files,
        restored.display()
    );

    step(8, "check the repository, reading and authenticating every byte");
    let report = check::check(&repo, CheckOptions { read_data: true }, &progress)?;
    if !report.is_ok() {
        bail!("check found errors: {:?}", report.errors);
    }
    println!("   {} snapshots, {} packs, {} blobs: no errors", report.snapshots, report.packs, report.blobs_read);

    step(9, "repository statistics");
    let stats = browse::stats(&repo)?;
    println!(
        "   {} of files in all snapshots stored in {} ({:.1}x smaller)",
        human(stats.restore_bytes),
        human(stats.stored_bytes),
        stats.space_saving_ratio
    );
    println!("\ndemo finished: every step succeeded");
    Ok(ExitCode::SUCCESS)
}

fn make_sample_tree(root: &Path) -> Result<()> {
    fs::create_dir_all(root.join("docs"))?;
    fs::create_dir_all(root.join("media/raw"))?;
    fs::create_dir_all(root.join("empty"))?;
    let text: String = (0..4000).map(|i| format!("line {i}: offsite keeps the first copy on a drive\n")).collect();
    fs::write(root.join("docs/notes.txt"), &text)?;
    fs::write(root.join("docs/old.txt"), "to be deleted\n")?;
    fs::write(root.join("docs/copy-of-notes.txt"), &text)?;
    let random: Vec<u8> = (0..3 * 1024 * 1024).map(|_| rand_byte()).collect();
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
