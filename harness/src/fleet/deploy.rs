//! `deploy`: installs `ipop-node` and a generated configuration on every host of a hosts
//! file, starts the bootstrap hosts' nodes first and the others joining through them,
//! and waits until each node reports itself correctly connected. A host that cannot be
//! reached or fails is reported with the reason and skipped.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result, bail};
use ipop_api::config::NodeConfig;

use super::parallel::Parallel;
use super::record::{Placed, Record};
use super::report::{HostReport, Layout, State, observe};
use super::{HostSpec, HostsFile, OverlaySettings, Role};
use crate::host::{Cmd, Host};
use crate::nodes::wait_for;
use crate::ssh::SshHost;

/// Grace for a node of an earlier deploy that is replaced.
const REPLACE_GRACE: Duration = Duration::from_secs(5);
/// How often a node's status is polled while waiting.
const POLL: Duration = Duration::from_millis(300);

/// How to deploy.
#[derive(Debug, Clone)]
pub struct DeployOptions {
    /// The local `ipop-node` binary to install (it must run on the hosts).
    pub binary: PathBuf,
    /// How long nodes may take to become correctly connected (and, separately, the
    /// bootstrap nodes to answer on their status socket).
    pub wait: Duration,
    /// Concurrency, retries, progress bar.
    pub parallel: Parallel,
}

/// What a deploy did.
#[derive(Debug, Clone)]
pub struct Deployment {
    /// One report per host, in hosts-file order.
    pub reports: Vec<HostReport>,
    /// From start to the last node connected (or the wait running out).
    pub elapsed: Duration,
}

impl Deployment {
    /// Hosts whose node is correctly connected.
    pub fn up(&self) -> usize {
        self.reports.iter().filter(|r| r.state == State::Up).count()
    }
}

/// A host on its way through the deploy.
struct Slot<'a> {
    spec: &'a HostSpec,
    host: Option<SshHost>,
    /// Where its files went, once it has any (kept when a later step fails).
    placed: Option<String>,
    report: Option<HostReport>,
    pid: Option<u32>,
}

impl Slot<'_> {
    fn drop_out(&mut self, d: Dropped) {
        if d.placed.is_some() {
            self.placed = d.placed;
        }
        self.fail(d.state, d.detail);
    }

    fn fail(&mut self, state: State, detail: String) {
        self.host = None;
        self.report = Some(HostReport::new(self.spec, state, detail));
    }
}

/// Deploys to every host of `file`; the record beside it lists where files went.
pub fn deploy(file: &HostsFile, opts: &DeployOptions) -> Result<Deployment> {
    let started = Instant::now();
    if !opts.binary.is_file() {
        bail!(
            "no ipop-node binary at {}: build it (cargo build --release) or pass --binary PATH",
            opts.binary.display()
        );
    }
    let secret = overlay_secret(&file.overlay)?;
    let settings = Settings {
        overlay: &file.overlay,
        secret: secret.as_deref(),
    };
    let record_path = Record::path_for(&file.path);
    let mut record = Record::load(&record_path)?;

    let mut slots: Vec<Slot<'_>> = file
        .hosts
        .iter()
        .map(|spec| Slot {
            spec,
            host: None,
            placed: None,
            report: None,
            pid: None,
        })
        .collect();
    record.deployed_at = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());

    install_bootstrap(&mut slots, opts);
    remember(&mut record, &slots);
    record.save(&record_path)?;
    start_bootstrap(&mut slots, &settings, opts);
    start_others(&mut slots, &settings, opts);
    remember(&mut record, &slots);
    record.save(&record_path)?;
    wait_joined(&mut slots, opts);
    let elapsed = started.elapsed();
    Ok(Deployment {
        reports: slots
            .into_iter()
            .map(|s| s.report.expect("every host has a report"))
            .collect(),
        elapsed,
    })
}

/// Step 1: on the bootstrap hosts, log in, make the work dir, install the binary and
/// check it runs.
fn install_bootstrap(slots: &mut [Slot<'_>], opts: &DeployOptions) {
    let par = &opts.parallel;
    let boot: Vec<usize> = (0..slots.len())
        .filter(|&i| slots[i].spec.has(Role::Bootstrap))
        .collect();
    let installed = par.map(
        "install",
        &boot,
        |&i| slots[i].spec.name.clone(),
        |&i| install(slots[i].spec, &opts.binary, par),
    );
    for (&i, r) in boot.iter().zip(installed) {
        match r {
            Ok(host) => {
                slots[i].placed = Some(host.work_dir().to_string());
                slots[i].host = Some(host);
            }
            Err(dropped) => slots[i].drop_out(dropped),
        }
    }
}

/// Step 2: the bootstrap nodes (each told of the others), until their status sockets
/// answer.
fn start_bootstrap(slots: &mut [Slot<'_>], settings: &Settings<'_>, opts: &DeployOptions) {
    let par = &opts.parallel;
    let boot = live(slots, |s| s.has(Role::Bootstrap));
    let uris: Vec<(String, Vec<String>)> = boot.iter().map(|&i| uris_of(&slots[i])).collect();
    start_all(slots, &boot, settings, par, |me| {
        uris.iter()
            .filter(|(n, _)| n != me)
            .flat_map(|(_, u)| u.clone())
            .collect()
    });
    let started_boot = live(slots, |s| s.has(Role::Bootstrap));
    let answering = par.map(
        "bootstrap",
        &started_boot,
        |&i| slots[i].spec.name.clone(),
        |&i| answers(slots[i].host.as_ref().expect("live slot"), opts.wait),
    );
    for (i, r) in started_boot.into_iter().zip(answering) {
        if let Err((state, detail)) = r {
            slots[i].fail(state, detail);
        }
    }
}

/// Whether the node on `host` answers on its status socket within `wait`: Ok once it
/// does, else the state it was found in and why.
fn answers(host: &SshHost, wait: Duration) -> std::result::Result<(), (State, String)> {
    let layout = Layout::of(host);
    wait_for(wait, POLL, || {
        let (state, detail, status) = observe(host, &layout);
        match state {
            State::Up | State::Joining if status.is_some() => Some(Ok(())),
            State::Joining => None,
            _ => Some(Err((state, detail))),
        }
    })
    .unwrap_or_else(|| {
        Err((
            State::Failed,
            format!("the node's status socket did not answer within {wait:?}"),
        ))
    })
}

/// Step 3: the other hosts, each installed and started as soon as it is reached,
/// joining through the bootstrap nodes that run (a slow or down host does not hold the
/// others back).
fn start_others(slots: &mut [Slot<'_>], settings: &Settings<'_>, opts: &DeployOptions) {
    let par = &opts.parallel;
    let boot_uris: Vec<String> = live(slots, |s| s.has(Role::Bootstrap))
        .into_iter()
        .flat_map(|i| uris_of(&slots[i]).1)
        .collect();
    let rest: Vec<usize> = (0..slots.len())
        .filter(|&i| !slots[i].spec.has(Role::Bootstrap))
        .collect();
    if boot_uris.is_empty() {
        for i in rest {
            slots[i].fail(
                State::Failed,
                "not started: no bootstrap node is running".into(),
            );
        }
        return;
    }
    let brought = par.map(
        "start",
        &rest,
        |&i| slots[i].spec.name.clone(),
        |&i| {
            let spec = slots[i].spec;
            let host = install(spec, &opts.binary, par)?;
            match start(&host, spec, settings, &boot_uris) {
                Ok(pid) => Ok((host, pid)),
                Err(e) => Err(Dropped {
                    state: State::Failed,
                    detail: format!("cannot start ipop-node: {e:#}"),
                    placed: Some(host.work_dir().to_string()),
                }),
            }
        },
    );
    for (&i, r) in rest.iter().zip(brought) {
        match r {
            Ok((host, pid)) => {
                slots[i].placed = Some(host.work_dir().to_string());
                slots[i].host = Some(host);
                slots[i].pid = Some(pid);
            }
            Err(dropped) => slots[i].drop_out(dropped),
        }
    }
}

/// Step 4: waits until every running node is correctly connected (or `opts.wait` has
/// passed), and reports each host.
fn wait_joined(slots: &mut [Slot<'_>], opts: &DeployOptions) {
    let running = live(slots, |_| true);
    let deadline = Instant::now() + opts.wait;
    let observed = opts.parallel.map(
        "join",
        &running,
        |&i| slots[i].spec.name.clone(),
        |&i| {
            let host = slots[i].host.as_ref().expect("live slot");
            let layout = Layout::of(host);
            let mut last = (State::Failed, String::new(), None);
            wait_for(
                deadline.saturating_duration_since(Instant::now()),
                POLL,
                || {
                    last = observe(host, &layout);
                    (last.0 != State::Joining).then_some(())
                },
            );
            last
        },
    );
    for (i, (state, detail, status)) in running.into_iter().zip(observed) {
        let slot = &mut slots[i];
        let mut report = HostReport::new(slot.spec, state, detail);
        report.status = status;
        slot.report = Some(report);
    }
}

/// Indices of the slots still in the running that match `filter`.
fn live(slots: &[Slot<'_>], filter: impl Fn(&HostSpec) -> bool) -> Vec<usize> {
    (0..slots.len())
        .filter(|&i| slots[i].host.is_some() && filter(slots[i].spec))
        .collect()
}

/// The transport URIs other nodes reach `slot`'s node by.
fn uris_of(slot: &Slot<'_>) -> (String, Vec<String>) {
    let ip = slot
        .host
        .as_ref()
        .and_then(|h| h.addresses().first().copied());
    let uris = ip.map_or_else(Vec::new, |ip| {
        ipop_api::uris(ip, slot.spec.udp_port, slot.spec.tcp_port).to_vec()
    });
    (slot.spec.name.clone(), uris)
}

/// Records every host that got files (even if a later step failed there).
fn remember(record: &mut Record, slots: &[Slot<'_>]) {
    for slot in slots {
        if let Some(work_dir) = &slot.placed {
            record.put(Placed {
                name: slot.spec.name.clone(),
                target: slot.spec.target.label(),
                work_dir: work_dir.clone(),
                pid: slot.pid,
            });
        }
    }
}

/// Why a host dropped out, and where its files went if it got any.
pub(super) struct Dropped {
    pub(super) state: State,
    pub(super) detail: String,
    placed: Option<String>,
}

/// Logs in, makes the work dir, installs the binary and checks that it runs there.
pub(super) fn install(spec: &HostSpec, binary: &Path, par: &Parallel) -> Result<SshHost, Dropped> {
    let host = par.connect(spec).map_err(|e| Dropped {
        state: State::of_login(&e),
        detail: e.to_string(),
        placed: None,
    })?;
    let fail = |detail: String| Dropped {
        state: State::Failed,
        detail,
        placed: Some(host.work_dir().to_string()),
    };
    host.prepare_work_dir().map_err(|e| {
        fail(format!(
            "cannot make the work dir {} ({e}): set work_dir to a folder {} may write",
            host.work_dir(),
            spec.target.user
        ))
    })?;
    let layout = Layout::of(&host);
    host.copy_to(binary, &layout.binary())
        .map_err(|e| fail(format!("cannot copy ipop-node: {e}")))?;
    let out = host
        .run(
            &Cmd::new(layout.binary()).arg("--version"),
            Duration::from_secs(20),
        )
        .map_err(|e| fail(e.to_string()))?;
    if !out.success() {
        return Err(fail(format!(
            "the ipop-node binary does not run there ({}): build it for that host's \
             architecture and C library and pass --binary",
            out.stderr_text().trim()
        )));
    }
    Ok(host)
}

/// Starts the nodes of `which` in parallel; `bootstrap(name)` gives each its URIs.
fn start_all(
    slots: &mut [Slot<'_>],
    which: &[usize],
    settings: &Settings<'_>,
    par: &Parallel,
    bootstrap: impl Fn(&str) -> Vec<String> + Sync,
) {
    let results = par.map(
        "start",
        which,
        |&i| slots[i].spec.name.clone(),
        |&i| {
            let slot = &slots[i];
            let host = slot.host.as_ref().expect("live slot");
            start(host, slot.spec, settings, &bootstrap(&slot.spec.name))
        },
    );
    for (&i, r) in which.iter().zip(results) {
        match r {
            Ok(pid) => slots[i].pid = Some(pid),
            Err(e) => slots[i].fail(State::Failed, format!("cannot start ipop-node: {e:#}")),
        }
    }
}

/// What every node of the deploy gets.
struct Settings<'a> {
    overlay: &'a OverlaySettings,
    /// The overlay secret (64 hex digits), unless the hosts file says `insecure`.
    secret: Option<&'a str>,
}

/// The overlay's admission secret (64 hex digits) from the hosts file's secret file,
/// which the first deploy makes (owner-only); None with `insecure = true`.
fn overlay_secret(overlay: &OverlaySettings) -> Result<Option<String>> {
    let Some(path) = &overlay.secret_file else {
        return Ok(None);
    };
    match std::fs::read_to_string(path) {
        Ok(text) => {
            let secret = text.trim();
            if secret.len() != 64 || !secret.bytes().all(|b| b.is_ascii_hexdigit()) {
                bail!(
                    "{}: not an overlay secret (64 hexadecimal digits); delete it to make a \
                     new one (every host must then be deployed again)",
                    path.display()
                );
            }
            Ok(Some(secret.to_owned()))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            use std::io::Write;
            use std::os::unix::fs::OpenOptionsExt;
            let secret = crate::nodes::new_secret()?;
            std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(path)
                .and_then(|mut f| writeln!(f, "{secret}"))
                .with_context(|| format!("cannot write the overlay secret {}", path.display()))?;
            Ok(Some(secret))
        }
        Err(e) => bail!("cannot read the overlay secret {}: {e}", path.display()),
    }
}

/// Writes the host's config and (re)starts its node; returns the node's PID.
fn start(
    host: &SshHost,
    spec: &HostSpec,
    settings: &Settings<'_>,
    bootstrap: &[String],
) -> Result<u32> {
    let (overlay, secret) = (settings.overlay, settings.secret);
    let layout = Layout::of(host);
    let secret_file = format!("{}/overlay.secret", layout.state());
    // The node's file parser (with its line-numbered errors) reads this.
    let config = NodeConfig {
        overlay: overlay.name.clone(),
        udp_listen: format!("0.0.0.0:{}", spec.udp_port),
        tcp_listen: format!("0.0.0.0:{}", spec.tcp_port),
        bootstrap: bootstrap.to_vec(),
        address_file: format!("{}/address", layout.state()).into(),
        control_socket: layout.socket().into(),
        log_level: overlay.log_level.clone(),
        overlay_secret: secret.map(|_| secret_file.clone().into()),
        key_file: secret.map(|_| format!("{}/key", layout.state()).into()),
    };
    let text = format!(
        "# Generated by `wow-bench deploy` for host {}; flags: {:?}.\n{}",
        spec.name,
        spec.node_args,
        toml::to_string(&config).context("cannot write the node config")?
    );
    // A node of an earlier deploy is replaced.
    host.stop_job(&layout.job(), REPLACE_GRACE)?;
    let write = Cmd::new("sh")
        .args([
            "-c",
            r#"mkdir -p -m 0700 "$1" && rm -f "$2" && cat > "$3""#,
            "sh",
            &layout.state(),
            &layout.socket(),
            &layout.config(),
        ])
        .stdin(text);
    host.check(&write, Duration::from_secs(20))?;
    if let Some(secret) = secret {
        let write = Cmd::new("sh")
            .args(["-c", r#"umask 077 && cat > "$1""#, "sh", &secret_file])
            .stdin(format!("{secret}\n"));
        host.check(&write, Duration::from_secs(20))?;
    }
    let cmd = Cmd::new(layout.binary())
        .args(["--config", &layout.config()])
        .args(spec.node_args.iter().cloned());
    Ok(host.launch(&layout.job(), &cmd)?.pid)
}
