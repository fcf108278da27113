//! Running one command on a session: stdout and stderr read separately (non-blocking,
//! so neither stream can stall the other), a deadline, and on timeout a SIGKILL to the
//! PID the remote shell reported before it `exec`ed the command.

use std::io::{ErrorKind, Read, Write};
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;
use ssh2::{BlockDirections, Channel};

use super::connect::{Conn, millis};
use super::tunnel::wait;
use crate::host::{Cmd, Output, shell_quote};

/// Output kept per stream (the tail), as for namespace hosts.
const KEEP: usize = 4 << 20;
/// How long to wait for the exit status after a timeout kill.
const AFTER_KILL: Duration = Duration::from_secs(3);
/// Limit for the small blocking steps (opening a channel, sending stdin, the kill).
const STEP: Duration = Duration::from_secs(15);
/// libssh2's "would block" in non-blocking mode.
const EAGAIN: i32 = -37;
/// How long one wait for the socket lasts at most.
const POLL: Duration = Duration::from_millis(50);

/// Why an operation on a session failed; the session is then not reused.
#[derive(Debug)]
pub(super) struct Broken {
    /// What failed.
    pub(super) reason: String,
    /// Whether the host may have acted already (if not, retrying is safe).
    pub(super) started: bool,
}

impl Broken {
    /// A failure before anything ran on the host.
    pub(super) fn before(e: impl std::fmt::Display) -> Broken {
        Broken {
            reason: e.to_string(),
            started: false,
        }
    }
}

impl From<ssh2::Error> for Broken {
    fn from(e: ssh2::Error) -> Broken {
        Broken {
            reason: e.to_string(),
            started: true,
        }
    }
}

impl From<std::io::Error> for Broken {
    fn from(e: std::io::Error) -> Broken {
        Broken {
            reason: e.to_string(),
            started: true,
        }
    }
}

/// The shell line for `cmd`: report the shell's PID on the first stdout line, then
/// become the command (so that PID is the command's).
pub(super) fn line(cmd: &Cmd) -> String {
    let mut line = String::from("echo $$ && ");
    for (k, v) in &cmd.env {
        line.push_str(&format!("export {k}={} && ", shell_quote(v)));
    }
    line.push_str("exec ");
    line.push_str(&shell_quote(&cmd.program));
    for a in &cmd.args {
        line.push(' ');
        line.push_str(&shell_quote(a));
    }
    if cmd.stdin.is_none() {
        line.push_str(" </dev/null");
    }
    line
}

/// Runs `cmd` to completion or `timeout` and returns what it left.
pub(super) fn run(conn: &Conn, cmd: &Cmd, timeout: Duration) -> Result<Output, Broken> {
    let session = &conn.session;
    session.set_blocking(true);
    session.set_timeout(millis(STEP));
    let mut channel = session.channel_session().map_err(Broken::before)?;
    channel.exec(&line(cmd)).map_err(Broken::before)?;

    // Stdin is written as the window allows while output is read, so a command that
    // writes before it reads cannot stall on a full window.
    let deadline = Instant::now() + timeout;
    session.set_blocking(false);
    let mut stdin: &[u8] = cmd.stdin.as_deref().unwrap_or_default();
    let mut stdin_open = true;
    let mut out = Streams::default();
    let mut timed_out = false;
    let drained = loop {
        let mut moved = out.read(&mut channel)?;
        if stdin_open {
            moved |= feed(&mut channel, &mut stdin, &mut stdin_open);
        }
        if channel.eof() && !moved {
            break true;
        }
        if Instant::now() >= deadline {
            timed_out = true;
            break false;
        }
        if !moved {
            let outbound = matches!(
                session.block_directions(),
                BlockDirections::Outbound | BlockDirections::Both
            );
            wait(&[(conn.socket(), outbound)], POLL);
        }
    };
    if !drained {
        kill(conn, &mut channel, &mut out)?;
    }
    session.set_blocking(true);
    session.set_timeout(millis(STEP));
    if !channel.eof() {
        // Killed, yet its output is still open (a child of it holds it): give up on the
        // exit status rather than wait.
        let _ = channel.close();
        return Ok(Output {
            code: None,
            signal: None,
            timed_out,
            stdout: out.stdout,
            stderr: out.stderr,
        });
    }
    channel.close()?;
    channel.wait_close()?;
    let signal = channel
        .exit_signal()?
        .exit_signal
        .and_then(|name| signal_number(&name));
    let code = if signal.is_some() || timed_out {
        None
    } else {
        Some(channel.exit_status()?)
    };
    Ok(Output {
        code,
        signal,
        timed_out,
        stdout: out.stdout,
        stderr: out.stderr,
    })
}

/// Writes as much of `stdin` as the window takes, and sends EOF once all of it is
/// written (then `open` turns false); true if any byte went out.
fn feed(channel: &mut Channel, stdin: &mut &[u8], open: &mut bool) -> bool {
    let mut moved = false;
    match channel.write(stdin) {
        Ok(n) => {
            *stdin = &stdin[n..];
            moved = n > 0;
        }
        Err(e) if e.kind() == ErrorKind::WouldBlock => {}
        // The command exited without reading all of it.
        Err(_) => *stdin = &[],
    }
    if stdin.is_empty() {
        match channel.send_eof() {
            Ok(()) => *open = false,
            Err(e) if e.code() == ssh2::ErrorCode::Session(EAGAIN) => {}
            // The command is gone already; its output tells the rest.
            Err(_) => *open = false,
        }
    }
    moved
}

/// Past the deadline: kills the command by the PID it reported, then collects what is
/// left of its output for up to [`AFTER_KILL`].
fn kill(conn: &Conn, channel: &mut Channel, out: &mut Streams) -> Result<(), Broken> {
    let session = &conn.session;
    session.set_blocking(true);
    if let Some(pid) = out.pid() {
        let mut kill = session.channel_session()?;
        kill.exec(&format!("kill -KILL {pid}"))?;
        kill.send_eof()?;
        kill.wait_eof()?;
        kill.wait_close()?;
    }
    session.set_blocking(false);
    let until = Instant::now() + AFTER_KILL;
    while !channel.eof() && Instant::now() < until {
        if !out.read(channel)? {
            wait(&[(conn.socket(), false)], POLL);
        }
    }
    Ok(())
}

/// What came back so far: the PID line, then stdout, and stderr (tails of each).
#[derive(Debug, Default)]
struct Streams {
    pid_line: Vec<u8>,
    pid_done: bool,
    stdout: Vec<u8>,
    stderr: Vec<u8>,
}

impl Streams {
    /// Reads whatever is available on both streams; true if anything was read.
    fn read(&mut self, channel: &mut Channel) -> Result<bool, Broken> {
        let mut buf = [0u8; 32 * 1024];
        let mut moved = false;
        for stream in [0, ssh2::EXTENDED_DATA_STDERR] {
            loop {
                let n = match channel.stream(stream).read(&mut buf) {
                    Ok(n) => n,
                    Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                    Err(e) => return Err(e.into()),
                };
                if n == 0 {
                    break;
                }
                moved = true;
                if stream == 0 {
                    self.push_stdout(&buf[..n]);
                } else {
                    push_tail(&mut self.stderr, &buf[..n]);
                }
            }
        }
        Ok(moved)
    }

    fn push_stdout(&mut self, mut bytes: &[u8]) {
        if !self.pid_done {
            let end = bytes.iter().position(|&b| b == b'\n');
            let (head, rest) = bytes.split_at(end.map_or(bytes.len(), |i| i + 1));
            self.pid_line.extend_from_slice(head);
            self.pid_done = end.is_some();
            bytes = rest;
        }
        push_tail(&mut self.stdout, bytes);
    }

    /// The PID the shell reported, once its line is complete.
    fn pid(&self) -> Option<u32> {
        if !self.pid_done {
            return None;
        }
        std::str::from_utf8(&self.pid_line)
            .ok()?
            .trim()
            .parse()
            .ok()
    }
}

fn push_tail(keep: &mut Vec<u8>, bytes: &[u8]) {
    keep.extend_from_slice(bytes);
    if keep.len() > KEEP {
        let cut = keep.len() - KEEP;
        keep.drain(..cut);
    }
}

/// The number of a signal named as in SSH's `exit-signal` ("TERM", "KILL", ...).
fn signal_number(name: &str) -> Option<i32> {
    let name = format!("SIG{}", name.trim_start_matches("SIG"));
    name.parse::<Signal>().ok().map(|s| s as i32)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_report_the_pid_then_exec_the_command() {
        let cmd = Cmd::new("iperf3")
            .args(["-c", "198.18.0.5"])
            .env("A", "b c");
        assert_eq!(
            line(&cmd),
            "echo $$ && export A='b c' && exec iperf3 -c 198.18.0.5 </dev/null"
        );
        assert_eq!(line(&Cmd::new("cat").stdin("x")), "echo $$ && exec cat");
    }

    #[test]
    fn the_pid_line_is_split_off() {
        let mut s = Streams::default();
        s.push_stdout(b"42");
        assert_eq!(s.pid(), None);
        s.push_stdout(b"42\nhel");
        s.push_stdout(b"lo\n");
        assert_eq!(s.pid(), Some(4242));
        assert_eq!(s.stdout, b"hello\n");
    }

    #[test]
    fn signals_are_named_as_ssh_names_them() {
        assert_eq!(signal_number("TERM"), Some(Signal::SIGTERM as i32));
        assert_eq!(signal_number("SIGKILL"), Some(Signal::SIGKILL as i32));
        assert_eq!(signal_number("XYZ"), None);
    }
}
