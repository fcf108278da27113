//! The precondition of every `netns_` test: it runs as root. Included (`#[path]`) by
//! every namespace test binary as `mod root`.

/// Fails the test unless it runs as root: the tests make network namespaces, iptables
/// rules, TAP devices, users and `sshd` daemons.
pub(crate) fn require_root() {
    assert!(
        nix::unistd::Uid::effective().is_root(),
        "netns_ tests need root (network namespaces, iptables, TAP devices, sshd)"
    );
}
