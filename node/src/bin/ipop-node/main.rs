//! `ipop-node`: runs an IPOP overlay node, and talks to a running one.

use std::path::PathBuf;
use std::process::ExitCode;

use run::{RunArgs, run_node};
use std::time::Duration;

use anyhow::{Context, Result};
use clap::{Args, Parser, Subcommand};
use ipop_api::Status;
use ipop_api::control::{
    DhtDone, NamespaceCreated, NamespaceList, NamespaceRecord, ProbeReply, Request, SecretsLoaded,
};
use ipop_node::config::Config;
use ipop_node::{control, identity};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

mod run;

/// An IPOP node: joins a self-configuring P2P overlay (UDP and TCP edges, NAT traversal)
/// that carries a virtual IP network.
#[derive(Debug, Parser)]
#[command(
    name = "ipop-node",
    version,
    about,
    args_conflicts_with_subcommands = true
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    run: RunArgs,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the node (the default).
    Run(Box<RunArgs>),
    /// Show a running node's status.
    Status {
        /// Print the full status as JSON.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        socket: SocketArgs,
    },
    /// List a running node's connections.
    Connections {
        #[command(flatten)]
        socket: SocketArgs,
    },
    /// Make a running node leave the overlay gracefully and exit.
    Leave {
        #[command(flatten)]
        socket: SocketArgs,
    },
    /// Use the DHT through a running node.
    #[command(subcommand)]
    Dht(DhtCommand),
    /// Create or show an IPOP namespace (a virtual IP network on the overlay).
    #[command(subcommand)]
    Namespace(NamespaceCommand),
    /// Send an overlay echo to a node: round-trip time and overlay hops each way.
    Probe {
        /// The node's P2P address (40 hex digits).
        address: String,
        /// Print JSON.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        socket: SocketArgs,
    },
    /// Print the example configuration: every field with its default.
    ConfigExample,
    /// Print a new overlay admission secret (64 hexadecimal digits): save it to a file
    /// only the node's user can read and give it to every node with --overlay-secret.
    Secret {
        #[command(subcommand)]
        action: Option<SecretCommand>,
    },
}

#[derive(Debug, Subcommand)]
enum SecretCommand {
    /// Make a running node read its overlay secret file again, a step of a rotation.
    /// The file holds one secret per line, the preferred first. To rotate without a
    /// moment in which members cannot link: put the new secret first and keep the old
    /// one on a second line on every node, reload each; then remove the old line and
    /// reload each again. Edges made under a secret no longer held close at once and
    /// link again under one that is.
    Reload {
        /// Print JSON.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        socket: SocketArgs,
    },
}

#[derive(Debug, Subcommand)]
enum NamespaceCommand {
    /// Create a namespace through a running node and print its identifier. The record
    /// lives in the DHT; the nodes of the namespace (and the creating node, while it
    /// runs) keep it alive. A keyed namespace (--key-file) seals its packets end to end,
    /// its record and its address mappings with the key: give the key file to its
    /// members (`--namespace-key`). An open one (--open) is the papers' kind: anyone
    /// who knows its identifier can use it.
    #[command(group(clap::ArgGroup::new("kind").required(true).args(["key_file", "open"])))]
    Create {
        /// The virtual IP range, e.g. 10.128.0.0/12.
        #[arg(long)]
        range: String,
        /// Key file of a keyed namespace: its key is used if the file exists, else a new
        /// key is written there (readable by its owner only).
        #[arg(long)]
        key_file: Option<PathBuf>,
        /// An open namespace (no key).
        #[arg(long)]
        open: bool,
        /// The identifier (32 hex digits) of an open namespace instead of a random one;
        /// fails if taken.
        #[arg(long, requires = "open")]
        id: Option<String>,
        /// DHCP lease time, e.g. 12h, 30m, 3600.
        #[arg(long, default_value = "12h")]
        lease: String,
        /// A name for people.
        #[arg(long, default_value = "")]
        name: String,
        /// MTU of the members' TAP devices, handed to DHCP clients (576 to 1500). Up to
        /// 1286 (1246 keyed) a packet crosses every edge of a 1500-byte underlay whole;
        /// a larger one is cut, or answered with ICMP fragmentation-needed, where its
        /// path (measured per edge) is smaller. Default 1280, keyed 1240.
        #[arg(long)]
        mtu: Option<u16>,
        /// DNS server handed to DHCP clients.
        #[arg(long)]
        dns: Option<std::net::Ipv4Addr>,
        #[command(flatten)]
        socket: SocketArgs,
    },
    /// List the namespaces the node is a member of or created (and keeps alive): one
    /// line each, identifier, open or keyed, member and/or kept, name, range.
    List {
        /// Print the list as JSON.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        socket: SocketArgs,
    },
    /// Delete a namespace: its record leaves the DHT and this node stops renewing it.
    /// No node finds the namespace afterwards; its members keep the record they read,
    /// and their addresses until their leases end.
    #[command(group(clap::ArgGroup::new("which").required(true).args(["id", "key_file"])))]
    Delete {
        /// The identifier of an open namespace.
        id: Option<String>,
        /// The key file of a keyed namespace.
        #[arg(long)]
        key_file: Option<PathBuf>,
        #[command(flatten)]
        socket: SocketArgs,
    },
    /// Print a namespace's record.
    #[command(group(clap::ArgGroup::new("which").required(true).args(["id", "key_file"])))]
    Show {
        /// The identifier of an open namespace.
        id: Option<String>,
        /// The key file of a keyed namespace.
        #[arg(long)]
        key_file: Option<PathBuf>,
        #[command(flatten)]
        socket: SocketArgs,
    },
}

#[derive(Debug, Subcommand)]
enum DhtCommand {
    /// Print the live values of a key.
    Get {
        /// The key.
        key: String,
        #[command(flatten)]
        socket: SocketArgs,
    },
    /// Create a key if it does not exist.
    Create {
        /// The key.
        key: String,
        /// The value.
        value: String,
        /// The password that delete and recreate will need.
        #[arg(long)]
        password: String,
        /// Time to live in seconds.
        #[arg(long, default_value_t = 3600)]
        ttl: u64,
        #[command(flatten)]
        socket: SocketArgs,
    },
    /// Delete a key, given the password it was created or last re-created with.
    Delete {
        /// The key.
        key: String,
        /// The key's password.
        #[arg(long)]
        password: String,
        #[command(flatten)]
        socket: SocketArgs,
    },
    /// Renew a key with a new value and TTL (creating it if it does not exist), given
    /// its password; --new-password hands it over to a new one.
    Recreate {
        /// The key.
        key: String,
        /// The new value.
        value: String,
        /// The key's password.
        #[arg(long)]
        password: String,
        /// The password from now on (default: the same).
        #[arg(long)]
        new_password: Option<String>,
        /// Time to live in seconds.
        #[arg(long, default_value_t = 3600)]
        ttl: u64,
        #[command(flatten)]
        socket: SocketArgs,
    },
}

/// Where the running node's control socket is.
#[derive(Debug, Args)]
struct SocketArgs {
    /// The control socket (default: the one in --config, or /run/ipop/ipop.sock).
    #[arg(long)]
    socket: Option<PathBuf>,
    /// The node's configuration file, to find its control socket.
    #[arg(long)]
    config: Option<PathBuf>,
}

impl SocketArgs {
    fn path(&self) -> Result<PathBuf> {
        if let Some(s) = &self.socket {
            return Ok(s.clone());
        }
        Ok(match &self.config {
            Some(c) => Config::load(c)?.control_socket,
            None => Config::default().control_socket,
        })
    }

    /// The node's answer to `request`, as it sent it.
    fn request(&self, request: &Request) -> Result<Value> {
        control::request(&self.path()?, request, Duration::from_secs(60))
    }

    /// The node's answer to `request`, read as a `T`.
    fn ask<T: DeserializeOwned>(&self, request: &Request) -> Result<T> {
        serde_json::from_value(self.request(request)?)
            .context("the node's answer is not what this client expects (another version?)")
    }
}

/// The namespace key in `key_file` as hex, for a request that names a keyed namespace.
fn key_hex(key_file: Option<&std::path::Path>) -> Result<Option<String>> {
    key_file
        .map(|f| identity::read_namespace_key(f).map(|k| k.to_hex()))
        .transpose()
}

/// `ipop-node namespace create`: the values checked here (so that a bad one is refused
/// without a node), the key file read or written, the record created through the node.
fn create_namespace(create: &NamespaceCommand) -> Result<()> {
    let NamespaceCommand::Create {
        range,
        key_file,
        id,
        lease,
        name,
        mtu,
        dns,
        socket,
        ..
    } = create
    else {
        unreachable!("called for `namespace create` only");
    };
    let lease_s = ipop_node::vnet::parse_duration(lease).map_err(anyhow::Error::msg)?;
    let default_mtu = match key_file {
        Some(_) => ipop_node::vnet::DEFAULT_KEYED_MTU,
        None => ipop_node::vnet::DEFAULT_MTU,
    };
    let mtu = mtu.unwrap_or(default_mtu);
    ipop_node::vnet::record(name, range, lease_s, mtu, *dns, key_file.is_some())
        .map_err(anyhow::Error::msg)?;
    let key = match key_file {
        Some(path) => {
            let (key, new) = identity::load_or_create_namespace_key(path)?;
            if new {
                eprintln!("wrote a new namespace key to {}", path.display());
            }
            Some(key.to_hex())
        }
        None => None,
    };
    let created: NamespaceCreated = socket.ask(&Request::NamespaceCreate {
        id: id.clone(),
        key,
        name: name.clone(),
        range: range.clone(),
        lease_s,
        mtu,
        dns: *dns,
    })?;
    println!("{}", created.namespace);
    Ok(())
}

fn print_connections(status: &Status) {
    println!(
        "{:<10} {:<14} {:<14} {:<30} {:>8} {:>10} {:>10}",
        "peer", "roles", "peer roles", "edge", "rtt ms", "tx bytes", "rx bytes"
    );
    for c in &status.connections {
        println!(
            "{:<10} {:<14} {:<14} {:<30} {:>8} {:>10} {:>10}",
            &c.peer[..c.peer.len().min(8)],
            c.roles,
            c.peer_roles,
            c.edge,
            c.rtt_ms.map_or("-".to_owned(), |r| format!("{r:.1}")),
            c.tx_bytes,
            c.rx_bytes,
        );
    }
}

/// `v` as compact JSON (objects' keys sorted, as the node sends them).
fn json(v: &impl Serialize) -> Value {
    serde_json::to_value(v).unwrap_or_default()
}

fn print_status(s: &Status) {
    println!("address             {}", s.address);
    println!("overlay             {}", s.overlay);
    println!("correctly connected {}", s.correctly_connected);
    println!(
        "ring                left {}  right {}",
        json(&s.ring.left),
        json(&s.ring.right)
    );
    println!("size estimate       {:.0}", s.ring.size_estimate);
    println!("local transports    {}", json(&s.transports.local));
    println!("learned addresses   {}", json(&s.transports.learned));
    println!("nat                 {}", json(&s.nat));
    println!("dht records         {}", s.dht.records);
    println!();
    print_connections(s);
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if !matches!(cli.command, None | Some(Command::Run(_))) {
        quiet_on_closed_pipe();
    }
    let result = match &cli.command {
        None => run_node(&cli.run),
        Some(Command::Run(args)) => run_node(args),
        Some(Command::ConfigExample) => {
            print!("{}", ipop_node::config::EXAMPLE);
            Ok(())
        }
        Some(Command::Secret { action: None }) => identity::new_secret().map(|s| println!("{s}")),
        Some(Command::Secret {
            action: Some(command),
        }) => secret(command),
        Some(Command::Status { json, socket }) => status(*json, socket),
        Some(Command::Connections { socket }) => {
            socket.ask(&Request::Status).map(|s| print_connections(&s))
        }
        Some(Command::Leave { socket }) => socket.request(&Request::Leave).map(|_| ()),
        Some(Command::Namespace(command)) => namespace(command),
        Some(Command::Probe {
            address,
            json,
            socket,
        }) => probe(address, *json, socket),
        Some(Command::Dht(command)) => dht(command),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("ipop-node: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// A client that prints ends quietly when the reader goes away (`| head`), like other
/// command-line tools. The node itself keeps ignoring SIGPIPE.
fn quiet_on_closed_pipe() {
    // SAFETY: setting a signal disposition to its default has no preconditions.
    let _ = unsafe {
        nix::sys::signal::signal(
            nix::sys::signal::Signal::SIGPIPE,
            nix::sys::signal::SigHandler::SigDfl,
        )
    };
}

/// `ipop-node secret reload`.
fn secret(command: &SecretCommand) -> Result<()> {
    let SecretCommand::Reload { json, socket } = command;
    if *json {
        return socket
            .request(&Request::SecretReload)
            .map(|s| println!("{s}"));
    }
    socket.ask(&Request::SecretReload).map(|l: SecretsLoaded| {
        println!(
            "secrets held: {} (the first preferred); edges closed: {}",
            l.secrets.join(", "),
            l.closed
        );
    })
}

/// `ipop-node status`: the full status as JSON, or its summary and connections.
fn status(json: bool, socket: &SocketArgs) -> Result<()> {
    if json {
        socket.request(&Request::Status).map(|s| println!("{s}"))
    } else {
        socket.ask(&Request::Status).map(|s| print_status(&s))
    }
}

/// `ipop-node namespace ...`.
fn namespace(command: &NamespaceCommand) -> Result<()> {
    match command {
        NamespaceCommand::Create { .. } => create_namespace(command),
        NamespaceCommand::Show {
            id,
            key_file,
            socket,
        } => key_hex(key_file.as_deref())
            .and_then(|key| {
                socket.ask(&Request::NamespaceShow {
                    id: id.clone(),
                    key,
                })
            })
            .map(|v: NamespaceRecord| match v.record {
                Some(record) => print!("{record}"),
                None => println!("no such namespace (or it expired)"),
            }),
        NamespaceCommand::Delete {
            id,
            key_file,
            socket,
        } => key_hex(key_file.as_deref())
            .and_then(|key| {
                socket.ask(&Request::NamespaceDelete {
                    id: id.clone(),
                    key,
                })
            })
            .map(|done: DhtDone| println!("{}", done.ok)),
        NamespaceCommand::List { json, socket } => socket
            .ask(&Request::NamespaceList)
            .map(|list: NamespaceList| print_namespaces(&list, *json)),
    }
}

/// `ipop-node namespace list`: the list as JSON, or one line per namespace.
fn print_namespaces(list: &NamespaceList, json: bool) {
    if json {
        println!("{}", self::json(list));
        return;
    }
    for n in &list.namespaces {
        let roles = [(n.member, "member"), (n.kept, "kept")]
            .iter()
            .filter(|(on, _)| *on)
            .map(|(_, r)| *r)
            .collect::<Vec<_>>()
            .join(",");
        println!(
            "{} {} {roles} {:?} {}",
            n.id,
            if n.keyed { "keyed" } else { "open" },
            n.name.as_deref().unwrap_or(""),
            n.range.as_deref().unwrap_or("(record not read yet)")
        );
    }
}

/// `ipop-node probe`: the echo's round-trip time and hops, or the answer as JSON.
fn probe(address: &str, json: bool, socket: &SocketArgs) -> Result<()> {
    let probe = Request::Probe {
        dst: address.to_owned(),
    };
    if json {
        return socket.request(&probe).map(|v| println!("{v}"));
    }
    socket.ask(&probe).map(|v: ProbeReply| {
        println!(
            "rtt {:.2} ms, {} overlay hops there, {} back",
            v.rtt_ms, v.hops, v.return_hops
        );
    })
}

/// `ipop-node dht ...`: the request sent and the node's answer printed as JSON.
fn dht(command: &DhtCommand) -> Result<()> {
    let (request, socket) = match command {
        DhtCommand::Get { key, socket } => (Request::DhtGet { key: key.clone() }, socket),
        DhtCommand::Create {
            key,
            value,
            password,
            ttl,
            socket,
        } => (
            Request::DhtCreate {
                key: key.clone(),
                value: value.clone(),
                password: password.clone(),
                ttl_s: *ttl,
            },
            socket,
        ),
        DhtCommand::Delete {
            key,
            password,
            socket,
        } => (
            Request::DhtDelete {
                key: key.clone(),
                password: password.clone(),
            },
            socket,
        ),
        DhtCommand::Recreate {
            key,
            value,
            password,
            new_password,
            ttl,
            socket,
        } => (
            Request::DhtRecreate {
                key: key.clone(),
                value: value.clone(),
                password: password.clone(),
                new_password: new_password.clone().unwrap_or_else(|| password.clone()),
                ttl_s: *ttl,
            },
            socket,
        ),
    };
    socket.request(&request).map(|v| println!("{v}"))
}
