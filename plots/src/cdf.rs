//! Empirical CDFs: one step line per series, with optional vertical marks (for
//! example the paper's mean).

use plotters::coord::Shift;
use plotters::prelude::*;

use crate::draw::{Plot, colour, finite, legend, padded, text};

/// One set of values.
#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    /// Its legend label.
    pub label: String,
    /// The values (any order).
    pub values: Vec<f64>,
}

/// A dashed vertical line at `x` with a legend label.
#[derive(Debug, Clone, PartialEq)]
pub struct Mark {
    /// Its legend label.
    pub label: String,
    /// Where it stands.
    pub x: f64,
}

/// A CDF plot.
#[derive(Debug, Clone, PartialEq)]
pub struct Cdf {
    /// The title.
    pub title: String,
    /// The x axis label (with unit).
    pub x_label: String,
    /// The series.
    pub series: Vec<Series>,
    /// Vertical marks.
    pub marks: Vec<Mark>,
}

impl Cdf {
    /// The step points of `values`' empirical CDF: (v, 0) then, for the k-th smallest
    /// value, up to (v_k, k / n) and across to the next value.
    fn steps(values: &[f64]) -> Vec<(f64, f64)> {
        let mut sorted = values.to_vec();
        sorted.sort_by(f64::total_cmp);
        let n = sorted.len() as f64;
        let mut points = Vec::with_capacity(sorted.len() * 2 + 1);
        if let Some(&first) = sorted.first() {
            points.push((first, 0.0));
        }
        for (k, &v) in sorted.iter().enumerate() {
            points.push((v, k as f64 / n));
            points.push((v, (k + 1) as f64 / n));
        }
        points
    }
}

impl Plot for Cdf {
    fn title(&self) -> &str {
        &self.title
    }

    fn check(&self) -> Result<(), String> {
        if self.series.iter().all(|s| s.values.is_empty()) {
            return Err("no values".into());
        }
        finite(self.series.iter().flat_map(|s| &s.values))?;
        finite(self.marks.iter().map(|m| &m.x))
    }

    fn draw<DB: DrawingBackend>(&self, area: &DrawingArea<DB, Shift>) -> Result<(), String> {
        let e = |e: &dyn std::fmt::Display| e.to_string();
        area.fill(&WHITE).map_err(|x| e(&x))?;
        let xs = self
            .series
            .iter()
            .flat_map(|s| s.values.iter())
            .chain(self.marks.iter().map(|m| &m.x));
        let (lo, hi) = xs.fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), &v| {
            (lo.min(v), hi.max(v))
        });
        let (lo, hi) = padded(lo, hi);
        let mut chart = ChartBuilder::on(area)
            .caption(&self.title, text(22))
            .margin(16)
            .x_label_area_size(48)
            .y_label_area_size(60)
            .build_cartesian_2d(lo..hi, 0.0..1.0)
            .map_err(|x| e(&x))?;
        chart
            .configure_mesh()
            .x_desc(&self.x_label)
            .y_desc("fraction of values ≤ x")
            .label_style(text(14))
            .axis_desc_style(text(16))
            .draw()
            .map_err(|x| e(&x))?;
        for (i, s) in self.series.iter().enumerate() {
            let style = colour(i).stroke_width(2);
            chart
                .draw_series(LineSeries::new(Cdf::steps(&s.values), style))
                .map_err(|x| e(&x))?
                .label(format!("{} (n = {})", s.label, s.values.len()))
                .legend(move |(x, y)| PathElement::new([(x, y), (x + 18, y)], style));
        }
        for (j, m) in self.marks.iter().enumerate() {
            let style = colour(self.series.len() + j).stroke_width(2);
            chart
                .draw_series(DashedLineSeries::new([(m.x, 0.0), (m.x, 1.0)], 6, 4, style))
                .map_err(|x| e(&x))?
                .label(m.label.clone())
                .legend(move |(x, y)| PathElement::new([(x, y), (x + 18, y)], style));
        }
        legend(&mut chart, SeriesLabelPosition::LowerRight)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::draw::testing;
    use crate::save;

    #[test]
    fn steps_rise_by_one_over_n() {
        let steps = Cdf::steps(&[3.0, 1.0, 2.0]);
        assert_eq!(steps.first(), Some(&(1.0, 0.0)));
        assert_eq!(steps.last(), Some(&(3.0, 1.0)));
        assert!(
            steps
                .windows(2)
                .all(|w| w[1].0 >= w[0].0 && w[1].1 >= w[0].1)
        );
        assert_eq!(steps.len(), 7);
    }

    #[test]
    fn writes_png_and_svg() {
        let dir = testing::dir("cdf");
        let cdf = Cdf {
            title: "ping RTT, ufl-0 → lsu-gw".into(),
            x_label: "RTT (ms)".into(),
            series: vec![Series {
                label: "physical".into(),
                values: (0..200).map(|i| 38.0 + f64::from(i % 17) * 0.05).collect(),
            }],
            marks: vec![Mark {
                label: "paper mean 38.8 ms".into(),
                x: 38.801,
            }],
        };
        let [png, svg] = save(&cdf, &dir, "rtt-cdf").unwrap();
        testing::assert_valid(&png, &svg);
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn refuses_empty_and_non_finite_data() {
        let dir = testing::dir("cdf-bad");
        let mut cdf = Cdf {
            title: "t".into(),
            x_label: "x".into(),
            series: vec![],
            marks: vec![],
        };
        assert!(save(&cdf, &dir, "a").is_err());
        cdf.series.push(Series {
            label: "s".into(),
            values: vec![1.0, f64::NAN],
        });
        let err = save(&cdf, &dir, "a").unwrap_err().to_string();
        assert!(err.contains("not finite"), "{err}");
        std::fs::remove_dir_all(dir).unwrap();
    }
}
