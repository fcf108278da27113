//! `wow-plots` computes summary statistics ([`stats`]) and draws CDFs ([`Cdf`]),
//! histograms ([`Histogram`]) and bar charts with error bars ([`Bars`]) as PNG and SVG.
//!
//! It takes plain values (`f64` samples, bars with their spread), never runs anything and
//! never reads anything but what it is handed: the harness feeds it from saved result
//! files, so every plot can be redrawn without rerunning an experiment. PNG text uses a
//! bundled font ([`font`]), so plots render the same on a machine with no system fonts.

mod bars;
mod cdf;
mod draw;
pub mod font;
mod histogram;
pub mod stats;

pub use bars::{Bar, Bars, Group};
pub use cdf::{Cdf, Mark, Series};
pub use draw::{Error, Plot, save};
pub use histogram::Histogram;
pub use stats::{Summary, Unit, summarize};
