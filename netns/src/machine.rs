//! Virtual machines on a namespace testbed, for migration experiments: a namespace of the
//! run with one NIC, `eth0`, a veth whose other end (`vm-<name>`) sits on the bridge
//! [`BRIDGE`] of the host the machine runs on — a VM's virtual NIC bridged by its
//! hypervisor. The host puts what the machine should reach on that bridge (an IPOP
//! node's TAP device: router mode).
//!
//! [`Machine::move_to`] migrates it: the NIC's host end moves into another host's
//! namespace and onto that host's bridge. The machine keeps its MAC address, its
//! addresses, its processes and their open sockets; frames in flight are lost, as when a
//! VM is suspended at one site and resumed at another. A machine's namespace carries the
//! run's prefix, so the testbed's cleanup (and `wow-bench clean`) removes it and ends its
//! processes even after a crash; dropping the [`Machine`] removes it at once.

use std::path::Path;

use crate::cleanup;
use crate::exec::{ETC_NETNS_DIR, run_in, run_root};
use crate::plan::{Node, Role};
use crate::state::write_file;
use crate::testbed::Testbed;
use crate::{Error, Result};

/// The bridge of a host that machines' NICs join.
pub const BRIDGE: &str = "vmbr";

/// The longest machine name (its host-side port `vm-<name>` is an interface name).
const MAX_NAME: usize = 12;

/// A virtual machine of a testbed (see the module documentation).
#[derive(Debug)]
pub struct Machine {
    node: Node,
    /// The host it runs on.
    at: String,
}

impl Machine {
    /// Creates machine `name` on host `at` of `bed`: its namespace (with `lo` up and its
    /// own `/etc/hosts`, hostname and resolver file, as a testbed host has), its NIC, and
    /// the bridge on `at` if that host has none yet. The NIC has no address: the machine
    /// configures it itself (a DHCP client).
    pub fn create(bed: &Testbed, name: &str, at: &str) -> Result<Machine> {
        let valid = !name.is_empty()
            && name.len() <= MAX_NAME
            && name
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
        if !valid || bed.node(name).is_ok() {
            return Err(Error::Command {
                what: format!("creating machine {name:?}"),
                status: "refused".into(),
                stderr: format!(
                    "a machine name is 1-{MAX_NAME} of [a-z0-9-] and names no node of the \
                     testbed"
                ),
            });
        }
        let host = bed.node(at)?;
        let namespace = bed.prefix().namespace(name);
        let etc = Path::new(ETC_NETNS_DIR).join(&namespace);
        std::fs::create_dir_all(&etc)
            .map_err(|e| Error::io(format!("cannot create {}", etc.display()), e))?;
        write_file(&etc.join("hosts"), bed.plan().hosts_file().as_bytes())?;
        write_file(&etc.join("hostname"), format!("{name}\n").as_bytes())?;
        write_file(
            &etc.join("resolv.conf"),
            format!("# {name}: the testbed has no DNS server\n").as_bytes(),
        )?;
        run_root("ip", &["netns", "add", &namespace], None)?;
        let machine = Machine {
            node: Node {
                name: name.to_string(),
                namespace,
                role: Role::Machine,
                site: host.site.clone(),
                addresses: Vec::new(),
                prefix_len: 0,
                gateway: None,
            },
            at: at.to_string(),
        };
        let port = machine.port();
        run_in(
            &host.namespace,
            "ip",
            &["-batch", "-"],
            Some(&format!(
                "link add {port} type veth peer name eth0 netns {}\n",
                machine.node.namespace
            )),
        )?;
        run_in(
            &machine.node.namespace,
            "ip",
            &["-batch", "-"],
            Some("link set lo up\nlink set eth0 up\n"),
        )?;
        machine.attach(&host.namespace)?;
        Ok(machine)
    }

    /// The machine as a node of the run (no addresses of the testbed's plan: it gets its
    /// own).
    pub fn node(&self) -> &Node {
        &self.node
    }

    /// The host it runs on.
    pub fn at(&self) -> &str {
        &self.at
    }

    /// Migrates it to host `to` of `bed` (see the module documentation).
    pub fn move_to(&mut self, bed: &Testbed, to: &str) -> Result<()> {
        let from = bed.node(&self.at)?;
        let target = bed.node(to)?;
        // `ip netns exec`-style names resolve in the root mount namespace, where
        // `run_in` leaves the command's view of /run/netns.
        run_in(
            &from.namespace,
            "ip",
            &["link", "set", &self.port(), "netns", &target.namespace],
            None,
        )?;
        self.at = to.to_string();
        self.node.site.clone_from(&target.site);
        self.attach(&target.namespace)
    }

    /// The NIC's host end.
    fn port(&self) -> String {
        format!("vm-{}", self.node.name)
    }

    /// Puts the NIC's host end on the bridge of the host namespace `ns` (made if
    /// missing).
    fn attach(&self, ns: &str) -> Result<()> {
        let has_bridge = run_in(ns, "ip", &["-o", "link", "show", "dev", BRIDGE], None).is_ok();
        let mut batch = String::new();
        if !has_bridge {
            batch.push_str(&format!(
                "link add {BRIDGE} type bridge\nlink set {BRIDGE} up\n"
            ));
        }
        let port = self.port();
        batch.push_str(&format!(
            "link set {port} master {BRIDGE}\nlink set {port} up\n"
        ));
        run_in(ns, "ip", &["-batch", "-"], Some(&batch)).map(drop)
    }
}

impl Drop for Machine {
    fn drop(&mut self) {
        cleanup::remove_namespace(&self.node.namespace);
    }
}
