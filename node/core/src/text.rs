//! Where a byte offset falls in a text, for errors that point into a configuration file
//! (node configuration, topology and hosts files). Pure arithmetic on a string.

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

#[cfg(test)]
mod tests {
    use super::Position;

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
    }
}
