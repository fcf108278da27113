//! Summary statistics of trial values: p50, p90, p99 from an HDR histogram, and exact
//! mean, min and max.
//!
//! # Fixed-point scale
//! An HDR histogram counts integers, so a value `v` in unit `u` is recorded as
//! `round(v × u.scale())`: with scale 1000 a millisecond value keeps microseconds, a
//! second value keeps milliseconds, a Mbit/s value keeps kbit/s; counts have scale 1.
//! The histogram keeps 3 significant digits, so a percentile is within
//! max(1 / scale, 0.1 % of the value) of the true one. Mean, min and max are computed
//! from the `f64` values themselves, percentiles are clamped to [min, max]; percentiles,
//! min and max are rounded to 1 / scale, the mean to 0.001 of the unit.

use std::fmt;

use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

/// Significant digits the histogram keeps.
const SIGNIFICANT_DIGITS: u8 = 3;

/// The unit of a metric, and with it the fixed-point scale of its histogram.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum Unit {
    /// Milliseconds (recorded in µs).
    #[serde(rename = "ms")]
    Millis,
    /// Seconds (recorded in ms).
    #[serde(rename = "s")]
    Seconds,
    /// Megabits per second (recorded in kbit/s).
    #[serde(rename = "Mbit/s")]
    Mbps,
    /// Percent (recorded in thousandths of a percent).
    #[serde(rename = "%")]
    Percent,
    /// A whole number of things.
    #[serde(rename = "count")]
    Count,
    /// Events per minute (jobs a batch system finished; recorded in thousandths).
    #[serde(rename = "/min")]
    PerMinute,
    /// A ratio of two measurements (a speedup; recorded in thousandths).
    #[serde(rename = "×")]
    Ratio,
}

impl Unit {
    /// Histogram units per unit.
    pub fn scale(self) -> f64 {
        match self {
            Unit::Millis
            | Unit::Seconds
            | Unit::Mbps
            | Unit::Percent
            | Unit::PerMinute
            | Unit::Ratio => 1000.0,
            Unit::Count => 1.0,
        }
    }

    /// How the unit is written (also its JSON form).
    pub fn symbol(self) -> &'static str {
        match self {
            Unit::Millis => "ms",
            Unit::Seconds => "s",
            Unit::Mbps => "Mbit/s",
            Unit::Percent => "%",
            Unit::Count => "count",
            Unit::PerMinute => "/min",
            Unit::Ratio => "×",
        }
    }

    /// Decimals worth printing for this unit in tables.
    pub fn decimals(self) -> usize {
        match self {
            Unit::Millis => 3,
            Unit::Seconds | Unit::Mbps | Unit::Percent | Unit::PerMinute | Unit::Ratio => 2,
            Unit::Count => 0,
        }
    }
}

impl fmt::Display for Unit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.symbol())
    }
}

/// The summary of one metric over the trials that measured it.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    /// The unit of every figure below.
    pub unit: Unit,
    /// How many values.
    pub count: u64,
    /// Median.
    pub p50: f64,
    /// 90th percentile.
    pub p90: f64,
    /// 99th percentile.
    pub p99: f64,
    /// Arithmetic mean.
    pub mean: f64,
    /// Smallest value.
    pub min: f64,
    /// Largest value.
    pub max: f64,
}

/// A value that cannot be summarised.
#[derive(Debug, Clone, Copy, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum StatsError {
    /// NaN, infinite or negative.
    #[error("value {0} is not a finite, non-negative number")]
    BadValue(f64),
    /// Too large for the histogram at this unit's scale.
    #[error("value {0} is too large to record")]
    TooLarge(f64),
}

/// Summarises `values` (in `unit`); `None` when there are none.
pub fn summarize(values: &[f64], unit: Unit) -> Result<Option<Summary>, StatsError> {
    if values.is_empty() {
        return Ok(None);
    }
    let scale = unit.scale();
    let mut histogram = Histogram::<u64>::new(SIGNIFICANT_DIGITS)
        .expect("3 significant digits is a valid histogram precision");
    let (mut sum, mut min, mut max) = (0.0, f64::INFINITY, f64::NEG_INFINITY);
    for &v in values {
        if !v.is_finite() || v < 0.0 {
            return Err(StatsError::BadValue(v));
        }
        let scaled = (v * scale).round();
        if scaled >= u64::MAX as f64 / 2.0 {
            return Err(StatsError::TooLarge(v));
        }
        histogram
            .record(scaled as u64)
            .map_err(|_| StatsError::TooLarge(v))?;
        sum += v;
        min = min.min(v);
        max = max.max(v);
    }
    let round = |v: f64| (v * scale).round() / scale;
    let quantile = |q: f64| round((histogram.value_at_quantile(q) as f64 / scale).clamp(min, max));
    Ok(Some(Summary {
        unit,
        count: values.len() as u64,
        p50: quantile(0.50),
        p90: quantile(0.90),
        p99: quantile(0.99),
        mean: (sum / values.len() as f64 * 1000.0).round() / 1000.0,
        min: round(min),
        max: round(max),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_of_one_to_a_thousand() {
        let values: Vec<f64> = (1..=1000).map(f64::from).collect();
        let s = summarize(&values, Unit::Count).unwrap().unwrap();
        assert_eq!(s.count, 1000);
        assert_eq!((s.min, s.max), (1.0, 1000.0));
        assert_eq!(s.mean, 500.5);
        assert_eq!(s.p50, 500.0);
        assert_eq!(s.p90, 900.0);
        assert_eq!(s.p99, 990.0);
    }

    #[test]
    fn milliseconds_keep_microseconds_and_three_digits() {
        // 0.6 ms LAN pings with one 38.8 ms outlier.
        let mut values = vec![0.612; 99];
        values.push(38.801);
        let s = summarize(&values, Unit::Millis).unwrap().unwrap();
        assert_eq!(s.p50, 0.612);
        assert_eq!(s.min, 0.612);
        assert_eq!(s.max, 38.801);
        // 38.801 ms is 38 801 µs; at 3 significant digits its bucket is 32 units wide,
        // and the clamp to the exact maximum keeps p99 <= max.
        assert!(s.p99 <= s.max && s.p99 >= 0.612, "{s:?}");
        assert!((s.mean - (0.612 * 99.0 + 38.801) / 100.0).abs() < 0.001);
    }

    #[test]
    fn percentiles_are_within_the_documented_precision() {
        let values: Vec<f64> = (0..10_000).map(|i| 20.0 + f64::from(i) * 0.0021).collect();
        let s = summarize(&values, Unit::Millis).unwrap().unwrap();
        let exact_p90 = values[8999];
        assert!(
            (s.p90 - exact_p90).abs() <= exact_p90 * 0.001 + 0.001,
            "{s:?}"
        );
    }

    #[test]
    fn throughput_in_mbit_per_second() {
        let s = summarize(&[941.234_567, 18_400.5], Unit::Mbps)
            .unwrap()
            .unwrap();
        assert_eq!(s.min, 941.235);
        assert_eq!(s.max, 18_400.5);
        assert_eq!(s.unit.symbol(), "Mbit/s");
    }

    #[test]
    fn empty_bad_and_huge_values() {
        assert_eq!(summarize(&[], Unit::Millis), Ok(None));
        assert!(matches!(
            summarize(&[1.0, f64::NAN], Unit::Millis),
            Err(StatsError::BadValue(v)) if v.is_nan()
        ));
        assert!(matches!(
            summarize(&[-1.0], Unit::Millis),
            Err(StatsError::BadValue(_))
        ));
        assert!(matches!(
            summarize(&[f64::INFINITY], Unit::Count),
            Err(StatsError::BadValue(_))
        ));
        assert!(matches!(
            summarize(&[1e300], Unit::Millis),
            Err(StatsError::TooLarge(_))
        ));
    }

    #[test]
    fn units_serialise_as_their_symbols() {
        for unit in [
            Unit::Millis,
            Unit::Seconds,
            Unit::Mbps,
            Unit::Percent,
            Unit::Count,
        ] {
            let json = serde_json::to_string(&unit).unwrap();
            assert_eq!(json, format!("\"{}\"", unit.symbol()));
            assert_eq!(serde_json::from_str::<Unit>(&json).unwrap(), unit);
        }
    }
}
