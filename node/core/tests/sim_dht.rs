//! The DHT under churn and loss, at the scale the issue names: 2 000 nodes, 5 000 keys
//! created with TTLs, then 30 % of the nodes crash over time while 1 % of messages are
//! lost. Every key whose TTL has not expired must still be returned; expired keys must be
//! gone; a second create of a live key fails; a delete with a wrong password fails and
//! the value stays; racing creators never both win.

use ipop_core::sim::{Network, Scenario};

#[test]
fn every_live_key_survives_thirty_percent_crashes_with_one_percent_loss() {
    let report = Scenario {
        nodes: 2000,
        seed: 1,
        dht_keys: 5000,
        crash: 0.3,
        network: Network {
            loss: 0.01,
            ..Network::default()
        },
        routes: 1000,
        ..Scenario::default()
    }
    .run(&mut |_, _| {});
    let dht = report.dht.as_ref().expect("DHT checks ran");
    assert_eq!(report.crashed, 600);
    assert_eq!(dht.create_failures, 0, "{dht:#?}");
    assert_eq!(
        dht.live + dht.expired,
        5000,
        "every key is either live or expired: {dht:#?}"
    );
    assert!(dht.expired > 0 && dht.live > 0, "{dht:#?}");
    assert_eq!(dht.found, dht.live, "live keys lost: {dht:#?}");
    assert_eq!(
        dht.expired_gone, dht.expired,
        "expired keys still returned: {dht:#?}"
    );
    assert_eq!(dht.second_creates.1, dht.second_creates.0, "{dht:#?}");
    assert_eq!(
        dht.wrong_password_deletes.1, dht.wrong_password_deletes.0,
        "{dht:#?}"
    );
    assert!(dht.second_creates.0 >= 100);
    assert_eq!(dht.duplicate_winners, 0, "{dht:#?}");
    assert!(dht.races >= 50);
}
