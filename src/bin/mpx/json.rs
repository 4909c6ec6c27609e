//! A minimal JSON writer (the CLI takes no dependencies). Output is compact, valid JSON; every
//! string goes through `string`, so any text (including messages from corrupt segments) is
//! escaped correctly.

use std::fmt::Write;

/// `s` as a JSON string literal, quotes included.
pub fn string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            // Other control characters (and DEL, which some terminals act on) as \u escapes.
            c if (c as u32) < 0x20 || c as u32 == 0x7f => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// A JSON array from already-encoded values.
pub fn array<I: IntoIterator<Item = String>>(items: I) -> String {
    let mut out = String::from("[");
    for (i, item) in items.into_iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str(&item);
    }
    out.push(']');
    out
}

/// Builds a JSON object field by field.
pub struct Obj {
    buf: String,
    empty: bool,
}

impl Obj {
    pub fn new() -> Obj {
        Obj { buf: String::from("{"), empty: true }
    }

    /// A field whose value is already encoded JSON.
    pub fn raw(mut self, key: &str, value: impl AsRef<str>) -> Obj {
        if !self.empty {
            self.buf.push(',');
        }
        self.empty = false;
        self.buf.push_str(&string(key));
        self.buf.push(':');
        self.buf.push_str(value.as_ref());
        self
    }

    pub fn str(self, key: &str, value: &str) -> Obj {
        self.raw(key, string(value))
    }

    pub fn opt_str(self, key: &str, value: Option<&str>) -> Obj {
        match value {
            Some(v) => self.str(key, v),
            None => self.raw(key, "null"),
        }
    }

    pub fn num(self, key: &str, value: impl std::fmt::Display) -> Obj {
        self.raw(key, value.to_string())
    }

    pub fn bool(self, key: &str, value: bool) -> Obj {
        self.raw(key, if value { "true" } else { "false" })
    }

    pub fn nums<T: std::fmt::Display>(self, key: &str, values: &[T]) -> Obj {
        self.raw(key, array(values.iter().map(|v| v.to_string())))
    }

    pub fn finish(mut self) -> String {
        self.buf.push('}');
        self.buf
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes() {
        assert_eq!(string("a\"b\\c\n\u{1}\u{7f}é"), "\"a\\\"b\\\\c\\n\\u0001\\u007fé\"");
        let o = Obj::new().str("k", "v").num("n", 3).bool("b", false).opt_str("x", None).nums("a", &[1, 2]).finish();
        assert_eq!(o, r#"{"k":"v","n":3,"b":false,"x":null,"a":[1,2]}"#);
        assert_eq!(array(Vec::<String>::new()), "[]");
    }
}
