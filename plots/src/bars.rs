//! Grouped bar charts with error bars: one group per quantity (say "TCP", "UDP"), one
//! bar per series (say "measured", "paper"). When the bars span more than two decades
//! the value axis is logarithmic, so a 20 Gbit/s veth and a 70 Mbit/s paper figure both
//! show.

use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use crate::draw::{Plot, colour, finite, legend, text};

/// One bar: its height and, where a spread exists, the range its error bar spans.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Bar {
    /// The height (for example the mean).
    pub value: f64,
    /// The spread (for example min and max), drawn as an error bar.
    pub spread: Option<(f64, f64)>,
}

/// The bars of one quantity, one per series (`None` where a series has no figure).
#[derive(Debug, Clone, PartialEq)]
pub struct Group {
    /// Its label under the axis.
    pub label: String,
    /// One entry per series.
    pub bars: Vec<Option<Bar>>,
}

/// A grouped bar chart.
#[derive(Debug, Clone, PartialEq)]
pub struct Bars {
    /// The title.
    pub title: String,
    /// The value axis label (with unit).
    pub y_label: String,
    /// Legend labels of the series.
    pub series: Vec<String>,
    /// The groups.
    pub groups: Vec<Group>,
}

/// Above this ratio of the largest to the smallest bar the axis is logarithmic.
const LOG_RATIO: f64 = 100.0;

impl Bars {
    fn values(&self) -> impl Iterator<Item = f64> + '_ {
        self.groups
            .iter()
            .flat_map(|g| g.bars.iter().flatten())
            .flat_map(|b| {
                let (lo, hi) = b.spread.unwrap_or((b.value, b.value));
                [b.value, lo, hi]
            })
    }

    /// The value axis' range, in log10 units on a log axis (whole decades, at least
    /// one).
    fn y_range(&self, log: bool) -> (f64, f64) {
        let top = self.values().fold(0.0f64, f64::max);
        if !log {
            return (0.0, top * 1.12);
        }
        let bottom = self.values().fold(f64::INFINITY, f64::min);
        (
            bottom.log10().floor(),
            top.log10().ceil().max(bottom.log10().floor() + 1.0),
        )
    }

    /// The bars of series `s`, each `width` wide, with the left edge of each.
    fn series_bars(&self, s: usize, width: f64) -> Vec<(f64, Bar)> {
        self.groups
            .iter()
            .enumerate()
            .filter_map(|(g, group)| {
                let x = g as f64 - 0.4 + s as f64 * width;
                group.bars[s].map(|b| (x, b))
            })
            .collect()
    }

    /// Whether the value axis is logarithmic.
    fn logarithmic(&self) -> bool {
        let (lo, hi) = self.values().fold((f64::INFINITY, 0.0f64), |(lo, hi), v| {
            (if v > 0.0 { lo.min(v) } else { lo }, hi.max(v))
        });
        self.values().all(|v| v > 0.0) && hi / lo > LOG_RATIO
    }
}

impl Plot for Bars {
    fn title(&self) -> &str {
        &self.title
    }

    fn check(&self) -> Result<(), String> {
        if self.values().next().is_none() {
            return Err("no bars".into());
        }
        if let Some(g) = self
            .groups
            .iter()
            .find(|g| g.bars.len() != self.series.len())
        {
            return Err(format!(
                "group {:?} has {} bars for {} series",
                g.label,
                g.bars.len(),
                self.series.len()
            ));
        }
        let values: Vec<f64> = self.values().collect();
        finite(&values)?;
        match values.iter().find(|v| **v < 0.0) {
            Some(v) => Err(format!("negative bar {v}")),
            None => Ok(()),
        }
    }

    fn draw<DB: DrawingBackend>(&self, area: &DrawingArea<DB, Shift>) -> Result<(), String> {
        let e = |e: &dyn std::fmt::Display| e.to_string();
        area.fill(&WHITE).map_err(|x| e(&x))?;
        let log = self.logarithmic();
        // On a log axis bars are drawn in log10 units and labelled as powers of ten.
        let y = |v: f64| if log { v.log10() } else { v };
        let (y_lo, y_hi) = self.y_range(log);
        let n = self.groups.len() as f64;
        let mut chart = ChartBuilder::on(area)
            .caption(&self.title, text(22))
            .margin(16)
            .x_label_area_size(40)
            .y_label_area_size(70)
            .build_cartesian_2d(-0.5..n - 0.5, y_lo..y_hi)
            .map_err(|x| e(&x))?;
        let y_desc = if log {
            format!("{} (log scale)", self.y_label)
        } else {
            self.y_label.clone()
        };
        let formatter = |v: &f64| tick_label(*v, log);
        chart
            .configure_mesh()
            .disable_x_mesh()
            .x_label_formatter(&|_| String::new())
            .y_labels(if log { (y_hi - y_lo) as usize + 1 } else { 8 })
            .y_label_formatter(&formatter)
            .y_desc(y_desc)
            .label_style(text(14))
            .axis_desc_style(text(16))
            .draw()
            .map_err(|x| e(&x))?;
        let slots = self.series.len().max(1) as f64;
        let width = 0.8 / slots;
        for (s, name) in self.series.iter().enumerate() {
            let fill = colour(s).mix(0.8).filled();
            let bars = self.series_bars(s, width);
            chart
                .draw_series(bars.iter().map(|&(x, b)| {
                    Rectangle::new([(x + 0.01, y_lo), (x + width - 0.01, y(b.value))], fill)
                }))
                .map_err(|x| e(&x))?
                .label(name.clone())
                .legend(move |(x, y)| Rectangle::new([(x, y - 5), (x + 12, y + 5)], fill));
            let whiskers = bars.iter().filter_map(|&(x, b)| whisker(x, b, width, y));
            chart.draw_series(whiskers).map_err(|x| e(&x))?;
            for &(x, b) in &bars {
                let top = b.spread.map_or(b.value, |(_, hi)| hi.max(b.value));
                let (px, py) = chart.backend_coord(&(x + width / 2.0, y(top)));
                let style = text(12).pos(Pos::new(HPos::Center, VPos::Bottom));
                area.draw(&Text::new(format_value(b.value), (px, py - 3), style))
                    .map_err(|x| e(&x))?;
            }
        }
        for (g, group) in self.groups.iter().enumerate() {
            let (px, py) = chart.backend_coord(&(g as f64, y_lo));
            let style = text(15).pos(Pos::new(HPos::Center, VPos::Top));
            area.draw(&Text::new(group.label.clone(), (px, py + 8), style))
                .map_err(|x| e(&x))?;
        }
        legend(&mut chart, SeriesLabelPosition::UpperRight)
    }
}

/// The label of the value axis at `v`: on a log axis a power of ten at whole decades
/// only.
fn tick_label(v: f64, log: bool) -> String {
    if !log {
        format!("{v}")
    } else if (v - v.round()).abs() < 1e-6 {
        format_value(10f64.powf(v.round()))
    } else {
        String::new()
    }
}

/// The error bar of bar `b` (`width` wide, its left edge at `x`), if it has a spread;
/// `y` maps values to the axis.
fn whisker(x: f64, b: Bar, width: f64, y: impl Fn(f64) -> f64) -> Option<PathElement<(f64, f64)>> {
    let (lo, hi) = b.spread?;
    let mid = x + width / 2.0;
    let cap = width / 6.0;
    Some(PathElement::new(
        [
            (mid - cap, y(lo)),
            (mid + cap, y(lo)),
            (mid, y(lo)),
            (mid, y(hi)),
            (mid - cap, y(hi)),
            (mid + cap, y(hi)),
        ],
        BLACK.stroke_width(2),
    ))
}

/// A value with about three significant digits.
fn format_value(v: f64) -> String {
    let a = v.abs();
    if a >= 100.0 || a == 0.0 {
        format!("{v:.0}")
    } else if a >= 10.0 {
        format!("{v:.1}")
    } else if a >= 1.0 {
        format!("{v:.2}")
    } else {
        format!("{v:.3}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::draw::testing;
    use crate::save;

    fn bars(measured: f64, paper: f64) -> Bars {
        Bars {
            title: "TCP throughput".into(),
            y_label: "Mbit/s".into(),
            series: vec!["measured".into(), "paper".into()],
            groups: vec![
                Group {
                    label: "TCP".into(),
                    bars: vec![
                        Some(Bar {
                            value: measured,
                            spread: Some((measured * 0.9, measured * 1.05)),
                        }),
                        Some(Bar {
                            value: paper,
                            spread: Some((paper * 0.95, paper * 1.05)),
                        }),
                    ],
                },
                Group {
                    label: "UDP".into(),
                    bars: vec![
                        Some(Bar {
                            value: measured / 2.0,
                            spread: None,
                        }),
                        None,
                    ],
                },
            ],
        }
    }

    #[test]
    fn the_axis_goes_logarithmic_over_two_decades() {
        assert!(!bars(90.0, 67.6).logarithmic());
        assert!(bars(20_000.0, 67.6).logarithmic());
    }

    #[test]
    fn writes_png_and_svg_linear_and_log() {
        let dir = testing::dir("bars");
        for (stem, measured) in [("linear", 90.0), ("log", 20_000.0)] {
            let [png, svg] = save(&bars(measured, 67.6), &dir, stem).unwrap();
            testing::assert_valid(&png, &svg);
        }
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn refuses_mismatched_and_negative_bars() {
        let dir = testing::dir("bars-bad");
        let mut b = bars(1.0, 2.0);
        b.groups[1].bars.pop();
        assert!(
            save(&b, &dir, "x")
                .unwrap_err()
                .to_string()
                .contains("2 series")
        );
        let mut b = bars(1.0, 2.0);
        b.groups[0].bars[0] = Some(Bar {
            value: -1.0,
            spread: None,
        });
        assert!(
            save(&b, &dir, "x")
                .unwrap_err()
                .to_string()
                .contains("negative")
        );
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn values_print_with_three_digits() {
        assert_eq!(format_value(0.6254), "0.625");
        assert_eq!(format_value(38.81), "38.8");
        assert_eq!(format_value(941.2), "941");
    }
}
