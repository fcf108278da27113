//! The NAT matrix: for a pair of site profiles (NATs, a firewall, blocked UDP), two
//! sites with one `ipop-node` each join through a public bootstrap node. The outcome is
//! whether the two nodes formed a connection to each other, over which edge (direct
//! UDP, direct TCP, or a relay through a third node), and how long it took.
//!
//! A pair that can hole-punch but first connects through a relay is watched a while
//! longer ([`UPGRADE_WAIT`]): the overlay retries the direct edge, and the matrix
//! records the edge the pair ends on, with the time it got there.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};
use wow_netns::topology::{MatrixProfile, NatProfile, nat_matrix};
use wow_netns::{Options, RunPrefix, Testbed};

use crate::NetnsHost;
use crate::nodes::{NodeOptions, RunningNode, address, install_secret, new_secret, wait_for};
use crate::text_table::TextTable;

/// How long a hole-punchable pair that connected through a relay is watched for its
/// upgrade to a direct edge (the overlay retries direct edges every 60 s).
pub const UPGRADE_WAIT: Duration = Duration::from_secs(75);

/// What happened for one pair.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PairOutcome {
    /// Profile of site `a`.
    pub a: String,
    /// Profile of site `b`.
    pub b: String,
    /// The two nodes formed a connection to each other.
    pub connected: bool,
    /// `udp`, `tcp` or `relay`: the edge `a` ended on.
    pub edge: Option<String>,
    /// Seconds from the nodes' start until both had the connection on that edge.
    pub seconds: Option<f64>,
    /// The edge the pair first connected on, when it later moved to another.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_edge: Option<String>,
    /// Why the pair could not be measured, if it could not.
    pub error: Option<String>,
    /// Whether the pair cannot hole-punch (a symmetric NAT against a symmetric or
    /// port-restricted NAT or a stateful firewall), so a relay is the right edge.
    pub relay_expected: bool,
}

/// Pairs no simultaneous open can connect directly: a symmetric NAT against another
/// symmetric NAT, a port-restricted NAT, or a stateful firewall.
pub fn relay_expected(a: MatrixProfile, b: MatrixProfile) -> bool {
    use MatrixProfile::{Firewall, Nat};
    let sym = Nat(NatProfile::Symmetric);
    let hard = [sym, Nat(NatProfile::PortRestricted), Firewall];
    (a == sym && hard.contains(&b)) || (b == sym && hard.contains(&a))
}

/// Every unordered pair of profiles, in table order.
pub fn pairs() -> Vec<(MatrixProfile, MatrixProfile)> {
    let all = MatrixProfile::ALL;
    let mut out = Vec::new();
    for (i, a) in all.iter().enumerate() {
        for b in &all[i..] {
            out.push((*a, *b));
        }
    }
    out
}

/// Runs one pair; waits at most `timeout` for the connection.
pub fn run_pair(
    a: MatrixProfile,
    b: MatrixProfile,
    binary: &Path,
    timeout: Duration,
    secure: bool,
) -> PairOutcome {
    let mut outcome = PairOutcome {
        a: a.to_string(),
        b: b.to_string(),
        connected: false,
        edge: None,
        seconds: None,
        first_edge: None,
        error: None,
        relay_expected: relay_expected(a, b),
    };
    if let Err(e) = measure(a, b, binary, timeout, secure, &mut outcome) {
        outcome.error = Some(format!("{e:#}"));
    }
    outcome
}

fn measure(
    a: MatrixProfile,
    b: MatrixProfile,
    binary: &Path,
    timeout: Duration,
    secure: bool,
    out: &mut PairOutcome,
) -> Result<()> {
    let options = Options {
        prefix: RunPrefix::unique(),
        emulator: None,
    };
    let bed = Testbed::up(&nat_matrix(a, b), &options).context("bringing up the testbed")?;
    let public = NetnsHost::new(&bed, "public-0")?;
    let host_a = NetnsHost::new(&bed, "a-0")?;
    let host_b = NetnsHost::new(&bed, "b-0")?;
    let mut nodes = Vec::new();
    // With secure edges, one overlay secret for the three nodes.
    let secret = if secure { Some(new_secret()?) } else { None };
    let options = |opts: NodeOptions| if secure { opts.secure() } else { opts };
    for host in [&public, &host_a, &host_b] {
        if let Some(s) = &secret {
            install_secret(host, s)?;
        }
    }
    let result = (|| {
        let seed = RunningNode::start(&public, binary, &options(NodeOptions::default()))?;
        let seed_up = wait_for(Duration::from_secs(10), Duration::from_millis(100), || {
            seed.status(&public).ok()
        });
        nodes.push(seed);
        seed_up.context("the bootstrap node did not come up")?;
        let t0 = Instant::now();
        nodes.push(RunningNode::start(
            &host_a,
            binary,
            &options(NodeOptions::joining(&public)),
        )?);
        nodes.push(RunningNode::start(
            &host_b,
            binary,
            &options(NodeOptions::joining(&public)),
        )?);
        let (na, nb) = (&nodes[1], &nodes[2]);
        let addrs = wait_for(Duration::from_secs(10), Duration::from_millis(100), || {
            Some((
                address(&na.status(&host_a).ok()?).ok()?,
                address(&nb.status(&host_b).ok()?).ok()?,
            ))
        })
        .context("the site nodes did not come up")?;
        let edge = || {
            let sa = na.status(&host_a).ok()?;
            let sb = nb.status(&host_b).ok()?;
            let ab = sa.connection_to(&addrs.1)?;
            let ba = sb.connection_to(&addrs.0)?;
            // Traffic flowed both ways on it (the handshake and status pings).
            (ab.rx_packets > 0 && ba.rx_packets > 0).then(|| ab.transport.to_string())
        };
        let Some(first) = wait_for(timeout, Duration::from_millis(200), edge) else {
            return Ok(());
        };
        out.connected = true;
        out.edge = Some(first.clone());
        out.seconds = Some(t0.elapsed().as_secs_f64());
        if first == "relay" && !out.relay_expected {
            let direct = wait_for(UPGRADE_WAIT, Duration::from_millis(500), || {
                edge().filter(|e| e != "relay")
            });
            if let Some(direct) = direct {
                out.first_edge = Some(first);
                out.edge = Some(direct);
                out.seconds = Some(t0.elapsed().as_secs_f64());
            }
        }
        Ok(())
    })();
    for n in &mut nodes {
        let _ = n.stop(Duration::from_secs(2));
    }
    drop(bed);
    result
}

/// Runs every pair in turn; `progress` sees each outcome as it comes.
pub fn run_matrix(
    binary: &Path,
    timeout: Duration,
    secure: bool,
    mut progress: impl FnMut(&PairOutcome),
) -> Vec<PairOutcome> {
    pairs()
        .into_iter()
        .map(|(a, b)| {
            let o = run_pair(a, b, binary, timeout, secure);
            progress(&o);
            o
        })
        .collect()
}

/// Whether an outcome is what the matrix requires: connected, and on a direct edge
/// where hole punching can work.
pub fn acceptable(o: &PairOutcome) -> bool {
    o.connected && (o.relay_expected || o.edge.as_deref() != Some("relay"))
}

/// A table a person can read.
pub fn table(outcomes: &[PairOutcome]) -> String {
    let mut t = TextTable::new(0, 1)
        .right([4])
        .min_widths(&[20, 20, 10, 6, 8])
        .gap_before(5, 2);
    t.row(["a", "b", "connected", "edge", "seconds", "note"]);
    for o in outcomes {
        let note = match (&o.error, acceptable(o), o.relay_expected) {
            (Some(e), _, _) => format!("error: {e}"),
            (None, false, _) => "FAIL".to_owned(),
            (None, true, true) => "cannot hole-punch: relay expected".to_owned(),
            (None, true, false) => o
                .first_edge
                .as_ref()
                .map_or(String::new(), |f| format!("first on {f}, then upgraded")),
        };
        t.row([
            o.a.clone(),
            o.b.clone(),
            (if o.connected { "yes" } else { "NO" }).to_owned(),
            o.edge.as_deref().unwrap_or("-").to_owned(),
            o.seconds.map_or("-".to_owned(), |s| format!("{s:.2}")),
            note,
        ]);
    }
    t.render()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_relay_cells_match_the_hole_punching_table() {
        let relays: Vec<String> = pairs()
            .into_iter()
            .filter(|(a, b)| relay_expected(*a, *b))
            .map(|(a, b)| format!("{a}/{b}"))
            .collect();
        assert_eq!(
            relays,
            [
                "port-restricted/symmetric",
                "symmetric/symmetric",
                "symmetric/firewall"
            ]
        );
        assert_eq!(pairs().len(), 28);
    }
}
