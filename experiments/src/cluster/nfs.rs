//! The head node as the cluster's file server: `nfs-ganesha` (NFSv3 over TCP, FSAL
//! VFS) with its own `rpcbind`, both started in the head's namespace. Clients use
//! libnfs's userspace tools (`nfs-cp`, `nfs-ls`: this kernel has no NFS client) with
//! `nfs://<head hostname>/<export>` URLs, so file traffic goes to the head's address as
//! the subject gives it (the virtual IP under ipop).

use std::time::Duration;

use wow_host::{Cmd, Host, Process};

use super::{Cluster, QUICK, put};
use crate::experiment::Error;
use crate::tools::wait_for;

/// NFS.
pub const NFS_PORT: u16 = 2049;
/// The portmapper (libnfs asks it for the mount daemon's port).
pub const RPCBIND_PORT: u16 = 111;
/// The mount daemon.
pub const MOUNTD_PORT: u16 = 20048;
/// How long the server may take to answer a client.
const READY_TIMEOUT: Duration = Duration::from_secs(90);
/// How long a daemon may take to stop.
const GRACE: Duration = Duration::from_secs(5);

/// A running file server; dropping it stops its daemons by PID.
#[derive(Debug)]
pub struct NfsServer {
    /// The exported folder on the head node.
    pub export: String,
    /// `nfs://<head>/<export>`: the URL prefix clients use.
    pub url: String,
    /// The server's configuration text.
    pub text: String,
    rpcbind: Option<Box<dyn Process>>,
    ganesha: Option<Box<dyn Process>>,
}

/// `ganesha.conf` exporting `export`, keeping state under `dir`.
pub fn config(export: &str, dir: &str) -> String {
    format!(
        "# written by wow-bench: the cluster's file server\n\
         NFS_CORE_PARAM {{ Protocols = 3; NFS_Port = {NFS_PORT}; MNT_Port = {MOUNTD_PORT}; \
         Enable_NLM = false; Enable_RQUOTA = false; }}\n\
         NFSV4 {{ Graceless = true; RecoveryRoot = {dir}/ganesha-recovery; }}\n\
         NFS_KRB5 {{ Active_krb5 = false; }}\n\
         EXPORT {{\n  Export_Id = 1; Path = {export}; Pseudo = {export};\n  \
         Access_Type = RW; Squash = No_Root_Squash; Protocols = 3; Transports = TCP;\n  \
         SecType = sys;\n  FSAL {{ Name = VFS; }}\n}}\n\
         LOG {{ Default_Log_Level = EVENT; }}\n"
    )
}

impl NfsServer {
    /// Exports `<cluster dir>/export` from the head node and waits until the first
    /// compute node lists it.
    pub fn start(cluster: &Cluster<'_>) -> Result<NfsServer, Error> {
        let head = cluster.head_host()?;
        let export = format!("{}/export", cluster.dir);
        head.check(&Cmd::new("mkdir").args(["-p", &export]), QUICK)?;
        let text = config(&export, &cluster.dir);
        cluster.check_virtual_only("ganesha.conf", &text)?;
        let conf = format!("{}/ganesha.conf", cluster.dir);
        put(head, &conf, text.as_bytes())?;
        let mut server = NfsServer {
            url: format!("nfs://{}{export}", cluster.head),
            export,
            text,
            rpcbind: None,
            ganesha: None,
        };
        let mut rpcbind = head.spawn(&Cmd::new("rpcbind").args(["-f", "-w"]))?;
        std::thread::sleep(Duration::from_millis(300));
        if let Some(out) = rpcbind.try_wait()? {
            // A host of a hosts file may run its own portmapper: use it.
            let probe = head.run(&Cmd::new("rpcinfo").args(["-p", "127.0.0.1"]), QUICK)?;
            if !probe.success() {
                return Err(Error::Preflight {
                    path: format!("NFS server on {}", cluster.head),
                    reason: format!("rpcbind exited: {}", out.stderr_text().trim()),
                });
            }
        } else {
            server.rpcbind = Some(rpcbind);
        }
        server.ganesha = Some(head.spawn(&Cmd::new("ganesha.nfsd").args([
            "-F",
            "-f",
            &conf,
            "-L",
            &format!("{}/ganesha.log", cluster.dir),
            "-p",
            &format!("{}/ganesha.pid", cluster.dir),
        ]))?);
        let client = cluster.host(&cluster.computes[0])?;
        let listed = wait_for(READY_TIMEOUT, Duration::from_millis(500), || {
            let ls = Cmd::new("nfs-ls").arg(format!("{}/", server.url));
            client
                .run(&ls, QUICK)
                .ok()
                .filter(wow_host::Output::success)
        });
        if listed.is_none() {
            let log = head
                .read_file(&format!("{}/ganesha.log", cluster.dir))
                .unwrap_or_default();
            let log = String::from_utf8_lossy(&log);
            let tail: Vec<&str> = log.lines().rev().take(3).collect();
            return Err(Error::Preflight {
                path: format!("{} → NFS server {}", client.name(), cluster.head),
                reason: format!(
                    "`nfs-ls {}/` failed for {}s; ganesha log: {}",
                    server.url,
                    READY_TIMEOUT.as_secs(),
                    tail.join(" | ")
                ),
            });
        }
        Ok(server)
    }

    /// Writes `contents` to `name` in the export, on the head node's own disk.
    pub fn publish(&self, head: &dyn Host, name: &str, contents: &[u8]) -> Result<(), Error> {
        put(head, &format!("{}/{name}", self.export), contents)?;
        Ok(())
    }
}

impl Drop for NfsServer {
    fn drop(&mut self) {
        if let Some(mut g) = self.ganesha.take() {
            let _ = g.stop(GRACE);
        }
        if let Some(mut r) = self.rpcbind.take() {
            let _ = r.stop(GRACE);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_export_is_nfs3_over_tcp_with_root_kept() {
        let c = config("/tmp/x/export", "/tmp/x");
        assert!(c.contains("Path = /tmp/x/export;"));
        assert!(c.contains("Protocols = 3; Transports = TCP;"));
        assert!(c.contains("Squash = No_Root_Squash;"));
    }
}
