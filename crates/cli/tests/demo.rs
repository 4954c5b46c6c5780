//! The README's first command: the whole offline-seeding walkthrough on the
//! embedded default must run to its end, every step succeeding.

mod common;

use common::*;

#[test]
fn the_walkthrough_runs_every_step() {
    let scratch = temp();
    let workdir = scratch.path().join("demo");
    let run = offsite(["demo", "--workdir", utf8(&workdir)]).run().ok();
    for needle in [
        "$ offsite certgen",
        "$ offsite diskprep",
        "$ offsite datacenter",
        "Waiting for the drives of import job demo-seed-1: run `offsite diskprep --agent-home",
        "adopted",
        "demo finished: every step succeeded",
    ] {
        assert!(run.stdout.contains(needle), "the demo's output lacks '{needle}':\n{run}");
    }
    // Two drives were written, so the spanning path ran.
    assert!(workdir.join("drive-1.img").exists() && workdir.join("drive-2.img").exists());
}
