//! Text helpers: where a byte offset falls in a text, and the error that points there
//! ([`Located`], for node configuration, topology and hosts files), and fixed-length
//! hexadecimal (addresses, namespace ids and keys, secrets). Pure arithmetic on strings.

/// `N` bytes from exactly `2·N` hexadecimal digits (surrounding whitespace ignored);
/// `None` for any other text.
pub fn hex_bytes<const N: usize>(text: &str) -> Option<[u8; N]> {
    let text = text.trim();
    // Digits only: `from_str_radix` alone would take a sign ("+1").
    if text.len() != 2 * N || !text.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    let mut out = [0u8; N];
    for (i, b) in out.iter_mut().enumerate() {
        *b = u8::from_str_radix(text.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(out)
}

/// The bytes as lowercase hexadecimal digits (what [`hex_bytes`] reads back).
pub fn to_hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    bytes
        .iter()
        .fold(String::with_capacity(2 * bytes.len()), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        })
}

/// A 1-based line and column; the column counts characters, not bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Position {
    /// 1-based line.
    pub line: usize,
    /// 1-based column, in characters.
    pub column: usize,
}

impl Position {
    /// The position of byte offset `at` in `text`; an offset past the end means the end.
    pub fn of(text: &str, at: usize) -> Position {
        let before = text.get(..at.min(text.len())).unwrap_or(text);
        Position {
            line: before.matches('\n').count() + 1,
            column: before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1,
        }
    }
}

/// What is wrong at a place in a text file: the file, the line and column, and the
/// reason (`FILE:LINE:COLUMN: REASON`, as compilers say it).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{file}:{}:{}: {reason}", .at.line, .at.column)]
pub struct Located {
    /// The file (or a label for generated text).
    pub file: String,
    /// Where in it.
    pub at: Position,
    /// What is wrong, and how to fix it.
    pub reason: String,
}

impl Located {
    /// `reason` at byte offset `offset` of `text`, read from `file`.
    pub fn new(text: &str, file: &str, offset: usize, reason: impl Into<String>) -> Located {
        Located {
            file: file.to_owned(),
            at: Position::of(text, offset),
            reason: reason.into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{Located, Position, hex_bytes};

    #[test]
    fn hex_bytes_take_exactly_two_digits_per_byte() {
        assert_eq!(hex_bytes::<2>(" 0aFf\n"), Some([0x0a, 0xff]));
        for bad in ["0aF", "0aFf0", "0g00", "+1ff", "é0", ""] {
            assert_eq!(hex_bytes::<2>(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn lines_and_columns_are_one_based_and_count_characters() {
        let text = "a = 1\nbé = 2\n";
        let at = |line, column| Position { line, column };
        assert_eq!(Position::of(text, 0), at(1, 1));
        assert_eq!(Position::of(text, 4), at(1, 5));
        assert_eq!(Position::of(text, 6), at(2, 1));
        // "bé" is three bytes: the space after it is the third character.
        assert_eq!(Position::of(text, 9), at(2, 3));
        assert_eq!(Position::of(text, 1000), at(3, 1));
        let e = Located::new(text, "x.toml", 9, "no such key");
        assert_eq!(e.to_string(), "x.toml:2:3: no such key");
    }
}
