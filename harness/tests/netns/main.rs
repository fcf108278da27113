//! Integration tests that need root: they build namespace testbeds. Every test name
//! starts with `netns_`; each test allocates its own run prefix, so they run in
//! parallel, and every testbed is removed when its guard drops.

mod cleanup;
#[path = "../support/emulator.rs"]
mod emulator;
mod host;
#[path = "../support/host_contract.rs"]
mod host_contract;
mod nat;
#[path = "../support/root.rs"]
mod root;
mod runs;
mod wan;

use std::time::Duration;

use wow_harness::{Cmd, Host, NetnsHost};
use wow_netns::{Options, RunPrefix, Testbed, Topology};

/// The `wow-bench` binary built with these tests.
const WOW_BENCH: &str = env!("CARGO_BIN_EXE_wow-bench");

/// Builds `topology` under a fresh prefix, with the emulator as a child process.
fn up(topology: &Topology) -> Testbed {
    root::require_root();
    let options = Options {
        prefix: RunPrefix::unique(),
        emulator: Some(emulator::emulator()),
    };
    Testbed::up(topology, &options).unwrap_or_else(|e| panic!("bringing up {}: {e}", topology.name))
}

fn parse(text: &str) -> Topology {
    Topology::parse(text, "test").unwrap_or_else(|e| panic!("{e}"))
}

fn host(bed: &Testbed, name: &str) -> NetnsHost {
    NetnsHost::new(bed, name).unwrap_or_else(|e| panic!("{e}"))
}

/// Runs `cmd` on `host` and returns its stdout, failing the test on a non-zero exit.
fn check(host: &NetnsHost, cmd: Cmd, timeout: Duration) -> String {
    match host.check(&cmd, timeout) {
        Ok(out) => out.stdout_text(),
        Err(e) => panic!("{e}"),
    }
}
