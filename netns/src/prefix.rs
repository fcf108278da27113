//! Run prefixes: every namespace of a run is named `wow-<run>-<node>`, so that runs can
//! coexist (tests run in parallel) and leftovers can be found and removed by prefix.

use std::fmt;
use std::sync::atomic::{AtomicU32, Ordering};

/// What every namespace, `/etc/netns` folder and state folder of the project starts with.
pub const PROJECT_PREFIX: &str = "wow-";

/// The longest run prefix accepted.
const MAX_LEN: usize = 16;

/// A validated run prefix: 1-16 characters of `a-z` and `0-9`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RunPrefix(String);

/// A run prefix that is not 1-16 characters of `a-z` and `0-9`.
#[derive(Debug, Clone, thiserror::Error)]
#[error("run prefix {0:?} must be 1-16 characters of a-z and 0-9")]
pub struct BadPrefix(pub String);

impl RunPrefix {
    /// Checks a user-chosen prefix.
    pub fn new(prefix: &str) -> Result<RunPrefix, BadPrefix> {
        let ok = !prefix.is_empty()
            && prefix.len() <= MAX_LEN
            && prefix
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit());
        if ok {
            Ok(RunPrefix(prefix.to_string()))
        } else {
            Err(BadPrefix(prefix.to_string()))
        }
    }

    /// A prefix no other live process of this machine hands out: `t<pid><n>`, where `n`
    /// counts the prefixes this process allocated. Tests use it to run in parallel.
    pub fn unique() -> RunPrefix {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        RunPrefix(format!("t{:x}x{n:x}", std::process::id()))
    }

    /// The prefix itself.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// What the names of this run's namespaces start with: `wow-<run>-`.
    pub fn namespace_prefix(&self) -> String {
        format!("{PROJECT_PREFIX}{}-", self.0)
    }

    /// The namespace name of a node of this run.
    pub fn namespace(&self, node: &str) -> String {
        format!("{}{node}", self.namespace_prefix())
    }

    /// The run prefix of a project namespace name, if it is one.
    pub fn of_namespace(ns: &str) -> Option<RunPrefix> {
        let rest = ns.strip_prefix(PROJECT_PREFIX)?;
        let (run, node) = rest.split_once('-')?;
        if node.is_empty() {
            None
        } else {
            RunPrefix::new(run).ok()
        }
    }
}

impl fmt::Display for RunPrefix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefixes_are_checked_and_parsed_back() {
        assert!(RunPrefix::new("bench1").is_ok());
        for bad in ["", "Bench", "a-b", "a b", "abcdefghijklmnopq"] {
            assert!(RunPrefix::new(bad).is_err(), "{bad:?}");
        }
        let p = RunPrefix::new("x1").unwrap();
        assert_eq!(p.namespace("ufl-gw"), "wow-x1-ufl-gw");
        assert_eq!(RunPrefix::of_namespace("wow-x1-ufl-gw"), Some(p));
        assert_eq!(RunPrefix::of_namespace("other-x1-a"), None);
        assert_eq!(RunPrefix::of_namespace("wow-x1"), None);
    }

    #[test]
    fn unique_prefixes_differ_and_are_valid() {
        let a = RunPrefix::unique();
        let b = RunPrefix::unique();
        assert_ne!(a, b);
        assert!(RunPrefix::new(a.as_str()).is_ok());
    }
}
