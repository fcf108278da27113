//! The physical subject: traffic goes over the underlay itself, to underlay addresses.
//! It is the papers' baseline, and it can only measure what the physical network lets
//! through, so [`Physical::target`] follows the testbed's NAT and firewall profiles
//! (`wow_netns::nat`):
//!
//! - Inside one site everything reaches everything (one LAN bridge).
//! - Public hosts accept anything.
//! - A site host behind a NAT, an outbound-only firewall or a custom firewall (whose
//!   rules are not modelled) accepts nothing unsolicited from outside its site; behind
//!   `udp-blocked` it accepts no UDP.
//! - A router accepts flows to itself unless its site has a NAT or an outbound-only
//!   firewall (both drop new inbound connections at INPUT) or custom rules that mention
//!   INPUT.
//! - A sender behind `udp-blocked` cannot send UDP out of its site.
//!
//! When the host asked for refuses the flow but its router admits it, the target is the
//! router: the path then crosses the same WAN links and lacks only the last LAN hop. The
//! [`Target::note`] says so, and the report prints it.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;

use wow_experiments::{Flow, Subject, SubjectKind, Target, Unreachable};
use wow_netns::topology::{Firewall, NatProfile, Site};
use wow_netns::{Node, Role, Topology};

/// The underlay as a subject.
#[derive(Debug, Clone)]
pub struct Physical {
    sites: BTreeMap<String, Site>,
    nodes: BTreeMap<String, Node>,
}

impl Physical {
    /// The physical network of `topology`, whose nodes are `nodes`.
    pub fn new(topology: &Topology, nodes: &[Node]) -> Physical {
        Physical {
            sites: topology
                .sites
                .iter()
                .map(|s| (s.name.clone(), s.clone()))
                .collect(),
            nodes: nodes.iter().map(|n| (n.name.clone(), n.clone())).collect(),
        }
    }

    fn node(&self, name: &str) -> Result<&Node, Unreachable> {
        self.nodes
            .get(name)
            .ok_or_else(|| Unreachable(format!("the testbed has no node {name:?}")))
    }

    fn site(&self, node: &Node) -> Option<&Site> {
        node.site.as_ref().and_then(|s| self.sites.get(s))
    }

    fn address(node: &Node) -> Result<Ipv4Addr, Unreachable> {
        node.addresses
            .first()
            .copied()
            .ok_or_else(|| Unreachable(format!("{} has no address", node.name)))
    }

    /// Whether `node` accepts `flow` from outside its site; `Err` says why not.
    fn admits(&self, node: &Node, flow: Flow) -> Result<(), String> {
        let Some(site) = self.site(node) else {
            return Ok(());
        };
        let nat = site.nat;
        if node.role == Role::Router {
            if nat != NatProfile::None {
                return Err(format!(
                    "{} is a {nat} NAT, which drops new inbound connections to itself",
                    node.name
                ));
            }
            return match &site.firewall {
                Firewall::OutboundOnly => Err(format!(
                    "{}'s outbound-only firewall drops new inbound connections to itself",
                    node.name
                )),
                Firewall::Custom(lines) if lines.iter().any(|l| l.contains("INPUT")) => {
                    Err(format!(
                        "{}'s custom firewall rules filter INPUT (not modelled)",
                        node.name
                    ))
                }
                _ => Ok(()),
            };
        }
        if nat != NatProfile::None {
            return Err(format!(
                "{} is behind a {nat} NAT: nothing unsolicited gets in",
                node.name
            ));
        }
        match &site.firewall {
            Firewall::Open => Ok(()),
            Firewall::UdpBlocked if matches!(flow, Flow::Udp { .. }) => Err(format!(
                "{}'s site drops all forwarded UDP (udp-blocked)",
                node.name
            )),
            Firewall::UdpBlocked => Ok(()),
            Firewall::OutboundOnly => Err(format!(
                "{} is behind an outbound-only firewall: nothing unsolicited gets in",
                node.name
            )),
            Firewall::Custom(_) => Err(format!(
                "{} is behind a custom firewall whose rules are not modelled",
                node.name
            )),
        }
    }
}

impl Subject for Physical {
    fn kind(&self) -> SubjectKind {
        SubjectKind::Physical
    }

    fn target(&self, from: &str, to: &str, flow: Flow) -> Result<Target, Unreachable> {
        let (src, dst) = (self.node(from)?, self.node(to)?);
        let direct = |node: &Node, note: Option<String>| {
            Ok(Target {
                node: node.name.clone(),
                address: Physical::address(node)?,
                note,
            })
        };
        if src.site.is_some() && src.site == dst.site {
            return direct(dst, None);
        }
        if let Some(site) = self.site(src) {
            if site.firewall == Firewall::UdpBlocked && matches!(flow, Flow::Udp { .. }) {
                return Err(Unreachable(format!(
                    "{from}'s site {} drops all forwarded UDP (udp-blocked)",
                    site.name
                )));
            }
        }
        let refused = match self.admits(dst, flow) {
            Ok(()) => return direct(dst, None),
            Err(why) => why,
        };
        if dst.role != Role::SiteHost {
            return Err(Unreachable(refused));
        }
        let site = self.site(dst).map(|s| s.name.clone()).unwrap_or_default();
        let router = self.node(&format!("{site}-gw"))?;
        match self.admits(router, flow) {
            Ok(()) => direct(
                router,
                Some(format!(
                    "{refused}; so the physical path ends at its site router {}, which admits \
                     {flow} and sits behind the same WAN link",
                    router.name
                )),
            ),
            Err(also) => Err(Unreachable(format!("{refused}; and {also}"))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use wow_netns::{Plan, RunPrefix};

    fn physical(name: &str) -> Physical {
        let path = format!("{}/../topologies/{name}.toml", env!("CARGO_MANIFEST_DIR"));
        let topology = Topology::load(path.as_ref()).unwrap();
        let plan = Plan::new(&topology, &RunPrefix::new("unit").unwrap());
        Physical::new(&topology, &plan.nodes)
    }

    #[test]
    fn lan_hosts_reach_each_other() {
        let p = physical("lan");
        let t = p.target("lab-0", "lab-1", Flow::Icmp).unwrap();
        assert_eq!((t.node.as_str(), t.note), ("lab-1", None));
        assert_eq!(t.address, Ipv4Addr::new(198, 19, 1, 11));
    }

    #[test]
    fn wan_3site_baseline_ends_where_the_firewalls_allow() {
        let p = physical("wan-3site");
        // VIMS: outbound-only firewall on host and router.
        let err = p.target("ufl-0", "vims-0", Flow::Icmp).unwrap_err().0;
        assert!(
            err.contains("vims-0 is behind an outbound-only firewall"),
            "{err}"
        );
        assert!(err.contains("vims-gw's outbound-only firewall"), "{err}");
        // LSU: custom FORWARD rules (not modelled), router INPUT open.
        for flow in [
            Flow::Icmp,
            Flow::Tcp { port: 5201 },
            Flow::Udp { port: 5201 },
        ] {
            let t = p.target("ufl-0", "lsu-0", flow).unwrap();
            assert_eq!(t.node, "lsu-gw");
            assert!(t.note.unwrap().contains("custom firewall"));
        }
        // Nothing gets into UF's NAT, host or router.
        let err = p.target("lsu-0", "ufl-1", Flow::Icmp).unwrap_err().0;
        assert!(err.contains("port-restricted NAT"), "{err}");
        // Public hosts take anything; hosts in one site reach each other.
        assert_eq!(
            p.target("vims-0", "public-0", Flow::Icmp).unwrap().node,
            "public-0"
        );
        assert_eq!(
            p.target("ufl-0", "ufl-3", Flow::Icmp).unwrap().node,
            "ufl-3"
        );
        assert!(p.target("ufl-0", "nope", Flow::Icmp).is_err());
    }

    #[test]
    fn udp_blocked_sites_send_and_take_no_udp() {
        let text = "name = \"t\"\n[[site]]\nname = \"a\"\nhosts = 1\nfirewall = \"udp-blocked\"\n\
                    [[site]]\nname = \"b\"\nhosts = 1\n";
        let topology = Topology::parse(text, "t").unwrap();
        let plan = Plan::new(&topology, &RunPrefix::new("unit").unwrap());
        let p = Physical::new(&topology, &plan.nodes);
        let udp = Flow::Udp { port: 5201 };
        assert!(
            p.target("a-0", "b-0", udp)
                .unwrap_err()
                .0
                .contains("udp-blocked")
        );
        assert_eq!(p.target("b-0", "a-0", udp).unwrap().node, "a-gw");
        assert_eq!(
            p.target("b-0", "a-0", Flow::Tcp { port: 1 }).unwrap().node,
            "a-0"
        );
    }
}
