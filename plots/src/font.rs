//! The bundled font: a 27 KB subset of DejaVu Sans (see `fonts/README.md` and
//! `fonts/LICENSE-DejaVu.txt`), registered with plotters from bytes under [`FAMILY`].

use std::sync::OnceLock;

/// The family name every plot uses.
pub const FAMILY: &str = "sans-serif";

/// The font file, compiled in.
pub static BYTES: &[u8] = include_bytes!("../fonts/DejaVuSans-subset.ttf");

/// Registers the bundled font once; later calls return the first outcome.
pub fn register() -> Result<(), crate::Error> {
    static DONE: OnceLock<bool> = OnceLock::new();
    let ok = *DONE.get_or_init(|| {
        use plotters::style::{FontStyle, register_font};
        [FontStyle::Normal, FontStyle::Bold]
            .into_iter()
            .all(|style| register_font(FAMILY, style, BYTES).is_ok())
    });
    if ok { Ok(()) } else { Err(crate::Error::Font) }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_bundled_font_registers() {
        super::register().unwrap();
        super::register().unwrap();
    }
}
