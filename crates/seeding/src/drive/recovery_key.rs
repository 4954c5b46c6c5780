//! [`RecoveryKey`]: 32 random bytes that unlock one drive without the service's
//! import key. diskprep shows it once; the customer keeps it (printed or stored) for
//! the case the import slot cannot be used.
//!
//! Written as 8 groups of 8 uppercase hexadecimal digits separated by dashes, and
//! read back with or without dashes or spaces, in either case. It carries the full
//! 256 bits, so it is used directly (no slow password hashing is needed).

use std::fmt;
use std::str::FromStr;

use rand::RngCore;

use super::DriveError;

#[derive(Clone, PartialEq, Eq)]
pub struct RecoveryKey([u8; 32]);

impl RecoveryKey {
    /// A fresh random key from the operating system's generator.
    pub fn generate() -> Self {
        let mut bytes = [0u8; 32];
        rand::rngs::OsRng.fill_bytes(&mut bytes);
        RecoveryKey(bytes)
    }

    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        RecoveryKey(bytes)
    }

    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

impl fmt::Display for RecoveryKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, group) in self.0.chunks(4).enumerate() {
            if i > 0 {
                f.write_str("-")?;
            }
            f.write_str(&hex::encode_upper(group))?;
        }
        Ok(())
    }
}

/// Never prints the key, so it cannot leak through a log of a debug dump.
impl fmt::Debug for RecoveryKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("RecoveryKey(<redacted>)")
    }
}

impl FromStr for RecoveryKey {
    type Err = DriveError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let digits: String = s.chars().filter(|c| !(*c == '-' || c.is_whitespace())).collect();
        if let Some(bad) = digits.chars().find(|c| !c.is_ascii_hexdigit()) {
            return Err(DriveError::InvalidRecoveryKey(format!("{bad:?} is not a hexadecimal digit")));
        }
        if digits.len() != 64 {
            return Err(DriveError::InvalidRecoveryKey(format!("it has {} digits instead of 64", digits.len())));
        }
        let mut bytes = [0u8; 32];
        hex::decode_to_slice(&digits, &mut bytes).map_err(|e| DriveError::InvalidRecoveryKey(e.to_string()))?;
        Ok(RecoveryKey(bytes))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shows_eight_groups_of_eight_and_reads_them_back() {
        let key = RecoveryKey::generate();
        let shown = key.to_string();
        let groups: Vec<&str> = shown.split('-').collect();
        assert_eq!(groups.len(), 8);
        assert!(groups.iter().all(|g| g.len() == 8 && g.chars().all(|c| c.is_ascii_hexdigit())));
        assert_eq!(shown.parse::<RecoveryKey>().unwrap(), key);
        assert_eq!(shown.replace('-', "").parse::<RecoveryKey>().unwrap(), key);
        assert_eq!(shown.replace('-', " ").to_lowercase().parse::<RecoveryKey>().unwrap(), key);
        assert_eq!(format!("  {}\n", shown.replace('-', " - ")).parse::<RecoveryKey>().unwrap(), key);
    }

    #[test]
    fn refuses_wrong_lengths_and_letters() {
        assert!(matches!("0123".parse::<RecoveryKey>(), Err(DriveError::InvalidRecoveryKey(_))));
        let long = "0".repeat(66);
        assert!(matches!(long.parse::<RecoveryKey>(), Err(DriveError::InvalidRecoveryKey(_))));
        let bad = format!("{}G", "0".repeat(63));
        assert!(matches!(bad.parse::<RecoveryKey>(), Err(DriveError::InvalidRecoveryKey(_))));
        assert!(matches!("é".repeat(64).parse::<RecoveryKey>(), Err(DriveError::InvalidRecoveryKey(_))));
    }

    #[test]
    fn debug_does_not_show_the_key() {
        let key = RecoveryKey::from_bytes([0xAB; 32]);
        assert!(!format!("{key:?}").contains("AB"));
    }
}
