//! `NetnsHost`: the contract every host keeps, and what a namespace host adds (its own
//! hostname, addresses, `/run`, `/etc/hosts` and resolver file).

use std::time::Duration;

use wow_harness::{Cmd, Host};

use super::host_contract::host_contract;
use super::{check, host, parse, up};

#[test]
fn netns_host_runs_spawns_copies_and_reads() {
    let bed = up(&parse(
        "name = \"h\"\n[[site]]\nname = \"s\"\nhosts = 2\n[[public]]\nname = \"public\"\n",
    ));
    let h = host(&bed, "s-1");
    assert_eq!(h.name(), "s-1");
    assert_eq!(h.addresses()[0].to_string(), "198.19.1.11");
    // Its own hostname, /etc/hosts, addresses and private /run.
    assert_eq!(
        check(&h, Cmd::new("hostname"), Duration::from_secs(5)).trim(),
        "s-1"
    );
    let hosts = String::from_utf8(h.read_file("/etc/hosts").unwrap()).unwrap();
    assert!(hosts.contains("198.18.0.2\tpublic-0"), "{hosts}");
    let addrs = check(
        &h,
        Cmd::new("ip").args(["-4", "-br", "addr"]),
        Duration::from_secs(5),
    );
    assert!(addrs.contains("198.19.1.11/24"), "{addrs}");
    assert!(
        !addrs.contains("198.19.1.10"),
        "other hosts' addresses are elsewhere: {addrs}"
    );
    check(
        &h,
        Cmd::new("sh").args(["-c", "echo private > /run/marker"]),
        Duration::from_secs(5),
    );
    assert!(
        host(&bed, "s-0").read_file("/run/marker").is_err(),
        "each host has its own /run"
    );
    // On the core (the Internet between sites) nobody ARPs: each core member knows the
    // others' MACs from permanent entries.
    let public = host(&bed, "public-0");
    let neigh = check(
        &public,
        Cmd::new("ip").args(["-4", "neigh", "show", "dev", "eth0"]),
        Duration::from_secs(5),
    );
    assert!(
        neigh.contains("198.18.0.1 lladdr 02:00:c6:12:00:01 PERMANENT"),
        "the router's entry: {neigh}"
    );
    // Its own resolver file: a DHCP client's script may rewrite it.
    let resolv = String::from_utf8(h.read_file("/etc/resolv.conf").unwrap()).unwrap();
    assert!(
        resolv.contains("s-1: the testbed has no DNS server"),
        "{resolv}"
    );
    // Names resolve through the host's /etc/hosts and packets flow.
    check(
        &h,
        Cmd::new("ping").args(["-c", "1", "-W", "2", "public-0"]),
        Duration::from_secs(10),
    );

    // Its own /run is where the contract writes.
    host_contract(&h, "/run");
}
