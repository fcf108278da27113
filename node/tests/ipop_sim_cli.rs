//! The `ipop-sim` binary as benchmarks use it: `--json` prints exactly one JSON object
//! with every documented field, and bad DHT parameters are refused with advice.

use std::process::Command;

use serde_json::Value;

fn ipop_sim(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_ipop-sim"))
        .args(args)
        .output()
        .expect("ipop-sim runs")
}

#[test]
fn json_output_is_one_object_with_every_field() {
    let out = ipop_sim(&["--nodes", "60", "--dht-keys", "20", "--json"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8(out.stdout).expect("UTF-8 output");
    let mut objects = serde_json::Deserializer::from_str(&stdout).into_iter::<Value>();
    let report = objects.next().expect("one JSON value").expect("valid JSON");
    assert!(
        objects.next().is_none(),
        "more than one JSON value: {stdout}"
    );
    let map = report.as_object().expect("a JSON object");
    let numbers = [
        "nodes",
        "join_rate",
        "bootstrap_nodes",
        "correctly_connected",
        "routes_tried",
        "routes_delivered",
        "hops_mean",
        "hops_p99",
        "join_s_p50",
        "join_s_p99",
        "wall_s",
        "dht_keys",
        "dht_keys_found",
        "dht_duplicate_winners",
        "dht_get_ms_p50",
        "dht_get_ms_p99",
    ];
    for field in numbers {
        assert!(
            map.get(field).is_some_and(Value::is_number),
            "{field}: {report}"
        );
    }
    assert!(map.get("ring_consistent").is_some_and(Value::is_boolean));
    // Peak RSS is null where the platform does not report it.
    let rss = map.get("peak_rss_mib").expect("peak_rss_mib");
    assert!(rss.is_number() || rss.is_null(), "{rss}");
    // A healthy small run: everything connected, routed and found.
    assert_eq!(report["nodes"], 60);
    assert_eq!(report["correctly_connected"], 60);
    assert_eq!(report["ring_consistent"], true);
    assert_eq!(report["routes_delivered"], report["routes_tried"]);
    assert_eq!(report["dht_keys"], 20);
    assert_eq!(report["dht_keys_found"], report["dht_keys_live"]);
    assert_eq!(report["dht_duplicate_winners"], 0);
}

#[test]
fn invalid_dht_parameters_are_refused_with_advice() {
    let out = ipop_sim(&["--nodes", "2", "--dht-sub-keys", "4", "--dht-majority", "2"]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("--dht-majority"), "{stderr}");
    assert!(stderr.contains("3 to 4"), "{stderr}");
}
