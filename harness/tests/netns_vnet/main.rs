//! Integration tests of the virtual network with real `ipop-node` processes, real DHCP
//! clients, `ping` and `iperf3` (they need root). Every test name starts with `netns_`;
//! each testbed has its own run prefix and is removed when its guard drops.

mod dhcp;
#[path = "../support/emulator.rs"]
mod emulator;
mod keyed;
mod migration;
mod mtu;
mod namespaces;
#[path = "../support/node.rs"]
mod node;
#[path = "../support/root.rs"]
mod root;
mod rotation;
mod secure;

use std::path::PathBuf;
use std::time::Duration;

use wow_harness::NetnsHost;
use wow_harness::nodes::{NodeOptions, RunningNode, wait_for};
use wow_harness::vnet::{Kind, create_namespace};
use wow_netns::{Options, RunPrefix, Testbed, Topology};

/// A testbed with a public seed node and one namespace created through it.
struct World {
    bin: PathBuf,
    public: NetnsHost,
    seed: RunningNode,
    nodes: Vec<RunningNode>,
    bed: Testbed,
}

impl World {
    fn new(topology: &str, range: &str) -> (World, String) {
        let bin = node::node_binary();
        let topology = Topology::parse(topology, "test").unwrap_or_else(|e| panic!("{e}"));
        let options = Options {
            prefix: RunPrefix::unique(),
            emulator: Some(emulator::emulator()),
        };
        let bed = Testbed::up(&topology, &options).expect("testbed");
        let public = NetnsHost::new(&bed, "public-0").unwrap();
        let seed = RunningNode::start(&public, &bin, &NodeOptions::default()).unwrap();
        wait_for(Duration::from_secs(10), Duration::from_millis(100), || {
            seed.status(&public).ok()
        })
        .expect("seed node up");
        let ns = create_namespace(&public, &bin, range, "1h", Kind::Open(None)).expect("namespace");
        (
            World {
                bin,
                public,
                seed,
                nodes: Vec::new(),
                bed,
            },
            ns,
        )
    }

    fn host(&self, name: &str) -> NetnsHost {
        NetnsHost::new(&self.bed, name).unwrap()
    }

    /// Whether the member node on `host` has created its TAP device yet.
    fn tap_ready(host: &NetnsHost) -> Option<()> {
        Self::tap_ready_dyn(host)
    }

    /// [`World::tap_ready`] for any host.
    fn tap_ready_dyn(host: &dyn wow_harness::host::Host) -> Option<()> {
        use wow_harness::host::Cmd;
        let out = host
            .run(
                &Cmd::new("ip").args(["link", "show", wow_harness::vnet::TAP]),
                Duration::from_secs(5),
            )
            .ok()?;
        out.success().then_some(())
    }

    /// Starts a member node of `ns` on `host`.
    fn member(&mut self, host: &NetnsHost, ns: &str) {
        let opts = wow_harness::vnet::member_options(&self.public, ns);
        self.nodes
            .push(RunningNode::start(host, &self.bin, &opts).unwrap());
    }
}

impl Drop for World {
    fn drop(&mut self) {
        for n in &mut self.nodes {
            let _ = n.stop(Duration::from_secs(2));
        }
        let _ = self.seed.stop(Duration::from_secs(2));
    }
}
