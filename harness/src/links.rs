//! Measuring the emulated WAN links alone, in every run on a topology with WAN links:
//! for each link an experiment's paths cross, the node at the link's far end (the site
//! router, or the public host) pings a public host, so that no NAT, site LAN or overlay
//! is in the way. The public host with the shortest link of its own answers, and the
//! configured RTT is 2 × (link delay + its delay).

use std::time::Duration;

use anyhow::Context;
use wow_experiments::tools::ping;
use wow_experiments::{Hosts, Path};
use wow_netns::Topology;
use wow_netns::topology::{Attachment, Wan};

use crate::results::LinkResult;

/// Echo requests per link.
pub(crate) const PINGS: u32 = 50;
/// Their spacing.
const INTERVAL: Duration = Duration::from_millis(20);
/// How long to wait for the last reply.
const WAIT: Duration = Duration::from_secs(2);

/// The links `paths` cross, each measured; `Ok(None)` when the topology has no public
/// host to measure against.
pub(crate) fn measure(
    topology: &Topology,
    hosts: &Hosts,
    paths: &[Path],
) -> anyhow::Result<Option<Vec<LinkResult>>> {
    let mut links: Vec<&Wan> = Vec::new();
    for wan in paths.iter().flat_map(|p| p.links(topology)) {
        if !links.iter().any(|l| l.attach == wan.attach) {
            links.push(wan);
        }
    }
    let delay_ms = |node: &str| {
        wow_experiments::path::link_of(topology, node)
            .map_or(0.0, |w| w.link.delay.as_secs_f64() * 1000.0)
    };
    let mut responders: Vec<String> = topology
        .public
        .iter()
        .flat_map(|g| (0..g.count).map(move |i| format!("{}-{i}", g.name)))
        .collect();
    responders.sort_by(|a, b| delay_ms(a).total_cmp(&delay_ms(b)));
    let mut results = Vec::new();
    for wan in links {
        let (link, from) = match &wan.attach {
            Attachment::Site(site) => (format!("site {site}"), format!("{site}-gw")),
            Attachment::Host(host) => (format!("host {host}"), host.clone()),
        };
        let Some(to) = responders.iter().find(|r| **r != from) else {
            return Ok(None);
        };
        let target = hosts.get(to)?;
        let address = *target
            .addresses()
            .first()
            .with_context(|| format!("{to} has no address"))?;
        let pinger = hosts.get(&from)?;
        // One echo first, so that ARP resolution is not in the measured RTTs.
        ping::run(pinger, address, 1, INTERVAL, WAIT)?;
        let report = ping::run(pinger, address, PINGS, INTERVAL, WAIT)?;
        let params = wan.link;
        let delay = params.delay.as_secs_f64() * 1000.0;
        results.push(LinkResult {
            link,
            from,
            to: to.clone(),
            delay_ms: delay,
            jitter_ms: params.jitter.as_secs_f64() * 1000.0,
            loss: params.loss,
            rate_mbit: params.rate_mbit,
            expected_rtt_ms: 2.0 * (delay + delay_ms(to)),
            sent: report.transmitted,
            received: report.received,
            rtts_ms: report.rtts_ms,
        });
    }
    Ok(Some(results))
}
