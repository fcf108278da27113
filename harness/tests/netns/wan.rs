//! The WAN link emulator's accuracy, to this spec
//! (RTT p50 within ±1 ms of 2 × delay; loss and rate within 10 % of the setting).

use std::time::Duration;

use wow_harness::{Cmd, Host};

use super::{check, host, parse, up};

/// One routed site behind a WAN link with `keys`, and one public host.
fn link(keys: &str) -> wow_netns::Testbed {
    up(&parse(&format!(
        "name = \"link\"\n[[site]]\nname = \"s\"\nhosts = 1\n[[public]]\nname = \"public\"\n[[wan]]\nsite = \"s\"\n{keys}\n"
    )))
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

#[test]
fn netns_wan_delay_gives_the_rtt() {
    let bed = link("delay_ms = 20");
    let out = check(
        &host(&bed, "s-0"),
        Cmd::new("ping").args(["-n", "-c", "200", "-i", "0.02", "public-0"]),
        Duration::from_secs(60),
    );
    let mut rtts: Vec<f64> = out
        .lines()
        .filter_map(|l| {
            l.split("time=")
                .nth(1)?
                .split_whitespace()
                .next()?
                .parse()
                .ok()
        })
        .collect();
    assert!(rtts.len() >= 195, "{} replies of 200:\n{out}", rtts.len());
    rtts.sort_by(f64::total_cmp);
    let (p50, p99) = (percentile(&rtts, 0.5), percentile(&rtts, 0.99));
    eprintln!(
        "20 ms each way: RTT p50 {p50:.3} ms, p99 {p99:.3} ms, min {:.3}, max {:.3}",
        rtts[0],
        rtts[rtts.len() - 1]
    );
    assert!(
        (39.0..=41.0).contains(&p50),
        "p50 {p50} ms is not within 40 ± 1 ms"
    );
}

/// Starts a one-shot iperf3 server on `public-0` and runs `client_args` on `s-0`;
/// returns the client's JSON report.
fn iperf(bed: &wow_netns::Testbed, client_args: &[&str]) -> serde_json::Value {
    let server = host(bed, "public-0");
    let mut daemon = server
        .spawn(&Cmd::new("iperf3").args(["-s", "-1"]))
        .unwrap_or_else(|e| panic!("{e}"));
    std::thread::sleep(Duration::from_millis(300));
    let target = server.addresses()[0].to_string();
    let cmd = Cmd::new("iperf3")
        .args(["-c", target.as_str(), "-J"])
        .args(client_args.iter().copied());
    let out = check(&host(bed, "s-0"), cmd, Duration::from_secs(60));
    let _ = daemon.stop(Duration::from_secs(1));
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("iperf3 printed {out:?}: {e}"))
}

#[test]
fn netns_wan_loss_matches_the_setting() {
    // ping, not iperf3: a lossy link may break iperf3's own control connection. The
    // setting is per direction, so a round trip survives with probability (1 - p)².
    let bed = link("loss = 0.1");
    let cmd = Cmd::new("ping").args([
        "-n", "-q", "-f", "-l", "64", "-c", "12000", "-W", "1", "public-0",
    ]);
    let out = host(&bed, "s-0")
        .run(&cmd, Duration::from_secs(60))
        .unwrap_or_else(|e| panic!("{e}"));
    let text = out.stdout_text();
    let counts: Vec<f64> = text
        .lines()
        .find(|l| l.contains("packets transmitted"))
        .map(|l| {
            l.split(',')
                .filter_map(|f| f.split_whitespace().next()?.parse().ok())
                .collect()
        })
        .unwrap_or_default();
    let [sent, received, ..] = counts[..] else {
        panic!("no ping summary in {text:?}")
    };
    assert!(sent >= 12_000.0, "{text}");
    let one_way = 1.0 - (received / sent).sqrt();
    eprintln!("loss 0.1 each way: {received} of {sent} round trips, so {one_way:.4} each way");
    assert!(
        (0.09..=0.11).contains(&one_way),
        "loss {one_way} is not within 10 % of 0.1"
    );
}

#[test]
fn netns_wan_rate_matches_the_setting() {
    let bed = link("rate_mbit = 20");
    let report = iperf(&bed, &["-t", "4", "-O", "1"]);
    let bps = report["end"]["sum_received"]["bits_per_second"]
        .as_f64()
        .unwrap_or(0.0);
    let mbit = bps / 1e6;
    eprintln!("rate 20 Mbit/s: TCP goodput {mbit:.2} Mbit/s");
    assert!(
        (18.0..=22.0).contains(&mbit),
        "{mbit} Mbit/s is not within 10 % of 20"
    );
}
