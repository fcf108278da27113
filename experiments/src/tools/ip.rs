//! iproute2's `ip`, read through its JSON output (`ip -j`).

use std::net::Ipv4Addr;
use std::time::Duration;

use serde::Deserialize;
use wow_host::{Cmd, Host, HostError};

/// An interface as `ip -j addr show` lists it (the fields read here).
#[derive(Debug, Deserialize)]
struct Interface {
    /// Its addresses; absent where it has none of the family asked for.
    #[serde(default)]
    addr_info: Vec<AddrInfo>,
}

/// One address of an interface.
#[derive(Debug, Deserialize)]
struct AddrInfo {
    /// `inet` or `inet6`.
    family: String,
    /// The interface's own address (for a point-to-point address, not the peer's).
    local: String,
}

/// The IPv4 addresses on `iface` of `host`, in the order `ip` lists them; none where
/// `iface` does not exist.
pub fn ipv4_addresses(host: &dyn Host, iface: &str) -> Result<Vec<Ipv4Addr>, HostError> {
    let show = Cmd::new("ip").args(["-j", "-4", "addr", "show", "dev", iface]);
    let out = host.run(&show, Duration::from_secs(5))?;
    Ok(parse_ipv4_addresses(&out.stdout_text()))
}

/// The IPv4 addresses in the output of `ip -j addr show`, interface by interface; none
/// where the output is empty (`ip` prints nothing for a missing interface) or is not
/// the JSON `ip` prints.
pub fn parse_ipv4_addresses(json: &str) -> Vec<Ipv4Addr> {
    let interfaces: Vec<Interface> = serde_json::from_str(json).unwrap_or_default();
    interfaces
        .iter()
        .flat_map(|i| &i.addr_info)
        .filter(|a| a.family == "inet")
        .filter_map(|a| a.local.parse().ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `ip -j -4 addr show dev d0` (iproute2 6.1) on a veth with a point-to-point
    /// address and a /16.
    const TWO_ADDRESSES: &str = r#"[{"ifindex":3,"link":"d1","ifname":"d0","flags":["BROADCAST","MULTICAST","M-DOWN"],"mtu":1500,"qdisc":"noop","operstate":"DOWN","group":"default","txqlen":1000,"addr_info":[{"family":"inet","local":"10.200.0.1","address":"10.200.0.2","prefixlen":32,"scope":"global","label":"d0","valid_life_time":4294967295,"preferred_life_time":4294967295},{"family":"inet","local":"10.9.0.1","prefixlen":16,"scope":"global","label":"d0","valid_life_time":4294967295,"preferred_life_time":4294967295}]}]"#;

    /// `ip -j -4 addr show` (iproute2 6.1) on a host with a loopback and an Ethernet
    /// interface.
    const TWO_INTERFACES: &str = r#"[{"ifindex":1,"ifname":"lo","flags":["LOOPBACK","UP","LOWER_UP"],"mtu":65536,"qdisc":"noqueue","operstate":"UNKNOWN","group":"default","txqlen":1000,"addr_info":[{"family":"inet","local":"127.0.0.1","prefixlen":8,"scope":"host","label":"lo","valid_life_time":4294967295,"preferred_life_time":4294967295}]},{"ifindex":4,"ifname":"eth0","flags":["BROADCAST","MULTICAST","UP","LOWER_UP"],"mtu":1400,"qdisc":"pfifo_fast","operstate":"UP","group":"default","txqlen":1000,"addr_info":[{"family":"inet","local":"192.0.2.2","prefixlen":24,"broadcast":"192.0.2.255","scope":"global","label":"eth0","valid_life_time":4294967295,"preferred_life_time":4294967295}]}]"#;

    /// `ip -j -6 addr show dev lo`: an IPv6 address only.
    const IPV6_ONLY: &str = r#"[{"ifindex":1,"ifname":"lo","flags":["LOOPBACK","UP","LOWER_UP"],"mtu":65536,"qdisc":"noqueue","operstate":"UNKNOWN","group":"default","txqlen":1000,"addr_info":[{"family":"inet6","local":"::1","prefixlen":128,"scope":"host","valid_life_time":4294967295,"preferred_life_time":4294967295}]}]"#;

    #[test]
    fn reads_the_local_addresses_in_order() {
        assert_eq!(
            parse_ipv4_addresses(TWO_ADDRESSES),
            [Ipv4Addr::new(10, 200, 0, 1), Ipv4Addr::new(10, 9, 0, 1)]
        );
        assert_eq!(
            parse_ipv4_addresses(TWO_INTERFACES),
            [Ipv4Addr::LOCALHOST, Ipv4Addr::new(192, 0, 2, 2)]
        );
    }

    #[test]
    fn no_address_where_there_is_none() {
        // An interface with IPv6 only, one without IPv4 addresses (`-4` lists
        // nothing), a missing one (nothing on stdout), and text that is not ip's JSON.
        for output in [
            IPV6_ONLY,
            "[]\n",
            "",
            "3: d0    inet 10.9.0.1/16 scope global d0",
        ] {
            assert!(parse_ipv4_addresses(output).is_empty(), "{output}");
        }
    }
}
