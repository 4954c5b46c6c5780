//! Byte counts as people read them (`7.3 MiB`), and counts of things (`1 drive`,
//! `2 drives`), the same in the CLI's output and the portal's pages.

use std::fmt;

/// A byte count shown in binary units with one decimal (`512 B`, `7.3 MiB`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ByteSize(pub u64);

impl fmt::Display for ByteSize {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const UNITS: [&str; 6] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
        let mut value = self.0 as f64;
        let mut unit = 0;
        while value >= 1024.0 && unit + 1 < UNITS.len() {
            value /= 1024.0;
            unit += 1;
        }
        if unit == 0 {
            write!(f, "{} B", self.0)
        } else {
            write!(f, "{value:.1} {}", UNITS[unit])
        }
    }
}

/// A count and its noun, agreeing: `1 drive`, `3 drives`, `0 files`, `1 entry`,
/// `2 entries`. `noun` is the singular; the plural adds `s` (`es` after s, x, ch
/// or sh; `ies` for a consonant and `y`), which covers every noun offsite counts.
pub fn plural(count: impl TryInto<u64>, noun: &str) -> String {
    let count: u64 = count.try_into().unwrap_or(u64::MAX);
    if count == 1 {
        return format!("1 {noun}");
    }
    let consonant_y = noun.strip_suffix('y').filter(|stem| !stem.ends_with(['a', 'e', 'i', 'o', 'u']));
    match consonant_y {
        Some(stem) => format!("{count} {stem}ies"),
        None if noun.ends_with(['s', 'x']) || noun.ends_with("ch") || noun.ends_with("sh") => {
            format!("{count} {noun}es")
        }
        None => format!("{count} {noun}s"),
    }
}

#[cfg(test)]
mod tests {
    use super::{plural, ByteSize};

    #[test]
    fn counts_agree_with_their_noun() {
        assert_eq!(plural(1u32, "drive"), "1 drive");
        assert_eq!(plural(0u32, "drive"), "0 drives");
        assert_eq!(plural(2u64, "bad block"), "2 bad blocks");
        assert_eq!(plural(1u64, "recovery point"), "1 recovery point");
        assert_eq!(plural(3u64, "entry"), "3 entries");
        assert_eq!(plural(3u64, "day"), "3 days");
        assert_eq!(plural(2u64, "pass"), "2 passes");
        assert_eq!(plural(2u64, "match"), "2 matches");
        assert_eq!(plural(1usize, "file"), "1 file");
    }

    #[test]
    fn sizes_read_in_binary_units() {
        assert_eq!(ByteSize(0).to_string(), "0 B");
        assert_eq!(ByteSize(1023).to_string(), "1023 B");
        assert_eq!(ByteSize(1024).to_string(), "1.0 KiB");
        assert_eq!(ByteSize(7 << 20 | 300 << 10).to_string(), "7.3 MiB");
        assert_eq!(ByteSize(u64::MAX).to_string(), "16384.0 PiB");
    }
}
