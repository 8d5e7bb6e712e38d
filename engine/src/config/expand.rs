//! `$VAR` / `${VAR}` expansion of the raw configuration text (CLI_CONFIG.md
//! §4.1), with the rules of Go's `os.Expand`, which Litestream applies to the
//! whole file before YAML parsing (comments and quoted strings included).
//!
//! The expansion also records where each output byte came from, so that YAML
//! errors found in the expanded text are reported at the line and column of
//! the file as written.

/// The expanded text and a map back to the original text.
#[derive(Debug)]
pub(crate) struct Expanded {
    /// The text after expansion.
    pub(crate) text: String,
    /// Output ranges in increasing `out` order.
    segments: Vec<Segment>,
}

/// One run of output bytes: either copied from the source (offsets map one to
/// one) or the value of a variable (every offset maps to the `$`).
#[derive(Debug, Clone, Copy)]
struct Segment {
    out: usize,
    src: usize,
    substituted: bool,
}

impl Expanded {
    /// The text unchanged (`-no-expand-env`).
    pub(crate) fn identity(text: &str) -> Self {
        Self {
            text: text.to_owned(),
            segments: vec![Segment {
                out: 0,
                src: 0,
                substituted: false,
            }],
        }
    }

    /// The byte offset in the original text that produced output byte `out`.
    pub(crate) fn source_offset(&self, out: usize) -> usize {
        let idx = self.segments.partition_point(|s| s.out <= out);
        match idx.checked_sub(1).and_then(|i| self.segments.get(i)) {
            Some(seg) if seg.substituted => seg.src,
            Some(seg) => seg.src + (out - seg.out),
            None => out,
        }
    }
}

/// Expands `$NAME`, `${NAME}` and the one-character special names in `text`,
/// looking each name up with `lookup` (an unset name expands to nothing).
///
/// The rules are those of Go's `os.Expand`:
///
/// | text | result |
/// |---|---|
/// | `$NAME` (longest run of `[A-Za-z0-9_]`) | value of `NAME` |
/// | `${NAME}` (everything up to the first `}`) | value of `NAME` |
/// | `$` + one of `*#$@!?-0123456789` | value of that one-character name |
/// | `${}` | removed |
/// | `${` without a closing brace | the two characters are removed |
/// | `$` followed by anything else, or at the end | kept |
pub fn expand_env(text: &str, lookup: &dyn Fn(&str) -> Option<String>) -> String {
    expand_with_map(text, lookup).text
}

/// [`expand_env`], also returning the offset map.
pub(crate) fn expand_with_map(text: &str, lookup: &dyn Fn(&str) -> Option<String>) -> Expanded {
    let bytes = text.as_bytes();
    let mut out = Expanded {
        text: String::with_capacity(text.len()),
        segments: Vec::new(),
    };
    let mut literal_start = 0;
    let mut j = 0;
    while j < bytes.len() {
        if bytes[j] == b'$' && j + 1 < bytes.len() {
            out.push_literal(text, literal_start, j);
            let (name, width) = shell_name(&text[j + 1..]);
            match name {
                // Bad syntax (`${}` or an unclosed `${`): the characters are eaten.
                None if width > 0 => {}
                // `$` not followed by a name stays as it is.
                None => out.push_literal(text, j, j + 1),
                Some(name) => {
                    let value = lookup(name).unwrap_or_default();
                    out.push_substitution(&value, j);
                }
            }
            j += width;
            literal_start = j + 1;
        }
        j += 1;
    }
    out.push_literal(text, literal_start, bytes.len());
    if out.segments.is_empty() {
        out.segments.push(Segment {
            out: 0,
            src: 0,
            substituted: false,
        });
    }
    out
}

impl Expanded {
    fn push_literal(&mut self, text: &str, start: usize, end: usize) {
        if start >= end {
            return;
        }
        self.segments.push(Segment {
            out: self.text.len(),
            src: start,
            substituted: false,
        });
        self.text.push_str(&text[start..end]);
    }

    fn push_substitution(&mut self, value: &str, dollar: usize) {
        if value.is_empty() {
            return;
        }
        self.segments.push(Segment {
            out: self.text.len(),
            src: dollar,
            substituted: true,
        });
        self.text.push_str(value);
    }
}

/// The name after a `$` and how many bytes after the `$` it occupies.
/// `(None, 0)`: no name, keep the `$`; `(None, n)`: bad syntax, eat `n` bytes.
fn shell_name(s: &str) -> (Option<&str>, usize) {
    let b = s.as_bytes();
    if b.first() == Some(&b'{') {
        if b.len() > 2 && is_special(b[1]) && b[2] == b'}' {
            return (Some(&s[1..2]), 3);
        }
        return match b.iter().skip(1).position(|&c| c == b'}') {
            Some(0) => (None, 2),
            Some(p) => (Some(&s[1..p + 1]), p + 2),
            None => (None, 1),
        };
    }
    match b.first() {
        Some(&c) if is_special(c) => (Some(&s[..1]), 1),
        _ => {
            let n = b
                .iter()
                .take_while(|&&c| c == b'_' || c.is_ascii_alphanumeric())
                .count();
            if n == 0 {
                (None, 0)
            } else {
                (Some(&s[..n]), n)
            }
        }
    }
}

/// Shell special parameters that form a one-character name.
fn is_special(c: u8) -> bool {
    matches!(c, b'*' | b'#' | b'$' | b'@' | b'!' | b'?' | b'-') || c.is_ascii_digit()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(name: &str) -> Option<String> {
        match name {
            "NAME" => Some("value".into()),
            "A_1" => Some("a1".into()),
            "A:-b" => Some("weird".into()),
            "$" => Some("dollar".into()),
            "1" => Some("one".into()),
            "*" => Some("star".into()),
            "PID" => Some("4242".into()),
            "MULTI" => Some("x\ny".into()),
            _ => None,
        }
    }

    #[test]
    fn every_row_of_the_spec_table() {
        let cases: &[(&str, &str)] = &[
            // $NAME: the longest run of [A-Za-z0-9_].
            ("$NAME", "value"),
            ("$NAME.txt", "value.txt"),
            ("$A_1-x", "a1-x"),
            ("$NAMEX", ""),
            // ${NAME}: everything up to the first `}`.
            ("${NAME}", "value"),
            ("${NAME}X", "valueX"),
            ("${A:-b}", "weird"),
            ("${UNSET:-default}", ""),
            ("${NAME}}", "value}"),
            // $ + one special character.
            ("$$", "dollar"),
            ("$1abc", "oneabc"),
            ("$*", "star"),
            ("$#", ""),
            ("$@!", "!"),
            ("${$}", "dollar"),
            ("${1}", "one"),
            // ${} is removed.
            ("a${}b", "ab"),
            // ${ with no closing brace: the two characters are removed.
            ("a${NAME", "aNAME"),
            ("${", ""),
            // $ followed by anything else, or at the end, is kept.
            ("a$", "a$"),
            ("$.x", "$.x"),
            ("$ x", "$ x"),
            ("cost: 5$", "cost: 5$"),
            // Unset variables become empty.
            ("[$UNSET]", "[]"),
            ("pid-$PID", "pid-4242"),
            // Expansion ignores YAML syntax: comments and quotes included.
            ("# $NAME\nk: '$NAME'", "# value\nk: 'value'"),
            ("", ""),
            ("no dollars", "no dollars"),
            ("ü$NAME€", "üvalue€"),
        ];
        for (input, want) in cases {
            assert_eq!(expand_env(input, &env), *want, "input {input:?}");
        }
    }

    #[test]
    fn offsets_map_back_to_the_source() {
        let src = "a: $NAME\nb: ${MULTI} x\nc: z";
        let e = expand_with_map(src, &env);
        assert_eq!(e.text, "a: value\nb: x\ny x\nc: z");
        // "a: " maps one to one.
        assert_eq!(e.source_offset(0), 0);
        assert_eq!(e.source_offset(3), 3);
        // Every byte of the value maps to the `$`.
        assert_eq!(e.source_offset(5), 3);
        // The newline after the value is the newline after `$NAME`.
        assert_eq!(e.source_offset(8), 8);
        // The multi-line value maps to `${MULTI}` at byte 12.
        let y = e.text.find('y').unwrap_or_default();
        assert_eq!(e.source_offset(y), 12);
        // "c" after it is where it was written.
        let c = e.text.find('c').unwrap_or_default();
        assert_eq!(e.source_offset(c), src.find('c').unwrap_or_default());
    }

    #[test]
    fn identity_maps_every_offset_to_itself() {
        let e = Expanded::identity("a: $X");
        assert_eq!(e.text, "a: $X");
        assert_eq!(e.source_offset(4), 4);
    }
}
