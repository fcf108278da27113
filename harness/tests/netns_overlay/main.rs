//! Integration tests of real `ipop-node` processes in namespace testbeds (they need
//! root). Every test name starts with `netns_`; each testbed has its own run prefix and
//! is removed when its guard drops.

#[path = "../support/emulator.rs"]
mod emulator;
mod matrix;
#[path = "../support/node.rs"]
mod node;
mod overlay30;
#[path = "../support/root.rs"]
mod root;
