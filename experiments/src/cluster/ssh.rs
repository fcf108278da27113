//! SSH between the cluster's workstations, as the paper's users had it (PVM starts its
//! daemons with it, MPI launches with it, users log in): one `sshd` per workstation on
//! [`SSH_PORT`], root logins with a key made for the run, and a client wrapper
//! (`<dir>/ssh/ssh`) that uses that key and checks host keys against a `known_hosts` of
//! every workstation's hostname. Hostnames resolve to the subject's addresses, so
//! sessions cross the overlay under the ipop subject.

use std::time::Duration;

use wow_host::{Cmd, Host, Process};

use super::{Cluster, QUICK, put};
use crate::experiment::Error;
use crate::tools::wait_for;

/// The port every workstation's `sshd` listens on (not 22: a host of a hosts file may
/// run its own).
pub const SSH_PORT: u16 = 2222;
/// How long every `sshd` may take to accept a login.
const READY_TIMEOUT: Duration = Duration::from_secs(60);
/// How long a daemon may take to stop.
const GRACE: Duration = Duration::from_secs(3);

/// Running `sshd`s; dropping it stops them by PID.
#[derive(Debug)]
pub struct Ssh {
    /// The client wrapper: `<ssh> HOST CMD…` runs CMD on HOST as root.
    pub client: String,
    daemons: Vec<Box<dyn Process>>,
}

/// `sshd_config` for the run's folder `dir`.
pub fn sshd_config(dir: &str) -> String {
    format!(
        "# written by wow-bench: logins between the cluster's workstations\n\
         Port {SSH_PORT}\n\
         HostKey {dir}/ssh/host_ed25519\n\
         AuthorizedKeysFile {dir}/ssh/authorized_keys\n\
         PidFile none\n\
         PermitRootLogin prohibit-password\n\
         PasswordAuthentication no\n\
         KbdInteractiveAuthentication no\n\
         UsePAM no\n\
         StrictModes no\n\
         PrintMotd no\n\
         AcceptEnv PVM_*\n"
    )
}

/// The client wrapper script.
pub fn client_script(dir: &str) -> String {
    format!(
        "#!/bin/sh\n\
         # written by wow-bench: ssh with the run's key and known hosts\n\
         exec ssh -F none -i {dir}/ssh/id -p {SSH_PORT} -o BatchMode=yes \
         -o StrictHostKeyChecking=yes -o UserKnownHostsFile={dir}/ssh/known_hosts \
         -o LogLevel=ERROR -o ConnectTimeout=20 \"$@\"\n"
    )
}

impl Ssh {
    /// Makes the keys on the head node, gives every workstation the configuration,
    /// keys and client wrapper, starts `sshd` on each and waits until the head logs in
    /// to every compute node.
    pub fn start(cluster: &Cluster<'_>) -> Result<Ssh, Error> {
        let head = cluster.head_host()?;
        let keys = format!("{}/ssh", cluster.dir);
        make_keys(head, &keys)?;
        let files = run_files(cluster, head, &keys)?;
        let client = format!("{keys}/ssh");
        let mut ssh = Ssh {
            client: client.clone(),
            daemons: Vec::new(),
        };
        for name in cluster.all() {
            let host = cluster.host(name)?;
            install(host, &keys, &files)?;
            ssh.daemons
                .push(host.spawn(&Cmd::new("/usr/sbin/sshd").args([
                    "-D",
                    "-e",
                    "-f",
                    &format!("{keys}/sshd_config"),
                ]))?);
        }
        await_logins(cluster, head, &client)?;
        Ok(ssh)
    }

    /// `cmd` run on `name` over SSH (from whichever host runs the returned command).
    pub fn on(&self, name: &str, cmd: &str) -> Cmd {
        Cmd::new(&self.client).args([name, cmd])
    }
}

/// Makes the run's client key (`id`) and host key (`host_ed25519`) in `keys` on `head`.
fn make_keys(head: &dyn Host, keys: &str) -> Result<(), Error> {
    head.check(&Cmd::new("mkdir").args(["-p", "-m", "0700", keys]), QUICK)?;
    for (file, comment) in [
        ("id", "wow-bench client"),
        ("host_ed25519", "wow-bench host"),
    ] {
        head.check(
            &Cmd::new("ssh-keygen").args([
                "-q",
                "-t",
                "ed25519",
                "-N",
                "",
                "-C",
                comment,
                "-f",
                &format!("{keys}/{file}"),
            ]),
            QUICK,
        )?;
    }
    Ok(())
}

/// The files every workstation gets in `keys`, by name: the keys made on `head`, the
/// `known_hosts` of every workstation, the `sshd` configuration and the client wrapper.
fn run_files(
    cluster: &Cluster<'_>,
    head: &dyn Host,
    keys: &str,
) -> Result<Vec<(&'static str, Vec<u8>)>, Error> {
    let read =
        |file: &str| -> Result<Vec<u8>, Error> { Ok(head.read_file(&format!("{keys}/{file}"))?) };
    let (id, id_pub) = (read("id")?, read("id.pub")?);
    let (host_key, host_pub) = (read("host_ed25519")?, read("host_ed25519.pub")?);
    let host_pub = String::from_utf8_lossy(&host_pub);
    let host_pub: Vec<&str> = host_pub.split_whitespace().take(2).collect();
    let known: String = cluster
        .all()
        .map(|name| format!("[{name}]:{SSH_PORT} {}\n", host_pub.join(" ")))
        .collect();
    Ok(vec![
        ("id", id),
        ("id.pub", id_pub.clone()),
        ("host_ed25519", host_key),
        ("authorized_keys", id_pub),
        ("known_hosts", known.into_bytes()),
        ("sshd_config", sshd_config(&cluster.dir).into_bytes()),
        ("ssh", client_script(&cluster.dir).into_bytes()),
    ])
}

/// Writes `files` to `keys` on `host`, the private keys readable by root only and the
/// client wrapper executable.
fn install(host: &dyn Host, keys: &str, files: &[(&str, Vec<u8>)]) -> Result<(), Error> {
    host.check(
        &Cmd::new("mkdir").args(["-p", "-m", "0700", keys, "/run/sshd"]),
        QUICK,
    )?;
    for (file, bytes) in files {
        put(host, &format!("{keys}/{file}"), bytes)?;
    }
    host.check(
        &Cmd::new("chmod").args([
            "0600",
            &format!("{keys}/id"),
            &format!("{keys}/host_ed25519"),
        ]),
        QUICK,
    )?;
    host.check(
        &Cmd::new("chmod").args(["0755", &format!("{keys}/ssh")]),
        QUICK,
    )?;
    Ok(())
}

/// Waits until `head` logs in with the `client` wrapper to every compute node.
fn await_logins(cluster: &Cluster<'_>, head: &dyn Host, client: &str) -> Result<(), Error> {
    for name in &cluster.computes {
        let login = Cmd::new(client).args([name.as_str(), "hostname"]);
        let ok = wait_for(READY_TIMEOUT, Duration::from_millis(500), || {
            head.run(&login, QUICK)
                .ok()
                .filter(|o| o.success() && o.stdout_text().trim() == name)
        });
        if ok.is_none() {
            let last = head.run(&login, QUICK)?;
            return Err(Error::Preflight {
                path: format!("ssh {} → {name}", cluster.head),
                reason: format!(
                    "no login within {}s: {}",
                    READY_TIMEOUT.as_secs(),
                    last.stderr_text().trim()
                ),
            });
        }
    }
    Ok(())
}

impl Drop for Ssh {
    fn drop(&mut self) {
        for mut d in self.daemons.drain(..) {
            let _ = d.stop(GRACE);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sshd_takes_keys_only_and_the_client_checks_host_keys() {
        let c = sshd_config("/t");
        assert!(c.contains("Port 2222\n") && c.contains("PasswordAuthentication no\n"));
        assert!(c.contains("AuthorizedKeysFile /t/ssh/authorized_keys\n"));
        let s = client_script("/t");
        assert!(s.contains("-i /t/ssh/id -p 2222"));
        assert!(s.contains("StrictHostKeyChecking=yes -o UserKnownHostsFile=/t/ssh/known_hosts"));
    }
}
