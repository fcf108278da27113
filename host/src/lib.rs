//! `wow-host`: the [`Host`] trait, how the harness and the experiments talk to a machine.
//! The same experiment code drives namespace hosts (`wow_harness::NetnsHost`) and, later,
//! SSH hosts; so this trait knows nothing of namespaces, and it is object-safe
//! (`Box<dyn Host>`). It lives in its own crate so that `wow-experiments` can use it
//! while `wow-harness` (which implements it) depends on `wow-experiments`.

use std::fmt;
use std::net::Ipv4Addr;
use std::path::Path;
use std::time::Duration;

/// A command line to run on a host.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Cmd {
    /// The program (looked up in the host's `PATH`).
    pub program: String,
    /// Its arguments.
    pub args: Vec<String>,
    /// Extra environment variables.
    pub env: Vec<(String, String)>,
    /// Bytes written to its standard input (then closed); none means `/dev/null`.
    pub stdin: Option<Vec<u8>>,
}

impl Cmd {
    /// `program` with no arguments.
    pub fn new(program: impl Into<String>) -> Cmd {
        Cmd {
            program: program.into(),
            ..Cmd::default()
        }
    }

    /// Adds one argument.
    pub fn arg(mut self, arg: impl Into<String>) -> Cmd {
        self.args.push(arg.into());
        self
    }

    /// Adds arguments.
    pub fn args<I: IntoIterator<Item = S>, S: Into<String>>(mut self, args: I) -> Cmd {
        self.args.extend(args.into_iter().map(Into::into));
        self
    }

    /// Sets an environment variable.
    pub fn env(mut self, key: impl Into<String>, value: impl Into<String>) -> Cmd {
        self.env.push((key.into(), value.into()));
        self
    }

    /// Feeds `bytes` to standard input.
    pub fn stdin(mut self, bytes: impl Into<Vec<u8>>) -> Cmd {
        self.stdin = Some(bytes.into());
        self
    }
}

impl fmt::Display for Cmd {
    /// The command as a POSIX shell would take it.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (k, v) in &self.env {
            write!(f, "{k}={} ", shell_quote(v))?;
        }
        f.write_str(&shell_quote(&self.program))?;
        for a in &self.args {
            write!(f, " {}", shell_quote(a))?;
        }
        Ok(())
    }
}

/// Quotes `s` for a POSIX shell.
pub fn shell_quote(s: &str) -> String {
    if !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./:=@%+,".contains(c))
    {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', "'\\''"))
    }
}

/// What a finished command left.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Output {
    /// Exit code, if it exited.
    pub code: Option<i32>,
    /// Signal that ended it, if one did.
    pub signal: Option<i32>,
    /// Whether it was stopped for running past its time.
    pub timed_out: bool,
    /// Standard output (the last 4 MiB at most).
    pub stdout: Vec<u8>,
    /// Standard error (the last 4 MiB at most).
    pub stderr: Vec<u8>,
}

impl Output {
    /// Exited with code 0 in time.
    pub fn success(&self) -> bool {
        self.code == Some(0) && !self.timed_out
    }

    /// Standard output as text.
    pub fn stdout_text(&self) -> String {
        String::from_utf8_lossy(&self.stdout).into_owned()
    }

    /// Standard error as text.
    pub fn stderr_text(&self) -> String {
        String::from_utf8_lossy(&self.stderr).into_owned()
    }
}

/// Why a host operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum HostError {
    /// The command could not be started.
    #[error("{host}: cannot start `{cmd}`: {reason}")]
    Start {
        /// The host.
        host: String,
        /// The command.
        cmd: String,
        /// Why.
        reason: String,
    },
    /// The command ran but failed (non-zero exit, signal or timeout).
    #[error("{host}: `{cmd}` failed ({}): {}", describe(.output), String::from_utf8_lossy(&.output.stderr).trim())]
    Failed {
        /// The host.
        host: String,
        /// The command.
        cmd: String,
        /// What it left.
        output: Output,
    },
    /// The command succeeded but printed something it should not have.
    #[error("{host}: `{cmd}` printed unexpected output: {reason}")]
    Output {
        /// The host.
        host: String,
        /// The command.
        cmd: String,
        /// What is wrong with it.
        reason: String,
    },
    /// Local I/O failed (reading a file to copy, signalling a process).
    #[error("{host}: {context}: {source}")]
    Io {
        /// The host.
        host: String,
        /// What was being done.
        context: String,
        /// The cause.
        source: std::io::Error,
    },
}

fn describe(o: &Output) -> String {
    match (o.timed_out, o.code, o.signal) {
        (true, _, _) => "timed out".into(),
        (_, Some(c), _) => format!("exit code {c}"),
        (_, _, Some(s)) => format!("signal {s}"),
        _ => "unknown status".into(),
    }
}

/// A machine (or namespace) that runs commands.
pub trait Host: Send + Sync + fmt::Debug {
    /// Its name (also its hostname).
    fn name(&self) -> &str;

    /// Its underlay addresses; the first is the one other hosts reach it by.
    fn addresses(&self) -> &[Ipv4Addr];

    /// Runs `cmd` to completion, killing it after `timeout`, and returns what it left
    /// whatever its exit status (see [`Host::check`] for failing on non-zero).
    fn run(&self, cmd: &Cmd, timeout: Duration) -> Result<Output, HostError>;

    /// Starts `cmd` in the background; its output is captured until it is stopped.
    fn spawn(&self, cmd: &Cmd) -> Result<Box<dyn Process>, HostError>;

    /// Copies the local file `local` to `remote` on the host (mode 0644, or 0755 if
    /// `local` is executable).
    fn copy_to(&self, local: &Path, remote: &str) -> Result<(), HostError>;

    /// Reads the file `remote` on the host.
    fn read_file(&self, remote: &str) -> Result<Vec<u8>, HostError>;

    /// Runs `cmd` and fails unless it exits 0 in time.
    fn check(&self, cmd: &Cmd, timeout: Duration) -> Result<Output, HostError> {
        let output = self.run(cmd, timeout)?;
        if output.success() {
            Ok(output)
        } else {
            Err(HostError::Failed {
                host: self.name().to_string(),
                cmd: cmd.to_string(),
                output,
            })
        }
    }
}

/// A long-lived process on a host. Dropping it stops it.
pub trait Process: Send + fmt::Debug {
    /// Its process id on the host.
    fn pid(&self) -> u32;

    /// The output so far and its status, if it has exited.
    fn try_wait(&mut self) -> Result<Option<Output>, HostError>;

    /// Stops it by PID (SIGTERM, then SIGKILL after `grace`) and returns its output.
    fn stop(&mut self, grace: Duration) -> Result<Output, HostError>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_display_as_shell_lines() {
        let cmd = Cmd::new("iperf3")
            .args(["-c", "198.18.0.5"])
            .arg("it's")
            .env("A", "b c");
        assert_eq!(cmd.to_string(), "A='b c' iperf3 -c 198.18.0.5 'it'\\''s'");
        assert_eq!(shell_quote(""), "''");
    }
}
