//! The real tools experiments run on hosts, and parsers of their output. Parsers are
//! pure functions, tested on captured output.

pub mod iperf;
pub mod ping;
