//! `ipop-sim`: runs the overlay protocol for many nodes in the deterministic simulator
//! and reports how the overlay formed, routed and repaired itself.

use std::time::{Duration, Instant};

use anyhow::{Context, Result, ensure};
use clap::Parser;
use indicatif::{ProgressBar, ProgressStyle};
use ipop_core::dht;
use ipop_core::sim::{
    DhtReport, NatMix, Network, Phase, Report, Scenario, SessionDist, SessionReport, Sessions,
};
use serde_json::{Value, json};

/// Simulate an IPOP overlay of many nodes in virtual time (deterministic per seed).
#[derive(Debug, Parser)]
#[command(version)]
struct Args {
    /// Nodes that join at the start.
    #[arg(long, default_value_t = 1000)]
    nodes: usize,
    /// Seed of every random choice; the same seed gives the same run.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Mean one-way link latency in ms (each pair of nodes draws one from [L/2, 3L/2]).
    #[arg(long, default_value_t = 20.0)]
    latency_ms: f64,
    /// Extra per-packet delay, uniform in [0, J) ms.
    #[arg(long, default_value_t = 0.0)]
    jitter_ms: f64,
    /// Probability that a datagram is lost.
    #[arg(long, default_value_t = 0.0)]
    loss: f64,
    /// Fraction of nodes that crash during the churn window.
    #[arg(long, default_value_t = 0.0)]
    churn: f64,
    /// Fraction of nodes that leave gracefully during the churn window.
    #[arg(long, default_value_t = 0.0)]
    leave: f64,
    /// Fraction of --nodes that join anew during the churn window.
    #[arg(long, default_value_t = 0.0)]
    join: f64,
    /// Virtual seconds over which churn is spread.
    #[arg(long, default_value_t = 300.0)]
    churn_window_s: f64,
    /// After the churn window, churn from session times for --sessions-s: every node
    /// (bootstrap nodes aside) stays for a session drawn from this distribution, then
    /// goes and a new node joins. `exp:MEAN_S` or `weibull:SHAPE:SCALE_S`; measured P2P
    /// sessions fit Weibull shapes 0.34-0.59 (Stutzbach and Rejaie, IMC 2006).
    #[arg(long)]
    sessions: Option<SessionDist>,
    /// Virtual seconds of session churn.
    #[arg(long, default_value_t = 1800.0)]
    sessions_s: f64,
    /// Sample live nodes and DHT lookups every this many virtual seconds.
    #[arg(long, default_value_t = 60.0)]
    sample_s: f64,
    /// DHT lookups per sample (needs --dht-keys).
    #[arg(long, default_value_t = 50)]
    lookups: usize,
    /// Fraction of session ends that are graceful leaves (the rest crash).
    #[arg(long, default_value_t = 0.2)]
    graceful: f64,
    /// DHT keys created before churn and checked after it.
    #[arg(long, default_value_t = 0)]
    dht_keys: usize,
    /// Sub-keys each DHT key is stored under (1 to 256).
    #[arg(long, default_value_t = dht::Config::default().sub_keys)]
    dht_sub_keys: usize,
    /// Sub-keys that must agree for a DHT operation to succeed (more than half of
    /// --dht-sub-keys, at most all).
    #[arg(long, default_value_t = dht::Config::default().majority)]
    dht_majority: usize,
    /// Nodes started per virtual second [default: --nodes / 10, at least 100, so that
    /// the initial joins take about ten virtual seconds].
    #[arg(long)]
    join_rate: Option<f64>,
    /// Nodes that serve as bootstrap nodes; each joining node is given four of them at
    /// random [default: --nodes / 1000, at least 4].
    #[arg(long)]
    bootstrap_nodes: Option<usize>,
    /// Virtual seconds the settled overlay runs before routes are tested.
    #[arg(long, default_value_t = 15.0)]
    warmup_s: f64,
    /// Random exact-routed probes per check.
    #[arg(long, default_value_t = 10_000)]
    routes: usize,
    /// Longest virtual time to wait for the overlay to settle, in seconds.
    #[arg(long, default_value_t = 120.0)]
    settle_s: f64,
    /// Put the nodes (bootstrap nodes aside) behind NATs: `realistic` (20 % public, 10 %
    /// full cone, 15 % address-restricted, 40 % port-restricted, 15 % symmetric), or
    /// `PROFILE:SHARE,...` with profiles none, full-cone, address-restricted,
    /// port-restricted, symmetric.
    #[arg(long)]
    nat_mix: Option<NatMix>,
    /// Print one JSON object instead of a summary.
    #[arg(long)]
    json: bool,
}

fn main() -> Result<()> {
    let args = Args::parse();
    check(&args)?;
    let scenario = scenario(&args)?;
    let bar = progress_bar(args.json)?;
    let started = Instant::now();
    let report = scenario.run(&mut |stage, frac| {
        bar.set_message(stage.to_owned());
        bar.set_position((frac.clamp(0.0, 1.0) * 1000.0) as u64);
    });
    bar.finish_and_clear();
    let wall_s = started.elapsed().as_secs_f64();
    let rss = ipop_node::sysinfo::peak_rss_mib();
    if args.json {
        println!("{}", to_json(&args, &scenario, &report, wall_s, rss));
    } else {
        println!(
            "{} nodes joining at {:.0} per virtual second through {} bootstrap nodes",
            scenario.nodes, scenario.join_rate, scenario.bootstrap_nodes
        );
        print_summary(&report, wall_s, rss);
    }
    Ok(())
}

/// Refuses arguments out of range, naming the flag to fix.
fn check(args: &Args) -> Result<()> {
    ensure!(args.nodes >= 1, "--nodes must be at least 1");
    ensure!((0.0..1.0).contains(&args.loss), "--loss must be in [0, 1)");
    ensure!(
        args.churn + args.leave < 1.0,
        "--churn + --leave must stay below 1"
    );
    ensure!(
        args.join_rate.is_none_or(|r| r > 0.0),
        "--join-rate must be positive"
    );
    ensure!(
        args.bootstrap_nodes.is_none_or(|b| b >= 1),
        "--bootstrap-nodes must be at least 1"
    );
    ensure!(
        args.sessions_s > 0.0 && args.sample_s > 0.0,
        "--sessions-s and --sample-s must be positive"
    );
    ensure!(
        (0.0..=1.0).contains(&args.graceful),
        "--graceful must be in [0, 1]"
    );
    Ok(())
}

/// The scenario the arguments describe: the defaults scaled to `--nodes`, with what the
/// arguments set.
fn scenario(args: &Args) -> Result<Scenario> {
    let dht = dht::Config {
        sub_keys: args.dht_sub_keys,
        majority: args.dht_majority,
        ..dht::Config::default()
    };
    dht.validate()
        .context("check --dht-sub-keys and --dht-majority")?;
    let scaled = Scenario::scaled(args.nodes);
    Ok(Scenario {
        seed: args.seed,
        network: Network {
            latency: Duration::from_secs_f64(args.latency_ms / 1e3),
            jitter: Duration::from_secs_f64(args.jitter_ms / 1e3),
            loss: args.loss,
        },
        routes: args.routes,
        crash: args.churn,
        leave: args.leave,
        join: args.join,
        churn_window: Duration::from_secs_f64(args.churn_window_s),
        sessions: args.sessions.map(|dist| Sessions {
            dist,
            duration: Duration::from_secs_f64(args.sessions_s),
            sample_every: Duration::from_secs_f64(args.sample_s),
            lookups: args.lookups,
            graceful: args.graceful,
        }),
        dht_keys: args.dht_keys,
        join_rate: args.join_rate.unwrap_or(scaled.join_rate),
        bootstrap_nodes: args.bootstrap_nodes.unwrap_or(scaled.bootstrap_nodes),
        settle: Duration::from_secs_f64(args.settle_s),
        warmup: Duration::from_secs_f64(args.warmup_s),
        dht,
        nat_mix: args.nat_mix.clone(),
        ..scaled
    })
}

/// The progress bar of a run; hidden when the output is JSON.
fn progress_bar(hidden: bool) -> Result<ProgressBar> {
    if hidden {
        return Ok(ProgressBar::hidden());
    }
    let bar = ProgressBar::new(1000);
    bar.set_style(ProgressStyle::with_template(
        "{spinner} {msg:8} [{bar:40}] {elapsed}",
    )?);
    Ok(bar)
}

fn phase_json(p: &Phase) -> Value {
    json!({
        "live_nodes": p.live_nodes,
        "correctly_connected": p.correctly_connected,
        "ring_consistent": p.ring_consistent,
        "ring_errors": p.ring_errors,
        "settle_s": p.settle_s,
        "routes_tried": p.routes_tried,
        "routes_delivered": p.routes_delivered,
        "hops_mean": p.hops_mean,
        "hops_p99": p.hops_p99,
        "hops_max": p.hops_max,
        "connections_mean": p.connections_mean,
        "far_mean": p.far_mean,
        "size_estimate_mean": p.size_estimate_mean,
        "relayed_fraction": p.relayed_fraction,
        "stretch_mean": p.stretch_mean,
        "stretch_p99": p.stretch_p99,
    })
}

fn dht_json(args: &Args, d: &DhtReport) -> Value {
    json!({
        "dht_sub_keys": args.dht_sub_keys,
        "dht_majority": args.dht_majority,
        "dht_keys": d.keys,
        "dht_keys_found": d.found,
        "dht_keys_live": d.live,
        "dht_create_failures": d.create_failures,
        "dht_get_failures": d.get_failures,
        "dht_keys_expired": d.expired,
        "dht_expired_gone": d.expired_gone,
        "dht_duplicate_winners": d.duplicate_winners,
        "dht_races": d.races,
        "dht_races_without_winner": d.no_winner,
        "dht_second_creates_refused": d.second_creates.1,
        "dht_second_creates_tried": d.second_creates.0,
        "dht_wrong_password_deletes_refused": d.wrong_password_deletes.1,
        "dht_wrong_password_deletes_tried": d.wrong_password_deletes.0,
        "dht_get_ms_p50": d.get_ms_p50,
        "dht_get_ms_p99": d.get_ms_p99,
    })
}

fn to_json(args: &Args, scenario: &Scenario, r: &Report, wall_s: f64, rss: Option<f64>) -> Value {
    let last = r.after_churn.as_ref().unwrap_or(&r.after_join);
    let mut out = json!({
        "nodes": r.nodes,
        "seed": args.seed,
        "join_rate": scenario.join_rate,
        "bootstrap_nodes": scenario.bootstrap_nodes,
        "latency_ms": args.latency_ms,
        "loss": args.loss,
        "churn": args.churn,
        "live_nodes": last.live_nodes,
        "correctly_connected": last.correctly_connected,
        "ring_consistent": last.ring_consistent,
        "routes_tried": last.routes_tried,
        "routes_delivered": last.routes_delivered,
        "hops_mean": last.hops_mean,
        "hops_p99": last.hops_p99,
        "join_s_p50": r.join_s_p50,
        "join_s_p99": r.join_s_p99,
        "join_s_max": r.join_s_max,
        "joined": r.joined,
        "after_join": phase_json(&r.after_join),
        "after_churn": r.after_churn.as_ref().map(phase_json),
        "crashed": r.crashed,
        "left": r.left,
        "joined_during_churn": r.joined_during_churn,
        "virtual_s": r.virtual_s,
        "datagrams": r.datagrams,
        "datagrams_lost": r.lost,
        "datagrams_filtered": r.filtered,
        "nat_mix": args.nat_mix.as_ref().map(ToString::to_string),
        "events": r.events,
        "ctm_refused": r.ctm_refused,
        "link_attempts_refused": r.link_attempts_refused,
        "dht_refused_replicas": r.dht_refused_replicas,
        "dht_forged": r.dht_forged,
        "dht_misplaced": r.dht_misplaced,
        "wall_s": wall_s,
        "peak_rss_mib": rss,
    });
    if let (Some(d), Value::Object(map)) = (&r.dht, &mut out) {
        if let Value::Object(fields) = dht_json(args, d) {
            map.extend(fields);
        }
    }
    if let (Some(s), Value::Object(map)) = (&r.sessions, &mut out) {
        map.insert("sessions".to_owned(), sessions_json(s));
    }
    out
}

fn sessions_json(s: &SessionReport) -> Value {
    let (lookups, found) = s.lookups();
    json!({
        "departures": s.departures,
        "graceful": s.graceful,
        "session_mean_s": s.session_mean_s,
        "lookups": lookups,
        "lookups_found": found,
        "samples": s.samples.iter().map(|x| json!({
            "t_s": x.t_s,
            "live": x.live,
            "correctly_connected": x.correctly_connected,
            "lookups": x.lookups,
            "found": x.found,
        })).collect::<Vec<_>>(),
    })
}

fn print_sessions(s: &SessionReport) {
    let (lookups, found) = s.lookups();
    println!(
        "session churn: {} departures ({} graceful), sessions drawn mean {:.0} s; {} / {} lookups found",
        s.departures, s.graceful, s.session_mean_s, found, lookups
    );
    println!(
        "  {:>8} {:>6} {:>10} {:>8}",
        "t (s)", "live", "connected", "found"
    );
    for x in &s.samples {
        println!(
            "  {:>8.0} {:>6} {:>10} {:>4}/{:<3}",
            x.t_s, x.live, x.correctly_connected, x.found, x.lookups
        );
    }
}

fn print_phase(title: &str, p: &Phase) {
    println!("{title}");
    println!(
        "  correctly connected  {} / {} live nodes (settled after {:.1} s)",
        p.correctly_connected, p.live_nodes, p.settle_s
    );
    println!(
        "  ring consistent      {} ({} nodes with a wrong view of their neighbours)",
        p.ring_consistent, p.ring_errors
    );
    println!(
        "  routes delivered     {} / {}   hops mean {:.2}, p99 {}, max {}; stretch mean {:.2}, p99 {:.2}",
        p.routes_delivered,
        p.routes_tried,
        p.hops_mean,
        p.hops_p99,
        p.hops_max,
        p.stretch_mean,
        p.stretch_p99
    );
    println!(
        "  connections          {:.1} per node, {:.1} structured far, {:.1} % relayed; size estimate {:.0}",
        p.connections_mean,
        p.far_mean,
        p.relayed_fraction * 100.0,
        p.size_estimate_mean
    );
}

fn print_summary(r: &Report, wall_s: f64, rss: Option<f64>) {
    println!(
        "{} nodes joined; {} correctly connected; join time p50 {:.2} s, p99 {:.2} s, max {:.2} s (virtual)",
        r.nodes, r.joined, r.join_s_p50, r.join_s_p99, r.join_s_max
    );
    print_phase("after joins:", &r.after_join);
    if let Some(p) = &r.after_churn {
        println!(
            "churn: {} crashed, {} left, {} joined",
            r.crashed, r.left, r.joined_during_churn
        );
        if let Some(s) = &r.sessions {
            print_sessions(s);
        }
        print_phase("after churn:", p);
    }
    if let Some(d) = &r.dht {
        println!(
            "dht: {} keys created ({} failed); {} / {} live keys found, {} / {} expired keys gone, {} gets failed",
            d.keys - d.create_failures,
            d.create_failures,
            d.found,
            d.live,
            d.expired_gone,
            d.expired,
            d.get_failures
        );
        println!(
            "  get latency p50 {:.0} ms, p99 {:.0} ms; second creates refused {}/{}; wrong-password deletes refused {}/{}",
            d.get_ms_p50,
            d.get_ms_p99,
            d.second_creates.1,
            d.second_creates.0,
            d.wrong_password_deletes.1,
            d.wrong_password_deletes.0
        );
        println!(
            "  {} raced keys: {} with two winners, {} with none",
            d.races, d.duplicate_winners, d.no_winner
        );
    }
    println!(
        "refused by limits: {} CTM requests, {} link attempts, {} DHT copies ({} forged), {} misplaced DHT replies",
        r.ctm_refused,
        r.link_attempts_refused,
        r.dht_refused_replicas,
        r.dht_forged,
        r.dht_misplaced
    );
    println!(
        "{:.1} virtual s, {} datagrams ({} lost), {} events; wall {:.1} s, peak RSS {}",
        r.virtual_s,
        r.datagrams,
        r.lost,
        r.events,
        wall_s,
        rss.map_or("n/a".to_owned(), |m| format!("{m:.0} MiB"))
    );
}
