//! Typed reads from the document tree: strings, YAML 1.1 booleans and
//! integers, durations, byte sizes, lists; located errors and warnings; and
//! "did you mean" suggestions for unknown keys.

use std::path::{Path, PathBuf};

use super::error::{ConfigError, Origin, Warning};
use super::values::{self, GoDuration, parse_byte_size, parse_duration};
use super::yaml::{At, Key, Kind, Node, Pos};

/// The document being read: the file name for messages and the warnings
/// collected so far.
pub(crate) struct Doc {
    /// `None` for values from the command line.
    file: Option<PathBuf>,
    pub(crate) warnings: Vec<Warning>,
}

impl Doc {
    pub(crate) fn new(file: Option<&Path>) -> Self {
        Self {
            file: file.map(Path::to_path_buf),
            warnings: Vec::new(),
        }
    }

    pub(crate) fn origin(&self, pos: Pos) -> Origin {
        match &self.file {
            Some(path) => Origin::File {
                path: path.clone(),
                line: pos.line,
                column: pos.column,
            },
            None => Origin::Argument,
        }
    }

    /// An [`ConfigError::Invalid`] at `pos`.
    pub(crate) fn error(&self, pos: Pos, key: &str, message: impl Into<String>) -> ConfigError {
        ConfigError::Invalid {
            origin: self.origin(pos),
            key: key.to_owned(),
            message: message.into(),
        }
    }

    /// Records a warning at `pos`.
    pub(crate) fn warn(&mut self, pos: Pos, key: &str, message: impl Into<String>) {
        self.warnings.push(Warning {
            origin: self.origin(pos),
            key: key.to_owned(),
            message: message.into(),
        });
    }

    /// The error for a key that is not part of the schema at `path`.
    pub(crate) fn unknown_key(&self, key: &Key, path: &str, known: &[&str]) -> ConfigError {
        let mut message = format!("unknown key {:?}", key.name);
        if let Some(best) = suggest(&key.name, known.iter().copied()) {
            message.push_str(&format!(" (did you mean {best:?}?)"));
        }
        let path = if path.is_empty() { "config" } else { path };
        self.error(key.pos, path, message)
    }

    /// The entries of a mapping; `None` for an empty value.
    pub(crate) fn map<'n>(
        &self,
        node: &'n Node,
        key: &str,
    ) -> Result<Option<&'n [(Key, Node)]>, ConfigError> {
        match &node.kind {
            Kind::Null => Ok(None),
            Kind::Map(entries) => Ok(Some(entries)),
            _ => Err(self.mismatch(node, key, "a mapping of keys")),
        }
    }

    /// The items of a sequence; `None` for an empty value.
    pub(crate) fn seq<'n>(
        &self,
        node: &'n Node,
        key: &str,
    ) -> Result<Option<&'n [Node]>, ConfigError> {
        match &node.kind {
            Kind::Null => Ok(None),
            Kind::Seq(items) => Ok(Some(items)),
            _ => Err(self.mismatch(node, key, "a list")),
        }
    }

    /// A string; an empty value or empty string is unset, as in Litestream.
    pub(crate) fn string(&self, node: &Node, key: &str) -> Result<Option<At<String>>, ConfigError> {
        match &node.kind {
            Kind::Null => Ok(None),
            Kind::Scalar { text, .. } if text.is_empty() => Ok(None),
            Kind::Scalar { text, .. } => Ok(Some(At {
                value: text.clone(),
                pos: node.pos,
            })),
            _ => Err(self.mismatch(node, key, "a string")),
        }
    }

    /// A boolean (YAML 1.1 spellings: `true`, `yes`, `on`, …).
    pub(crate) fn bool(&self, node: &Node, key: &str) -> Result<Option<At<bool>>, ConfigError> {
        let Some(text) = self.scalar(node, key, "true or false")? else {
            return Ok(None);
        };
        values::parse_yaml_bool(text)
            .map(|value| {
                Some(At {
                    value,
                    pos: node.pos,
                })
            })
            .ok_or_else(|| {
                self.error(
                    node.pos,
                    key,
                    format!("expected true or false, found {text:?}"),
                )
            })
    }

    /// An integer (YAML 1.1: `0600` is octal, `0x1F` hex, `1_000` allowed).
    pub(crate) fn int(&self, node: &Node, key: &str) -> Result<Option<At<i64>>, ConfigError> {
        let Some(text) = self.scalar(node, key, "an integer")? else {
            return Ok(None);
        };
        values::parse_yaml_int(text)
            .map(|value| {
                Some(At {
                    value,
                    pos: node.pos,
                })
            })
            .ok_or_else(|| {
                self.error(
                    node.pos,
                    key,
                    format!("expected an integer, found {text:?}"),
                )
            })
    }

    /// A duration: a Go duration string, or an unquoted integer meaning
    /// nanoseconds (CLI_CONFIG.md §4.2).
    pub(crate) fn duration(
        &self,
        node: &Node,
        key: &str,
    ) -> Result<Option<At<GoDuration>>, ConfigError> {
        let Some(text) = self.scalar(node, key, "a duration such as 30s")? else {
            return Ok(None);
        };
        let plain = matches!(node.kind, Kind::Scalar { plain: true, .. });
        let parsed = match values::parse_yaml_int(text) {
            Some(nanos) if plain => Ok(GoDuration::from_nanos(nanos)),
            _ => parse_duration(text),
        };
        parsed
            .map(|value| {
                Some(At {
                    value,
                    pos: node.pos,
                })
            })
            .map_err(|e| self.error(node.pos, key, e.to_string()))
    }

    /// A byte size (CLI_CONFIG.md §4.3).
    pub(crate) fn byte_size(&self, node: &Node, key: &str) -> Result<Option<At<u64>>, ConfigError> {
        let Some(text) = self.scalar(node, key, "a size such as 5MiB")? else {
            return Ok(None);
        };
        parse_byte_size(text)
            .map(|value| {
                Some(At {
                    value,
                    pos: node.pos,
                })
            })
            .map_err(|e| self.error(node.pos, key, e.to_string()))
    }

    /// A list of strings (a single string is refused, as in Litestream).
    pub(crate) fn string_list(
        &self,
        node: &Node,
        key: &str,
    ) -> Result<Option<At<Vec<String>>>, ConfigError> {
        let Some(items) = self.seq(node, key)? else {
            return Ok(None);
        };
        let mut out = Vec::with_capacity(items.len());
        for (i, item) in items.iter().enumerate() {
            let item_key = format!("{key}[{i}]");
            match &item.kind {
                Kind::Scalar { text, .. } => out.push(text.clone()),
                _ => return Err(self.mismatch(item, &item_key, "a string")),
            }
        }
        Ok(Some(At {
            value: out,
            pos: node.pos,
        }))
    }

    /// The text of a scalar node; `None` for an empty value.
    fn scalar<'n>(
        &self,
        node: &'n Node,
        key: &str,
        expected: &str,
    ) -> Result<Option<&'n str>, ConfigError> {
        match &node.kind {
            Kind::Null => Ok(None),
            Kind::Scalar { text, .. } if text.is_empty() => Ok(None),
            Kind::Scalar { text, .. } => Ok(Some(text)),
            _ => Err(self.mismatch(node, key, expected)),
        }
    }

    fn mismatch(&self, node: &Node, key: &str, expected: &str) -> ConfigError {
        let found = match &node.kind {
            Kind::Null => "nothing",
            Kind::Scalar { .. } => "a single value",
            Kind::Seq(_) => "a list",
            Kind::Map(_) => "a mapping of keys",
        };
        self.error(node.pos, key, format!("expected {expected}, found {found}"))
    }
}

/// The closest candidate to `name`, if it is close enough to be a typo.
pub(crate) fn suggest<'a>(
    name: &str,
    candidates: impl Iterator<Item = &'a str>,
) -> Option<&'a str> {
    let normal = |s: &str| s.to_ascii_lowercase().replace('_', "-");
    let wanted = normal(name);
    let limit = match wanted.chars().count() {
        0..=4 => 1,
        5..=10 => 2,
        _ => 3,
    };
    candidates
        .map(|c| (edit_distance(&wanted, &normal(c)), c))
        .filter(|(d, _)| *d <= limit)
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

/// Edit distance over characters where swapping two neighbours counts as
/// one edit (optimal string alignment), so `paht` is one edit from `path`.
fn edit_distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    let width = b.len() + 1;
    let mut d = vec![0usize; (a.len() + 1) * width];
    for i in 0..=a.len() {
        for j in 0..=b.len() {
            d[i * width + j] = if i == 0 || j == 0 {
                i + j
            } else {
                let cost = usize::from(a[i - 1] != b[j - 1]);
                let mut best = (d[(i - 1) * width + j] + 1)
                    .min(d[i * width + j - 1] + 1)
                    .min(d[(i - 1) * width + j - 1] + cost);
                if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                    best = best.min(d[(i - 2) * width + j - 2] + 1);
                }
                best
            };
        }
    }
    d[a.len() * width + b.len()]
}

#[cfg(test)]
mod tests {
    use super::super::expand::Expanded;
    use super::super::yaml::parse;
    use super::*;

    fn entries(node: &Node) -> &[(Key, Node)] {
        match &node.kind {
            Kind::Map(e) => e,
            _ => &[],
        }
    }

    #[test]
    fn typed_reads() -> Result<(), ConfigError> {
        let doc = Doc::new(Some(Path::new("t.yml")));
        let text = "d: 5\nq: \"5\"\ns: 1h30m\nb: on\ni: -3\nz: 5MiB\nl: [a, b]\n";
        let root = parse(&Expanded::identity(text), text, Path::new("t.yml"))?;
        let e = entries(&root);
        assert_eq!(
            doc.duration(&e[0].1, "d")?.map(|a| a.value.as_nanos()),
            Some(5)
        );
        let err = doc
            .duration(&e[1].1, "q")
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert_eq!(
            err,
            "t.yml:2:4: q: invalid duration \"5\": missing unit; add one of ns, us, ms, s, m, h (e.g. 30s)"
        );
        assert_eq!(
            doc.duration(&e[2].1, "s")?.map(|a| a.value.as_nanos()),
            Some(5_400_000_000_000)
        );
        assert_eq!(doc.bool(&e[3].1, "b")?.map(|a| a.value), Some(true));
        assert_eq!(doc.int(&e[4].1, "i")?.map(|a| a.value), Some(-3));
        assert_eq!(doc.byte_size(&e[5].1, "z")?.map(|a| a.value), Some(5 << 20));
        assert_eq!(
            doc.string_list(&e[6].1, "l")?.map(|a| a.value),
            Some(vec!["a".to_owned(), "b".to_owned()])
        );
        let err = doc
            .bool(&e[6].1, "l")
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert_eq!(err, "t.yml:7:4: l: expected true or false, found a list");
        Ok(())
    }

    #[test]
    fn suggestions_catch_typos_only() {
        let known = ["bucket", "path", "sync-interval", "type"];
        assert_eq!(suggest("bucktet", known.iter().copied()), Some("bucket"));
        assert_eq!(
            suggest("sync_interval", known.iter().copied()),
            Some("sync-interval")
        );
        assert_eq!(suggest("Path", known.iter().copied()), Some("path"));
        assert_eq!(suggest("typo", known.iter().copied()), Some("type"));
        assert_eq!(suggest("region", known.iter().copied()), None);
        assert_eq!(suggest("paht", known.iter().copied()), Some("path"));
        assert_eq!(edit_distance("kitten", "sitting"), 3);
        assert_eq!(edit_distance("", "abc"), 3);
    }
}
