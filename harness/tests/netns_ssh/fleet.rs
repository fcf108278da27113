//! `wow-bench deploy`, `status`, `collect` and `stop` end to end, run from a namespace
//! host (the operator's machine) against hosts whose `sshd` accepts, refuses or is down.

use std::os::unix::fs::PermissionsExt;
use std::time::{Duration, Instant};

use ipop_api::Status;
use serde_json::Value;
use wow_harness::Output;

use super::lab::{Lab, Sshd};

const TOPOLOGY: &str = r#"
name = "sshfleet"
[[site]]
name = "lan"
hosts = 1
nat = "none"
firewall = "custom"
firewall_rules = [
  "-A FORWARD -m conntrack --ctstate ESTABLISHED,RELATED -j ACCEPT",
  "-A FORWARD -i lan -j ACCEPT",
  "-A FORWARD -j DROP",
]
[[public]]
name = "public"
count = 4
[[public]]
name = "ctl"
"#;

/// Runs `wow-bench ARGS` on the operator's host.
fn bench(lab: &Lab, args: &[&str]) -> Output {
    lab.bench(args, Duration::from_secs(120))
}

/// Running `ipop-node` processes of the test user (not the shells waiting for them).
fn nodes(lab: &Lab) -> usize {
    lab.user_processes()
        .iter()
        .filter(|p| {
            p.split_whitespace()
                .nth(1)
                .is_some_and(|a| a.ends_with("/ipop-node"))
        })
        .count()
}

fn json(out: &Output) -> Vec<Value> {
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}\n{}", out.stdout_text(), out.stderr_text()))
}

fn by_name<'a>(reports: &'a [Value], name: &str) -> &'a Value {
    reports
        .iter()
        .find(|r| r["name"] == name)
        .unwrap_or_else(|| panic!("no {name} in {reports:?}"))
}

#[test]
fn netns_ssh_fleet_deploy_status_collect_stop() {
    let lab = Lab::new(
        TOPOLOGY,
        &[
            ("public-0", Sshd::Accepts),
            ("public-1", Sshd::Accepts),
            ("public-2", Sshd::Stopped),
            ("public-3", Sshd::RefusesKeys),
            ("lan-gw", Sshd::Accepts),
            ("lan-0", Sshd::Accepts),
        ],
    );
    let hosts_file = lab.dir.join("hosts.toml");
    std::fs::write(
        &hosts_file,
        format!(
            r#"[overlay]
name = "wowtest"
[defaults]
user = "{user}"
key = "id_ed25519"
known_hosts = "known_hosts"
connect_timeout_s = 2
[[jump]]
name = "gw"
address = "{gw}"
[[host]]
name = "public-0"
address = "{p0}"
roles = ["bootstrap"]
[[host]]
name = "public-1"
address = "{p1}"
roles = ["client"]
[[host]]
name = "lan-0"
address = "{lan}"
jump = "gw"
roles = ["client"]
node_args = ["--log-level", "debug"]
[[host]]
name = "down"
address = "{p2}"
[[host]]
name = "refuses"
address = "{p3}"
"#,
            user = lab.user,
            gw = lab.address("lan-gw"),
            p0 = lab.address("public-0"),
            p1 = lab.address("public-1"),
            p2 = lab.address("public-2"),
            p3 = lab.address("public-3"),
            lan = lab.address("lan-0"),
        ),
    )
    .unwrap();
    let hosts = hosts_file.display().to_string();

    // Deploy: three nodes up; the down host and the refusing one reported, not fatal.
    let started = Instant::now();
    let out = bench(
        &lab,
        &[
            "deploy", "--hosts", &hosts, "--min-up", "3", "--wait", "40", "--json",
        ],
    );
    let took = started.elapsed();
    assert!(
        out.success(),
        "{}\n{}",
        out.stdout_text(),
        out.stderr_text()
    );
    eprintln!(
        "deploy of 5 hosts (3 up): {took:?}; {}",
        out.stderr_text().trim()
    );
    let reports = json(&out);
    for name in ["public-0", "public-1", "lan-0"] {
        let r = by_name(&reports, name);
        assert_eq!(r["state"], "up", "{r}");
        let status: Status = serde_json::from_value(r["status"].clone()).expect("a status");
        assert!(status.connections.len() >= 2, "{r}");
        // Secure edges by default, with the secret the deploy made beside the hosts file.
        let secure = status.secure.expect("secure edges");
        assert!(secure.sessions >= 2, "{secure:?}");
    }
    let secret = lab.dir.join("wowtest.secret");
    let mode = std::fs::metadata(&secret).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600, "{}", secret.display());
    let down = by_name(&reports, "down");
    assert_eq!(down["state"], "unreachable", "{down}");
    assert!(
        down["detail"]
            .as_str()
            .unwrap()
            .contains("connection refused (is sshd running"),
        "{down}"
    );
    let refused = by_name(&reports, "refuses");
    assert_eq!(refused["state"], "refused", "{refused}");
    assert!(
        refused["detail"]
            .as_str()
            .unwrap()
            .contains("the server refused key"),
        "{refused}"
    );
    assert_eq!(nodes(&lab), 3, "{:?}", lab.user_processes());

    // --min-up decides failure; a second deploy replaces the running nodes.
    let out = bench(
        &lab,
        &["deploy", "--hosts", &hosts, "--min-up", "4", "--wait", "40"],
    );
    assert!(!out.success());
    let text = out.stdout_text();
    assert!(
        text.starts_with("HOST") && text.contains("unreachable"),
        "{text}"
    );
    assert!(
        out.stderr_text()
            .contains("only 3 of 5 nodes are up (--min-up 4)"),
        "{}",
        out.stderr_text()
    );
    assert_eq!(
        nodes(&lab),
        3,
        "replaced, not doubled: {:?}",
        lab.user_processes()
    );

    // Status as a table and as JSON.
    let out = bench(&lab, &["status", "--hosts", &hosts]);
    assert!(out.success(), "{}", out.stderr_text());
    let table = out.stdout_text();
    eprintln!("wow-bench status:\n{table}");
    assert!(
        table
            .lines()
            .any(|l| l.starts_with("lan-0") && l.contains(" up ")),
        "{table}"
    );
    let reports = json(&bench(&lab, &["status", "--hosts", &hosts, "--json"]));
    assert_eq!(by_name(&reports, "public-1")["state"], "up");

    // Collect: status, config and logs of each host, and a summary.
    let out_dir = lab.dir.join("collected");
    let out = bench(
        &lab,
        &[
            "collect",
            "--hosts",
            &hosts,
            "--out",
            &out_dir.display().to_string(),
        ],
    );
    assert!(out.success(), "{}", out.stderr_text());
    let status: Status =
        serde_json::from_slice(&std::fs::read(out_dir.join("lan-0/status.json")).unwrap()).unwrap();
    assert!(status.correctly_connected);
    let config = std::fs::read_to_string(out_dir.join("lan-0/node.toml")).unwrap();
    let [udp, _] = ipop_api::bootstrap_uris(lab.address("public-0"));
    assert!(config.contains(&udp), "{config}");
    let log = std::fs::read_to_string(out_dir.join("lan-0/node.stderr.log")).unwrap();
    assert!(
        log.contains("DEBUG"),
        "per-host node_args reach the node: {log}"
    );
    let summary: Vec<Value> =
        serde_json::from_slice(&std::fs::read(out_dir.join("summary.json")).unwrap()).unwrap();
    assert_eq!(summary.len(), 5);

    // Stop: graceful leave, then nothing of ours is left on the hosts.
    let out = bench(&lab, &["stop", "--hosts", &hosts, "--json"]);
    assert!(
        out.success(),
        "{}\n{}",
        out.stdout_text(),
        out.stderr_text()
    );
    let reports = json(&out);
    assert_eq!(
        reports.len(),
        3,
        "only the hosts deploy reached: {reports:?}"
    );
    for r in &reports {
        assert_eq!(r["state"], "stopped", "{r}");
        assert!(
            r["detail"]
                .as_str()
                .unwrap()
                .starts_with("the node left the overlay"),
            "{r}"
        );
    }
    assert!(!lab.home.join(".wow-bench").exists());
    assert!(
        !lab.dir.join("hosts.deployed.json").exists(),
        "the record goes with the deployment"
    );
    let gone =
        wow_harness::nodes::wait_for(Duration::from_secs(10), Duration::from_millis(200), || {
            lab.user_processes().is_empty().then_some(())
        });
    assert!(gone.is_some(), "left running: {:?}", lab.user_processes());
    let reports = json(&bench(&lab, &["status", "--hosts", &hosts, "--json"]));
    assert_eq!(by_name(&reports, "public-0")["state"], "absent");
}
