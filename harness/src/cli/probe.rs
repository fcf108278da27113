//! `wow-bench probe server|client`: the STUN-like NAT probe of `wow_netns::probe`.

use std::net::{Ipv4Addr, SocketAddrV4};
use std::process::ExitCode;
use std::time::Duration;

use wow_netns::probe::{ClientOptions, classify, serve};

#[derive(Debug, clap::Subcommand)]
pub(crate) enum Command {
    /// Answer probes on two addresses and two ports (run on a public host).
    Server {
        /// The two addresses to answer on.
        #[arg(long = "addr", num_args = 2, required = true)]
        addresses: Vec<Ipv4Addr>,
        /// The two ports to answer on.
        #[arg(long = "port", num_args = 2, default_values_t = [3478u16, 3479])]
        ports: Vec<u16>,
    },
    /// Classify the NAT between here and a probe server; prints one JSON object.
    Client {
        /// The server's primary address and port.
        #[arg(long)]
        server: SocketAddrV4,
        /// The server's other address and other port.
        #[arg(long)]
        alternate: SocketAddrV4,
        /// Milliseconds to wait for each answer.
        #[arg(long, default_value_t = 300)]
        timeout_ms: u64,
        /// Tries per question.
        #[arg(long, default_value_t = 2)]
        tries: u32,
        /// Also test hairpin (a packet to one's own mapping).
        #[arg(long)]
        hairpin: bool,
        /// Also test whether a binding survives this many idle milliseconds.
        #[arg(long)]
        idle_ms: Option<u64>,
    },
}

pub(crate) fn run(command: Command) -> anyhow::Result<ExitCode> {
    match command {
        Command::Server { addresses, ports } => {
            serve(&addresses, &ports)?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Client {
            server,
            alternate,
            timeout_ms,
            tries,
            hairpin,
            idle_ms,
        } => {
            let report = classify(&ClientOptions {
                primary: server,
                alternate,
                timeout: Duration::from_millis(timeout_ms),
                tries: tries.max(1),
                hairpin,
                idle: idle_ms.map(Duration::from_millis),
            })?;
            println!("{}", serde_json::to_string(&report)?);
            Ok(ExitCode::SUCCESS)
        }
    }
}
