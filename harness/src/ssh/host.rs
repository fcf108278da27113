//! [`SshHost`]: a [`Host`] over a small pool of SSH sessions.

use std::io::{Read, Write};
use std::net::Ipv4Addr;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ssh2::OpenFlags;

use super::connect::{Conn, connect, millis};
use super::exec::{self, Broken};
use super::job::{self, Job, JobState, SshProcess};
use super::{Error, Target};
use crate::host::{Cmd, Host, HostError, Output, Process};

/// Idle sessions kept per host.
const IDLE: usize = 4;
/// libssh2's limit for one blocking SFTP step.
const SFTP_STEP: Duration = Duration::from_secs(60);
/// The exit code POSIX shells give a command they cannot find or execute.
const NOT_FOUND: i32 = 127;
/// Marker file in a work dir made by us, so that only such folders are ever removed.
pub(crate) const MARKER: &str = ".wow-bench";

/// Whether this process has stopped starting jobs ([`stop_spawning`]).
static STOPPING: AtomicBool = AtomicBool::new(false);
/// Jobs of this process being launched right now, on any host.
static LAUNCHING: AtomicUsize = AtomicUsize::new(0);

/// Makes every later [`Host::spawn`] on an [`SshHost`] fail, then waits (up to
/// `timeout`) for the launches already under way to finish, so that a cleanup that
/// lists the job folders next sees every job this process started. For a signal
/// handler: the interrupted run's own thread may be starting a job at that moment.
/// Returns whether no launch is still under way.
pub fn stop_spawning(timeout: Duration) -> bool {
    STOPPING.store(true, Ordering::SeqCst);
    let deadline = Instant::now() + timeout;
    while LAUNCHING.load(Ordering::SeqCst) > 0 {
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    true
}

/// One launch under way, counted in [`LAUNCHING`] until dropped.
struct Launch;

impl Launch {
    /// Counts a launch, unless [`stop_spawning`] was called. (Count first, then check:
    /// with sequentially consistent operations the stopper either sees the count or
    /// the launch sees the flag.)
    fn begin() -> Option<Launch> {
        LAUNCHING.fetch_add(1, Ordering::SeqCst);
        let launch = Launch;
        (!STOPPING.load(Ordering::SeqCst)).then_some(launch)
    }
}

impl Drop for Launch {
    fn drop(&mut self) {
        LAUNCHING.fetch_sub(1, Ordering::SeqCst);
    }
}

/// A machine reached over SSH. Cheap to clone (clones share the session pool).
#[derive(Debug, Clone)]
pub struct SshHost {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    name: String,
    target: Target,
    addresses: Vec<Ipv4Addr>,
    home: String,
    work_dir: String,
    idle: Mutex<Vec<Conn>>,
    jobs: AtomicU64,
}

impl SshHost {
    /// Logs into `target` and finds the home folder. `name` names the host in messages
    /// (and is its [`Host::name`]); `work_dir` is where this host keeps job folders and
    /// deployed files (relative paths are under the home folder).
    pub fn connect(name: &str, target: &Target, work_dir: &str) -> Result<SshHost, Error> {
        let conn = connect(target)?;
        let fail = |reason: String| Error::Session {
            target: target.label(),
            reason,
        };
        let probe = Cmd::new("sh").args(["-c", r#"printf '%s\n%s\n' "$HOME" "$SSH_CONNECTION""#]);
        let out = exec::run(&conn, &probe, target.connect_timeout)
            .map_err(|b| fail(format!("the session broke: {}", b.reason)))?;
        if !out.success() {
            return Err(fail(format!(
                "`sh` does not run there ({}): the login shell must run POSIX `sh`",
                out.stderr_text().trim()
            )));
        }
        let text = out.stdout_text();
        let mut lines = text.lines();
        let home = lines.next().unwrap_or_default().to_string();
        if !home.starts_with('/') {
            return Err(fail(format!("$HOME is {home:?}, not an absolute path")));
        }
        // SSH_CONNECTION = "client_ip client_port server_ip server_port".
        let seen = lines
            .next()
            .and_then(|l| l.split_whitespace().nth(2))
            .and_then(|a| a.parse::<Ipv4Addr>().ok());
        let addresses = target
            .address
            .parse::<Ipv4Addr>()
            .ok()
            .or(seen)
            .into_iter()
            .collect();
        let work_dir = if work_dir.starts_with('/') {
            work_dir.trim_end_matches('/').to_string()
        } else {
            format!("{home}/{}", work_dir.trim_end_matches('/'))
        };
        Ok(SshHost {
            inner: Arc::new(Inner {
                name: name.to_string(),
                target: target.clone(),
                addresses,
                home,
                work_dir,
                idle: Mutex::new(vec![conn]),
                jobs: AtomicU64::new(0),
            }),
        })
    }

    /// Where and how it logs in.
    pub fn target(&self) -> &Target {
        &self.inner.target
    }

    /// The login user's home folder on the host.
    pub fn home(&self) -> &str {
        &self.inner.home
    }

    /// Its work dir (absolute): job folders of [`Host::spawn`] go to `WORK/proc/`.
    pub fn work_dir(&self) -> &str {
        &self.inner.work_dir
    }

    /// Creates the work dir with its marker file (which lets [`SshHost::remove_work_dir`]
    /// remove it later).
    pub fn prepare_work_dir(&self) -> Result<(), HostError> {
        let d = self.work_dir();
        let cmd = Cmd::new("sh").args([
            "-c",
            r#"mkdir -p "$1/proc" && touch "$1/$2""#,
            "sh",
            d,
            MARKER,
        ]);
        self.check(&cmd, Duration::from_secs(20)).map(drop)
    }

    /// Removes what we placed in the work dir: `proc/`, each of `entries`, and the
    /// marker, then the folder itself if nothing else is left in it (and its parent, if
    /// that is an empty `.wow-bench`). Nothing happens without the marker, so a work dir
    /// we did not make is never touched. Returns whether there was one.
    pub fn remove_work_dir(&self, entries: &[&str]) -> Result<bool, HostError> {
        let script = r#"w=$1; m=$2; shift 2
[ -e "$w/$m" ] || exit 3
for e in proc "$@"; do rm -rf -- "${w:?}/$e"; done
rm -f -- "$w/$m"
rmdir -- "$w" 2>/dev/null || { echo "kept $w: it holds files wow-bench did not place" >&2; exit 4; }
p=$(dirname -- "$w")
if [ "$(basename -- "$p")" = .wow-bench ]; then rmdir -- "$p" 2>/dev/null; fi
exit 0"#;
        let cmd = Cmd::new("sh")
            .args(["-c", script, "sh", self.work_dir(), MARKER])
            .args(entries.iter().copied());
        let out = self.run(&cmd, Duration::from_secs(60))?;
        match out.code {
            Some(0) => Ok(true),
            Some(3) => Ok(false),
            _ => Err(HostError::Failed {
                host: self.name().to_string(),
                cmd: format!("remove {}", self.work_dir()),
                output: out,
            }),
        }
    }

    /// Stops every job this process started with [`Host::spawn`] on the host (found by
    /// their folders `WORK/proc/<our PID>-N`, so a fresh login can do it, e.g. from a
    /// signal handler while the spawning login is busy), each as [`SshHost::stop_job`].
    pub fn stop_spawned(&self, grace: Duration) -> Result<(), HostError> {
        let list = Cmd::new("sh").args([
            "-c",
            r#"for d in "$1"/proc/"$2"-*; do [ -d "$d" ] && echo "$d"; done; exit 0"#,
            "sh",
            self.work_dir(),
            &std::process::id().to_string(),
        ]);
        let out = self.check(&list, Duration::from_secs(20))?;
        for dir in out.stdout_text().lines() {
            self.stop_job(dir, grace)?;
        }
        Ok(())
    }

    /// Starts `cmd` detached, with its PID, output and exit status kept in the folder
    /// `dir` (see [`Job`]). Unlike [`Host::spawn`] it is not stopped when anything here
    /// is dropped: it runs until [`SshHost::stop_job`], so another `wow-bench` process
    /// can find it by its folder.
    pub fn launch(&self, dir: &str, cmd: &Cmd) -> Result<Job, HostError> {
        job::launch(self, dir, cmd)
    }

    /// Stops the job in `dir` by its PID: SIGTERM, then SIGKILL after `grace`. Does
    /// nothing if it has exited, or if its PID now names another process.
    pub fn stop_job(&self, dir: &str, grace: Duration) -> Result<(), HostError> {
        job::stop(self, dir, grace)
    }

    /// What the folder `dir` says about its job.
    pub fn job_state(&self, dir: &str) -> Result<JobState, HostError> {
        job::state(self, dir)
    }

    /// Runs `f` on a session of the pool (a new one if none is idle). A session that
    /// broke is dropped; if it came from the pool and broke before anything ran, `f`
    /// runs once more on a new session.
    fn with_conn<T>(
        &self,
        what: &dyn Fn() -> String,
        f: impl Fn(&Conn) -> Result<T, Broken>,
    ) -> Result<T, HostError> {
        let pooled = self.lock_idle().pop();
        let from_pool = pooled.is_some();
        let conn = match pooled {
            Some(c) => c,
            None => self.fresh(what)?,
        };
        let (conn, result) = match f(&conn) {
            Err(Broken { started: false, .. }) if from_pool => {
                drop(conn);
                let conn = self.fresh(what)?;
                let r = f(&conn);
                (conn, r)
            }
            r => (conn, r),
        };
        match result {
            Ok(v) => {
                let mut idle = self.lock_idle();
                if idle.len() < IDLE {
                    idle.push(conn);
                }
                Ok(v)
            }
            Err(Broken { reason, .. }) => Err(HostError::Io {
                host: self.name().to_string(),
                context: format!("{}: the SSH session broke", what()),
                source: std::io::Error::other(reason),
            }),
        }
    }

    fn fresh(&self, what: &dyn Fn() -> String) -> Result<Conn, HostError> {
        connect(&self.inner.target).map_err(|e| HostError::Start {
            host: self.name().to_string(),
            cmd: what(),
            reason: e.to_string(),
        })
    }

    fn lock_idle(&self) -> std::sync::MutexGuard<'_, Vec<Conn>> {
        self.inner.idle.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl Host for SshHost {
    fn name(&self) -> &str {
        &self.inner.name
    }

    fn addresses(&self) -> &[Ipv4Addr] {
        &self.inner.addresses
    }

    fn run(&self, cmd: &Cmd, timeout: Duration) -> Result<Output, HostError> {
        let out = self.with_conn(&|| cmd.to_string(), |conn| exec::run(conn, cmd, timeout))?;
        if out.code == Some(NOT_FOUND) && out.stdout.is_empty() {
            return Err(HostError::Start {
                host: self.name().to_string(),
                cmd: cmd.to_string(),
                reason: out.stderr_text().trim().to_string(),
            });
        }
        Ok(out)
    }

    fn spawn(&self, cmd: &Cmd) -> Result<Box<dyn Process>, HostError> {
        let _launch = Launch::begin().ok_or_else(|| HostError::Start {
            host: self.name().to_string(),
            cmd: cmd.to_string(),
            reason: "the run is stopping: no new job is started".into(),
        })?;
        let n = self.inner.jobs.fetch_add(1, Ordering::Relaxed);
        let dir = format!("{}/proc/{}-{n}", self.work_dir(), std::process::id());
        let job = job::launch(self, &dir, cmd)?;
        Ok(Box::new(SshProcess::new(self.clone(), job)))
    }

    fn copy_to(&self, local: &Path, remote: &str) -> Result<(), HostError> {
        let io = |context: String, source| HostError::Io {
            host: self.name().to_string(),
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
        let mode = if exec { 0o755 } else { 0o644 };
        let n = self.inner.jobs.fetch_add(1, Ordering::Relaxed);
        let tmp = format!("{remote}.wow-tmp-{}-{n}", std::process::id());
        let what = || format!("copy {} to {remote}", local.display());
        self.with_conn(&what, |conn| {
            conn.session.set_blocking(true);
            conn.session.set_timeout(millis(SFTP_STEP));
            let sftp = conn.session.sftp().map_err(Broken::before)?;
            let mut file = sftp.open_mode(
                Path::new(&tmp),
                OpenFlags::WRITE | OpenFlags::CREATE | OpenFlags::TRUNCATE,
                mode,
                ssh2::OpenType::File,
            )?;
            file.write_all(&bytes)?;
            file.close()?;
            Ok(())
        })?;
        // chmod (the umask may have narrowed the mode), then rename into place: a running
        // binary keeps its old inode.
        let finish = Cmd::new("sh").args([
            "-c",
            r#"chmod "$1" "$2" && mv -f -- "$2" "$3""#,
            "sh",
            &format!("{mode:o}"),
            &tmp,
            remote,
        ]);
        self.check(&finish, Duration::from_secs(30)).map(drop)
    }

    fn read_file(&self, remote: &str) -> Result<Vec<u8>, HostError> {
        let what = || format!("read {remote}");
        let read = self.with_conn(&what, |conn| {
            conn.session.set_blocking(true);
            conn.session.set_timeout(millis(SFTP_STEP));
            let sftp = conn.session.sftp().map_err(Broken::before)?;
            match sftp.open(Path::new(remote)) {
                Ok(mut file) => {
                    let mut bytes = Vec::new();
                    file.read_to_end(&mut bytes)?;
                    Ok(Ok(bytes))
                }
                Err(e) => Ok(Err(e)),
            }
        })?;
        read.map_err(|e| HostError::Io {
            host: self.name().to_string(),
            context: format!("cannot read {remote}"),
            source: e.into(),
        })
    }
}
