//! Helpers shared by the diskprep and ingest tests: real staging folders of random
//! files, image-file drive suppliers, reading a set back, and an in-memory store
//! for ingest.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use offsite_seeding::diskprep::{DiskprepError, DrivePlan, DriveSupplier};
use offsite_seeding::drive::{DriveKey, DriveReader, DriveTarget};
use offsite_seeding::ingest::{PartBody, PartToUpload, PartUploader, UploadError};
use rand::{Rng, RngCore, SeedableRng};
use x25519_dalek::{PublicKey, StaticSecret};

pub const BS: u32 = 64 * 1024;
pub const JOB: &str = "import-job-7";

pub fn import_keys() -> (StaticSecret, [u8; 32]) {
    let secret = StaticSecret::random_from_rng(rand::rngs::OsRng);
    let public = PublicKey::from(&secret).to_bytes();
    (secret, public)
}

/// A staging repository: files named by the BLAKE3 of their bytes, of various
/// sizes (empty ones, one larger than `big` bytes), and an engine temp file that
/// must be skipped. Returns the files by path.
pub fn make_staging(root: &Path, seed: u64, big: usize) -> BTreeMap<String, Vec<u8>> {
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let mut files = BTreeMap::new();
    let add = |files: &mut BTreeMap<String, Vec<u8>>, folder: &str, bytes: Vec<u8>, fanout: bool| {
        let name = blake3::hash(&bytes).to_hex().to_string();
        let path = if fanout { format!("{folder}/{}/{name}", &name[..2]) } else { format!("{folder}/{name}") };
        files.insert(path, bytes);
    };
    files.insert("config".to_string(), br#"{"version":1}"#.to_vec());
    let random = |rng: &mut rand::rngs::StdRng, len: usize| {
        let mut bytes = vec![0u8; len];
        rng.fill_bytes(&mut bytes);
        bytes
    };
    let key = random(&mut rng, 400);
    add(&mut files, "keys", key, false);
    for _ in 0..12 {
        let len = rng.gen_range(1..700_000);
        let bytes = random(&mut rng, len);
        add(&mut files, "data", bytes, true);
    }
    let bytes = random(&mut rng, big);
    add(&mut files, "data", bytes, true);
    // Exactly one block, and an empty file.
    let bytes = random(&mut rng, BS as usize);
    add(&mut files, "data", bytes, true);
    add(&mut files, "index", Vec::new(), false);
    let bytes = random(&mut rng, 3_000);
    add(&mut files, "index", bytes, false);
    let bytes = random(&mut rng, 900);
    add(&mut files, "snapshots", bytes, false);
    files.insert("locks/empty-lock".to_string(), Vec::new());
    for (path, bytes) in &files {
        let full = root.join(path);
        std::fs::create_dir_all(full.parent().unwrap()).unwrap();
        std::fs::write(full, bytes).unwrap();
    }
    std::fs::write(root.join("data/.tmp-incomplete-0123456789ab"), b"half a pack").unwrap();
    files
}

pub fn plan(staging: &Path, journal: &Path, public: [u8; 32]) -> DrivePlan {
    DrivePlan {
        import_job: JOB.into(),
        staging: staging.to_path_buf(),
        import_public_key: public,
        block_size: BS,
        journal: journal.to_path_buf(),
    }
}

/// Gives image files of `size` bytes in `dir`, named by index and call number;
/// returns `None` (the user stops) at call `stop_at_call`.
pub struct Images {
    pub dir: PathBuf,
    pub size: u64,
    pub calls: Vec<(u32, u64)>,
    pub stop_at_call: Option<usize>,
    pub given: Vec<PathBuf>,
}

impl Images {
    pub fn new(dir: &Path, size: u64) -> Self {
        Images { dir: dir.to_path_buf(), size, calls: Vec::new(), stop_at_call: None, given: Vec::new() }
    }
}

impl DriveSupplier for Images {
    fn next_drive(&mut self, index: u32, bytes_left: u64) -> Result<Option<DriveTarget>, DiskprepError> {
        self.calls.push((index, bytes_left));
        if self.stop_at_call == Some(self.calls.len() - 1) {
            return Ok(None);
        }
        let path = self.dir.join(format!("drive-{index}-{}.img", self.calls.len()));
        self.given.push(path.clone());
        Ok(Some(DriveTarget::Image { path, size: self.size }))
    }
}

/// Reads every drive with `key` and assembles the files from their parts, checking
/// every part lands in order.
pub fn read_back(paths: &[PathBuf], secret: &StaticSecret) -> BTreeMap<String, Vec<u8>> {
    let mut files: BTreeMap<String, Vec<u8>> = BTreeMap::new();
    for path in paths {
        let mut reader = DriveReader::open(path, &DriveKey::Import(secret.clone())).unwrap();
        let report = reader
            .verify_and_read(|part, offset, bytes| {
                let file = files.entry(part.path.clone()).or_default();
                assert_eq!(file.len() as u64, offset, "{} out of order", part.path);
                file.extend_from_slice(bytes);
                Ok::<(), ()>(())
            })
            .unwrap();
        assert!(report.is_clean(), "{report:?}");
    }
    files
}

/// Counts progress calls' bytes; panics (a simulated kill) once past `kill_after`.
pub struct Killer {
    pub kill_after: u64,
    pub last: AtomicU64,
}
impl Killer {
    pub fn check(&self, done: u64) {
        self.last.store(done, Ordering::SeqCst);
        if done > self.kill_after {
            panic!("simulated kill at {done} bytes");
        }
    }
}

/// Assembles files from parts, storing a part only when its whole body was read.
#[derive(Default)]
pub struct Store {
    stored: Mutex<Stored>,
    /// Fail the uploads of parts of one file.
    failing: Mutex<Option<Failing>>,
    /// Say which parts are stored already, as the service's listing does.
    remembering: bool,
}

/// How a [`Store`] fails the uploads of one file.
struct Failing {
    path: String,
    transient: bool,
    /// The first this many uploads of the file fail.
    times: u32,
}

#[derive(Default)]
pub struct Stored {
    pub files: BTreeMap<String, Vec<u8>>,
    /// The parts stored, in order.
    pub uploads: Vec<PartToUpload>,
    /// Every upload tried, stored or not, by path.
    pub attempts: BTreeMap<String, u32>,
}

impl Store {
    /// A store that refuses (for good) every upload of a part of `path`.
    pub fn refusing(path: &str) -> Self {
        let failing = Failing { path: path.into(), transient: false, times: u32::MAX };
        Store { failing: Mutex::new(Some(failing)), ..Store::default() }
    }

    /// A store whose first `times` uploads of `path` fail for a passing reason.
    pub fn flaky(path: &str, times: u32) -> Self {
        Store { failing: Mutex::new(Some(Failing { path: path.into(), transient: true, times })), ..Store::default() }
    }

    /// Tells the ingest which parts it holds, so they are not sent again.
    pub fn remembering(self) -> Self {
        Store { remembering: true, ..self }
    }

    /// Stores everything from now on.
    pub fn stop_failing(&self) {
        *self.failing.lock().unwrap() = None;
    }

    pub fn files(&self) -> BTreeMap<String, Vec<u8>> {
        self.stored.lock().unwrap().files.clone()
    }

    pub fn uploads(&self) -> Vec<PartToUpload> {
        self.stored.lock().unwrap().uploads.clone()
    }

    pub fn attempts(&self, path: &str) -> u32 {
        self.stored.lock().unwrap().attempts.get(path).copied().unwrap_or(0)
    }
}

impl PartUploader for Store {
    fn upload(&self, part: &PartToUpload, mut body: PartBody) -> Result<(), UploadError> {
        let mut bytes = Vec::new();
        body.read_to_end(&mut bytes).map_err(|e| UploadError::Permanent(format!("reading the body: {e}")))?;
        let mut stored = self.stored.lock().unwrap();
        let attempt = stored.attempts.entry(part.path.clone()).or_default();
        *attempt += 1;
        let failing = self.failing.lock().unwrap();
        if let Some(failing) = failing.as_ref().filter(|f| f.path == part.path && *attempt <= f.times) {
            return Err(match failing.transient {
                true => UploadError::Transient("503 service unavailable".into()),
                false => UploadError::Permanent("403 refused".into()),
            });
        }
        assert_eq!(bytes.len() as u64, part.length, "{part:?}");
        let file = stored.files.entry(part.path.clone()).or_insert_with(|| vec![0; part.file_size as usize]);
        file[part.offset_in_file as usize..(part.offset_in_file + part.length) as usize].copy_from_slice(&bytes);
        stored.uploads.push(part.clone());
        Ok(())
    }

    fn is_stored(&self, part: &PartToUpload) -> bool {
        self.remembering && self.stored.lock().unwrap().uploads.contains(part)
    }

    /// As many re-sends as the default, without its waits.
    fn retry_policy(&self) -> backon::ExponentialBuilder {
        offsite_seeding::ingest::STATION_RETRY
            .with_min_delay(std::time::Duration::from_millis(1))
            .with_max_delay(std::time::Duration::from_millis(1))
    }
}
