//! `wow-experiments` holds one module per experiment of the IPOP and WOW papers: what to
//! set up, what to measure, and the figure the paper reported for comparison.
//!
//! Every experiment implements [`Experiment`] ([`experiment`] explains a run's steps)
//! and sees the testbed only through [`wow_host::Host`]s, running real tools (`ping`,
//! `iperf3`, `dhclient`, and the node's status socket), and through the
//! [`Subject`], which says where one host reaches another. Adding an experiment: write
//! a module with a type implementing [`Experiment`] and list it in [`ALL`].

pub mod cluster;
pub mod dhcp_join;
pub mod experiment;
pub mod fastdnaml_pvm;
pub mod join;
pub mod latency;
pub mod meme_pbs;
pub mod migration;
pub mod mpi_nfs;
pub mod multihop;
pub mod paper;
pub mod path;
pub mod peers;
pub mod subject;
pub mod throughput;
pub mod tools;

pub use experiment::{
    Error, Experiment, ExperimentInfo, Extra, Hosts, Machine, Machines, Metric, OverlayNeeds,
    PaperFigure, PlotSpec, Samples, Setup, Stat, Subjects, TrialError, Trials, Values, Workload,
};
pub use path::Path;
pub use subject::{
    Edges, Flow, NodeKind, Overlay, OverlayNode, Subject, SubjectKind, Target, Unreachable,
};

/// Every experiment, in the order `wow-bench list` shows them.
pub static ALL: &[&dyn Experiment] = &[
    &latency::Latency,
    &throughput::Throughput,
    &join::Join,
    &dhcp_join::DhcpJoin,
    &multihop::Multihop,
    &meme_pbs::MemePbs,
    &fastdnaml_pvm::FastDnamlPvm,
    &mpi_nfs::MpiNfs,
    &migration::Migration,
    &peers::Peers,
];

/// The experiment called `name`.
pub fn find(name: &str) -> Option<&'static dyn Experiment> {
    ALL.iter().copied().find(|e| e.info().name == name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_and_defaults_exist() {
        for (i, e) in ALL.iter().enumerate() {
            let info = e.info();
            assert!(find(info.name).is_some());
            assert!(ALL[..i].iter().all(|o| o.info().name != info.name));
            for file in [info.default_topology, info.physical_topology()] {
                let topology = format!("{}/../{file}", env!("CARGO_MANIFEST_DIR"));
                wow_netns::Topology::load(topology.as_ref()).unwrap();
            }
            assert!(info.default_trials > 0 && !info.subjects.is_empty());
        }
        assert!(find("nope").is_none());
    }
}
