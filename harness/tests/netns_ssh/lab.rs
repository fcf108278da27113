//! A namespace testbed whose hosts run real `sshd` daemons that stand in for remote
//! machines: an unprivileged test user with a fresh key, host keys, one `sshd` per host.
//! Everything (namespaces, processes, the user, keys) is removed on drop, also when a
//! test fails.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;
use std::time::Duration;

use nix::sched::{CloneFlags, setns};
use wow_harness::{Cmd, Host, NetnsHost, Output, Process};
use wow_netns::{Options, RunPrefix, Testbed, Topology};

/// The `wow-bench` binary built with these tests.
pub(crate) const WOW_BENCH: &str = env!("CARGO_BIN_EXE_wow-bench");

/// How an `sshd` treats our key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Sshd {
    /// Accepts the test user's key.
    Accepts,
    /// Runs, but accepts no key at all.
    RefusesKeys,
    /// Was started, then stopped: the host is down for SSH.
    Stopped,
}

/// The testbed, the user, the keys and the daemons.
pub(crate) struct Lab {
    bed: Option<Testbed>,
    sshds: Mutex<Vec<Box<dyn Process>>>,
    /// The unprivileged login user.
    pub(crate) user: String,
    /// Its home folder (shared by all hosts: one filesystem).
    pub(crate) home: PathBuf,
    /// Root-only folder with the client key, host key, configs and known_hosts.
    pub(crate) dir: PathBuf,
}

impl Lab {
    /// Builds `topology`, creates the user and starts `sshd` on each `(host, kind)`.
    pub(crate) fn new(topology: &str, sshds: &[(&str, Sshd)]) -> Lab {
        crate::root::require_root();
        let topology = Topology::parse(topology, "test").unwrap_or_else(|e| panic!("{e}"));
        let options = Options {
            prefix: RunPrefix::unique(),
            emulator: Some(crate::emulator::emulator()),
        };
        let bed = Testbed::up(&topology, &options).unwrap_or_else(|e| panic!("testbed: {e}"));
        let tag = bed.prefix().as_str().replace('-', "");
        let user = format!("wowt{}", &tag[tag.len().saturating_sub(10)..]);
        let dir = std::env::temp_dir().join(format!("wow-ssh-{}", bed.prefix().as_str()));
        let mut lab = Lab {
            bed: Some(bed),
            sshds: Mutex::new(Vec::new()),
            home: PathBuf::from(format!("/home/{user}")),
            user,
            dir,
        };
        lab.make_keys();
        lab.make_user();
        for (host, kind) in sshds {
            lab.start_sshd(host, *kind);
        }
        lab
    }

    /// The testbed.
    pub(crate) fn bed(&self) -> &Testbed {
        self.bed.as_ref().expect("testbed")
    }

    /// A namespace host of the testbed.
    pub(crate) fn host(&self, name: &str) -> NetnsHost {
        NetnsHost::new(self.bed(), name).unwrap_or_else(|e| panic!("{e}"))
    }

    /// The first address of `name`.
    pub(crate) fn address(&self, name: &str) -> String {
        self.bed().node(name).expect("node").addresses[0].to_string()
    }

    /// Runs `wow-bench ARGS` on `ctl-0`, the operator's host.
    pub(crate) fn bench(&self, args: &[&str], timeout: Duration) -> Output {
        self.host("ctl-0")
            .run(&Cmd::new(WOW_BENCH).args(args.iter().copied()), timeout)
            .unwrap_or_else(|e| panic!("{e}"))
    }

    /// The test user's private key.
    pub(crate) fn key(&self) -> PathBuf {
        self.dir.join("id_ed25519")
    }

    fn make_keys(&self) {
        fs::create_dir_all(&self.dir).expect("key folder");
        fs::set_permissions(&self.dir, fs::Permissions::from_mode(0o700)).expect("chmod");
        for (file, comment) in [
            ("id_ed25519", "wow-test-client"),
            ("host_ed25519", "wow-test-host"),
        ] {
            run(Command::new("ssh-keygen")
                .args(["-q", "-t", "ed25519", "-N", "", "-C", comment, "-f"])
                .arg(self.dir.join(file)));
        }
        fs::copy(
            self.dir.join("id_ed25519.pub"),
            self.dir.join("root_authorized_keys"),
        )
        .expect("root's key file");
    }

    fn make_user(&self) {
        // useradd takes a lock on /etc/passwd: parallel tests may have to wait for it.
        let mut ok = false;
        for _ in 0..20 {
            let status = Command::new("useradd")
                .args(["-m", "-s", "/bin/sh", "-d"])
                .arg(&self.home)
                .arg(&self.user)
                .status()
                .expect("useradd");
            if status.success() {
                ok = true;
                break;
            }
            std::thread::sleep(Duration::from_millis(300));
        }
        assert!(ok, "useradd {} failed", self.user);
        // A locked password ('!') makes sshd refuse even key logins without PAM.
        run(Command::new("usermod").args(["-p", "*", &self.user]));
        let ssh = self.home.join(".ssh");
        fs::create_dir_all(&ssh).expect("~/.ssh");
        let public = fs::read(self.dir.join("id_ed25519.pub")).expect("public key");
        fs::write(ssh.join("authorized_keys"), public).expect("authorized_keys");
        run(Command::new("chown")
            .args(["-R", &format!("{0}:{0}", self.user)])
            .arg(&ssh));
        fs::set_permissions(&ssh, fs::Permissions::from_mode(0o700)).expect("chmod");
    }

    fn start_sshd(&mut self, name: &str, kind: Sshd) {
        let host = self.host(name);
        let authorized = match kind {
            Sshd::RefusesKeys => "none",
            _ => ".ssh/authorized_keys",
        };
        let config = self.dir.join(format!("sshd-{name}.conf"));
        // Root may log in with the test key only, from a key file of this lab (never the
        // machine's /root/.ssh): the ipop subject of `wow-bench run --hosts` needs root.
        // StrictModes is off because that file's folder is under /tmp.
        let root_keys = self.dir.join("root_authorized_keys");
        let root = match kind {
            Sshd::RefusesKeys => String::new(),
            _ => format!(
                "Match User root\n  AuthorizedKeysFile {}\n",
                root_keys.display()
            ),
        };
        fs::write(
            &config,
            format!(
                "Port 22\nListenAddress 0.0.0.0\nHostKey {}\nPidFile none\nUsePAM no\n\
                 PasswordAuthentication no\nKbdInteractiveAuthentication no\n\
                 PubkeyAuthentication yes\nAuthorizedKeysFile {authorized}\n\
                 AllowUsers {} root\nPermitRootLogin prohibit-password\nStrictModes no\n\
                 AllowTcpForwarding yes\nSubsystem sftp internal-sftp\nLogLevel VERBOSE\n{root}",
                self.dir.join("host_ed25519").display(),
                self.user
            ),
        )
        .expect("sshd config");
        // Privilege separation needs /run/sshd; each host has its own /run.
        host.check(
            &Cmd::new("mkdir").args(["-p", "-m", "0755", "/run/sshd"]),
            Duration::from_secs(5),
        )
        .unwrap_or_else(|e| panic!("{e}"));
        let mut sshd = host
            .spawn(
                &Cmd::new("/usr/sbin/sshd")
                    .args(["-D", "-e", "-f"])
                    .arg(config.display().to_string()),
            )
            .unwrap_or_else(|e| panic!("sshd on {name}: {e}"));
        let listening = wow_harness::nodes::wait_for(
            Duration::from_secs(10),
            Duration::from_millis(50),
            || {
                let out = host
                    .run(
                        &Cmd::new("ss").args(["-Hltn", "sport = :22"]),
                        Duration::from_secs(5),
                    )
                    .ok()?;
                out.stdout_text().contains(":22").then_some(())
            },
        );
        if listening.is_none() {
            let out = sshd.stop(Duration::from_secs(1)).unwrap_or_default();
            panic!("sshd on {name} did not start: {}", out.stderr_text());
        }
        if kind == Sshd::Stopped {
            sshd.stop(Duration::from_secs(2))
                .unwrap_or_else(|e| panic!("{e}"));
        } else {
            self.sshds.lock().expect("sshds").push(sshd);
        }
    }

    /// The PIDs of processes of the test user anywhere on the machine.
    pub(crate) fn user_processes(&self) -> Vec<String> {
        let out = Command::new("ps")
            .args(["-o", "pid=,args=", "-u", &self.user])
            .output()
            .expect("ps");
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(str::to_string)
            .collect()
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        let sshds = std::mem::take(self.sshds.get_mut().unwrap_or_else(|p| p.into_inner()));
        for mut sshd in sshds {
            let _ = sshd.stop(Duration::from_secs(2));
        }
        // Removes the namespaces and ends every process still living in them (by PID).
        drop(self.bed.take());
        for _ in 0..20 {
            let ok = Command::new("userdel")
                .args(["-r", &self.user])
                .stderr(std::process::Stdio::null())
                .status()
                .is_ok_and(|s| s.success());
            if ok || !self.home.exists() {
                break;
            }
            std::thread::sleep(Duration::from_millis(300));
        }
        let _ = fs::remove_dir_all(&self.dir);
    }
}

fn run(cmd: &mut Command) {
    let status = cmd.status().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(status.success(), "{cmd:?} failed");
}

/// Runs `f` on a thread that has joined the network namespace of `host` (our stand-in for
/// the operator's machine: the root namespace has no link to the testbed).
pub(crate) fn from_namespace<T: Send>(lab: &Lab, host: &str, f: impl FnOnce() -> T + Send) -> T {
    let ns =
        Path::new(wow_netns::exec::NETNS_DIR).join(&lab.bed().node(host).expect("node").namespace);
    std::thread::scope(|s| {
        s.spawn(|| {
            let file = fs::File::open(&ns).unwrap_or_else(|e| panic!("{}: {e}", ns.display()));
            // Changes only this thread's namespace.
            setns(&file, CloneFlags::CLONE_NEWNET).unwrap_or_else(|e| panic!("setns: {e}"));
            f()
        })
        .join()
        .unwrap_or_else(|p| std::panic::resume_unwind(p))
    })
}
