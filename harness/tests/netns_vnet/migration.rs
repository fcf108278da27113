//! VM migration (the WOW paper): a "VM" — its own network namespace, bridged to a node's
//! TAP like a VM's virtual NIC (router mode) — has a virtual IP and an open TCP session.
//! Its node is killed, the VM's link moves to a host at another NATed site, and a new
//! node (new P2P address) starts there with the old node's lease file. The VM keeps its
//! address and the TCP session resumes.

use std::net::Ipv4Addr;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
use wow_experiments::tools::ip;
use wow_harness::host::{Cmd, Host};
use wow_harness::nodes::{RunningNode, wait_for};
use wow_harness::vnet::{DhcpClient, TAP, member_options, start_dhcp, wait_address};

const TOPOLOGY: &str = r#"
name = "vnet-migration"
[[site]]
name = "a"
hosts = 1
nat = "port-restricted"
firewall = "open"
[[site]]
name = "b"
hosts = 1
nat = "full-cone"
firewall = "open"
[[site]]
name = "c"
hosts = 1
nat = "none"
firewall = "open"
[[public]]
name = "public"
count = 1
"#;

/// The VM: a namespace of this run, removed (with its processes) on drop. It has its
/// own `/etc/netns/<ns>/resolv.conf`, which `ip netns exec` mounts over the machine's,
/// so that its `dhclient` rewrites that one.
struct Vm {
    ns: String,
    procs: Vec<Child>,
}

impl Vm {
    fn new(ns: String) -> Vm {
        ip(&["netns", "add", &ns]);
        let etc = Vm::etc(&ns);
        std::fs::create_dir_all(&etc).expect("/etc/netns/<vm>");
        std::fs::write(etc.join("resolv.conf"), "# the VM has no DNS server\n").unwrap();
        Vm {
            ns,
            procs: Vec::new(),
        }
    }

    fn etc(ns: &str) -> std::path::PathBuf {
        std::path::Path::new("/etc/netns").join(ns)
    }

    fn spawn(&mut self, args: &[&str]) {
        let child = Command::new("ip")
            .args(["netns", "exec", &self.ns])
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn in the VM");
        self.procs.push(child);
    }

    fn address(&self) -> Option<Ipv4Addr> {
        let out = Command::new("ip")
            .args(["-n", &self.ns, "-j", "-4", "addr", "show", "dev", "eth0"])
            .output()
            .ok()?;
        let text = String::from_utf8_lossy(&out.stdout);
        ip::parse_ipv4_addresses(&text).first().copied()
    }
}

impl Drop for Vm {
    fn drop(&mut self) {
        for c in &mut self.procs {
            let _ = c.kill();
            let _ = c.wait();
        }
        let _ = Command::new("ip").args(["netns", "del", &self.ns]).status();
        let _ = std::fs::remove_dir_all(Vm::etc(&self.ns));
    }
}

fn ip(args: &[&str]) {
    let status = Command::new("ip").args(args).status().expect("ip");
    assert!(status.success(), "ip {args:?}");
}

/// Bridges the node's TAP and the VM's port on a host (its namespace `ns`).
fn bridge(host: &dyn Host, ns: &str) {
    wait_for(Duration::from_secs(20), Duration::from_millis(100), || {
        super::World::tap_ready_dyn(host)
    })
    .expect("TAP device");
    ip(&["-n", ns, "link", "add", "br-vm", "type", "bridge"]);
    for dev in [TAP, "vmport"] {
        ip(&["-n", ns, "link", "set", dev, "master", "br-vm"]);
        ip(&["-n", ns, "link", "set", dev, "up"]);
    }
    ip(&["-n", ns, "link", "set", "br-vm", "up"]);
}

#[test]
fn netns_a_migrated_vm_keeps_its_address_and_its_tcp_session() {
    let (mut world, ns) = super::World::new(TOPOLOGY, "10.210.0.0/16");
    let (a, b, c) = (world.host("a-0"), world.host("b-0"), world.host("c-0"));
    let ns_of = |name: &str| world.bed.node(name).unwrap().namespace.clone();
    let (ns_a, ns_b) = (ns_of("a-0"), ns_of("b-0"));
    // The client side: a node with its own TAP and address at site c.
    world.member(&c, &ns);
    wait_for(Duration::from_secs(10), Duration::from_millis(100), || {
        super::World::tap_ready(&c)
    })
    .expect("TAP");
    let mut client_dhcp = start_dhcp(DhcpClient::Dhclient, &c, TAP).unwrap();
    let client_ip = wait_address(&c, TAP, Duration::from_secs(60)).unwrap();
    // The VM, bridged to the node at site a.
    let mut vm = Vm::new(world.bed.prefix().namespace("vm"));
    let opts = member_options(&world.public, &ns);
    let mut node_a = RunningNode::start(&a, &world.bin, &opts).unwrap();
    ip(&[
        "-n", &ns_a, "link", "add", "vmport", "type", "veth", "peer", "name", "eth0", "netns",
        &vm.ns,
    ]);
    ip(&["-n", &vm.ns, "link", "set", "lo", "up"]);
    ip(&["-n", &vm.ns, "link", "set", "eth0", "up"]);
    bridge(&a, &ns_a);
    let tmp = std::env::temp_dir().join(format!("{}-dhclient", vm.ns));
    vm.spawn(&[
        "dhclient",
        "-d",
        "-pf",
        &format!("{}.pid", tmp.display()),
        "-lf",
        &format!("{}.leases", tmp.display()),
        "eth0",
    ]);
    let vm_ip = wait_for(Duration::from_secs(60), Duration::from_millis(200), || {
        vm.address()
    })
    .expect("VM address");
    vm.spawn(&["iperf3", "-s", "-1", "-B", &vm_ip.to_string()]);
    std::thread::sleep(Duration::from_millis(500));
    // A 40 s TCP stream from the client to the VM, at a modest rate.
    let mut stream = c
        .spawn(&Cmd::new("iperf3").args([
            "-c",
            &vm_ip.to_string(),
            "-t",
            "40",
            "-b",
            "20M",
            "-J",
            "-i",
            "1",
        ]))
        .unwrap();
    std::thread::sleep(Duration::from_secs(8));

    // Migrate: the node at a dies; the VM's link moves to b; a new node starts there
    // (a new P2P address) with a's lease file.
    node_a.kill().unwrap();
    let moved = Instant::now();
    let leases = a.read_file("/run/ipop/leases").unwrap();
    let local = std::env::temp_dir().join(format!("{}-leases", vm.ns));
    std::fs::write(&local, &leases).unwrap();
    b.check(
        &Cmd::new("mkdir").args(["-p", "/run/ipop"]),
        Duration::from_secs(5),
    )
    .unwrap();
    b.copy_to(&local, "/run/ipop/leases").unwrap();
    let _ = std::fs::remove_file(&local);
    ip(&["-n", &ns_a, "link", "set", "vmport", "netns", &ns_b]);
    world
        .nodes
        .push(RunningNode::start(&b, &world.bin, &opts).unwrap());
    bridge(&b, &ns_b);

    let diagnosis = || {
        let st = |h: &dyn Host| {
            wow_harness::nodes::status(h, &world.bin)
                .map_or_else(|e| e.to_string(), |s| format!("{:?}", s.ipop))
        };
        let key = format!("ipop/ip/{ns}/{vm_ip}");
        let mapping = b
            .run(
                &Cmd::new(world.bin.display().to_string()).args([
                    "dht",
                    "get",
                    &key,
                    "--socket",
                    "/run/ipop/ipop.sock",
                ]),
                Duration::from_secs(20),
            )
            .map(|o| o.stdout_text())
            .unwrap_or_default();
        format!(
            "new node: {}\nclient: {}\nDHT {key}: {mapping}",
            st(&b),
            st(&c)
        )
    };
    let Some(output) = wait_for(Duration::from_secs(90), Duration::from_millis(500), || {
        stream.try_wait().ok().flatten()
    }) else {
        panic!("the TCP stream did not end\n{}", diagnosis());
    };
    let report: Value = serde_json::from_slice(&output.stdout).expect("iperf3 JSON");
    assert!(
        report.get("error").is_none(),
        "the session broke: {}",
        report["error"]
    );
    let intervals: Vec<f64> = report["intervals"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["sum"]["bytes"].as_f64().unwrap_or(0.0))
        .collect();
    let stalled = intervals.iter().filter(|b| **b == 0.0).count();
    eprintln!(
        "migration: {stalled} s without data in a 40 s TCP stream (moved {:.1} s before it ended); VM kept {vm_ip}; client {client_ip}",
        moved.elapsed().as_secs_f64()
    );
    assert!(
        stalled > 0 && stalled < 30,
        "stall of {stalled} s: {intervals:?}\n{}",
        diagnosis()
    );
    assert!(
        intervals.iter().rev().take(3).all(|b| *b > 0.0),
        "the stream did not resume: {intervals:?}"
    );
    assert_eq!(vm.address(), Some(vm_ip), "the VM kept its address");
    let _ = client_dhcp.stop(Duration::from_secs(1));
}
