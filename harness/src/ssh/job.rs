//! Long-lived remote processes ("jobs"). A job lives in a folder on the host:
//!
//! | file | what |
//! |---|---|
//! | `pid` | the command's PID (`$!` of the shell that started it) |
//! | `start` | its start time from `/proc/PID/stat`, to recognise it later |
//! | `stdin`, `stdout`, `stderr` | its standard streams |
//! | `status` | its exit status, written by the waiting shell when it ends |
//!
//! A job is stopped by its PID only, and only while `/proc/PID/stat` still shows the
//! recorded start time: a PID reused by another process after a reboot is left alone.
//! Shells report death by signal N as status 128+N; such statuses are read as signals.

use std::time::Duration;

use super::host::SshHost;
use crate::host::{Cmd, Host, HostError, Output, Process, shell_quote};

/// Output kept per stream (the tail).
const KEEP: usize = 4 << 20;
/// Time for the small remote scripts on top of any grace period.
const SCRIPT: Duration = Duration::from_secs(20);

/// `start_of PID` prints the start time of PID (field 22 of /proc/PID/stat; the command
/// name may hold spaces, hence the cut after the last ')').
const START_OF: &str =
    r#"start_of() { sed 's/.*) //' "/proc/$1/stat" 2>/dev/null | cut -d' ' -f20; }"#;

/// `sh -c LAUNCH sh DIR LINE`, stdin = the job's stdin: starts LINE in the background
/// with its streams in DIR, waits for its PID, prints "PID START".
const LAUNCH: &str = r#"set -e
d=$1
mkdir -p "$d"
rm -f "$d/pid" "$d/start" "$d/status"
cat > "$d/stdin"
nohup sh -c 'd=$1; eval "$2" <"$d/stdin" >"$d/stdout" 2>"$d/stderr" & echo $! >"$d/pid.new"; mv "$d/pid.new" "$d/pid"; wait $!; echo $? >"$d/status.new"; mv "$d/status.new" "$d/status"' sh "$d" "$2" </dev/null >/dev/null 2>&1 &
i=0
while [ ! -e "$d/pid" ]; do
  i=$((i+1)); [ $i -lt 200 ] || { echo "the job did not start" >&2; exit 1; }
  sleep 0.05
done
pid=$(cat "$d/pid")
start=$(start_of "$pid")
echo "$start" >"$d/start"
echo "$pid $start"
"#;

/// `sh -c STOP sh DIR TENTHS`: SIGTERM, up to TENTHS tenths of a second to exit, then
/// SIGKILL; each only while the PID still has the recorded start time.
const STOP: &str = r#"d=$1; tenths=$2
[ -e "$d/pid" ] || { echo absent; exit 0; }
[ -e "$d/status" ] && { echo exited; exit 0; }
pid=$(cat "$d/pid"); start=$(cat "$d/start" 2>/dev/null)
ours() { [ -n "$start" ] && [ ! -e "$d/status" ] && [ "$(start_of "$pid")" = "$start" ]; }
ours || { echo gone; exit 0; }
if [ "$tenths" -gt 0 ]; then
  kill -TERM "$pid" 2>/dev/null || true
  i=0
  while [ $i -lt "$tenths" ] && ours; do sleep 0.1; i=$((i+1)); done
fi
if ours; then kill -KILL "$pid" 2>/dev/null || true; fi
i=0
while [ $i -lt 30 ] && [ ! -e "$d/status" ]; do sleep 0.1; i=$((i+1)); done
echo stopped
"#;

/// `sh -c STATE sh DIR`: "absent", "exited STATUS", "running PID" or "gone PID" (the
/// process ended without its waiting shell recording a status, e.g. after a reboot).
const STATE: &str = r#"d=$1
[ -e "$d/pid" ] || { echo absent; exit 0; }
if [ -e "$d/status" ]; then echo "exited $(cat "$d/status")"; exit 0; fi
pid=$(cat "$d/pid"); start=$(cat "$d/start" 2>/dev/null)
if [ -n "$start" ] && [ "$(start_of "$pid")" = "$start" ]; then echo "running $pid"; else echo "gone $pid"; fi
"#;

/// A job started on a host: its folder and PID.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Job {
    /// Its folder on the host (absolute).
    pub dir: String,
    /// Its PID on the host.
    pub pid: u32,
}

/// What a job folder says about its process.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JobState {
    /// No job was ever started there.
    Absent,
    /// It runs with this PID.
    Running(u32),
    /// It exited with this status (128+N for signal N).
    Exited(i32),
    /// It is gone without a recorded status (host rebooted, or the waiting shell was
    /// killed).
    Gone,
}

fn script(body: &str) -> String {
    format!("{START_OF}\n{body}")
}

/// Starts `cmd` detached in `dir` on `host`. It outlives this process and the connection.
pub(super) fn launch(host: &SshHost, dir: &str, cmd: &Cmd) -> Result<Job, HostError> {
    let mut line = String::new();
    for (k, v) in &cmd.env {
        line.push_str(&format!("export {k}={} && ", shell_quote(v)));
    }
    line.push_str("exec ");
    line.push_str(
        &Cmd {
            env: Vec::new(),
            stdin: None,
            ..cmd.clone()
        }
        .to_string(),
    );
    let launcher = Cmd::new("sh")
        .args(["-c", &script(LAUNCH), "sh", dir, &line])
        .stdin(cmd.stdin.clone().unwrap_or_default());
    let out = host.check(&launcher, SCRIPT).map_err(|e| match e {
        HostError::Failed { host, output, .. } => HostError::Start {
            host,
            cmd: cmd.to_string(),
            reason: output.stderr_text().trim().to_string(),
        },
        other => other,
    })?;
    let text = out.stdout_text();
    let pid = text
        .split_whitespace()
        .next()
        .and_then(|p| p.parse().ok())
        .ok_or_else(|| HostError::Start {
            host: host.name().to_string(),
            cmd: cmd.to_string(),
            reason: format!("the launcher printed no PID: {text:?}"),
        })?;
    Ok(Job {
        dir: dir.to_string(),
        pid,
    })
}

/// Stops the job in `dir` (SIGTERM, SIGKILL after `grace`), if it still runs.
pub(super) fn stop(host: &SshHost, dir: &str, grace: Duration) -> Result<(), HostError> {
    let tenths = (grace.as_millis() / 100).to_string();
    let cmd = Cmd::new("sh").args(["-c", &script(STOP), "sh", dir, &tenths]);
    host.check(&cmd, grace + SCRIPT).map(drop)
}

/// What `dir` says about its job.
pub(super) fn state(host: &SshHost, dir: &str) -> Result<JobState, HostError> {
    let cmd = Cmd::new("sh").args(["-c", &script(STATE), "sh", dir]);
    let text = host.check(&cmd, SCRIPT)?.stdout_text();
    let mut words = text.split_whitespace();
    let state = match (
        words.next(),
        words.next().and_then(|w| w.parse::<i64>().ok()),
    ) {
        (Some("absent"), _) => JobState::Absent,
        (Some("exited"), Some(s)) => JobState::Exited(i32::try_from(s).unwrap_or(-1)),
        (Some("running"), Some(pid)) => JobState::Running(u32::try_from(pid).unwrap_or(0)),
        (Some("gone"), _) => JobState::Gone,
        _ => {
            return Err(HostError::Start {
                host: host.name().to_string(),
                cmd: format!("job state of {dir}"),
                reason: format!("unexpected answer {text:?}"),
            });
        }
    };
    Ok(state)
}

/// The output of the job in `dir` (tails of stdout and stderr) with `status`.
pub(super) fn output(host: &SshHost, dir: &str, status: Option<i32>) -> Output {
    let tail = |file: &str| {
        host.run(
            &Cmd::new("tail").args(["-c", &KEEP.to_string(), &format!("{dir}/{file}")]),
            SCRIPT,
        )
        .map(|o| o.stdout)
        .unwrap_or_default()
    };
    let (code, signal) = match status {
        Some(s) if s > 128 && s < 128 + 65 => (None, Some(s - 128)),
        Some(s) => (Some(s), None),
        None => (None, None),
    };
    Output {
        code,
        signal,
        timed_out: false,
        stdout: tail("stdout"),
        stderr: tail("stderr"),
    }
}

/// A job started by [`Host::spawn`]: stopped (by PID) when dropped, its folder removed
/// once its output has been read.
#[derive(Debug)]
pub struct SshProcess {
    host: SshHost,
    job: Job,
    /// Exit code and signal, once its output has been read.
    ended: Option<(Option<i32>, Option<i32>)>,
}

impl SshProcess {
    pub(super) fn new(host: SshHost, job: Job) -> SshProcess {
        SshProcess {
            host,
            job,
            ended: None,
        }
    }

    /// The job folder on the host.
    pub fn job(&self) -> &Job {
        &self.job
    }

    /// Its status again (without output) once it has been read.
    fn ended_output(&self) -> Option<Output> {
        self.ended.map(|(code, signal)| Output {
            code,
            signal,
            ..Output::default()
        })
    }

    fn finish(&mut self) -> Result<Output, HostError> {
        let status = match state(&self.host, &self.job.dir)? {
            JobState::Exited(s) => Some(s),
            _ => None,
        };
        let out = output(&self.host, &self.job.dir, status);
        self.ended = Some((out.code, out.signal));
        self.host
            .check(&Cmd::new("rm").args(["-rf", "--", &self.job.dir]), SCRIPT)
            .map(|_| out)
    }
}

impl Process for SshProcess {
    fn pid(&self) -> u32 {
        self.job.pid
    }

    fn try_wait(&mut self) -> Result<Option<Output>, HostError> {
        if let Some(ended) = self.ended_output() {
            return Ok(Some(ended));
        }
        match state(&self.host, &self.job.dir)? {
            JobState::Running(_) => Ok(None),
            _ => self.finish().map(Some),
        }
    }

    fn stop(&mut self, grace: Duration) -> Result<Output, HostError> {
        if let Some(ended) = self.ended_output() {
            return Ok(ended);
        }
        stop(&self.host, &self.job.dir, grace)?;
        self.finish()
    }
}

impl Drop for SshProcess {
    fn drop(&mut self) {
        if self.ended.is_none() {
            let _ = self.stop(Duration::from_secs(1));
        }
    }
}
