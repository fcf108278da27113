//! The `ipop-node` binary the tests start. Included (`#[path]`) as `mod node` by the
//! test binaries that run nodes, beside `mod root`.

use std::path::PathBuf;

/// The `ipop-node` binary built with the workspace (or `$IPOP_NODE`); fails the test
/// unless it runs as root and the binary exists.
pub(crate) fn node_binary() -> PathBuf {
    crate::root::require_root();
    let bin = wow_harness::nodes::node_binary().expect("ipop-node binary");
    assert!(
        bin.is_file(),
        "build ipop-node first (cargo build --release): {}",
        bin.display()
    );
    bin
}
