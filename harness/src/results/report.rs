//! `report.md`: the measured figures beside the paper's, with their ratio, the paths and
//! why they were chosen, the WAN links measured alone, the plots, and failed trials.
//! Built only from saved files, so `wow-bench plot` rewrites it.

use std::collections::BTreeMap;
use std::fmt::Write;

use wow_plots::Unit;

use super::{MetricSummary, Saved, Summary};

/// Failed trials listed in full; the rest are counted.
const LIST_FAILURES: usize = 20;

/// A figure with the unit's decimals, or a dash.
pub fn figure(v: Option<f64>, unit: Unit) -> String {
    v.map_or_else(|| "–".into(), |v| format!("{v:.*}", unit.decimals()))
}

/// A mean: as [`figure`], with at least two decimals (a mean count is fractional).
pub fn mean(v: Option<f64>, unit: Unit) -> String {
    v.map_or_else(|| "–".into(), |v| format!("{v:.*}", unit.decimals().max(2)))
}

/// `measured / paper` for a paper range: one ratio, or the ratio to the range's high and
/// low ends.
pub fn ratio(measured: Option<f64>, low: f64, high: f64) -> String {
    match measured {
        Some(m) if low > 0.0 && (high - low).abs() < f64::EPSILON => format!("{:.2}×", m / low),
        Some(m) if low > 0.0 => format!("{:.2}–{:.2}×", m / high, m / low),
        _ => "–".into(),
    }
}

fn paper_cell(m: &MetricSummary) -> String {
    match &m.paper {
        Some(p) if p.low == p.high => {
            format!("{} ({})", figure(Some(p.low), m.unit), p.stat.as_str())
        }
        Some(p) => format!(
            "{}–{} ({})",
            figure(Some(p.low), m.unit),
            figure(Some(p.high), m.unit),
            p.stat.as_str()
        ),
        None => "–".into(),
    }
}

/// The report; `skipped` maps plot file stems that were not drawn to the reason.
pub fn render(saved: &Saved, skipped: &BTreeMap<String, String>) -> String {
    let s = &saved.summary;
    let mut r = String::new();
    header(&mut r, saved);
    paths(&mut r, s);
    metrics(&mut r, s);
    links(&mut r, s);
    plots(&mut r, s, skipped);
    notes(&mut r, saved);
    failures(&mut r, saved);
    let _ = writeln!(
        r,
        "\n## The paper's figures\n\n{}",
        s.paper_table.trim_end()
    );
    r
}

/// The title, and what ran when, from which commit, on how loaded a machine.
fn header(r: &mut String, saved: &Saved) {
    let (s, c) = (&saved.summary, &saved.config);
    let _ = writeln!(
        r,
        "# {} — {} subject on {}\n",
        s.experiment, s.subject, s.topology
    );
    let _ = writeln!(
        r,
        "{} trials, {} failed. Started {}; commit {}{}; load {}.\n\n`{}`\n",
        s.trials,
        s.failed_trials,
        c.started,
        c.git.commit.as_deref().unwrap_or("unknown"),
        if c.git.dirty == Some(true) {
            " (with uncommitted changes)"
        } else {
            ""
        },
        c.machine.loadavg.as_deref().unwrap_or("unknown"),
        c.command.join(" ")
    );
}

/// The paths measured, and why a path does not end where it was asked to.
fn paths(r: &mut String, s: &Summary) {
    r.push_str("## Paths\n\n");
    for p in &s.paths {
        let _ = writeln!(r, "- {p}.");
        if let Some(note) = &p.target.note {
            let _ = writeln!(r, "  - Not {} itself: {note}.", p.to);
        }
        for skipped in &p.skipped {
            let _ = writeln!(r, "  - Not taken: {skipped}.");
        }
    }
}

/// Every metric's statistics beside the paper's figure, then what each one is.
fn metrics(r: &mut String, s: &Summary) {
    r.push_str("\n## Measured beside the paper\n\n");
    r.push_str(
        "| metric | unit | n | p50 | p90 | p99 | mean | min | max | paper | measured / paper |\n",
    );
    r.push_str("|---|---|---|---|---|---|---|---|---|---|---|\n");
    for (name, m) in &s.metrics {
        let u = m.unit;
        let ratio = m
            .paper
            .as_ref()
            .map_or_else(|| "–".into(), |p| ratio(m.stat(p.stat), p.low, p.high));
        let _ = writeln!(
            r,
            "| {name} | {u} | {} | {} | {} | {} | {} | {} | {} | {} | {ratio} |",
            m.count,
            figure(m.p50, u),
            figure(m.p90, u),
            figure(m.p99, u),
            mean(m.mean, u),
            figure(m.min, u),
            figure(m.max, u),
            paper_cell(m),
        );
    }
    r.push('\n');
    for (name, m) in &s.metrics {
        let _ = write!(r, "- **{name}**: {}.", m.description);
        if let Some(p) = &m.paper {
            let _ = write!(r, " Paper: {}.", p.source);
        }
        r.push('\n');
    }
}

/// The emulated WAN links measured alone (nothing without WAN links).
fn links(r: &mut String, s: &Summary) {
    if s.links.is_empty() {
        return;
    }
    r.push_str("\n## Emulated WAN links alone\n\n");
    r.push_str("Pings from the node at each link's far end to a public host: no NAT, site LAN or overlay in the path. The configured RTT is 2 × (link delay + the public host's own link delay).\n\n");
    r.push_str("| link | ping | configured RTT (ms) | p50 | mean | p99 | max | replies | measured / configured |\n");
    r.push_str("|---|---|---|---|---|---|---|---|---|\n");
    for l in &s.links {
        let u = l.rtt.unit;
        let _ = writeln!(
            r,
            "| {} | {} → {} | {:.3} | {} | {} | {} | {} | {}/{} | {} |",
            l.link,
            l.from,
            l.to,
            l.expected_rtt_ms,
            figure(l.rtt.p50, u),
            mean(l.rtt.mean, u),
            figure(l.rtt.p99, u),
            figure(l.rtt.max, u),
            l.received,
            l.sent,
            ratio(l.rtt.mean, l.expected_rtt_ms, l.expected_rtt_ms),
        );
    }
}

/// The plots, or why one was not drawn.
fn plots(r: &mut String, s: &Summary, skipped: &BTreeMap<String, String>) {
    r.push_str("\n## Plots\n\n");
    let mut stems: Vec<(String, String)> =
        s.plots.iter().map(crate::render::stem_and_title).collect();
    if !s.links.is_empty() {
        stems.push((
            crate::render::LINKS_PLOT.to_string(),
            "Emulated WAN links alone".to_string(),
        ));
    }
    for (stem, title) in stems {
        match skipped.get(&stem) {
            Some(why) => {
                let _ = writeln!(r, "- {title}: not drawn ({why}).");
            }
            None => {
                let _ = writeln!(r, "![{title}]({stem}.png)\n\n[{stem}.svg]({stem}.svg)\n");
            }
        }
    }
}

/// What the trials noted (the first [`LIST_FAILURES`] trials with notes).
fn notes(r: &mut String, saved: &Saved) {
    let noted: Vec<_> = saved
        .trials
        .iter()
        .filter(|t| !t.notes.is_empty())
        .collect();
    if noted.is_empty() {
        return;
    }
    r.push_str("\n## What the trials noted\n\n");
    for t in noted.iter().take(LIST_FAILURES) {
        let _ = writeln!(r, "Trial {}:\n", t.trial);
        for line in &t.notes {
            let _ = writeln!(r, "- {line}");
        }
        r.push('\n');
    }
    if noted.len() > LIST_FAILURES {
        let _ = writeln!(
            r,
            "… and {} more trials with notes (see trials.jsonl)\n",
            noted.len() - LIST_FAILURES
        );
    }
}

/// The failed trials and why (the first [`LIST_FAILURES`]).
fn failures(r: &mut String, saved: &Saved) {
    let failed: Vec<_> = saved.trials.iter().filter(|t| !t.ok).collect();
    if failed.is_empty() {
        return;
    }
    r.push_str("\n## Failed trials\n\n");
    for t in failed.iter().take(LIST_FAILURES) {
        let _ = writeln!(
            r,
            "- trial {}: {}",
            t.trial,
            t.error.as_deref().unwrap_or("no reason recorded")
        );
    }
    if failed.len() > LIST_FAILURES {
        let _ = writeln!(
            r,
            "- … and {} more (see trials.jsonl)",
            failed.len() - LIST_FAILURES
        );
    }
}
