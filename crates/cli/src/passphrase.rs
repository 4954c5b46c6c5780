//! Where the repository passphrase comes from: `OFFSITE_PASSWORD`, a file, or a
//! prompt when a person is at a terminal. Scripts never hang on a prompt.

use std::io::IsTerminal;
use std::path::Path;

use anyhow::{bail, Context, Result};

pub fn read(file: Option<&Path>, confirm: bool) -> Result<Vec<u8>> {
    if let Some(path) = file {
        let text =
            std::fs::read(path).with_context(|| format!("cannot read the passphrase file {}", path.display()))?;
        // A trailing newline is the editor's, not part of the passphrase.
        let trimmed = text.strip_suffix(b"\n").unwrap_or(&text);
        let trimmed = trimmed.strip_suffix(b"\r").unwrap_or(trimmed);
        if trimmed.is_empty() {
            bail!("the passphrase file {} is empty", path.display());
        }
        return Ok(trimmed.to_vec());
    }
    if let Ok(value) = std::env::var("OFFSITE_PASSWORD") {
        if value.is_empty() {
            bail!("OFFSITE_PASSWORD is set but empty");
        }
        return Ok(value.into_bytes());
    }
    if !std::io::stdin().is_terminal() {
        bail!("no passphrase given: set OFFSITE_PASSWORD, or pass --password-file FILE");
    }
    let first = rpassword::prompt_password("Repository passphrase: ").context("cannot read the passphrase")?;
    if first.is_empty() {
        bail!("the passphrase must not be empty");
    }
    if confirm {
        let again = rpassword::prompt_password("Repeat the passphrase: ").context("cannot read the passphrase")?;
        if again != first {
            bail!("the two passphrases differ; nothing was changed");
        }
    }
    Ok(first.into_bytes())
}
