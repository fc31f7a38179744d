//! A small span-carrying YAML tree, built from `saphyr-parser` events with
//! hard limits. Anchors, aliases and tags are refused outright: sessions do
//! not need them, and refusing them removes alias-expansion bombs and
//! type-confusion tricks at the root.

use std::borrow::Cow;

use saphyr_parser::{Event, Parser, ScalarStyle, Span};

/// Largest accepted document, in bytes.
pub const MAX_DOCUMENT_BYTES: usize = 1024 * 1024;
/// Deepest accepted nesting of sequences and mappings.
pub const MAX_DEPTH: usize = 32;
/// Most nodes (scalars, sequences, mappings) in a document.
pub const MAX_NODES: usize = 100_000;

/// 1-based line and column.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct Pos {
    pub line: usize,
    pub column: usize,
}

impl Pos {
    fn of(span: &Span) -> Pos {
        Pos {
            line: span.start.line(),
            column: span.start.col() + 1,
        }
    }
}

#[derive(Debug)]
pub enum Kind {
    /// A scalar; `plain` is true for unquoted scalars (which may be null,
    /// booleans or numbers).
    Scalar {
        value: String,
        plain: bool,
    },
    Seq(Vec<Node>),
    Map(Vec<(Node, Node)>),
    /// Placeholder for something refused (alias); an error was recorded.
    Invalid,
}

#[derive(Debug)]
pub struct Node {
    pub kind: Kind,
    pub pos: Pos,
}

impl Node {
    /// A plain `~`, `null`, `Null`, `NULL` or empty scalar.
    pub fn is_null(&self) -> bool {
        matches!(&self.kind, Kind::Scalar { value, plain: true }
            if matches!(value.as_str(), "" | "~" | "null" | "Null" | "NULL"))
    }

    pub fn type_name(&self) -> &'static str {
        match &self.kind {
            Kind::Scalar { .. } if self.is_null() => "null",
            Kind::Scalar { .. } => "a scalar",
            Kind::Seq(_) => "a list",
            Kind::Map(_) => "a mapping",
            Kind::Invalid => "an invalid value",
        }
    }
}

/// A problem found while reading the YAML itself.
pub struct YamlError {
    /// Field path of the value being read (same syntax as validation paths).
    pub path: String,
    pub pos: Pos,
    pub message: String,
}

/// Reads one YAML document. Returns the root (if one could be built) and the
/// problems found. Syntax errors and limit violations stop reading; refused
/// features (anchors, aliases, tags, duplicate keys) are recorded and reading
/// goes on so that more errors can be reported.
pub fn load(text: &str) -> (Option<Node>, Vec<YamlError>) {
    let mut errors = Vec::new();
    if text.len() > MAX_DOCUMENT_BYTES {
        errors.push(YamlError {
            path: String::new(),
            pos: Pos { line: 1, column: 1 },
            message: format!(
                "document is {} bytes, larger than the limit of {} bytes",
                text.len(),
                MAX_DOCUMENT_BYTES
            ),
        });
        return (None, errors);
    }
    let mut b = Builder {
        parser: Parser::new_from_str(text),
        errors,
        nodes: 0,
        path: String::new(),
    };
    let root = b.document();
    (root, b.errors)
}

struct Builder<'a> {
    parser: Parser<'a, saphyr_parser::StrInput<'a>>,
    errors: Vec<YamlError>,
    nodes: usize,
    /// Path of the value being read.
    path: String,
}

/// Reading must stop (syntax error or limit); already recorded.
struct Stop;

impl<'a> Builder<'a> {
    fn next(&mut self) -> Result<(Event<'a>, Span), Stop> {
        match self.parser.next_event() {
            Some(Ok(ev)) => Ok(ev),
            Some(Err(e)) => {
                self.errors.push(YamlError {
                    path: self.path.clone(),
                    pos: Pos {
                        line: e.marker().line(),
                        column: e.marker().col() + 1,
                    },
                    message: format!("YAML syntax error: {}", e.info()),
                });
                Err(Stop)
            }
            None => {
                self.errors.push(YamlError {
                    path: self.path.clone(),
                    pos: Pos::default(),
                    message: "unexpected end of YAML stream".into(),
                });
                Err(Stop)
            }
        }
    }

    fn document(&mut self) -> Option<Node> {
        let result = (|| -> Result<Option<Node>, Stop> {
            let (ev, _) = self.next()?;
            if ev != Event::StreamStart {
                return Ok(None);
            }
            let (ev, span) = self.next()?;
            match ev {
                Event::StreamEnd => {
                    self.errors.push(YamlError {
                        path: self.path.clone(),
                        pos: Pos::of(&span),
                        message: "document is empty".into(),
                    });
                    return Ok(None);
                }
                Event::DocumentStart(_) => {}
                _ => return Ok(None),
            }
            let (ev, span) = self.next()?;
            let root = self.node(ev, span, 0)?;
            let (ev, _) = self.next()?;
            if ev != Event::DocumentEnd {
                return Ok(Some(root));
            }
            let (ev, span) = self.next()?;
            if ev != Event::StreamEnd {
                self.errors.push(YamlError {
                    path: self.path.clone(),
                    pos: Pos::of(&span),
                    message: "only one YAML document is allowed".into(),
                });
            }
            Ok(Some(root))
        })();
        result.unwrap_or(None)
    }

    fn refuse(&mut self, span: &Span, what: &str) {
        self.errors.push(YamlError {
            path: self.path.clone(),
            pos: Pos::of(span),
            message: format!("YAML {what} are not supported in sessions"),
        });
    }

    fn check_props(&mut self, span: &Span, anchor: usize, tag: bool) {
        if anchor != 0 {
            self.refuse(span, "anchors and aliases");
        }
        if tag {
            self.refuse(span, "tags");
        }
    }

    fn node(&mut self, ev: Event<'a>, span: Span, depth: usize) -> Result<Node, Stop> {
        self.nodes += 1;
        let pos = Pos::of(&span);
        if self.nodes > MAX_NODES {
            self.errors.push(YamlError {
                path: self.path.clone(),
                pos,
                message: format!("document has more than {MAX_NODES} values"),
            });
            return Err(Stop);
        }
        match ev {
            Event::Scalar(value, style, anchor, tag) => {
                self.check_props(&span, anchor, tag.is_some());
                Ok(Node {
                    kind: Kind::Scalar {
                        value: Cow::into_owned(value),
                        plain: style == ScalarStyle::Plain,
                    },
                    pos,
                })
            }
            Event::Alias(_) => {
                self.refuse(&span, "anchors and aliases");
                Ok(Node {
                    kind: Kind::Invalid,
                    pos,
                })
            }
            Event::SequenceStart(anchor, tag) | Event::MappingStart(anchor, tag)
                if depth >= MAX_DEPTH =>
            {
                let _ = (anchor, tag);
                self.errors.push(YamlError {
                    path: self.path.clone(),
                    pos,
                    message: format!("nesting is deeper than {MAX_DEPTH} levels"),
                });
                Err(Stop)
            }
            Event::SequenceStart(anchor, tag) => {
                self.check_props(&span, anchor, tag.is_some());
                let mut items = Vec::new();
                let base = self.path.len();
                loop {
                    let (ev, span) = self.next()?;
                    if ev == Event::SequenceEnd {
                        break;
                    }
                    self.path.push_str(&format!("[{}]", items.len()));
                    let item = self.node(ev, span, depth + 1);
                    self.path.truncate(base);
                    items.push(item?);
                }
                Ok(Node {
                    kind: Kind::Seq(items),
                    pos,
                })
            }
            Event::MappingStart(anchor, tag) => {
                self.check_props(&span, anchor, tag.is_some());
                let mut entries: Vec<(Node, Node)> = Vec::new();
                // Key -> line of its first occurrence (a map keeps this linear).
                let mut seen: std::collections::HashMap<String, usize> =
                    std::collections::HashMap::new();
                loop {
                    let (ev, span) = self.next()?;
                    if ev == Event::MappingEnd {
                        break;
                    }
                    let key = self.node(ev, span, depth + 1)?;
                    let (ev, span) = self.next()?;
                    let base = self.path.len();
                    if let Kind::Scalar { value: k, .. } = &key.kind {
                        push_key(&mut self.path, k);
                    }
                    let value = self.node(ev, span, depth + 1);
                    let value = match value {
                        Ok(v) => v,
                        Err(stop) => {
                            self.path.truncate(base);
                            return Err(stop);
                        }
                    };
                    let dup_path = self.path.clone();
                    self.path.truncate(base);
                    match &key.kind {
                        Kind::Scalar { value: k, .. } => {
                            if let Some(line) = seen.get(k) {
                                self.errors.push(YamlError {
                                    path: dup_path,
                                    pos: key.pos,
                                    message: format!(
                                        "duplicate key {:?} (first given on line {line})",
                                        truncate(k)
                                    ),
                                });
                                continue;
                            }
                            seen.insert(k.clone(), key.pos.line);
                        }
                        Kind::Invalid => continue,
                        _ => {
                            self.errors.push(YamlError {
                                path: self.path.clone(),
                                pos: key.pos,
                                message: "mapping keys must be plain strings".into(),
                            });
                            continue;
                        }
                    }
                    entries.push((key, value));
                }
                Ok(Node {
                    kind: Kind::Map(entries),
                    pos,
                })
            }
            other => {
                self.errors.push(YamlError {
                    path: self.path.clone(),
                    pos,
                    message: format!("unexpected YAML event {other:?}"),
                });
                Err(Stop)
            }
        }
    }
}

/// Appends the path segment of mapping key `key`: `.key` for simple keys
/// (no dot at the root), `["odd key"]` otherwise.
pub fn push_key(path: &mut String, key: &str) {
    if !key.is_empty() && key.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
        if !path.is_empty() {
            path.push('.');
        }
        path.push_str(key);
    } else {
        path.push_str(&format!("[{:?}]", truncate(key)));
    }
}

/// Shortens user text quoted in error messages.
pub fn truncate(s: &str) -> String {
    const MAX: usize = 64;
    if s.chars().count() <= MAX {
        s.to_owned()
    } else {
        let mut t: String = s.chars().take(MAX).collect();
        t.push('…');
        t
    }
}
