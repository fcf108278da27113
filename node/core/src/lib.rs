//! `ipop-core`: the IPOP/Brunet protocol as sans-IO state machines, and a deterministic
//! simulator that runs the same code for thousands of nodes.
//!
//! This crate contains no networking code and does not get any relevant timestamps
//! from the operating system: every input arrives through a `handle_*` call that takes
//! `now`, and every output (datagrams to send, timers, events) is taken out through
//! `poll_*` calls or returned from the `handle_*` call. The driver in `ipop-node` moves
//! bytes between these calls and real sockets; the simulator in [`sim`] moves them
//! between thousands of nodes in virtual time.

pub mod address;
pub mod dht;
pub mod ipop;
pub mod nat_profile;
pub mod overlay;
pub mod secure;
pub mod sim;
pub mod stack;
pub mod text;
pub mod transport;
pub mod wire;

pub use address::Address;
pub use nat_profile::NatProfile;
pub use stack::Stack;
pub use transport::{Proto, TransportAddr};
