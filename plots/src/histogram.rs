//! Histograms: how many values fall in each of `bins` equal-width bins.

use plotters::coord::Shift;
use plotters::prelude::*;

use crate::draw::{Plot, colour, finite, legend, padded, text};

/// A histogram of one set of values.
#[derive(Debug, Clone, PartialEq)]
pub struct Histogram {
    /// The title.
    pub title: String,
    /// The x axis label (with unit).
    pub x_label: String,
    /// The values.
    pub values: Vec<f64>,
    /// Number of bins (at least 1).
    pub bins: usize,
}

impl Histogram {
    /// The bins: (low edge, high edge, count). Values equal to the maximum go in the
    /// last bin; if every value is equal there is one bin of width 1 around it.
    fn counts(&self) -> Vec<(f64, f64, u64)> {
        let (lo, hi) = self
            .values
            .iter()
            .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), &v| {
                (lo.min(v), hi.max(v))
            });
        if self.values.is_empty() {
            return Vec::new();
        }
        let (lo, hi, bins) = if hi > lo {
            (lo, hi, self.bins.max(1))
        } else {
            (lo - 0.5, lo + 0.5, 1)
        };
        let width = (hi - lo) / bins as f64;
        let mut counts = vec![0u64; bins];
        for &v in &self.values {
            let i = (((v - lo) / width) as usize).min(bins - 1);
            counts[i] += 1;
        }
        counts
            .into_iter()
            .enumerate()
            .map(|(i, c)| (lo + i as f64 * width, lo + (i + 1) as f64 * width, c))
            .collect()
    }
}

impl Plot for Histogram {
    fn title(&self) -> &str {
        &self.title
    }

    fn check(&self) -> Result<(), String> {
        if self.values.is_empty() {
            return Err("no values".into());
        }
        finite(&self.values)
    }

    fn draw<DB: DrawingBackend>(&self, area: &DrawingArea<DB, Shift>) -> Result<(), String> {
        let e = |e: &dyn std::fmt::Display| e.to_string();
        area.fill(&WHITE).map_err(|x| e(&x))?;
        let bins = self.counts();
        let lo = bins.first().map_or(0.0, |b| b.0);
        let hi = bins.last().map_or(1.0, |b| b.1);
        let top = bins.iter().map(|b| b.2).max().unwrap_or(1) as f64;
        let (x_lo, x_hi) = padded(lo, hi);
        let mut chart = ChartBuilder::on(area)
            .caption(&self.title, text(22))
            .margin(16)
            .x_label_area_size(48)
            .y_label_area_size(60)
            .build_cartesian_2d(x_lo..x_hi, 0.0..top * 1.08)
            .map_err(|x| e(&x))?;
        chart
            .configure_mesh()
            .x_desc(&self.x_label)
            .y_desc("values per bin")
            .label_style(text(14))
            .axis_desc_style(text(16))
            .draw()
            .map_err(|x| e(&x))?;
        let fill = colour(0).mix(0.75).filled();
        chart
            .draw_series(
                bins.iter()
                    .map(|&(a, b, c)| Rectangle::new([(a, 0.0), (b, c as f64)], fill)),
            )
            .map_err(|x| e(&x))?
            .label(format!("n = {}", self.values.len()))
            .legend(move |(x, y)| Rectangle::new([(x, y - 5), (x + 12, y + 5)], fill));
        legend(&mut chart, SeriesLabelPosition::UpperRight)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::draw::testing;
    use crate::save;

    #[test]
    fn counts_cover_every_value() {
        let h = Histogram {
            title: "t".into(),
            x_label: "x".into(),
            values: vec![0.0, 1.0, 1.0, 2.5, 10.0],
            bins: 4,
        };
        let bins = h.counts();
        assert_eq!(bins.len(), 4);
        assert_eq!(bins.iter().map(|b| b.2).sum::<u64>(), 5);
        assert_eq!(bins[0], (0.0, 2.5, 3));
        assert_eq!(bins[3].2, 1, "the maximum lands in the last bin");
        let flat = Histogram {
            values: vec![7.0; 3],
            ..h
        };
        assert_eq!(flat.counts(), vec![(6.5, 7.5, 3)]);
    }

    #[test]
    fn writes_png_and_svg() {
        let dir = testing::dir("hist");
        let h = Histogram {
            title: "ping RTT".into(),
            x_label: "RTT (ms)".into(),
            values: (0..500).map(|i| 0.5 + f64::from(i % 23) * 0.01).collect(),
            bins: 30,
        };
        let [png, svg] = save(&h, &dir, "rtt-hist").unwrap();
        testing::assert_valid(&png, &svg);
        std::fs::remove_dir_all(dir).unwrap();
    }
}
