//! Drawing a result folder's plots from its saved files: each [`PlotSpec`] of the
//! summary, fed with the values in `trials.jsonl` and the figures in `summary.json`,
//! plus the WAN-link bars when links were measured.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::Context;
use wow_experiments::PlotSpec;
use wow_plots::{Bar, Bars, Cdf, Group, Histogram, Mark, Series};

use crate::results::{LinkSummary, MetricSummary, Saved};

/// File stem of the WAN-link plot.
pub(crate) const LINKS_PLOT: &str = "wan-links";

/// A plot's file stem and title.
pub(crate) fn stem_and_title(spec: &PlotSpec) -> (String, String) {
    match spec {
        PlotSpec::Cdf { file, title, .. }
        | PlotSpec::Histogram { file, title, .. }
        | PlotSpec::Bars { file, title, .. } => (file.clone(), title.clone()),
    }
}

/// Draws every plot of `saved` into `dir`; returns the plots left out, with the reason
/// (a metric with no values, say when every trial failed).
pub(crate) fn draw_all(dir: &Path, saved: &Saved) -> anyhow::Result<BTreeMap<String, String>> {
    let summary = &saved.summary;
    let mut skipped = BTreeMap::new();
    for spec in &summary.plots {
        let (stem, _) = stem_and_title(spec);
        let empty: Vec<&str> = match spec {
            PlotSpec::Cdf { metrics, .. } | PlotSpec::Bars { metrics, .. } => metrics
                .iter()
                .map(String::as_str)
                .filter(|m| trial_values(saved, m).is_empty())
                .collect(),
            PlotSpec::Histogram { metric, .. } => Some(metric.as_str())
                .filter(|m| trial_values(saved, m).is_empty())
                .into_iter()
                .collect(),
        };
        if !empty.is_empty() {
            skipped.insert(stem, format!("no values of {}", empty.join(", ")));
            continue;
        }
        draw_plot(dir, saved, spec, &stem)?;
    }
    if !summary.links.is_empty() {
        draw_links(dir, &summary.links, &mut skipped)?;
    }
    Ok(skipped)
}

/// Draws one plot of the summary into `dir` as `stem`, from the trials' values.
fn draw_plot(dir: &Path, saved: &Saved, spec: &PlotSpec, stem: &str) -> anyhow::Result<()> {
    let summary = &saved.summary;
    let metric = |name: &str| {
        summary
            .metrics
            .get(name)
            .with_context(|| format!("a plot names metric {name:?}, which summary.json lacks"))
    };
    match spec {
        PlotSpec::Cdf { title, metrics, .. } => {
            let first = metric(&metrics[0])?;
            let mut marks = Vec::new();
            let mut series = Vec::new();
            for name in metrics {
                let m = metric(name)?;
                series.push(Series {
                    label: format!("{name}, {} subject", summary.subject),
                    values: trial_values(saved, name),
                });
                marks.extend(paper_marks(name, m));
            }
            let cdf = Cdf {
                title: title.clone(),
                x_label: format!("{} ({})", metrics.join(", "), first.unit),
                series,
                marks,
            };
            wow_plots::save(&cdf, dir, stem)?;
        }
        PlotSpec::Histogram {
            title,
            metric: name,
            bins,
            ..
        } => {
            let h = Histogram {
                title: title.clone(),
                x_label: format!("{name} ({})", metric(name)?.unit),
                values: trial_values(saved, name),
                bins: *bins,
            };
            wow_plots::save(&h, dir, stem)?;
        }
        PlotSpec::Bars { title, metrics, .. } => {
            let mut groups = Vec::new();
            for name in metrics {
                let m = metric(name)?;
                groups.push(Group {
                    label: name.clone(),
                    bars: vec![measured_bar(m), paper_bar(m)],
                });
            }
            let bars = Bars {
                title: title.clone(),
                y_label: metric(&metrics[0])?.unit.to_string(),
                series: vec![format!("measured ({})", summary.subject), "paper".into()],
                groups,
            };
            wow_plots::save(&bars, dir, stem)?;
        }
    }
    Ok(())
}

/// Every value of metric `name` in the saved trials.
fn trial_values(saved: &Saved, name: &str) -> Vec<f64> {
    saved
        .trials
        .iter()
        .flat_map(|t| t.metric_values(name))
        .collect()
}

/// Draws the WAN-link bars (measured RTT beside the configured one), or records in
/// `skipped` why not.
fn draw_links(
    dir: &Path,
    links: &[LinkSummary],
    skipped: &mut BTreeMap<String, String>,
) -> anyhow::Result<()> {
    let groups: Vec<Group> = links
        .iter()
        .map(|l| Group {
            label: l.link.clone(),
            bars: vec![
                measured_bar(&l.rtt),
                Some(Bar {
                    value: l.expected_rtt_ms,
                    spread: None,
                }),
            ],
        })
        .collect();
    let bars = Bars {
        title: "Emulated WAN links alone: ping RTT to a public host".into(),
        y_label: "RTT (ms)".into(),
        series: vec!["measured".into(), "configured".into()],
        groups,
    };
    if links.iter().all(|l| l.rtt.mean.is_some()) {
        wow_plots::save(&bars, dir, LINKS_PLOT)?;
    } else {
        skipped.insert(LINKS_PLOT.into(), "a link answered no ping".into());
    }
    Ok(())
}

/// The measured mean with its min–max spread.
fn measured_bar(m: &MetricSummary) -> Option<Bar> {
    Some(Bar {
        value: m.mean?,
        spread: m.min.zip(m.max),
    })
}

/// The paper's figure: the middle of its range, with the range as spread.
fn paper_bar(m: &MetricSummary) -> Option<Bar> {
    m.paper.as_ref().map(|p| Bar {
        value: (p.low + p.high) / 2.0,
        spread: (p.low < p.high).then_some((p.low, p.high)),
    })
}

/// Vertical marks at the paper's figures.
fn paper_marks(name: &str, m: &MetricSummary) -> Vec<Mark> {
    let Some(p) = &m.paper else {
        return Vec::new();
    };
    let mut xs = vec![p.low];
    if p.high > p.low {
        xs.push(p.high);
    }
    xs.into_iter()
        .map(|x| Mark {
            label: format!("paper {name} {} {x} {}", p.stat.as_str(), m.unit),
            x,
        })
        .collect()
}
