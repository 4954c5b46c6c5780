//! Where the service runs Argon2: a fixed number of slots, one per core, each with
//! its own reusable 19 MiB of Argon2 memory.
//!
//! Every credential check costs an Argon2 run (its result is then cached per
//! token). Running more at once than there are cores finishes none sooner, and a
//! flood of requests carrying a real credential id with a wrong secret would
//! otherwise take memory in proportion to the requests in flight: 64 at once grew
//! the service by 1.2 GiB. Bounding the runs was not enough on its own: glibc keeps
//! freed 19 MiB blocks in its heaps, and the same flood still grew the service by
//! 420 MiB; so the memory is allocated once per slot and reused.
//!
//! Runs for one source take turns: a source has at most one run in a slot or
//! waiting for one, the rest of its requests wait for their turn behind it. So a
//! flood from one source (unknown portal addresses, a live credential id with
//! wrong secrets) holds one slot, and anyone else's check waits at most for the
//! runs already started, not for the flood. (The semaphore is first come, first
//! served; without turns the flood's hundred waiters stood in front.)

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

use argon2::Block;
use tokio::sync::{OwnedMutexGuard, Semaphore};

use crate::source::Source;

/// Blocks of Argon2 memory a slot holds: enough for the service's parameters
/// (`secrets::M_COST_KIB`, one block per KiB).
const SLOT_BLOCKS: usize = crate::secrets::M_COST_KIB as usize;

struct Slots {
    permits: Semaphore,
    /// Memory of the slots not running now (at most one per permit).
    idle_memory: Mutex<Vec<Vec<Block>>>,
    /// One turn per source with a run in a slot or waiting; removed when the
    /// source has none.
    turns: Mutex<HashMap<Source, Arc<tokio::sync::Mutex<()>>>>,
}

fn slots() -> &'static Slots {
    static SLOTS: OnceLock<Slots> = OnceLock::new();
    SLOTS.get_or_init(|| {
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        Slots { permits: Semaphore::new(cores), idle_memory: Mutex::new(Vec::new()), turns: Mutex::default() }
    })
}

/// A source's turn: while it is held, the source's other runs wait.
struct Turn {
    source: Source,
    turn: Arc<tokio::sync::Mutex<()>>,
    held: Option<OwnedMutexGuard<()>>,
}

impl Drop for Turn {
    fn drop(&mut self) {
        self.held.take();
        let mut turns = slots().turns.lock().unwrap_or_else(|e| e.into_inner());
        // Counted under the map's lock, where every waiter took its clone: only the
        // map's and this one left means no one else waits.
        if Arc::strong_count(&self.turn) == 2 {
            turns.remove(&self.source);
        }
    }
}

async fn turn_of(source: Source) -> Turn {
    let turn = {
        let mut turns = slots().turns.lock().unwrap_or_else(|e| e.into_inner());
        turns.entry(source).or_default().clone()
    };
    let held = Some(turn.clone().lock_owned().await);
    Turn { source, turn, held }
}

/// [`run`] in `source`'s turn (see the module's comment); `None` (a caller with
/// no address, e.g. start-up) runs without one.
pub async fn run_for<T: Send + 'static>(
    source: Option<Source>,
    work: impl FnOnce(&mut [Block]) -> T + Send + 'static,
) -> Result<T, String> {
    let _turn = match source {
        Some(source) => Some(turn_of(source).await),
        None => None,
    };
    run(work).await
}

/// Runs `work` with a slot's memory on the blocking pool, once a slot is free.
pub async fn run<T: Send + 'static>(work: impl FnOnce(&mut [Block]) -> T + Send + 'static) -> Result<T, String> {
    let slots = slots();
    let _permit = slots.permits.acquire().await.map_err(|e| e.to_string())?;
    let memory = slots.idle_memory.lock().unwrap_or_else(|e| e.into_inner()).pop();
    let mut memory = memory.unwrap_or_else(fresh_memory);
    let (result, memory) = tokio::task::spawn_blocking(move || {
        let result = work(&mut memory);
        (result, memory)
    })
    .await
    .map_err(|e| e.to_string())?;
    slots.idle_memory.lock().unwrap_or_else(|e| e.into_inner()).push(memory);
    Ok(result)
}

/// Fresh memory for one Argon2 run outside the slots (start-up, tests).
pub fn fresh_memory() -> Vec<Block> {
    vec![Block::default(); SLOT_BLOCKS]
}
