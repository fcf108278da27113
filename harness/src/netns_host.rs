//! [`Host`] for a node of a namespace testbed: commands run with the node's network
//! namespace, hostname, `/etc/hosts` and private `/run` (see `wow_netns::exec::Enter`).

use std::io::{Read, Write};
use std::net::Ipv4Addr;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use wow_netns::exec::Enter;
use wow_netns::state::{ProcessRecord, RunDir, RunRecord};
use wow_netns::{Node, RunPrefix, Testbed};

use crate::host::{Cmd, Host, HostError, Output, Process};

/// Output kept per stream (the tail).
const KEEP: usize = 4 << 20;
/// How long to wait for pipes to close after the process exited.
const DRAIN: Duration = Duration::from_secs(1);

/// A node of a running testbed, as a [`Host`].
#[derive(Debug, Clone)]
pub struct NetnsHost {
    node: Node,
    run: RunDir,
}

impl NetnsHost {
    /// The node `name` of a testbed this process built.
    pub fn new(bed: &Testbed, name: &str) -> Result<NetnsHost, wow_netns::Error> {
        Ok(NetnsHost {
            node: bed.node(name)?.clone(),
            run: bed.run_dir().clone(),
        })
    }

    /// A machine of `bed` ([`wow_netns::machine::Machine`]), valid while it lives.
    pub fn machine(bed: &Testbed, machine: &wow_netns::machine::Machine) -> NetnsHost {
        NetnsHost {
            node: machine.node().clone(),
            run: bed.run_dir().clone(),
        }
    }

    /// The node `name` of a run recorded on disk (built by another process).
    pub fn from_record(record: &RunRecord, name: &str) -> Result<NetnsHost, wow_netns::Error> {
        let prefix = RunPrefix::new(&record.prefix)?;
        let node = record
            .nodes
            .iter()
            .find(|n| n.name == name)
            .ok_or_else(|| wow_netns::Error::NoSuchNode {
                prefix: prefix.clone(),
                node: name.to_string(),
            })?;
        Ok(NetnsHost {
            node: node.clone(),
            run: RunDir::of(&prefix),
        })
    }

    /// The node.
    pub fn node(&self) -> &Node {
        &self.node
    }

    /// A [`Command`] for `cmd` that enters this host when spawned (stdio left as is).
    pub fn command(&self, cmd: &Cmd) -> Result<Command, HostError> {
        let mut c = Command::new(&cmd.program);
        c.args(&cmd.args).envs(cmd.env.iter().map(|(k, v)| (k, v)));
        let run_dir = self
            .run
            .node_run_dir(&self.node.name)
            .map_err(|e| self.start_error(cmd, e))?;
        Enter::host(&self.node.namespace, &self.node.name, &run_dir)
            .apply(&mut c)
            .map_err(|e| self.start_error(cmd, e))?;
        Ok(c)
    }

    fn start_error(&self, cmd: &Cmd, e: impl std::fmt::Display) -> HostError {
        HostError::Start {
            host: self.node.name.clone(),
            cmd: cmd.to_string(),
            reason: e.to_string(),
        }
    }

    fn start(&self, cmd: &Cmd) -> Result<Running, HostError> {
        let mut c = self.command(cmd)?;
        c.stdin(if cmd.stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        });
        c.stdout(Stdio::piped()).stderr(Stdio::piped());
        let mut child = c.spawn().map_err(|e| self.start_error(cmd, e))?;
        if let Some(record) = ProcessRecord::of(child.id()) {
            // Best effort: `clean` also finds processes by namespace.
            let _ = self.run.record_process(record);
        }
        if let (Some(bytes), Some(mut pipe)) = (cmd.stdin.clone(), child.stdin.take()) {
            std::thread::spawn(move || pipe.write_all(&bytes));
        }
        let stdout = Capture::start(child.stdout.take());
        let stderr = Capture::start(child.stderr.take());
        Ok(Running {
            host: self.node.name.clone(),
            child,
            stdout,
            stderr,
            status: None,
            timed_out: false,
        })
    }
}

impl Host for NetnsHost {
    fn name(&self) -> &str {
        &self.node.name
    }

    fn addresses(&self) -> &[Ipv4Addr] {
        &self.node.addresses
    }

    fn run(&self, cmd: &Cmd, timeout: Duration) -> Result<Output, HostError> {
        let mut running = self.start(cmd)?;
        let deadline = Instant::now() + timeout;
        while running.poll()?.is_none() {
            if Instant::now() >= deadline {
                running.timed_out = true;
                return running.stop(Duration::ZERO);
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        Ok(running.output())
    }

    fn spawn(&self, cmd: &Cmd) -> Result<Box<dyn Process>, HostError> {
        Ok(Box::new(self.start(cmd)?))
    }

    fn copy_to(&self, local: &Path, remote: &str) -> Result<(), HostError> {
        let io = |context: String, source| HostError::Io {
            host: self.node.name.clone(),
            context,
            source,
        };
        let bytes =
            std::fs::read(local).map_err(|e| io(format!("cannot read {}", local.display()), e))?;
        let exec = std::fs::metadata(local)
            .map_err(|e| io(format!("cannot stat {}", local.display()), e))?
            .permissions()
            .mode()
            & 0o111
            != 0;
        let script = format!(
            "cat > \"$1\" && chmod {} \"$1\"",
            if exec { "0755" } else { "0644" }
        );
        let cmd = Cmd::new("sh")
            .args(["-c", script.as_str(), "sh", remote])
            .stdin(bytes);
        self.check(&cmd, Duration::from_secs(60)).map(drop)
    }

    fn read_file(&self, remote: &str) -> Result<Vec<u8>, HostError> {
        self.check(
            &Cmd::new("cat").args(["--", remote]),
            Duration::from_secs(60),
        )
        .map(|o| o.stdout)
    }
}

/// A started process and the threads that drain its output.
#[derive(Debug)]
struct Running {
    host: String,
    child: Child,
    stdout: Capture,
    stderr: Capture,
    status: Option<ExitStatus>,
    timed_out: bool,
}

impl Running {
    fn poll(&mut self) -> Result<Option<ExitStatus>, HostError> {
        if self.status.is_none() {
            self.status = self.child.try_wait().map_err(|e| HostError::Io {
                host: self.host.clone(),
                context: format!("waiting for pid {}", self.child.id()),
                source: e,
            })?;
        }
        Ok(self.status)
    }

    fn output(&mut self) -> Output {
        let status = self.status;
        Output {
            code: status.and_then(|s| s.code()),
            signal: status.and_then(|s| s.signal()),
            timed_out: self.timed_out,
            stdout: self.stdout.take(),
            stderr: self.stderr.take(),
        }
    }

    /// The child is not reaped yet, so the PID is still ours.
    fn signal(&self, sig: Signal) {
        if let Ok(pid) = i32::try_from(self.child.id()) {
            let _ = kill(Pid::from_raw(pid), sig);
        }
    }
}

impl Process for Running {
    fn pid(&self) -> u32 {
        self.child.id()
    }

    fn try_wait(&mut self) -> Result<Option<Output>, HostError> {
        Ok(self.poll()?.map(|_| self.output()))
    }

    fn stop(&mut self, grace: Duration) -> Result<Output, HostError> {
        if self.poll()?.is_none() {
            if !grace.is_zero() {
                self.signal(Signal::SIGTERM);
                let deadline = Instant::now() + grace;
                while self.poll()?.is_none() && Instant::now() < deadline {
                    std::thread::sleep(Duration::from_millis(10));
                }
            }
            if self.poll()?.is_none() {
                self.signal(Signal::SIGKILL);
                self.status = Some(self.child.wait().map_err(|e| HostError::Io {
                    host: self.host.clone(),
                    context: format!("waiting for pid {}", self.child.id()),
                    source: e,
                })?);
            }
        }
        Ok(self.output())
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.stop(Duration::from_secs(1));
    }
}

/// The tail of one output stream, filled by a thread.
#[derive(Debug)]
struct Capture {
    buf: Arc<Mutex<Vec<u8>>>,
    thread: Option<JoinHandle<()>>,
}

impl Capture {
    fn start<R: Read + Send + 'static>(pipe: Option<R>) -> Capture {
        let buf = Arc::new(Mutex::new(Vec::new()));
        let thread = pipe.map(|mut pipe| {
            let buf = Arc::clone(&buf);
            std::thread::spawn(move || {
                let mut chunk = [0u8; 8192];
                while let Ok(n) = pipe.read(&mut chunk) {
                    if n == 0 {
                        break;
                    }
                    if let Ok(mut b) = buf.lock() {
                        b.extend_from_slice(&chunk[..n]);
                        if b.len() > KEEP {
                            let cut = b.len() - KEEP;
                            b.drain(..cut);
                        }
                    }
                }
            })
        });
        Capture { buf, thread }
    }

    /// Waits briefly for the stream to close (a daemonised grandchild may hold it), then
    /// takes what was read.
    fn take(&mut self) -> Vec<u8> {
        if let Some(t) = self.thread.take() {
            let deadline = Instant::now() + DRAIN;
            while !t.is_finished() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(5));
            }
            if t.is_finished() {
                let _ = t.join();
            }
        }
        self.buf
            .lock()
            .map(|mut b| std::mem::take(&mut *b))
            .unwrap_or_default()
    }
}
