//! The YAML document as a tree of located nodes (typed reads are in `doc.rs`).
//!
//! serde-saphyr parses the (expanded) text into [`Spanned`] values; each
//! scalar keeps the text it was written with, so values are interpreted the
//! way Litestream's YAML 1.1 decoder does (`0600` is octal, `yes` is true, a
//! string field takes the scalar as written). Every node keeps its line and
//! column in the file as written, for error messages.

use std::fmt;
use std::path::Path;

use serde::de::{Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_saphyr::{
    Budget, Location, MessageFormatter, NonFiniteFloatPolicy, Options, Spanned,
    UserMessageFormatter,
};

pub(crate) use super::doc::{Doc, suggest};
use super::error::{ConfigError, Origin};
use super::expand::Expanded;

/// Upper bounds for the YAML parser; a configuration file is small, so these
/// only stop hostile input (alias bombs, deep nesting).
const MAX_DEPTH: usize = 32;
const MAX_NODES: usize = 100_000;
const MAX_EVENTS: usize = 400_000;
const MAX_ALIASES: usize = 1_000;
const MAX_SCALAR_BYTES: usize = 4 << 20;

/// A 1-based line and column in the file as written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct Pos {
    pub(crate) line: u64,
    pub(crate) column: u64,
}

/// A value with the position it was read from.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct At<T> {
    pub(crate) value: T,
    pub(crate) pos: Pos,
}

/// A node of the document.
#[derive(Debug)]
pub(crate) struct Node {
    pub(crate) kind: Kind,
    pub(crate) pos: Pos,
}

/// What a node holds.
#[derive(Debug)]
pub(crate) enum Kind {
    /// `~`, `null` or nothing.
    Null,
    /// A scalar: its text, and whether it was plain (unquoted, one line), in
    /// which case YAML 1.1 typing applies.
    Scalar { text: String, plain: bool },
    /// A sequence.
    Seq(Vec<Node>),
    /// A mapping in document order.
    Map(Vec<(Key, Node)>),
}

/// A mapping key.
#[derive(Debug)]
pub(crate) struct Key {
    pub(crate) name: String,
    pub(crate) pos: Pos,
}

/// Parses the expanded text into a tree. An empty document is `Null`.
pub(crate) fn parse(expanded: &Expanded, original: &str, file: &Path) -> Result<Node, ConfigError> {
    let map = SourceMap::new(expanded, original);
    let mut budget = Budget::default();
    budget.max_depth = MAX_DEPTH;
    budget.max_nodes = MAX_NODES;
    budget.max_events = MAX_EVENTS;
    budget.max_aliases = MAX_ALIASES;
    budget.max_total_scalar_bytes = MAX_SCALAR_BYTES;
    let mut options = Options::default();
    options.budget = Some(budget);
    options.with_snippet = false;
    // Scalars are re-read as text; never refuse `.nan` or `1e999` here.
    options.non_finite_float_policy = NonFiniteFloatPolicy::PassThrough;
    let raw: Spanned<Raw> =
        serde_saphyr::from_str_with_options(&expanded.text, options).map_err(|e| {
            let pos = e
                .location()
                .map_or(Pos { line: 1, column: 1 }, |l| map.pos(&l));
            let inner = e.without_snippet();
            let message: String = UserMessageFormatter
                .format_message(inner)
                .chars()
                .map(|c| if c.is_control() { ' ' } else { c })
                .collect();
            ConfigError::Syntax {
                origin: Origin::File {
                    path: file.to_path_buf(),
                    line: pos.line,
                    column: pos.column,
                },
                message,
            }
        })?;
    let doc = Doc::new(Some(file));
    convert(raw, &map, &doc)
}

/// Maps parser locations (in the expanded text) back to the file as written.
struct SourceMap<'a> {
    expanded: &'a Expanded,
    original: &'a str,
    line_starts: Vec<usize>,
}

impl<'a> SourceMap<'a> {
    fn new(expanded: &'a Expanded, original: &'a str) -> Self {
        let line_starts = std::iter::once(0)
            .chain(original.match_indices('\n').map(|(i, _)| i + 1))
            .collect();
        Self {
            expanded,
            original,
            line_starts,
        }
    }

    fn pos(&self, loc: &Location) -> Pos {
        let Some(offset) = loc
            .span()
            .byte_offset()
            .and_then(|o| usize::try_from(o).ok())
        else {
            return Pos {
                line: loc.line().max(1),
                column: loc.column().max(1),
            };
        };
        let src = self.expanded.source_offset(offset).min(self.original.len());
        let line = self.line_starts.partition_point(|&s| s <= src).max(1);
        let start = self.line_starts.get(line - 1).copied().unwrap_or(0);
        let column = self
            .original
            .get(start..src)
            .map_or(src - start, |s| s.chars().count())
            + 1;
        Pos {
            line: line as u64,
            column: column as u64,
        }
    }

    /// The text of the node as written in the expanded document.
    fn raw(&self, loc: &Location) -> Option<&'a str> {
        let span = loc.span();
        let start = usize::try_from(span.byte_offset()?).ok()?;
        let len = usize::try_from(span.byte_len()?).ok()?;
        self.expanded.text.get(start..start.checked_add(len)?)
    }
}

fn convert(raw: Spanned<Raw>, map: &SourceMap<'_>, doc: &Doc) -> Result<Node, ConfigError> {
    let pos = map.pos(&raw.referenced);
    let kind = match raw.value {
        Raw::Null => Kind::Null,
        Raw::Str(text) => {
            let plain = map.raw(&raw.defined) == Some(text.as_str());
            Kind::Scalar { text, plain }
        }
        Raw::Typed(shown) => Kind::Scalar {
            text: map.raw(&raw.defined).map_or(shown, str::to_owned),
            plain: true,
        },
        Raw::Seq(items) => Kind::Seq(
            items
                .into_iter()
                .map(|item| convert(item, map, doc))
                .collect::<Result<_, _>>()?,
        ),
        Raw::Map(entries) => {
            let mut out = Vec::with_capacity(entries.len());
            for (k, v) in entries {
                let key_pos = map.pos(&k.referenced);
                let name = match k.value {
                    Raw::Str(s) => s,
                    Raw::Typed(shown) => map.raw(&k.defined).map_or(shown, str::to_owned),
                    Raw::Null => String::new(),
                    Raw::Seq(_) | Raw::Map(_) => {
                        return Err(doc.error(
                            key_pos,
                            "config",
                            "a key must be a single value, not a list or mapping",
                        ));
                    }
                };
                out.push((Key { name, pos: key_pos }, convert(v, map, doc)?));
            }
            Kind::Map(out)
        }
    };
    Ok(Node { kind, pos })
}

/// What serde-saphyr hands over, before positions are resolved.
enum Raw {
    Null,
    /// A string value (plain or quoted), unescaped.
    Str(String),
    /// A bool or number the parser typed; the text is re-read from the source.
    Typed(String),
    Seq(Vec<Spanned<Raw>>),
    Map(Vec<(Spanned<Raw>, Spanned<Raw>)>),
}

impl<'de> Deserialize<'de> for Raw {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(RawVisitor)
    }
}

struct RawVisitor;

impl<'de> Visitor<'de> for RawVisitor {
    type Value = Raw;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any YAML value")
    }

    fn visit_str<E>(self, v: &str) -> Result<Raw, E> {
        Ok(Raw::Str(v.to_owned()))
    }

    fn visit_string<E>(self, v: String) -> Result<Raw, E> {
        Ok(Raw::Str(v))
    }

    fn visit_bool<E>(self, v: bool) -> Result<Raw, E> {
        Ok(Raw::Typed(v.to_string()))
    }

    fn visit_i64<E>(self, v: i64) -> Result<Raw, E> {
        Ok(Raw::Typed(v.to_string()))
    }

    fn visit_u64<E>(self, v: u64) -> Result<Raw, E> {
        Ok(Raw::Typed(v.to_string()))
    }

    fn visit_f64<E>(self, v: f64) -> Result<Raw, E> {
        Ok(Raw::Typed(v.to_string()))
    }

    fn visit_unit<E>(self) -> Result<Raw, E> {
        Ok(Raw::Null)
    }

    fn visit_none<E>(self) -> Result<Raw, E> {
        Ok(Raw::Null)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Raw, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element()? {
            items.push(item);
        }
        Ok(Raw::Seq(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Raw, A::Error> {
        let mut entries = Vec::new();
        while let Some(entry) = map.next_entry()? {
            entries.push(entry);
        }
        Ok(Raw::Map(entries))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::expand::expand_with_map;

    fn parse_text(text: &str) -> Result<Node, ConfigError> {
        parse(&Expanded::identity(text), text, Path::new("t.yml"))
    }

    fn entries(node: &Node) -> &[(Key, Node)] {
        match &node.kind {
            Kind::Map(e) => e,
            _ => &[],
        }
    }

    fn scalar(node: &Node) -> (&str, bool) {
        match &node.kind {
            Kind::Scalar { text, plain } => (text, *plain),
            _ => ("<not a scalar>", false),
        }
    }

    #[test]
    fn scalars_keep_their_written_text_and_plainness() -> Result<(), ConfigError> {
        let root = parse_text("a: 0600\nb: \"0600\"\nc: yes\nd: 'x'\ne: 1_000\nn: 1.50\n")?;
        let e = entries(&root);
        let got: Vec<(&str, (&str, bool))> = e
            .iter()
            .map(|(k, v)| (k.name.as_str(), scalar(v)))
            .collect();
        assert_eq!(
            got,
            vec![
                ("a", ("0600", true)),
                ("b", ("0600", false)),
                ("c", ("yes", true)),
                ("d", ("x", false)),
                ("e", ("1_000", true)),
                // A YAML 1.1 boolean spelling as a key stays the key's text.
                ("n", ("1.50", true)),
            ]
        );
        Ok(())
    }

    #[test]
    fn positions_are_one_based_and_refer_to_the_file_as_written() -> Result<(), ConfigError> {
        let text = "x: $LONG_NAME\ny:\n  z: ${SHORT}\n";
        let lookup = |name: &str| match name {
            "LONG_NAME" => Some("v".to_owned()),
            "SHORT" => Some("a much longer value".to_owned()),
            _ => None,
        };
        let expanded = expand_with_map(text, &lookup);
        let root = parse(&expanded, text, Path::new("t.yml"))?;
        let e = entries(&root);
        assert_eq!(e[0].1.pos, Pos { line: 1, column: 4 });
        assert_eq!(e[1].0.pos, Pos { line: 2, column: 1 });
        let inner = entries(&e[1].1);
        assert_eq!(inner[0].0.pos, Pos { line: 3, column: 3 });
        assert_eq!(inner[0].1.pos, Pos { line: 3, column: 6 });
        assert_eq!(scalar(&inner[0].1).0, "a much longer value");
        Ok(())
    }

    #[test]
    fn syntax_errors_carry_file_line_and_column() {
        let err = parse_text("a: 1\nb: [1,\n")
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(err.starts_with("t.yml:2:4: invalid YAML: "), "{err}");
        let err = parse_text("a: 1\na: 2\n")
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(
            err.starts_with("t.yml:2:1: invalid YAML: duplicate mapping key"),
            "{err}"
        );
    }

    #[test]
    fn empty_documents_are_null() -> Result<(), ConfigError> {
        assert!(matches!(parse_text("")?.kind, Kind::Null));
        assert!(matches!(parse_text("# nothing\n")?.kind, Kind::Null));
        Ok(())
    }

    #[test]
    fn anchors_aliases_and_merge_keys_work() -> Result<(), ConfigError> {
        let root = parse_text("base: &b {k: 1}\nuse: {<<: *b, j: 2}\n")?;
        let e = entries(&root);
        let names: Vec<&str> = entries(&e[1].1)
            .iter()
            .map(|(k, _)| k.name.as_str())
            .collect();
        assert!(names.contains(&"k") && names.contains(&"j"), "{names:?}");
        Ok(())
    }

    #[test]
    fn alias_bombs_are_refused() {
        let mut text = String::from("a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n");
        for i in 1..10 {
            let p = i - 1;
            text.push_str(&format!(
                "a{i}: &a{i} [*a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}]\n"
            ));
        }
        let err = parse_text(&text)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(err.contains("invalid YAML"), "{err}");
    }

    #[test]
    fn unusual_scalars_keep_their_text() -> Result<(), ConfigError> {
        let root = parse_text(
            "big: 99999999999999999999999\nhuge: 1e999\ntagged: !!str 5\ncustom: !thing x\nneg: -0x10\nnan: .nan\nf: 1e3\n",
        )?;
        let got: Vec<(&str, &str)> = entries(&root)
            .iter()
            .map(|(k, v)| (k.name.as_str(), scalar(v).0))
            .collect();
        assert_eq!(
            got,
            vec![
                ("big", "99999999999999999999999"),
                ("huge", "1e999"),
                ("tagged", "5"),
                ("custom", "x"),
                ("neg", "-0x10"),
                ("nan", ".nan"),
                ("f", "1e3"),
            ]
        );
        Ok(())
    }
}
