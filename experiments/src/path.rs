//! Paths: which pair of nodes an experiment measures, chosen from the topology's shape
//! and from what the subject can carry.
//!
//! - A topology without WAN links is a LAN: the path goes from `<site>-0` to `<site>-1` of
//!   the first site with two hosts (the IPOP paper's F2 → F4).
//! - A topology with WAN links is a WAN: the path starts at host 0 of the first site with
//!   a WAN link and goes to host 0 of another such site (the paper's F4 → V1), trying the
//!   sites in file order until the subject carries one. Every refused candidate is kept
//!   with the subject's reason, for the report.

use std::fmt;

use serde::{Deserialize, Serialize};
use wow_netns::Topology;
use wow_netns::topology::{Attachment, Wan};

use crate::experiment::{Error, Setup};
use crate::subject::{Flow, Target};

/// One measured path.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Path {
    /// The node traffic starts from.
    pub from: String,
    /// The node the experiment wanted to reach.
    pub to: String,
    /// The traffic.
    pub flow: Flow,
    /// Where the subject sends it.
    pub target: Target,
    /// Whether it crosses emulated WAN links.
    pub wan: bool,
    /// Candidates the subject refused before this one, each with its reason.
    pub skipped: Vec<String>,
}

impl Path {
    /// `from → target` as node names.
    pub fn label(&self) -> String {
        format!("{} → {}", self.from, self.target.node)
    }

    /// The WAN links the path crosses: those of its two ends (one if they share it).
    pub fn links<'t>(&self, topology: &'t Topology) -> Vec<&'t Wan> {
        let mut links: Vec<&Wan> = [&self.from, &self.target.node]
            .into_iter()
            .filter_map(|node| link_of(topology, node))
            .collect();
        links.dedup_by(|a, b| a.attach == b.attach);
        links
    }
}

/// The WAN link a node sits behind: its site's link for a site host or router, its own
/// for a public host; none if it has none.
pub fn link_of<'t>(topology: &'t Topology, node: &str) -> Option<&'t Wan> {
    let attach = topology
        .sites
        .iter()
        .find(|site| {
            node.strip_prefix(site.name.as_str())
                .and_then(|rest| rest.strip_prefix('-'))
                .is_some_and(|rest| {
                    rest == "gw" || rest.parse::<u32>().is_ok_and(|i| i < site.hosts)
                })
        })
        .map_or_else(
            || Attachment::Host(node.to_string()),
            |site| Attachment::Site(site.name.clone()),
        );
    topology.wans.iter().find(|w| w.attach == attach)
}

impl fmt::Display for Path {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} ({}, {})",
            self.label(),
            self.target.address,
            self.flow
        )
    }
}

/// Picks the path for `flow` (see the module doc).
pub fn choose(setup: &Setup<'_>, flow: Flow) -> Result<Path, Error> {
    let topology = setup.topology;
    let no = |reason: &str| Error::Topology {
        topology: topology.name.clone(),
        reason: reason.to_string(),
    };
    if topology.wans.is_empty() {
        let site = topology
            .sites
            .iter()
            .find(|s| s.hosts >= 2)
            .ok_or_else(|| no("a LAN path needs a site with two hosts"))?;
        let (from, to) = (format!("{}-0", site.name), format!("{}-1", site.name));
        let target = setup
            .subject
            .target(&from, &to, flow)
            .map_err(|u| Error::NoPath {
                subject: setup.subject.kind(),
                tried: vec![u.0],
            })?;
        return Ok(Path {
            from,
            to,
            flow,
            target,
            wan: false,
            skipped: Vec::new(),
        });
    }
    let wan_sites: Vec<&str> = topology
        .sites
        .iter()
        .filter(|s| s.hosts >= 1)
        .filter(|s| {
            topology
                .wans
                .iter()
                .any(|w| w.attach == Attachment::Site(s.name.clone()))
        })
        .map(|s| s.name.as_str())
        .collect();
    let [first, others @ ..] = wan_sites.as_slice() else {
        return Err(no("a WAN path needs two sites with hosts and WAN links"));
    };
    if others.is_empty() {
        return Err(no("a WAN path needs two sites with hosts and WAN links"));
    }
    let from = format!("{first}-0");
    let mut skipped = Vec::new();
    for site in others {
        let to = format!("{site}-0");
        match setup.subject.target(&from, &to, flow) {
            Ok(target) => {
                return Ok(Path {
                    from,
                    to,
                    flow,
                    target,
                    wan: true,
                    skipped,
                });
            }
            Err(u) => skipped.push(format!("{from} → {to}: {u}")),
        }
    }
    Err(Error::NoPath {
        subject: setup.subject.kind(),
        tried: skipped,
    })
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;

    use super::*;
    use crate::experiment::{Hosts, Workload};
    use crate::subject::{Subject, SubjectKind, Unreachable};

    /// Carries flows to every node whose name does not start with `blocked`.
    #[derive(Debug)]
    struct Picky(&'static str);

    impl Subject for Picky {
        fn kind(&self) -> SubjectKind {
            SubjectKind::Physical
        }

        fn target(&self, _from: &str, to: &str, _flow: Flow) -> Result<Target, Unreachable> {
            if to.starts_with(self.0) {
                Err(Unreachable(format!("{to} drops it")))
            } else {
                Ok(Target {
                    node: to.to_string(),
                    address: Ipv4Addr::new(198, 18, 0, 9),
                    note: None,
                })
            }
        }
    }

    fn topology(name: &str) -> Topology {
        let path = format!("{}/../topologies/{name}.toml", env!("CARGO_MANIFEST_DIR"));
        Topology::load(path.as_ref()).unwrap()
    }

    fn choose_on(name: &str, subject: &Picky) -> Result<Path, Error> {
        let topology = topology(name);
        let hosts = Hosts::new();
        let setup = Setup {
            topology: &topology,
            hosts: &hosts,
            subject,
            seed: 1,
            workload: &Workload::default(),
            progress: &indicatif::MultiProgress::with_draw_target(
                indicatif::ProgressDrawTarget::hidden(),
            ),
            machines: None,
            subjects: None,
        };
        choose(&setup, Flow::Icmp)
    }

    #[test]
    fn lan_paths_stay_in_the_first_site() {
        let p = choose_on("lan", &Picky("none")).unwrap();
        assert_eq!(
            (p.from.as_str(), p.to.as_str(), p.wan),
            ("lab-0", "lab-1", false)
        );
    }

    #[test]
    fn wan_paths_cross_sites_and_skip_refused_candidates() {
        let p = choose_on("wan-3site", &Picky("none")).unwrap();
        assert_eq!(
            (p.from.as_str(), p.to.as_str(), p.wan),
            ("ufl-0", "vims-0", true)
        );
        let p = choose_on("wan-3site", &Picky("vims")).unwrap();
        assert_eq!(p.to, "lsu-0");
        assert_eq!(
            p.skipped,
            vec!["ufl-0 → vims-0: vims-0 drops it".to_string()]
        );
        assert_eq!(p.label(), "ufl-0 → lsu-0");
    }

    #[test]
    fn paths_cross_the_links_of_their_ends() {
        let wan = topology("wan-3site");
        let p = choose_on("wan-3site", &Picky("vims")).unwrap();
        let delays: Vec<u128> = p
            .links(&wan)
            .iter()
            .map(|w| w.link.delay.as_millis())
            .collect();
        assert_eq!(delays, vec![2, 17]);
        assert_eq!(
            link_of(&wan, "lsu-gw").map(|w| w.link.delay.as_millis()),
            Some(17)
        );
        assert_eq!(
            link_of(&wan, "public-0").map(|w| w.link.delay.as_millis()),
            Some(1)
        );
        assert!(link_of(&wan, "ufl-9").is_none(), "ufl has 4 hosts");
        let lan = choose_on("lan", &Picky("none")).unwrap();
        assert!(lan.links(&topology("lan")).is_empty());
    }

    #[test]
    fn no_carried_candidate_is_an_error_naming_each() {
        let err = choose_on("wan-3site", &Picky("")).unwrap_err().to_string();
        assert!(
            err.contains("vims-0 drops it") && err.contains("lsu-0 drops it"),
            "{err}"
        );
    }
}
