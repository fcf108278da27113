//! Nothing of the project is left behind: after a dropped or panicking testbed, and
//! after a killed `wow-bench topo up` followed by `wow-bench clean`, and after Ctrl-C
//! (SIGINT) in the middle of `wow-bench run`.

use std::process::Command;
use std::time::Duration;

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use wow_harness::results::{CONFIG, RunConfig, read_json};
use wow_harness::{Cmd, Host};
use wow_netns::RunPrefix;
use wow_netns::cleanup::{Scope, leftovers};
use wow_netns::state::RunDir;

use super::{WOW_BENCH, host, parse, up};

const SMALL: &str = "name = \"c\"\n[[site]]\nname = \"s\"\nhosts = 2\nnat = \"symmetric\"\n\
                     [[public]]\nname = \"public\"\n[[wan]]\nsite = \"s\"\ndelay_ms = 1\n";

fn ip_netns_list() -> String {
    String::from_utf8_lossy(
        &Command::new("ip")
            .args(["netns", "list"])
            .output()
            .unwrap()
            .stdout,
    )
    .into_owned()
}

#[test]
fn netns_cleanup_on_drop_and_panic() {
    let bed = up(&parse(SMALL));
    let prefix = bed.prefix().clone();
    let emulator = bed.record().emulator.expect("the topology has a WAN link");
    let sleeper = host(&bed, "s-0")
        .spawn(&Cmd::new("sleep").arg("600"))
        .unwrap();
    let pid = sleeper.pid();
    std::mem::forget(sleeper); // as if the harness lost track of it
    assert!(ip_netns_list().contains(&prefix.namespace("s-0")));
    drop(bed);
    assert!(
        leftovers(&Scope::Run(prefix.clone())).is_empty(),
        "{:?}",
        leftovers(&Scope::Run(prefix.clone()))
    );
    assert!(!emulator.is_alive(), "the emulator was stopped");
    let stopped = wow_netns::state::ProcessRecord::of(pid).is_none_or(|p| !p.is_alive());
    assert!(stopped, "the host process was stopped");

    let seen = std::sync::Mutex::new(None);
    let result = std::panic::catch_unwind(|| {
        let bed = up(&parse(SMALL));
        *seen.lock().unwrap() = Some(bed.prefix().clone());
        panic!("test panic with run {} up", bed.prefix());
    });
    assert!(result.is_err());
    let prefix = seen
        .lock()
        .unwrap()
        .clone()
        .expect("the testbed came up before the panic");
    assert!(
        leftovers(&Scope::Run(prefix.clone())).is_empty(),
        "{:?}",
        leftovers(&Scope::Run(prefix))
    );
}

#[test]
fn netns_cleanup_after_killed_topo_up() {
    let prefix = RunPrefix::unique();
    // A run killed while it builds...
    let mut child = Command::new(WOW_BENCH)
        .args([
            "topo",
            "up",
            "../topologies/planetlab-118.toml",
            "--prefix",
            prefix.as_str(),
        ])
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(700));
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(
        !leftovers(&Scope::Run(prefix.clone())).is_empty(),
        "the killed run left something to clean"
    );
    let status = Command::new(WOW_BENCH)
        .args(["clean", "--prefix", prefix.as_str()])
        .status()
        .unwrap();
    assert!(status.success());
    assert!(
        leftovers(&Scope::Run(prefix.clone())).is_empty(),
        "{:?}",
        leftovers(&Scope::Run(prefix.clone()))
    );

    // ...and a finished `topo up` whose shell went away, with a process on a host.
    let status = Command::new(WOW_BENCH)
        .args([
            "topo",
            "up",
            "nat-matrix:symmetric,firewall",
            "--prefix",
            prefix.as_str(),
        ])
        .stdout(std::process::Stdio::null())
        .status()
        .unwrap();
    assert!(status.success());
    let mut exec = Command::new(WOW_BENCH)
        .args([
            "topo",
            "exec",
            "--prefix",
            prefix.as_str(),
            "a-0",
            "--",
            "sleep",
            "600",
        ])
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(300));
    exec.kill().unwrap();
    exec.wait().unwrap();
    let record = RunDir::of(&prefix).load().unwrap();
    assert!(ip_netns_list().contains(&prefix.namespace("a-0")));
    let status = Command::new(WOW_BENCH)
        .args(["clean", "--prefix", prefix.as_str()])
        .status()
        .unwrap();
    assert!(status.success());
    assert!(leftovers(&Scope::Run(prefix.clone())).is_empty());
    assert!(!ip_netns_list().contains(&prefix.namespace_prefix()));
    assert!(record.emulator.is_none_or(|p| !p.is_alive()));
}

#[test]
fn netns_cleanup_on_sigint_of_a_run() {
    let out = std::env::temp_dir().join(format!("wow-sigint-{}", RunPrefix::unique().as_str()));
    let mut run = Command::new(WOW_BENCH)
        .args([
            "run",
            "latency",
            "--topology",
            "../topologies/lan.toml",
            "--trials",
            "100000",
        ])
        .arg("--out")
        .arg(&out)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Wait until the ipop subject's nodes run and trials are under way.
    let trials = out.join("trials.jsonl");
    let started =
        wow_harness::nodes::wait_for(Duration::from_secs(120), Duration::from_millis(200), || {
            std::fs::metadata(&trials).ok().filter(|m| m.len() > 0)
        });
    let config: RunConfig = read_json(&out, CONFIG).unwrap_or_else(|e| panic!("{e:#}"));
    let prefix = RunPrefix::new(&config.prefix).unwrap();
    assert!(
        started.is_some() && !leftovers(&Scope::Run(prefix.clone())).is_empty(),
        "the run got under way"
    );
    let pid = Pid::from_raw(run.id() as i32);
    kill(pid, Signal::SIGINT).expect("SIGINT to the child we spawned");
    let status = run.wait().unwrap();
    let mut stderr = String::new();
    std::io::Read::read_to_string(run.stderr.as_mut().unwrap(), &mut stderr).unwrap();
    assert_eq!(status.code(), Some(130), "{stderr}");
    assert!(
        leftovers(&Scope::Run(prefix.clone())).is_empty(),
        "{:?}",
        leftovers(&Scope::Run(prefix.clone()))
    );
    assert!(!ip_netns_list().contains(&prefix.namespace_prefix()));
    let _ = std::fs::remove_dir_all(&out);
}
