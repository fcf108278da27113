//! The node's edges on real networks: UDP datagrams and length-framed TCP streams.

pub mod tcp;
pub mod udp;

use std::net::{IpAddr, SocketAddr};

/// The IPv4 addresses of this host's interfaces other than loopback, for advertising a
/// socket bound to the unspecified address.
pub fn interface_addresses() -> Vec<IpAddr> {
    let Ok(addrs) = nix::ifaddrs::getifaddrs() else {
        return Vec::new();
    };
    let mut out: Vec<IpAddr> = addrs
        .filter_map(|ifa| ifa.address?.as_sockaddr_in().map(|s| IpAddr::V4(s.ip())))
        .filter(|ip| !ip.is_loopback())
        .collect();
    out.sort();
    out.dedup();
    out
}

/// The addresses a socket bound to `bound` can be reached at.
pub fn reachable_at(bound: SocketAddr) -> Vec<SocketAddr> {
    if bound.ip().is_unspecified() {
        interface_addresses()
            .into_iter()
            .map(|ip| SocketAddr::new(ip, bound.port()))
            .collect()
    } else {
        vec![bound]
    }
}
