//! Questions to a person at a terminal. Every question has a flag too: in a
//! script (stdin not a terminal) a missing answer is an error naming the flag,
//! never a hang.

use std::io::{BufRead, IsTerminal, Write};

use anyhow::{bail, Context, Result};

/// Whether a person can answer questions.
pub fn interactive() -> bool {
    std::io::stdin().is_terminal()
}

/// Asks for one line; `default` is taken on an empty answer.
pub fn ask(question: &str, default: Option<&str>, flag: &str) -> Result<String> {
    if !interactive() {
        if let Some(default) = default {
            return Ok(default.to_string());
        }
        bail!("{question}: give it with {flag} (no terminal to ask on)");
    }
    let shown = default.map(|d| format!(" [{d}]")).unwrap_or_default();
    eprint!("{question}{shown}: ");
    std::io::stderr().flush().ok();
    let mut line = String::new();
    std::io::stdin().lock().read_line(&mut line).context("cannot read the answer")?;
    let answer = line.trim();
    if answer.is_empty() {
        return default.map(str::to_string).with_context(|| format!("{question}: an answer is needed"));
    }
    Ok(answer.to_string())
}

/// Asks for an explicit `Yes` (or, for `yes_no`, y/n). Without a terminal the
/// answer is `assume` (the `--yes` flag).
pub fn confirm(question: &str, assume: bool) -> Result<bool> {
    if assume {
        return Ok(true);
    }
    if !interactive() {
        return Ok(false);
    }
    eprint!("{question} Type Yes to go on: ");
    std::io::stderr().flush().ok();
    let mut line = String::new();
    std::io::stdin().lock().read_line(&mut line).context("cannot read the answer")?;
    Ok(line.trim() == "Yes")
}
