//! `SshHost` against real `sshd` daemons: everything an experiment does through `Host`.

use std::time::Duration;

use nix::sys::signal::Signal;
use wow_harness::ssh::{self, Auth, HostKeyCheck, HostKeyPolicy, JobState, SshHost, Target};
use wow_harness::{Cmd, Host, HostError};

use super::host_contract::{alive, host_contract, text};
use super::lab::{Lab, Sshd, from_namespace};

const TOPOLOGY: &str = r#"
name = "sshapi"
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
count = 3
[[public]]
name = "ctl"
"#;

fn target(lab: &Lab, host: &str) -> Target {
    Target {
        address: lab.address(host),
        port: 22,
        user: lab.user.clone(),
        auth: Auth::KeyFile(lab.key()),
        jump: None,
        host_key: HostKeyPolicy {
            known_hosts: lab.dir.join("known_hosts"),
            check: HostKeyCheck::AcceptNew,
        },
        connect_timeout: Duration::from_secs(2),
    }
}

/// An `ssh-agent` of the test's own, ended by PID (and its folder removed) when dropped.
struct Agent(std::process::Child, std::path::PathBuf);

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
        let _ = std::fs::remove_dir_all(&self.1);
    }
}

#[test]
fn netns_ssh_host_runs_spawns_copies_and_reads() {
    // The agent runs (and SSH_AUTH_SOCK is set) before any other thread exists.
    let agent_dir = std::env::temp_dir().join(format!("wow-ssh-agent-{}", std::process::id()));
    std::fs::create_dir_all(&agent_dir).unwrap();
    let sock = agent_dir.join("agent.sock");
    let _agent = Agent(
        std::process::Command::new("ssh-agent")
            .arg("-D")
            .arg("-a")
            .arg(&sock)
            .stdout(std::process::Stdio::null())
            .spawn()
            .expect("ssh-agent"),
        agent_dir.clone(),
    );
    // SAFETY: no other thread of this test process runs yet.
    unsafe { std::env::set_var("SSH_AUTH_SOCK", &sock) };
    let lab = Lab::new(
        TOPOLOGY,
        &[
            ("public-0", Sshd::Accepts),
            ("public-1", Sshd::RefusesKeys),
            ("public-2", Sshd::Stopped),
            ("lan-gw", Sshd::Accepts),
            ("lan-0", Sshd::Accepts),
        ],
    );
    from_namespace(&lab, "ctl-0", || {
        let h = SshHost::connect("p0", &target(&lab, "public-0"), ".wow-bench/p0").unwrap();
        assert_eq!(h.name(), "p0");
        assert_eq!(h.addresses()[0].to_string(), lab.address("public-0"));
        assert_eq!(h.home(), lab.home.display().to_string());
        assert_eq!(
            h.work_dir(),
            format!("{}/.wow-bench/p0", lab.home.display())
        );
        assert_eq!(text(&h, Cmd::new("hostname")).trim(), "public-0");
        assert_ne!(
            text(&h, Cmd::new("id").arg("-u")).trim(),
            "0",
            "an unprivileged login"
        );
        h.prepare_work_dir().unwrap();

        host_contract(&h, h.work_dir());
        assert!(
            matches!(h.read_file("/nonexistent/wow"), Err(HostError::Io { .. })),
            "over SFTP a file that cannot be read is an I/O error"
        );
        // Every command the contract ran, on time or past it, was stopped by PID.
        assert!(
            !lab.user_processes().iter().any(|p| p.contains("sleep")),
            "{:?}",
            lab.user_processes()
        );

        // A job whose PID no longer names the process it started is never signalled.
        let dir = format!("{}/guarded", h.work_dir());
        let job = h.launch(&dir, &Cmd::new("sleep").arg("600")).unwrap();
        assert_eq!(h.job_state(&dir).unwrap(), JobState::Running(job.pid));
        let start = h.read_file(&format!("{dir}/start")).unwrap();
        text(
            &h,
            Cmd::new("sh").args(["-c", "echo 1 > \"$1/start\"", "sh", &dir]),
        );
        h.stop_job(&dir, Duration::from_millis(200)).unwrap();
        assert!(
            alive(&h, job.pid),
            "a process with another start time was signalled"
        );
        assert_eq!(h.job_state(&dir).unwrap(), JobState::Gone);
        text(
            &h,
            Cmd::new("sh")
                .args(["-c", "cat > \"$1/start\"", "sh", &dir])
                .stdin(start),
        );
        h.stop_job(&dir, Duration::from_secs(2)).unwrap();
        assert!(!alive(&h, job.pid));
        assert_eq!(
            h.job_state(&dir).unwrap(),
            JobState::Exited(128 + Signal::SIGTERM as i32)
        );

        // Cleanup removes exactly what we placed.
        assert!(h.remove_work_dir(&["guarded"]).unwrap());
        assert!(!lab.home.join(".wow-bench").exists());
        assert!(
            !h.remove_work_dir(&[]).unwrap(),
            "no marker, nothing removed"
        );

        // Behind a firewall: only through the jump host.
        let mut direct = target(&lab, "lan-0");
        direct.connect_timeout = Duration::from_millis(500);
        assert!(matches!(
            SshHost::connect("lan-0", &direct, "w"),
            Err(ssh::Error::Connect { .. })
        ));
        let jumped = Target {
            jump: Some(Box::new(target(&lab, "lan-gw"))),
            ..target(&lab, "lan-0")
        };
        let lan = SshHost::connect("lan-0", &jumped, "w").unwrap();
        assert_eq!(text(&lan, Cmd::new("hostname")).trim(), "lan-0");
        assert_eq!(lan.addresses()[0].to_string(), lab.address("lan-0"));
        let big = vec![7u8; 3 << 20];
        let local = lab.dir.join("big.bin");
        std::fs::write(&local, &big).unwrap();
        lan.copy_to(&local, "big.bin").unwrap();
        assert_eq!(lan.read_file("big.bin").unwrap().len(), big.len());
        text(&lan, Cmd::new("rm").arg("big.bin"));

        // Failures say why, and what to do.
        let refused = SshHost::connect("p1", &target(&lab, "public-1"), "w").unwrap_err();
        assert!(
            matches!(refused, ssh::Error::Auth { .. })
                && refused.to_string().contains("refused key"),
            "{refused}"
        );
        assert!(!refused.is_transient());
        let down = SshHost::connect("p2", &target(&lab, "public-2"), "w").unwrap_err();
        assert!(
            down.to_string().contains("connection refused") && down.is_transient(),
            "{down}"
        );
        let no_key = Target {
            auth: Auth::KeyFile(lab.dir.join("missing")),
            ..target(&lab, "public-0")
        };
        let e = SshHost::connect("p0", &no_key, "w").unwrap_err();
        assert!(
            e.to_string()
                .contains("does not exist: create one with `ssh-keygen"),
            "{e}"
        );
        let strict = Target {
            host_key: HostKeyPolicy {
                known_hosts: lab.dir.join("empty_known_hosts"),
                check: HostKeyCheck::Strict,
            },
            ..target(&lab, "public-0")
        };
        let e = SshHost::connect("p0", &strict, "w").unwrap_err();
        assert!(e.to_string().contains("unknown host key"), "{e}");
        // The host key recorded on first contact is now enforced: another server at the
        // same address (lan-gw's key is the same file here, so fake a change instead).
        let known = std::fs::read_to_string(lab.dir.join("known_hosts")).unwrap();
        let other = std::fs::read_to_string(lab.dir.join("id_ed25519.pub")).unwrap();
        let key = other.split_whitespace().nth(1).unwrap();
        std::fs::write(
            lab.dir.join("changed_known_hosts"),
            format!("{} ssh-ed25519 {key}\n", lab.address("public-0")),
        )
        .unwrap();
        assert!(known.contains(&lab.address("public-0")), "{known}");
        let changed = Target {
            host_key: HostKeyPolicy {
                known_hosts: lab.dir.join("changed_known_hosts"),
                check: HostKeyCheck::AcceptNew,
            },
            ..target(&lab, "public-0")
        };
        let e = SshHost::connect("p0", &changed, "w").unwrap_err();
        assert!(e.to_string().contains("HOST KEY CHANGED"), "{e}");

        // Agent authentication: an empty agent is refused with advice, a loaded one works.
        let via_agent = Target {
            auth: Auth::Agent,
            ..target(&lab, "public-0")
        };
        let ready =
            wow_harness::nodes::wait_for(Duration::from_secs(5), Duration::from_millis(20), || {
                sock.exists().then_some(())
            });
        assert!(ready.is_some(), "ssh-agent did not make {}", sock.display());
        let e = SshHost::connect("p0", &via_agent, "w").unwrap_err();
        assert!(e.to_string().contains("ssh-agent holds no key"), "{e}");
        let added = std::process::Command::new("ssh-add")
            .arg("-q")
            .arg(lab.key())
            .status()
            .unwrap();
        assert!(added.success());
        let h = SshHost::connect("p0", &via_agent, "w").unwrap();
        assert_eq!(text(&h, Cmd::new("hostname")).trim(), "public-0");
    });
}
