//! Integration tests of SSH hosts (they need root): real `sshd` daemons, each in a
//! network namespace of a testbed, stand in for remote machines. Every test name starts
//! with `netns_ssh_`; each builds its own testbed, user and keys, removed when its `Lab`
//! drops.

#[path = "../support/emulator.rs"]
mod emulator;
mod fleet;
mod host;
#[path = "../support/host_contract.rs"]
mod host_contract;
mod lab;
#[path = "../support/root.rs"]
mod root;
mod run;
