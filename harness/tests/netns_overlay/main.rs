//! Integration tests of real `ipop-node` processes in namespace testbeds (they need
//! root). Every test name starts with `netns_`; each testbed has its own run prefix and
//! is removed when its guard drops.

mod matrix;
mod overlay30;

use std::path::PathBuf;

/// The `ipop-node` binary built with the workspace (`cargo build --release`).
fn node_binary() -> PathBuf {
    assert!(
        nix::unistd::Uid::effective().is_root(),
        "netns_ tests need root (namespaces, iptables)"
    );
    let bin = wow_harness::nodes::node_binary().expect("ipop-node binary");
    assert!(
        bin.is_file(),
        "build ipop-node first (cargo build --release): {}",
        bin.display()
    );
    bin
}
