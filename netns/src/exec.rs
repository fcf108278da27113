//! Running programs inside a namespace of the testbed.
//!
//! [`Enter`] prepares a [`Command`] so that the child, between fork and exec, joins a
//! network namespace and, for hosts, gets its own UTS namespace with the node's
//! hostname and a private mount namespace in which `/etc/hosts`, `/etc/hostname`,
//! `/etc/resolv.conf` and `/run` are the node's own (like `ip netns exec`, without
//! remounting `/sys`). A DHCP client's script that rewrites `/etc/resolv.conf` (ISC
//! `dhclient-script` does) thus writes the node's copy, never the machine's.

use std::ffi::{CStr, CString};
use std::fs::File;
use std::io::Write;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use nix::mount::{MsFlags, mount};
use nix::sched::{CloneFlags, setns, unshare};
use nix::unistd::sethostname;

use crate::error::{Error, Result};

/// An absent `mount` argument (source, file system type or data).
const NONE: Option<&CStr> = None;

/// Where `ip netns` keeps its namespace files.
pub const NETNS_DIR: &str = "/run/netns";
/// Where per-namespace `/etc` files live (`/etc/netns/<ns>/hosts`).
pub const ETC_NETNS_DIR: &str = "/etc/netns";

/// The files of `/etc` each host has its own copy of, in `/etc/netns/<ns>/`.
pub const ETC_FILES: [&str; 3] = ["hosts", "hostname", "resolv.conf"];

/// How a child process enters a node of the testbed.
#[derive(Debug, Clone)]
pub struct Enter {
    netns: PathBuf,
    hostname: Option<String>,
    binds: Vec<(PathBuf, PathBuf)>,
}

impl Enter {
    /// Only the network namespace `ns` (for the testbed's own tools).
    pub fn netns(ns: &str) -> Enter {
        Enter {
            netns: Path::new(NETNS_DIR).join(ns),
            hostname: None,
            binds: Vec::new(),
        }
    }

    /// The full view of a host: network namespace `ns`, hostname, `/etc/netns/<ns>/*`
    /// over `/etc/*` ([`ETC_FILES`]), and `run_dir` over `/run`.
    pub fn host(ns: &str, hostname: &str, run_dir: &Path) -> Enter {
        let etc = Path::new(ETC_NETNS_DIR).join(ns);
        let binds = ETC_FILES
            .into_iter()
            .map(|f| (etc.join(f), Path::new("/etc").join(f)))
            .chain(std::iter::once((
                run_dir.to_path_buf(),
                PathBuf::from("/run"),
            )))
            .collect();
        Enter {
            netns: Path::new(NETNS_DIR).join(ns),
            hostname: Some(hostname.to_string()),
            binds,
        }
    }

    /// Makes `cmd` enter this node when spawned. Fails if the namespace is gone.
    pub fn apply(&self, cmd: &mut Command) -> Result<()> {
        let fd = File::open(&self.netns)
            .map_err(|e| Error::io(format!("cannot open namespace {}", self.netns.display()), e))?;
        let hostname = self.hostname.clone().unwrap_or_default();
        let cstr = |p: &Path| {
            CString::new(p.as_os_str().as_encoded_bytes()).map_err(|_| Error::State {
                path: p.to_path_buf(),
                reason: "path holds a NUL byte".into(),
            })
        };
        let binds: Vec<(CString, CString)> = self
            .binds
            .iter()
            .map(|(s, d)| Ok((cstr(s)?, cstr(d)?)))
            .collect::<Result<_>>()?;
        let uts = self.hostname.is_some();
        // SAFETY: the closure only makes async-signal-safe system calls on data prepared
        // before the fork, as `pre_exec` requires.
        unsafe {
            cmd.pre_exec(move || {
                setns(&fd, CloneFlags::CLONE_NEWNET)?;
                if uts {
                    unshare(CloneFlags::CLONE_NEWUTS)?;
                    sethostname(&hostname)?;
                }
                if !binds.is_empty() {
                    unshare(CloneFlags::CLONE_NEWNS)?;
                    let flags = MsFlags::MS_REC | MsFlags::MS_SLAVE;
                    mount(NONE, c"/", NONE, flags, NONE)?;
                    for (src, dst) in &binds {
                        mount(
                            Some(src.as_c_str()),
                            dst.as_c_str(),
                            NONE,
                            MsFlags::MS_BIND,
                            NONE,
                        )?;
                    }
                }
                Ok(())
            });
        }
        Ok(())
    }
}

/// Runs `program args` in namespace `ns` with `stdin`, and returns its stdout; a
/// non-zero exit is an [`Error::Command`] carrying stderr.
pub(crate) fn run_in(
    ns: &str,
    program: &str,
    args: &[&str],
    stdin: Option<&str>,
) -> Result<String> {
    let mut cmd = Command::new(program);
    cmd.args(args).stdin(if stdin.is_some() {
        Stdio::piped()
    } else {
        Stdio::null()
    });
    cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
    Enter::netns(ns).apply(&mut cmd)?;
    run(
        cmd,
        &format!("{program} {} (in {ns})", args.join(" ")),
        stdin,
    )
}

/// Runs `program args` in the root namespace: only `ip netns add/delete`, which name
/// namespaces and configure nothing in the root namespace.
pub(crate) fn run_root(program: &str, args: &[&str], stdin: Option<&str>) -> Result<String> {
    let mut cmd = Command::new(program);
    cmd.args(args).stdin(if stdin.is_some() {
        Stdio::piped()
    } else {
        Stdio::null()
    });
    cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
    run(cmd, &format!("{program} {}", args.join(" ")), stdin)
}

fn run(mut cmd: Command, what: &str, stdin: Option<&str>) -> Result<String> {
    let mut child = cmd.spawn().map_err(|e| {
        Error::io(
            format!("cannot start {what} (is it installed? run scripts/install-deps.sh)"),
            e,
        )
    })?;
    if let (Some(text), Some(mut pipe)) = (stdin, child.stdin.take()) {
        pipe.write_all(text.as_bytes())
            .map_err(|e| Error::io(format!("writing to {what}"), e))?;
    }
    let out = child
        .wait_with_output()
        .map_err(|e| Error::io(format!("waiting for {what}"), e))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        let mut what = what.to_string();
        if what.len() > 200 {
            what.truncate(200);
            what.push_str("...");
        }
        Err(Error::Command {
            what,
            status: out.status.to_string(),
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        })
    }
}
