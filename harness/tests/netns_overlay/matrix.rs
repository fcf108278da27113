//! Every pair of NAT/firewall profiles: the two nodes must reach each other, on a
//! direct edge wherever hole punching can work.

use std::time::Duration;

use wow_harness::natmatrix::{acceptable, run_matrix, table};

#[test]
fn netns_nat_matrix_connects_every_pair() {
    let binary = super::node_binary();
    let outcomes = run_matrix(&binary, Duration::from_secs(40), |o| eprintln!("{o:?}"));
    let report = table(&outcomes);
    eprintln!("{report}");
    assert!(outcomes.iter().all(acceptable), "{report}");
}
