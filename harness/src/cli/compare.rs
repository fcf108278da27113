//! `comparison.md` of a run over several subjects (`wow-bench run X --subject
//! ipop,physical`): every metric's mean per subject, and the first subject's mean
//! divided by each other's, measured in one invocation.

use std::fmt::Write as _;

use crate::results::Summary;
use crate::results::report::mean;

/// Its file name in the result folder.
pub(crate) const FILE: &str = "comparison.md";

/// The comparison table of `summaries` (the first is the reference).
pub(crate) fn render(summaries: &[&Summary]) -> String {
    let Some((first, others)) = summaries.split_first() else {
        return String::new();
    };
    let mut r = format!(
        "# {} — {} side by side\n\n",
        first.experiment,
        summaries
            .iter()
            .map(|s| format!("{} on {}", s.subject, s.topology))
            .collect::<Vec<_>>()
            .join(", ")
    );
    for s in summaries {
        let _ = writeln!(
            r,
            "- {}: {} trials, {} failed ({}/).",
            s.subject, s.trials, s.failed_trials, s.subject
        );
    }
    r.push_str("\n| metric | unit |");
    for s in summaries {
        let _ = write!(r, " {} mean |", s.subject);
    }
    for o in others {
        let _ = write!(r, " {} ÷ {} |", first.subject, o.subject);
    }
    r.push_str("\n|---|---|");
    r.push_str(&"---|".repeat(summaries.len() + others.len()));
    r.push('\n');
    for (name, m) in &first.metrics {
        let _ = write!(r, "| {name} | {} |", m.unit);
        for s in summaries {
            let v = s.metrics.get(name).and_then(|m| m.mean);
            let _ = write!(r, " {} |", mean(v, m.unit));
        }
        for o in others {
            let other = o.metrics.get(name).and_then(|m| m.mean);
            let cell = match (m.mean, other) {
                (Some(a), Some(b)) if b != 0.0 => format!("{:.3}", a / b),
                _ => "–".into(),
            };
            let _ = write!(r, " {cell} |");
        }
        r.push('\n');
    }
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    fn summary(subject: &str, per_min: f64) -> Summary {
        serde_json::from_value(serde_json::json!({
            "experiment": "meme-pbs", "subject": subject, "topology": "wow-6domain",
            "trials": 1, "failed_trials": 0,
            "metrics": {"jobs_per_min": {"description": "d", "unit": "/min", "count": 1,
                "p50": per_min, "p90": per_min, "p99": per_min, "mean": per_min,
                "min": per_min, "max": per_min, "paper": null}},
            "paths": [], "links": [], "plots": [], "paper_table": ""
        }))
        .unwrap()
    }

    #[test]
    fn ratios_are_the_first_subject_over_the_others() {
        let (ipop, physical) = (summary("ipop", 4.5), summary("physical", 5.0));
        let text = render(&[&ipop, &physical]);
        assert!(text.contains("| metric | unit | ipop mean | physical mean | ipop ÷ physical |"));
        assert!(
            text.contains("| jobs_per_min | /min | 4.50 | 5.00 | 0.900 |"),
            "{text}"
        );
    }
}
