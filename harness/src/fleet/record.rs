//! The local record of a deployment: which hosts got files from `deploy`, and where.
//! It lives beside the hosts file (`hosts.toml` → `hosts.deployed.json`), so `status`,
//! `stop` and `collect` know what exists even if the hosts file changed since.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};

/// What deploy placed, host by host.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record {
    /// Unix time of the last deploy.
    pub deployed_at: u64,
    /// The hosts with files of ours.
    pub hosts: Vec<Placed>,
}

/// One host with files of ours.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Placed {
    /// Its name in the hosts file.
    pub name: String,
    /// `user@address:port` at deploy time.
    pub target: String,
    /// Its work dir (absolute).
    pub work_dir: String,
    /// The node's PID, once started.
    pub pid: Option<u32>,
}

impl Record {
    /// Where the record of `hosts_file` lives.
    pub fn path_for(hosts_file: &Path) -> PathBuf {
        hosts_file.with_extension("deployed.json")
    }

    /// The record at `path`, or an empty one if there is none.
    pub fn load(path: &Path) -> Result<Record> {
        match std::fs::read(path) {
            Ok(bytes) => serde_json::from_slice(&bytes).with_context(|| {
                format!(
                    "{} is not a deployment record (remove it if it is stale)",
                    path.display()
                )
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Record::default()),
            Err(e) => Err(e).with_context(|| format!("cannot read {}", path.display())),
        }
    }

    /// Saves it to `path`, or removes `path` when no host is left.
    pub fn save(&self, path: &Path) -> Result<()> {
        if self.hosts.is_empty() {
            return match std::fs::remove_file(path) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                    Err(e).with_context(|| format!("cannot remove {}", path.display()))
                }
                _ => Ok(()),
            };
        }
        let text = serde_json::to_string_pretty(self)?;
        let tmp = path.with_extension("json.tmp");
        std::fs::write(&tmp, text + "\n")
            .and_then(|()| std::fs::rename(&tmp, path))
            .with_context(|| format!("cannot write {}", path.display()))
    }

    /// The entry of host `name`.
    pub fn get(&self, name: &str) -> Option<&Placed> {
        self.hosts.iter().find(|p| p.name == name)
    }

    /// Adds or replaces the entry of `placed.name`.
    pub fn put(&mut self, placed: Placed) {
        self.hosts.retain(|p| p.name != placed.name);
        self.hosts.push(placed);
    }

    /// Drops the entry of host `name`.
    pub fn forget(&mut self, name: &str) {
        self.hosts.retain(|p| p.name != name);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_round_trip_and_vanish_when_empty() {
        let dir = std::env::temp_dir().join(format!("wow-record-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = Record::path_for(&dir.join("hosts.toml"));
        assert_eq!(path, dir.join("hosts.deployed.json"));
        assert_eq!(Record::load(&path).unwrap(), Record::default());
        let mut r = Record {
            deployed_at: 7,
            hosts: Vec::new(),
        };
        let placed = |name: &str| Placed {
            name: name.into(),
            target: "wow@h:22".into(),
            work_dir: "/home/wow/.wow-bench/a".into(),
            pid: Some(42),
        };
        r.put(placed("a"));
        r.put(placed("b"));
        r.put(placed("a"));
        r.save(&path).unwrap();
        let back = Record::load(&path).unwrap();
        assert_eq!(back, r);
        assert_eq!(back.hosts.len(), 2);
        r.forget("a");
        r.forget("b");
        r.save(&path).unwrap();
        assert!(!path.exists());
        std::fs::write(&path, "nonsense").unwrap();
        assert!(
            format!("{:#}", Record::load(&path).unwrap_err()).contains("remove it if it is stale")
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
