//! `offsite agent run`: the daemon. It sleeps until the next scheduled time, runs
//! the backup (retention included), and on failure retries with doubling delays,
//! never past the next scheduled run. The configuration is re-read before each
//! wait, so schedule changes take effect without a restart.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use backon::BackoffBuilder;
use chrono::Local;

use offsite_engine::progress::Progress;

use crate::backup::{backup_now, BackupRun};
use crate::config::AgentConfig;
use crate::error::{AgentError, AgentResult};
use crate::home::AgentHome;

/// What the daemon tells whoever runs it (the CLI prints or logs these).
#[derive(Debug)]
pub enum DaemonEvent {
    NoSchedule,
    Waiting { next: chrono::DateTime<Local> },
    Started { attempt: u32 },
    Finished(Box<BackupRun>),
    Failed { attempt: u32, error: String, retry_in: Option<Duration> },
}

/// Sleeps up to `duration`, waking early when `stop` is set; false when stopped.
fn sleep_unless_stopped(duration: Duration, stop: &AtomicBool) -> bool {
    let step = Duration::from_millis(250);
    let mut left = duration;
    while !left.is_zero() {
        if stop.load(Ordering::Relaxed) {
            return false;
        }
        let nap = left.min(step);
        std::thread::sleep(nap);
        left -= nap;
    }
    !stop.load(Ordering::Relaxed)
}

/// Runs until `stop` is set.
pub fn run(home: &AgentHome, stop: &AtomicBool, mut on_event: impl FnMut(DaemonEvent)) -> AgentResult<()> {
    crate::registration::Registration::load(home)?;
    while !stop.load(Ordering::Relaxed) {
        let config = AgentConfig::load(&home.config_file)?;
        let Some(schedule) = config.schedule.clone() else {
            on_event(DaemonEvent::NoSchedule);
            if !sleep_unless_stopped(Duration::from_secs(60), stop) {
                break;
            }
            continue;
        };
        let next = schedule.next_after(&Local::now());
        on_event(DaemonEvent::Waiting { next });
        // Wake at least every minute to notice a changed schedule.
        let until_next = (next - Local::now()).to_std().unwrap_or(Duration::ZERO);
        if until_next > Duration::from_secs(60) {
            if !sleep_unless_stopped(Duration::from_secs(60), stop) {
                break;
            }
            continue;
        }
        if !sleep_unless_stopped(until_next, stop) {
            break;
        }
        run_with_retries(home, &config, &schedule, stop, &mut on_event);
    }
    Ok(())
}

fn run_with_retries(
    home: &AgentHome,
    config: &AgentConfig,
    schedule: &crate::schedule::Schedule,
    stop: &AtomicBool,
    on_event: &mut impl FnMut(DaemonEvent),
) {
    let next_run = schedule.next_after(&Local::now());
    let mut waits = config.retry.daemon_backoff().build();
    for attempt in 1.. {
        on_event(DaemonEvent::Started { attempt });
        match backup_now(home, &Progress::default()) {
            Ok(run) => {
                on_event(DaemonEvent::Finished(Box::new(run)));
                return;
            }
            Err(error) => {
                let permanent = matches!(error, AgentError::NothingProtected { .. } | AgentError::NotRegistered { .. });
                let time_left = (next_run - Local::now()).to_std().unwrap_or(Duration::ZERO);
                // The next scheduled run is nearer than the wait: it is the retry.
                let retry_in = if permanent { None } else { waits.next().filter(|wait| *wait < time_left) };
                on_event(DaemonEvent::Failed { attempt, error: error.to_string(), retry_in });
                let Some(wait) = retry_in else { return };
                if !sleep_unless_stopped(wait, stop) {
                    return;
                }
            }
        }
    }
}
