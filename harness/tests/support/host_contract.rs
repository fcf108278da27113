//! What every [`Host`] promises, checked on any implementation. Included (`#[path]`) as
//! `mod host_contract` by the test binaries of the namespace and the SSH hosts.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;
use wow_harness::nodes::wait_for;
use wow_harness::{Cmd, Host, HostError};

/// Checks `host` against the [`Host`] contract: commands run with their input and
/// environment and return their output and exit status, failures say what failed,
/// concurrent calls work, a command past its timeout is killed, files go in with their
/// mode and come back, background processes run until they exit or are stopped by PID.
/// `dir` is a folder on the host the check may write in; it removes what it writes there.
pub(crate) fn host_contract(host: &dyn Host, dir: &str) {
    commands(host);
    timeout(host);
    files(host, dir);
    processes(host);
}

/// Runs `cmd`, failing the test unless it exits 0; returns its standard output.
pub(crate) fn text(host: &dyn Host, cmd: Cmd) -> String {
    match host.check(&cmd, Duration::from_secs(10)) {
        Ok(out) => out.stdout_text(),
        Err(e) => panic!("{e}"),
    }
}

/// Whether process `pid` runs on `host`.
pub(crate) fn alive(host: &dyn Host, pid: u32) -> bool {
    host.run(
        &Cmd::new("kill").args(["-0", &pid.to_string()]),
        Duration::from_secs(5),
    )
    .unwrap()
    .success()
}

/// Output, exit codes, stdin and environment come back; failures say what failed.
fn commands(host: &dyn Host) {
    let out = host
        .run(
            &Cmd::new("sh")
                .args(["-c", "cat; echo \"$X\" >&2; exit 3"])
                .stdin("in")
                .env("X", "a b"),
            Duration::from_secs(5),
        )
        .unwrap();
    assert_eq!(
        (
            out.code,
            out.stdout_text().as_str(),
            out.stderr_text().as_str()
        ),
        (Some(3), "in", "a b\n")
    );
    match host.check(&Cmd::new("false"), Duration::from_secs(5)) {
        Err(HostError::Failed { host: name, .. }) => assert_eq!(name, host.name()),
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        host.run(&Cmd::new("no-such-program-wow"), Duration::from_secs(5)),
        Err(HostError::Start { .. })
    ));
    // Concurrent calls each run.
    std::thread::scope(|s| {
        for _ in 0..3 {
            s.spawn(|| assert_eq!(text(host, Cmd::new("echo").arg("hi")), "hi\n"));
        }
    });
}

/// Past its timeout a command is killed.
fn timeout(host: &dyn Host) {
    let started = Instant::now();
    let out = host
        .run(&Cmd::new("sleep").arg("37"), Duration::from_millis(500))
        .unwrap();
    assert!(
        out.timed_out && started.elapsed() < Duration::from_secs(5),
        "{out:?}"
    );
    assert_eq!(out.signal, Some(Signal::SIGKILL as i32));
}

/// Files go in (an executable one with mode 0755, another with 0644), replace what was
/// there, and come back; a missing file cannot be read.
fn files(host: &dyn Host, dir: &str) {
    let local = std::env::temp_dir().join(format!(
        "wow-host-contract-{}-{}",
        std::process::id(),
        host.name()
    ));
    std::fs::create_dir_all(&local).unwrap();
    let script = local.join("payload.sh");
    let data = local.join("data");
    write(&script, b"#!/bin/sh\necho payload\n", 0o755);
    write(&data, b"hello\n", 0o600);
    let (remote_script, remote_data) = (format!("{dir}/payload.sh"), format!("{dir}/data"));
    host.copy_to(&script, &remote_script).unwrap();
    host.copy_to(&script, &remote_script).unwrap(); // replacing works too
    host.copy_to(&data, &remote_data).unwrap();
    std::fs::remove_dir_all(&local).unwrap();
    assert_eq!(
        host.read_file(&remote_script).unwrap(),
        b"#!/bin/sh\necho payload\n"
    );
    assert_eq!(host.read_file(&remote_data).unwrap(), b"hello\n");
    let modes = text(
        host,
        Cmd::new("stat").args(["-c", "%a", &remote_script, &remote_data]),
    );
    assert_eq!(modes, "755\n644\n");
    assert_eq!(text(host, Cmd::new(&remote_script)), "payload\n");
    assert!(host.read_file(&format!("{dir}/missing")).is_err());
    text(
        host,
        Cmd::new("rm").args(["--", &remote_script, &remote_data]),
    );
}

/// Writes `bytes` to the local file `path` with mode `mode`.
fn write(path: &Path, bytes: &[u8], mode: u32) {
    std::fs::write(path, bytes).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

/// A long-lived process is stopped by PID with SIGTERM and its output returned; one that
/// exits by itself reports its exit; dropping the handle stops it.
fn processes(host: &dyn Host) {
    let mut p = host
        .spawn(&Cmd::new("sh").args(["-c", "echo started; exec sleep 600"]))
        .unwrap();
    let pid = p.pid();
    assert!(alive(host, pid));
    std::thread::sleep(Duration::from_millis(200));
    assert!(p.try_wait().unwrap().is_none());
    let out = p.stop(Duration::from_secs(2)).unwrap();
    assert_eq!(
        (out.signal, out.stdout_text().as_str()),
        (Some(Signal::SIGTERM as i32), "started\n")
    );
    assert!(!alive(host, pid));
    let mut p = host
        .spawn(&Cmd::new("sh").args(["-c", "echo hi; exit 4"]))
        .unwrap();
    let out = wait_for(Duration::from_secs(10), Duration::from_millis(100), || {
        p.try_wait().unwrap()
    })
    .expect("exits");
    assert_eq!((out.code, out.stdout_text().as_str()), (Some(4), "hi\n"));
    let p = host.spawn(&Cmd::new("sleep").arg("600")).unwrap();
    let pid = p.pid();
    drop(p);
    assert!(!alive(host, pid));
}
