//! `wow-bench run latency --hosts FILE` end to end, from the operator's host against hosts
//! reached over SSH: the physical subject as an unprivileged user, the ipop subject as
//! root (its nodes make TAP devices), one host down throughout.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use wow_harness::results::{CONFIG, RunConfig, SUMMARY, Summary, read_json};
use wow_harness::{Cmd, Host, Output};

use super::lab::{Lab, Sshd, WOW_BENCH};

const TOPOLOGY: &str = r#"
name = "sshrun"
[[public]]
name = "public"
count = 4
[[public]]
name = "ctl"
"#;

/// `wow-bench run latency --trials N --hosts HOSTS --out DIR [EXTRA...]` from the
/// operator's host.
fn latency(lab: &Lab, trials: &str, hosts: &str, dir: &Path, extra: &[&str]) -> Output {
    let dir = dir.display().to_string();
    let mut args = vec![
        "run", "latency", "--trials", trials, "--hosts", hosts, "--out", &dir,
    ];
    args.extend_from_slice(extra);
    lab.bench(&args, Duration::from_secs(240))
}

/// A hosts file: public-0 bootstraps, public-1 and public-2 are clients, public-3 is down.
fn hosts_file(lab: &Lab, file: &str, defaults: &str) -> String {
    let path = lab.dir.join(file);
    std::fs::write(
        &path,
        format!(
            "[defaults]\n{defaults}key = \"id_ed25519\"\nknown_hosts = \"known_hosts\"\n\
             connect_timeout_s = 2\n\
             [[host]]\nname = \"boot\"\naddress = \"{}\"\nroles = [\"bootstrap\"]\n\
             [[host]]\nname = \"a\"\naddress = \"{}\"\n\
             [[host]]\nname = \"b\"\naddress = \"{}\"\n\
             [[host]]\nname = \"down\"\naddress = \"{}\"\n",
            lab.address("public-0"),
            lab.address("public-1"),
            lab.address("public-2"),
            lab.address("public-3"),
        ),
    )
    .unwrap();
    path.display().to_string()
}

/// Checks a finished run's folder: no failed trial, the hosts recorded in config.json.
fn check_run(dir: &Path, out: &Output) {
    assert!(
        out.success(),
        "{}\n{}",
        out.stdout_text(),
        out.stderr_text()
    );
    let summary: Summary = read_json(dir, SUMMARY).unwrap_or_else(|e| panic!("{e:#}"));
    assert_eq!(summary.trials, 3, "{summary:#?}");
    assert_eq!(summary.failed_trials, 0, "{summary:#?}");
    let config: RunConfig = read_json(dir, CONFIG).unwrap_or_else(|e| panic!("{e:#}"));
    // RunConfig keeps the hosts as the runner wrote them: JSON, without a type of its own.
    let hosts = config.hosts.expect("config.json names the hosts");
    let aliases: Vec<(&str, &str)> = hosts["members"]
        .as_array()
        .expect("members")
        .iter()
        .map(|m| (m["name"].as_str().unwrap(), m["alias"].as_str().unwrap()))
        .collect();
    assert_eq!(
        aliases,
        [("boot", "public-0"), ("a", "fleet-0"), ("b", "fleet-1")],
        "{hosts}"
    );
    let skipped = &hosts["skipped"][0];
    assert_eq!(skipped["name"], "down", "{hosts}");
    assert_eq!(skipped["state"], "unreachable", "{hosts}");
    assert!(dir.join("report.md").is_file());
}

/// Whether `path` exists on `host`.
fn exists_on(lab: &Lab, host: &str, path: &str) -> bool {
    lab.host(host)
        .run(&Cmd::new("test").args(["-e", path]), Duration::from_secs(5))
        .unwrap_or_else(|e| panic!("{e}"))
        .success()
}

#[test]
fn netns_ssh_run_latency_on_hosts_physical_and_ipop() {
    let lab = Lab::new(
        TOPOLOGY,
        &[
            ("public-0", Sshd::Accepts),
            ("public-1", Sshd::Accepts),
            ("public-2", Sshd::Accepts),
            ("public-3", Sshd::Stopped),
        ],
    );
    let resolv = std::fs::read("/etc/resolv.conf").unwrap();

    // The physical subject needs no privilege on the hosts.
    let user = hosts_file(&lab, "user.toml", &format!("user = \"{}\"\n", lab.user));
    let dir = lab.dir.join("physical");
    let out = latency(&lab, "3", &user, &dir, &["--subject", "physical"]);
    check_run(&dir, &out);
    assert!(
        out.stderr_text().contains("down: left out"),
        "{}",
        out.stderr_text()
    );
    assert!(
        !lab.home.join(".wow-bench/a-run").exists(),
        "the run's work dir is removed"
    );

    // The ipop subject refuses an unprivileged login with a way out.
    let out = latency(&lab, "3", &user, &lab.dir.join("refused"), &[]);
    assert!(!out.success());
    let text = out.stderr_text();
    assert!(
        text.contains("needs a root login") && text.contains("--subject physical"),
        "{text}"
    );

    // As root it installs ipop-node, runs the trials over the virtual network and
    // leaves nothing behind.
    let work = lab.dir.join("work");
    let root = hosts_file(
        &lab,
        "root.toml",
        &format!(
            "user = \"root\"\nwork_dir = \"{}/{{name}}\"\n",
            work.display()
        ),
    );
    let dir = lab.dir.join("ipop");
    let out = latency(&lab, "3", &root, &dir, &[]);
    check_run(&dir, &out);
    eprintln!(
        "ipop run over SSH:\n{}{}",
        out.stderr_text(),
        out.stdout_text()
    );
    assert!(dir.join("logs").is_dir(), "node logs are collected");
    assert_nothing_left(&lab, &work);

    // Ctrl-C in the middle of a run stops its nodes on the hosts and removes its files.
    let dir = lab.dir.join("interrupted");
    let mut run = lab
        .host("ctl-0")
        .spawn(&Cmd::new(WOW_BENCH).args([
            "run",
            "latency",
            "--trials",
            "1000",
            "--hosts",
            &root,
            "--out",
            &dir.display().to_string(),
        ]))
        .unwrap();
    let trials = dir.join("trials.jsonl");
    let started =
        wow_harness::nodes::wait_for(Duration::from_secs(120), Duration::from_millis(200), || {
            std::fs::read(&trials)
                .ok()
                .filter(|t| !t.is_empty())
                .map(drop)
        });
    assert!(started.is_some(), "no trial ran: {:?}", run.try_wait());
    let pid = Pid::from_raw(run.pid() as i32);
    kill(pid, Signal::SIGINT).expect("SIGINT to the wow-bench we spawned");
    let ended =
        wow_harness::nodes::wait_for(Duration::from_secs(60), Duration::from_millis(200), || {
            run.try_wait().unwrap()
        })
        .expect("wow-bench ends on SIGINT");
    assert_eq!(ended.code, Some(130), "{}", ended.stderr_text());
    assert!(
        ended
            .stderr_text()
            .contains("stopping what this run started"),
        "{}",
        ended.stderr_text()
    );
    assert_nothing_left(&lab, &work);
    assert_eq!(std::fs::read("/etc/resolv.conf").unwrap(), resolv);
}

/// No node, TAP device, `/run/ipop` or work dir of the run is left on the hosts.
fn assert_nothing_left(lab: &Lab, work: &Path) {
    let leftover: Vec<_> = std::fs::read_dir(work)
        .map(|d| d.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    let listing = || {
        let out = Command::new("find").arg(work).output();
        out.map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
            .unwrap_or_default()
    };
    assert!(leftover.is_empty(), "work dirs left: {}", listing());
    for host in ["public-0", "public-1", "public-2"] {
        assert!(!exists_on(lab, host, "/run/ipop"), "{host}: /run/ipop left");
        let out = lab
            .host(host)
            .run(
                &Cmd::new("ip").args(["-o", "link", "show", "type", "tun"]),
                Duration::from_secs(5),
            )
            .unwrap();
        assert!(
            out.stdout_text().trim().is_empty(),
            "{host}: TAP left: {}",
            out.stdout_text()
        );
    }
    // Other tests run nodes too: ours are the ones installed under the lab's folder.
    let ps = std::process::Command::new("ps")
        .args(["-eo", "pid=,args="])
        .output()
        .unwrap();
    let ours: Vec<_> = String::from_utf8_lossy(&ps.stdout)
        .lines()
        .filter(|l| l.contains(&*work.to_string_lossy()))
        .map(str::to_string)
        .collect();
    assert!(ours.is_empty(), "left running: {ours:?}");
}
