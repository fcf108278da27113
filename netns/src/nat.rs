//! Router rule sets: one function per NAT profile and firewall profile, producing the
//! `iptables-restore` input and, where Linux has no iptables target for the behaviour
//! (full cone, address-restricted cone, hairpin), an nftables table.
//!
//! Interfaces: `wan` faces the core, `lan` is the site bridge. Each rule set was checked
//! on the kernel the testbed runs on: `harness/tests/netns/nat.rs` observes each one's
//! mapping and filtering with a STUN-like probe (RFC 5780's tests).

use std::collections::BTreeMap;
use std::fmt::Write;
use std::net::Ipv4Addr;
use std::time::Duration;

use crate::topology::{Firewall, NatProfile, Site};

/// The binding lifetime the nft maps use when the topology sets none (the kernel's
/// `nf_conntrack_udp_timeout_stream` default).
pub const DEFAULT_BINDING_TIMEOUT: Duration = Duration::from_secs(120);

/// First external port handed to inside hosts of a cone NAT.
const CONE_PORT_BASE: u32 = 20_000;
/// Ports shared out among the inside hosts of a cone NAT.
const CONE_PORT_SPAN: u32 = 40_000;

/// The rules of one router.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouterRules {
    /// Input for `iptables-restore` (nat and filter tables).
    pub iptables: String,
    /// Input for `nft -f`, when the profile needs learned mappings.
    pub nft: Option<String>,
}

/// The rules for `site`, whose router has core address `wan` and whose hosts are `hosts`.
pub fn router_rules(site: &Site, wan: Ipv4Addr, hosts: &[Ipv4Addr]) -> RouterRules {
    let nat = nat_rules(site, hosts);
    let (policies, filter) = filter_rules(site);
    RouterRules {
        iptables: iptables_input(&nat, &policies, &filter),
        nft: nft_table(site, wan),
    }
}

/// The nat table's rules for `site`'s NAT profile (`hosts` are the site's hosts).
fn nat_rules(site: &Site, hosts: &[Ipv4Addr]) -> String {
    let mut nat = String::new();
    let lan = site.subnet;
    let cone = matches!(
        site.nat,
        NatProfile::FullCone | NatProfile::AddressRestricted
    );
    if cone {
        // Each inside host gets its own external port range, so two hosts never share
        // an external port (the learned map would flip between them).
        let span = (CONE_PORT_SPAN / hosts.len().max(1) as u32).min(1000);
        for (i, host) in hosts.iter().enumerate() {
            let lo = CONE_PORT_BASE + i as u32 * span;
            let _ = writeln!(
                nat,
                "-A POSTROUTING -o wan -s {host}/32 -p udp -j MASQUERADE --to-ports {lo}-{}",
                lo + span - 1
            );
        }
    }
    match site.nat {
        NatProfile::None => {}
        NatProfile::Symmetric => {
            let _ = writeln!(
                nat,
                "-A POSTROUTING -o wan -s {lan} -j MASQUERADE --random-fully"
            );
        }
        _ => {
            let _ = writeln!(nat, "-A POSTROUTING -o wan -s {lan} -j MASQUERADE");
        }
    }
    nat
}

/// The filter table for `site`'s NAT and firewall profiles: the chains' policies (by
/// chain) and the rules.
fn filter_rules(site: &Site) -> (BTreeMap<String, String>, Vec<String>) {
    let mut policies: BTreeMap<String, String> = ["INPUT", "FORWARD", "OUTPUT"]
        .into_iter()
        .map(|c| (c.to_string(), "ACCEPT".to_string()))
        .collect();
    let mut filter = Vec::new();
    if site.nat != NatProfile::None {
        // Without the INPUT rule a peer's early packet leaves an unreplied conntrack entry
        // on the router and the host's own mapping moves to another port.
        filter.push("-A INPUT -i wan -m conntrack --ctstate NEW -j DROP".to_string());
        filter.push(
            "-A FORWARD -i wan -m conntrack ! --ctstate ESTABLISHED,RELATED,DNAT -j DROP"
                .to_string(),
        );
    }
    match &site.firewall {
        Firewall::Open => {}
        Firewall::OutboundOnly => {
            policies.insert("FORWARD".into(), "DROP".into());
            filter.push("-A FORWARD -m conntrack --ctstate ESTABLISHED,RELATED -j ACCEPT".into());
            filter.push("-A FORWARD -i lan -j ACCEPT".into());
            if site.nat == NatProfile::None {
                filter.push("-A INPUT -i wan -m conntrack --ctstate NEW -j DROP".into());
            }
        }
        Firewall::UdpBlocked => filter.push("-A FORWARD -p udp -j DROP".into()),
        Firewall::Custom(lines) => {
            for line in lines {
                // ":CHAIN POLICY" declares a chain or sets a built-in chain's policy.
                match line.strip_prefix(':') {
                    Some(decl) => {
                        let mut words = decl.split_whitespace();
                        let chain = words.next().unwrap_or_default().to_string();
                        policies.insert(chain, words.next().unwrap_or("-").to_string());
                    }
                    None => filter.push(line.clone()),
                }
            }
        }
    }
    (policies, filter)
}

/// The `iptables-restore` input of the `nat` rules and the filter table (`policies`
/// and `filter` rules).
fn iptables_input(nat: &str, policies: &BTreeMap<String, String>, filter: &[String]) -> String {
    let mut iptables = format!("*nat\n{nat}COMMIT\n*filter\n");
    for (chain, policy) in policies {
        let _ = writeln!(iptables, ":{chain} {policy} [0:0]");
    }
    for line in filter {
        iptables.push_str(line);
        iptables.push('\n');
    }
    iptables.push_str("COMMIT\n");
    iptables
}

/// The learned-mapping table: `mapping` (external UDP port to inside address and port),
/// and for the address-restricted cone `allowed` (external port and remote address).
fn nft_table(site: &Site, wan: Ipv4Addr) -> Option<String> {
    let full = site.nat == NatProfile::FullCone;
    let restricted = site.nat == NatProfile::AddressRestricted;
    if !(full || restricted || site.hairpin) {
        return None;
    }
    let t = site
        .binding_timeout
        .unwrap_or(DEFAULT_BINDING_TIMEOUT)
        .as_secs();
    let lan = site.subnet;
    let mut s = format!(
        "table ip wow {{\n\
         \tmap mapping {{ type inet_service : ipv4_addr . inet_service; flags dynamic,timeout; timeout {t}s; }}\n"
    );
    if restricted {
        let _ = writeln!(
            s,
            "\tset allowed {{ type inet_service . ipv4_addr; flags dynamic,timeout; timeout {t}s; }}"
        );
    }
    // After MASQUERADE (srcnat) the packet carries its external port.
    let _ = writeln!(
        s,
        "\tchain learn {{ type filter hook postrouting priority srcnat + 10; policy accept;\n\
         \t\toifname \"wan\" ct direction original ct status snat update @mapping {{ udp sport timeout {t}s : ct original ip saddr . ct original proto-src }}"
    );
    if restricted {
        let _ = writeln!(
            s,
            "\t\toifname \"wan\" ct direction original ct status snat update @allowed {{ udp sport . ip daddr timeout {t}s }}"
        );
    }
    s.push_str("\t}\n\tchain inbound { type nat hook prerouting priority dstnat; policy accept;\n");
    if full {
        s.push_str("\t\tiifname \"wan\" dnat ip to udp dport map @mapping\n");
    }
    if restricted {
        s.push_str(
            "\t\tiifname \"wan\" udp dport . ip saddr @allowed dnat ip to udp dport map @mapping\n",
        );
    }
    if site.hairpin {
        let _ = writeln!(
            s,
            "\t\tiifname \"lan\" ip daddr {wan} dnat ip to udp dport map @mapping"
        );
    }
    s.push_str("\t}\n");
    if site.hairpin {
        // Hairpinned packets leave with the sender's public mapping as their source.
        let _ = writeln!(
            s,
            "\tchain hairpin {{ type nat hook postrouting priority srcnat; policy accept;\n\
             \t\toifname \"lan\" ip saddr {lan} ct status dnat snat ip to {wan}\n\t}}"
        );
    }
    s.push_str("}\n");
    Some(s)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::topology::Topology;

    fn site(keys: &str) -> Site {
        let text = format!("name = \"x\"\n[[site]]\nname = \"a\"\nhosts = 2\n{keys}\n");
        Topology::parse(&text, "x").unwrap().sites.remove(0)
    }

    fn rules(keys: &str) -> RouterRules {
        let hosts = [Ipv4Addr::new(198, 19, 1, 10), Ipv4Addr::new(198, 19, 1, 11)];
        router_rules(&site(keys), Ipv4Addr::new(198, 18, 0, 1), &hosts)
    }

    #[test]
    fn port_restricted_has_the_input_new_drop_rule() {
        let r = rules("nat = \"port-restricted\"");
        assert!(
            r.iptables
                .contains("-A POSTROUTING -o wan -s 198.19.1.0/24 -j MASQUERADE\n")
        );
        assert!(
            r.iptables
                .contains("-A INPUT -i wan -m conntrack --ctstate NEW -j DROP")
        );
        assert!(r.nft.is_none());
    }

    #[test]
    fn symmetric_randomizes_ports() {
        assert!(
            rules("nat = \"symmetric\"")
                .iptables
                .contains("MASQUERADE --random-fully")
        );
    }

    #[test]
    fn cones_give_each_host_its_own_port_range_and_learn_mappings() {
        let r = rules("nat = \"address-restricted\"\nbinding_timeout_s = 7");
        assert!(
            r.iptables
                .contains("-s 198.19.1.10/32 -p udp -j MASQUERADE --to-ports 20000-20999")
        );
        assert!(
            r.iptables
                .contains("-s 198.19.1.11/32 -p udp -j MASQUERADE --to-ports 21000-21999")
        );
        let nft = r.nft.unwrap();
        assert!(nft.contains("udp dport . ip saddr @allowed dnat"));
        assert!(nft.contains("timeout 7s"));
        let full = rules("nat = \"full-cone\"").nft.unwrap();
        assert!(full.contains("iifname \"wan\" dnat ip to udp dport map @mapping"));
        assert!(!full.contains("@allowed"));
    }

    #[test]
    fn hairpin_adds_lan_side_dnat_and_snat() {
        let nft = rules("nat = \"port-restricted\"\nhairpin = true")
            .nft
            .unwrap();
        assert!(nft.contains("iifname \"lan\" ip daddr 198.18.0.1 dnat"));
        assert!(nft.contains("snat ip to 198.18.0.1"));
    }

    #[test]
    fn firewalls_without_nat() {
        let open = rules("");
        assert!(!open.iptables.contains("-A "), "{}", open.iptables);
        let fw = rules("firewall = \"outbound-only\"");
        assert!(fw.iptables.contains(":FORWARD DROP [0:0]"));
        assert!(
            fw.iptables
                .contains("--ctstate ESTABLISHED,RELATED -j ACCEPT")
        );
        assert!(
            rules("firewall = \"udp-blocked\"")
                .iptables
                .contains("-A FORWARD -p udp -j DROP")
        );
        let custom = rules(
            "firewall = \"custom\"\nfirewall_rules = [\":FORWARD DROP\", \"-A FORWARD -p tcp --dport 22 -j ACCEPT\"]",
        );
        assert!(custom.iptables.contains(":FORWARD DROP [0:0]"));
        assert!(!custom.iptables.contains(":FORWARD ACCEPT"));
        assert!(
            custom
                .iptables
                .contains("-A FORWARD -p tcp --dport 22 -j ACCEPT\n")
        );
    }
}
