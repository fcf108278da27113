//! What every chart shares: the [`Plot`] trait, writing PNG and SVG, colours and sizes.

use std::path::{Path, PathBuf};

use plotters::coord::{CoordTranslate, Shift};
use plotters::prelude::*;

use crate::font::{self, FAMILY};

/// Pixel size of every plot.
pub(crate) const SIZE: (u32, u32) = (900, 560);

/// Series colours, in order (colour-blind safe, after Okabe and Ito).
pub(crate) const COLOURS: [RGBColor; 6] = [
    RGBColor(0, 114, 178),
    RGBColor(213, 94, 0),
    RGBColor(0, 158, 115),
    RGBColor(204, 121, 167),
    RGBColor(230, 159, 0),
    RGBColor(86, 180, 233),
];

/// The colour of series `i`.
pub(crate) fn colour(i: usize) -> RGBColor {
    COLOURS[i % COLOURS.len()]
}

/// A text style of the bundled font.
pub(crate) fn text(size: u32) -> TextStyle<'static> {
    (FAMILY, size).into_font().into()
}

/// Draws the legend of `chart` at `position`, boxed alike in every plot.
pub(crate) fn legend<'a, DB: DrawingBackend + 'a, CT: CoordTranslate>(
    chart: &mut ChartContext<'a, DB, CT>,
    position: SeriesLabelPosition,
) -> Result<(), String> {
    chart
        .configure_series_labels()
        .position(position)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .label_font(text(14))
        .draw()
        .map_err(|e| e.to_string())
}

/// Why a plot could not be drawn.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The bundled font did not load.
    #[error("the bundled font does not load")]
    Font,
    /// The data cannot be plotted.
    #[error("cannot plot {title:?}: {reason}")]
    Data {
        /// The plot's title.
        title: String,
        /// What is wrong with its data.
        reason: String,
    },
    /// plotters failed to draw or write the file.
    #[error("drawing {path}: {reason}")]
    Draw {
        /// The file being written.
        path: PathBuf,
        /// plotters' message.
        reason: String,
    },
}

/// Something that can draw itself on any plotters backend.
pub trait Plot {
    /// Its title.
    fn title(&self) -> &str;

    /// Draws it on `area`; errors are plotters' messages.
    fn draw<DB: DrawingBackend>(&self, area: &DrawingArea<DB, Shift>) -> Result<(), String>;

    /// Checks the data before drawing: `Err` says what is wrong.
    fn check(&self) -> Result<(), String>;
}

/// Writes `plot` as `<dir>/<stem>.png` and `<dir>/<stem>.svg` and returns both paths.
pub fn save(plot: &impl Plot, dir: &Path, stem: &str) -> Result<[PathBuf; 2], Error> {
    font::register()?;
    plot.check().map_err(|reason| Error::Data {
        title: plot.title().to_string(),
        reason,
    })?;
    let png = dir.join(format!("{stem}.png"));
    let svg = dir.join(format!("{stem}.svg"));
    let failed = |path: &Path| {
        let path = path.to_path_buf();
        move |reason: String| Error::Draw { path, reason }
    };
    {
        let area = BitMapBackend::new(&png, SIZE).into_drawing_area();
        plot.draw(&area).map_err(failed(&png))?;
        area.present().map_err(|e| failed(&png)(e.to_string()))?;
    }
    {
        let area = SVGBackend::new(&svg, SIZE).into_drawing_area();
        plot.draw(&area).map_err(failed(&svg))?;
        area.present().map_err(|e| failed(&svg)(e.to_string()))?;
    }
    Ok([png, svg])
}

/// The range `[lo, hi]` widened by 5 % on each side (and made non-empty).
pub(crate) fn padded(lo: f64, hi: f64) -> (f64, f64) {
    let span = if hi > lo { hi - lo } else { lo.abs().max(1.0) };
    (lo - span * 0.05, hi + span * 0.05)
}

/// Checks that every value is finite.
pub(crate) fn finite<'a>(values: impl IntoIterator<Item = &'a f64>) -> Result<(), String> {
    match values.into_iter().find(|v| !v.is_finite()) {
        Some(v) => Err(format!("value {v} is not finite")),
        None => Ok(()),
    }
}

#[cfg(test)]
pub(crate) mod testing {
    //! Checks that written files are real PNG and SVG.

    use std::path::Path;

    /// Asserts that `png` starts with the PNG signature and has the plot's size, and that
    /// `svg` is an SVG document with text in it.
    pub(crate) fn assert_valid(png: &Path, svg: &Path) {
        let bytes = std::fs::read(png).unwrap();
        assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n", "{}", png.display());
        let width = u32::from_be_bytes(bytes[16..20].try_into().unwrap());
        let height = u32::from_be_bytes(bytes[20..24].try_into().unwrap());
        assert_eq!((width, height), super::SIZE);
        let text = std::fs::read_to_string(svg).unwrap();
        assert!(text.contains("<svg"), "{}", svg.display());
        assert!(text.contains("<text"), "{}", svg.display());
        assert!(text.trim_end().ends_with("</svg>"), "{}", svg.display());
    }

    /// A fresh folder under the system temp dir.
    pub(crate) fn dir(name: &str) -> std::path::PathBuf {
        let d = std::env::temp_dir().join(format!("wow-plots-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }
}
