//! The concrete layout of a run: which namespaces exist, which veths join them, and
//! which underlay address each interface gets. Pure; [`crate::Testbed`] carries it out.
//!
//! Layout: a `core` namespace holds the bridge `core`. Each site router (`<site>-gw`)
//! and each public host has one veth into it (`wan` on a router, `eth0` on a host),
//! whose core end is `p<k>`. Where the topology puts a WAN link, the core end is `w<k>`
//! instead and the link emulator copies frames between `w<k>` and `x<k>`, the peer of
//! the bridge port `p<k>`. A router's LAN is the bridge `lan`, with port `h<i>` for
//! site host `i`, whose own end is `eth0`.

use std::net::Ipv4Addr;

use ipnet::Ipv4Net;
use serde::{Deserialize, Serialize};

use crate::prefix::RunPrefix;
use crate::topology::{Attachment, LinkParams, NatProfile, Site, Topology};

/// Name of the core namespace's node part (`wow-<run>-core`).
pub const CORE: &str = "core";

/// What a node is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Role {
    /// A site's router (`<site>-gw`): addresses are `[wan, lan]`.
    Router,
    /// A host on a site's LAN.
    SiteHost,
    /// A host on the public core.
    PublicHost,
    /// A virtual machine bridged on a host, which it may move between
    /// ([`Machine`](crate::machine::Machine)); never part of a plan.
    Machine,
}

/// One namespace of the run, as the harness sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Node {
    /// Node name, also its hostname.
    pub name: String,
    /// Namespace name (`wow-<run>-<name>`).
    pub namespace: String,
    /// What the node is.
    pub role: Role,
    /// The site it belongs to (routers and site hosts).
    pub site: Option<String>,
    /// Underlay addresses; the first is the one others reach it by.
    pub addresses: Vec<Ipv4Addr>,
    /// Prefix length of its (first) subnet.
    pub prefix_len: u8,
    /// Its default gateway (site hosts).
    pub gateway: Option<Ipv4Addr>,
}

/// A node's veth into the core.
#[derive(Debug, Clone, PartialEq)]
pub struct CoreLink {
    /// Index used in the core-side interface names (`p<k>`, `w<k>`, `x<k>`).
    pub k: usize,
    /// Index into [`Plan::nodes`].
    pub node: usize,
    /// The node-side interface (`wan` or `eth0`).
    pub device: &'static str,
    /// The emulated WAN link, if any.
    pub wan: Option<LinkParams>,
}

/// A route every core member needs: a routed (non-NAT) site behind its router.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SiteRoute {
    /// The site's LAN.
    pub subnet: Ipv4Net,
    /// The router's core address.
    pub via: Ipv4Addr,
    /// Index of the router in [`Plan::nodes`].
    pub router: usize,
}

/// The full layout of one run of a topology.
#[derive(Debug, Clone)]
pub struct Plan {
    /// The run's prefix.
    pub prefix: RunPrefix,
    /// The core namespace.
    pub core_namespace: String,
    /// Routers, site hosts and public hosts.
    pub nodes: Vec<Node>,
    /// Veths between nodes and the core.
    pub core_links: Vec<CoreLink>,
    /// Routes to routed sites.
    pub site_routes: Vec<SiteRoute>,
    /// Prefix length of the core subnet.
    pub core_prefix_len: u8,
}

impl Plan {
    /// Lays out `topology` for the run `prefix`.
    pub fn new(topology: &Topology, prefix: &RunPrefix) -> Plan {
        let mut nodes = Vec::new();
        let mut core_links = Vec::new();
        let mut site_routes = Vec::new();
        let mut core_hosts = topology.core.hosts();
        let mut next_core = move || core_hosts.next().unwrap_or(Ipv4Addr::UNSPECIFIED);
        for site in &topology.sites {
            let wan = next_core();
            let lan = nth(site.subnet, 1);
            let router = nodes.len();
            nodes.push(Node {
                name: format!("{}-gw", site.name),
                namespace: prefix.namespace(&format!("{}-gw", site.name)),
                role: Role::Router,
                site: Some(site.name.clone()),
                addresses: vec![wan, lan],
                prefix_len: topology.core.prefix_len(),
                gateway: None,
            });
            core_links.push(CoreLink {
                k: core_links.len(),
                node: router,
                device: "wan",
                wan: wan_of(topology, &Attachment::Site(site.name.clone())),
            });
            if site.nat == NatProfile::None {
                site_routes.push(SiteRoute {
                    subnet: site.subnet,
                    via: wan,
                    router,
                });
            }
            for i in 0..site.hosts {
                let name = format!("{}-{i}", site.name);
                nodes.push(Node {
                    namespace: prefix.namespace(&name),
                    name,
                    role: Role::SiteHost,
                    site: Some(site.name.clone()),
                    addresses: vec![host_address(site, i)],
                    prefix_len: site.subnet.prefix_len(),
                    gateway: Some(lan),
                });
            }
        }
        for group in &topology.public {
            for i in 0..group.count {
                let name = format!("{}-{i}", group.name);
                let node = nodes.len();
                nodes.push(Node {
                    namespace: prefix.namespace(&name),
                    addresses: (0..group.addresses).map(|_| next_core()).collect(),
                    name: name.clone(),
                    role: Role::PublicHost,
                    site: None,
                    prefix_len: topology.core.prefix_len(),
                    gateway: None,
                });
                core_links.push(CoreLink {
                    k: core_links.len(),
                    node,
                    device: "eth0",
                    wan: wan_of(topology, &Attachment::Host(name)),
                });
            }
        }
        Plan {
            prefix: prefix.clone(),
            core_namespace: prefix.namespace(CORE),
            nodes,
            core_links,
            site_routes,
            core_prefix_len: topology.core.prefix_len(),
        }
    }

    /// The node called `name`.
    pub fn node(&self, name: &str) -> Option<&Node> {
        self.nodes.iter().find(|n| n.name == name)
    }

    /// Every namespace of the run, the core first.
    pub fn namespaces(&self) -> impl Iterator<Item = &str> {
        std::iter::once(self.core_namespace.as_str())
            .chain(self.nodes.iter().map(|n| n.namespace.as_str()))
    }

    /// The `/etc/hosts` every node of the run gets: each node's first address.
    pub fn hosts_file(&self) -> String {
        let mut text =
            String::from("127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n");
        for node in &self.nodes {
            if let Some(addr) = node.addresses.first() {
                text.push_str(&format!("{addr}\t{}\n", node.name));
            }
        }
        text
    }
}

/// The address of host `i` of `site`.
pub fn host_address(site: &Site, i: u32) -> Ipv4Addr {
    nth(site.subnet, crate::topology::FIRST_HOST_OFFSET + i)
}

fn nth(net: Ipv4Net, i: u32) -> Ipv4Addr {
    Ipv4Addr::from(u32::from(net.network()).wrapping_add(i))
}

fn wan_of(topology: &Topology, attach: &Attachment) -> Option<LinkParams> {
    topology
        .wans
        .iter()
        .find(|w| &w.attach == attach)
        .map(|w| w.link)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_follow_the_documented_layout() {
        let text = "name = \"x\"\n[[site]]\nname = \"a\"\nhosts = 2\nnat = \"symmetric\"\n\
                    [[site]]\nname = \"b\"\nhosts = 1\n\
                    [[public]]\nname = \"pub\"\ncount = 2\naddresses = 2\n\
                    [[wan]]\nsite = \"b\"\ndelay_ms = 5\n";
        let topology = Topology::parse(text, "x").unwrap();
        let plan = Plan::new(&topology, &RunPrefix::new("r").unwrap());
        let addrs = |name: &str| {
            plan.node(name)
                .unwrap()
                .addresses
                .iter()
                .map(|a| a.to_string())
                .collect::<Vec<_>>()
        };
        assert_eq!(addrs("a-gw"), ["198.18.0.1", "198.19.1.1"]);
        assert_eq!(addrs("a-1"), ["198.19.1.11"]);
        assert_eq!(addrs("b-gw"), ["198.18.0.2", "198.19.2.1"]);
        assert_eq!(addrs("pub-1"), ["198.18.0.5", "198.18.0.6"]);
        assert_eq!(
            plan.node("a-0").unwrap().gateway,
            Some(Ipv4Addr::new(198, 19, 1, 1))
        );
        assert_eq!(plan.node("b-0").unwrap().namespace, "wow-r-b-0");
        assert_eq!(plan.core_namespace, "wow-r-core");
        assert_eq!(plan.namespaces().count(), 1 + 2 + 2 + 1 + 2);
        assert_eq!(
            plan.site_routes.len(),
            1,
            "only the routed site b needs a core route"
        );
        assert_eq!(plan.site_routes[0].via, Ipv4Addr::new(198, 18, 0, 2));
        let with_wan: Vec<_> = plan.core_links.iter().filter(|l| l.wan.is_some()).collect();
        assert_eq!(with_wan.len(), 1);
        assert_eq!(plan.nodes[with_wan[0].node].name, "b-gw");
        assert!(plan.hosts_file().contains("198.19.1.10\ta-0\n"));
    }
}
