//! Small tmpfs mounts for the full-disk tests (the tests run as root).

use std::path::{Path, PathBuf};
use std::process::Command;

/// A small tmpfs, unmounted (lazily, if something still holds it) when dropped.
pub struct Tmpfs {
    pub dir: PathBuf,
}

impl Tmpfs {
    /// Mounts a tmpfs of `size` (`16m`) on `dir`, creating the folder.
    pub fn mount(dir: &Path, size: &str) -> Tmpfs {
        std::fs::create_dir_all(dir).unwrap();
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir)
            .output()
            .unwrap_or_else(|e| panic!("this test mounts a tmpfs (as root): cannot run mount: {e}"));
        assert!(
            out.status.success(),
            "this test mounts a tmpfs (as root): mount failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
        Tmpfs { dir: dir.to_path_buf() }
    }

    /// Writes a file that takes all the space left but `leave` bytes; returns its path.
    pub fn fill(&self, leave: u64) -> PathBuf {
        let filler = self.dir.join("filler");
        let stat = rustix::fs::statvfs(&self.dir).expect("statvfs of the tmpfs");
        let free = stat.f_bavail * stat.f_frsize;
        let size = free.saturating_sub(leave);
        let file = std::fs::File::create(&filler).unwrap();
        // A tmpfs allocates on write: write the bytes (zeros), do not just set a length.
        let mut writer = std::io::BufWriter::new(file);
        let block = vec![0u8; 1 << 20];
        let mut left = size;
        while left > 0 {
            let n = left.min(block.len() as u64) as usize;
            if std::io::Write::write_all(&mut writer, &block[..n]).is_err() {
                break;
            }
            left -= n as u64;
        }
        let _ = std::io::Write::flush(&mut writer);
        filler
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let ok = Command::new("umount").arg(&self.dir).status().is_ok_and(|s| s.success());
        if !ok {
            let _ = Command::new("umount").arg("-l").arg(&self.dir).status();
        }
    }
}
