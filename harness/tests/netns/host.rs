//! The `Host` implementation for namespace nodes, as later issues will use it.

use std::time::{Duration, Instant};

use nix::sys::signal::Signal;
use wow_harness::{Cmd, Host, HostError};

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

    // Copy a file in, read it back.
    let local = std::env::temp_dir().join(format!("wow-host-test-{}", std::process::id()));
    std::fs::write(&local, b"hello\n").unwrap();
    h.copy_to(&local, "/run/copied").unwrap();
    std::fs::remove_file(&local).unwrap();
    assert_eq!(h.read_file("/run/copied").unwrap(), b"hello\n");

    // Output, exit codes and stdin come back; a failure says what failed.
    let out = h
        .run(
            &Cmd::new("sh")
                .args(["-c", "cat; echo err >&2; exit 3"])
                .stdin("in"),
            Duration::from_secs(5),
        )
        .unwrap();
    assert_eq!(
        (
            out.code,
            out.stdout_text().as_str(),
            out.stderr_text().as_str()
        ),
        (Some(3), "in", "err\n")
    );
    match h.check(&Cmd::new("false"), Duration::from_secs(5)) {
        Err(HostError::Failed { host, .. }) => assert_eq!(host, "s-1"),
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        h.run(&Cmd::new("no-such-program-wow"), Duration::from_secs(5)),
        Err(HostError::Start { .. })
    ));

    // A command past its timeout is killed.
    let started = Instant::now();
    let out = h
        .run(&Cmd::new("sleep").arg("30"), Duration::from_millis(300))
        .unwrap();
    assert!(
        out.timed_out && started.elapsed() < Duration::from_secs(5),
        "{out:?}"
    );

    // A long-lived process is stopped by PID with SIGTERM.
    let mut p = h
        .spawn(&Cmd::new("sh").args(["-c", "echo started; exec sleep 600"]))
        .unwrap();
    let pid = p.pid();
    assert!(std::path::Path::new(&format!("/proc/{pid}")).exists());
    std::thread::sleep(Duration::from_millis(200));
    assert!(p.try_wait().unwrap().is_none());
    let out = p.stop(Duration::from_secs(2)).unwrap();
    assert_eq!(out.signal, Some(Signal::SIGTERM as i32));
    assert_eq!(out.stdout_text(), "started\n");
}
