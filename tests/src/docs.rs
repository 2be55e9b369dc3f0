//! The fenced blocks of README.md and docs/*.md as a reader sees them, and a matcher for the
//! JSON they show (where `…` stands for "anything here").

use serde_json::Value;

/// One fenced block.
#[derive(Debug, Clone)]
pub struct Block {
    /// `README.md` or `docs/<name>.md`.
    pub file: String,
    /// The line of the opening fence (1-based).
    pub line: usize,
    /// The fence's info string (`json`, `sh`, or empty).
    pub lang: String,
    pub text: String,
}

impl Block {
    /// `file:line`, for messages.
    pub fn place(&self) -> String {
        format!("{}:{}", self.file, self.line)
    }
}

fn root() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The text of `README.md` or `docs/<name>`.
pub fn read(file: &str) -> String {
    let path = root().join(file);
    std::fs::read_to_string(&path).unwrap_or_else(|error| panic!("{}: {error}", path.display()))
}

/// Every fenced block of README.md and docs/*.md, in file order.
pub fn blocks() -> Vec<Block> {
    let mut files = vec!["README.md".to_owned()];
    let mut docs: Vec<String> = std::fs::read_dir(root().join("docs"))
        .unwrap()
        .filter_map(Result::ok)
        .map(|entry| entry.file_name().to_string_lossy().into_owned())
        .filter(|name| name.ends_with(".md"))
        .map(|name| format!("docs/{name}"))
        .collect();
    docs.sort();
    files.extend(docs);
    files
        .iter()
        .flat_map(|file| blocks_of(file, &read(file)))
        .collect()
}

/// The fenced blocks of one Markdown text.
pub fn blocks_of(file: &str, text: &str) -> Vec<Block> {
    let mut found = Vec::new();
    let mut open: Option<(usize, String, Vec<&str>)> = None;
    for (index, line) in text.lines().enumerate() {
        let trimmed = line.trim_start();
        match (&mut open, trimmed.strip_prefix("```")) {
            (None, Some(info)) => open = Some((index + 1, info.trim().to_owned(), Vec::new())),
            (Some(_), Some(_)) => {
                let (line, lang, lines) = open.take().unwrap();
                found.push(Block {
                    file: file.to_owned(),
                    line,
                    lang,
                    text: lines.join("\n"),
                });
            }
            (Some((_, _, lines)), None) => lines.push(line),
            (None, None) => {}
        }
    }
    assert!(open.is_none(), "{file}: a fence is never closed");
    found
}

/// The one block of `file` holding `needle`.
pub fn block(file: &str, needle: &str) -> Block {
    let mut matching: Vec<Block> = blocks_of(file, &read(file))
        .into_iter()
        .filter(|block| block.text.contains(needle))
        .collect();
    assert_eq!(matching.len(), 1, "{file}: one block holds {needle:?}");
    matching.remove(0)
}

/// The quota plans of docs/configuration.md's example (`free` and `team`), as a configuration
/// loads them: servers that run the docs' examples have them.
pub fn example_plans() -> std::collections::BTreeMap<String, steward::config::PlanConfig> {
    let example = block("docs/configuration.md", "[plans.");
    let file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(file.path(), &example.text).unwrap();
    steward::Config::load(Some(file.path()))
        .unwrap_or_else(|error| panic!("{}: {error}", example.place()))
        .plans
}

/// The JSON a doc shows, with `…` read as a wildcard: a bare `…` value becomes `"…"`, a
/// trailing `, …` in an object is dropped (the reader is told "and more keys"), and a string
/// holding `…` matches any string with the same beginning and end.
pub fn example_json(text: &str) -> Result<Value, String> {
    let mut out = String::with_capacity(text.len());
    let mut in_string = false;
    let mut escaped = false;
    // Open brackets outside strings: an object's `…` stands for keys, an array's for items.
    let mut open: Vec<char> = Vec::new();
    let mut skip_comma = false;
    for c in text.chars() {
        if in_string {
            out.push(c);
            match c {
                _ if escaped => escaped = false,
                '\\' => escaped = true,
                '"' => in_string = false,
                _ => {}
            }
            continue;
        }
        if skip_comma {
            if c.is_whitespace() {
                continue;
            }
            skip_comma = false;
            if c == ',' {
                continue;
            }
        }
        match c {
            '"' => {
                in_string = true;
                out.push(c);
            }
            '{' | '[' => {
                open.push(c);
                out.push(c);
            }
            '}' | ']' => {
                open.pop();
                out.push(c);
            }
            '…' => {
                let before = out.trim_end().chars().last();
                if open.last() == Some(&'{') && before != Some(':') {
                    // "and more keys": dropped with its comma.
                    match before {
                        Some(',') => {
                            let kept = out.trim_end().len() - 1;
                            out.truncate(kept);
                        }
                        _ => skip_comma = true,
                    }
                } else {
                    out.push_str("\"…\"");
                }
            }
            _ => out.push(c),
        }
    }
    serde_json::from_str(out.trim()).map_err(|error| format!("{error} in {out}"))
}

/// Whether `actual` is what `pattern` (from [`example_json`]) shows: every key of an object
/// pattern is there and matches; an array pattern ending in `"…"` is matched by any array whose
/// elements include each listed one, otherwise element by element; `"…"` matches anything.
pub fn matches(pattern: &Value, actual: &Value) -> Result<(), String> {
    fn at(path: &str, key: impl std::fmt::Display) -> String {
        format!("{path}.{key}")
    }
    fn walk(path: &str, pattern: &Value, actual: &Value) -> Result<(), String> {
        match pattern {
            Value::String(shown) if shown == "…" => Ok(()),
            Value::String(shown) if shown.contains('…') => {
                let (head, tail) = shown.split_once('…').unwrap_or((shown, ""));
                match actual.as_str() {
                    Some(text) if text.starts_with(head) && text.ends_with(tail) => Ok(()),
                    _ => Err(format!("{path}: {actual} is not like {pattern}")),
                }
            }
            Value::Object(keys) => {
                let Some(object) = actual.as_object() else {
                    return Err(format!("{path}: {actual} is not an object"));
                };
                for (key, value) in keys {
                    let Some(found) = object.get(key) else {
                        return Err(format!("{path}: no {key} in {actual}"));
                    };
                    walk(&at(path, key), value, found)?;
                }
                Ok(())
            }
            Value::Array(items) => {
                let Some(array) = actual.as_array() else {
                    return Err(format!("{path}: {actual} is not an array"));
                };
                let open = items.last().is_some_and(|last| *last == "…");
                if open {
                    for (index, item) in items[..items.len() - 1].iter().enumerate() {
                        if !array.iter().any(|candidate| walk("", item, candidate).is_ok()) {
                            return Err(format!("{}: none of {actual} is like {item}", at(path, index)));
                        }
                    }
                    return Ok(());
                }
                if items.len() != array.len() {
                    return Err(format!("{path}: {actual} does not have {} items", items.len()));
                }
                for (index, (item, candidate)) in items.iter().zip(array).enumerate() {
                    walk(&at(path, index), item, candidate)?;
                }
                Ok(())
            }
            _ if pattern == actual => Ok(()),
            _ => Err(format!("{path}: {actual} is not {pattern}")),
        }
    }
    walk("$", pattern, actual)
}

/// Whether `actual` has every key `pattern` shows, at every depth of objects (values aside):
/// for examples whose values are a moment of something running.
pub fn same_keys(pattern: &Value, actual: &Value) -> Result<(), String> {
    fn walk(path: &str, pattern: &Value, actual: &Value) -> Result<(), String> {
        let Value::Object(keys) = pattern else {
            return Ok(());
        };
        for (key, value) in keys {
            match actual.get(key) {
                Some(found) if value.is_object() && found.is_object() => {
                    walk(&format!("{path}.{key}"), value, found)?;
                }
                Some(found) if value.is_object() && !found.is_null() => {
                    return Err(format!("{path}.{key}: {found} is not an object"));
                }
                Some(_) => {}
                None => return Err(format!("{path}: no {key} in {actual}")),
            }
        }
        Ok(())
    }
    walk("$", pattern, actual)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn ellipses_are_wildcards() {
        let shown = example_json(r#"{"id": …, "email": "ann@…", "items": [ … ], "x": 1, …}"#).unwrap();
        assert_eq!(
            shown,
            json!({"id": "…", "email": "ann@…", "items": ["…"], "x": 1})
        );
        assert!(
            matches(
                &shown,
                &json!({"id": 7, "email": "ann@example.com", "items": [1, 2], "x": 1, "y": 2})
            )
            .is_ok()
        );
        assert!(
            matches(
                &shown,
                &json!({"id": 7, "email": "bob@example.com", "items": [], "x": 1})
            )
            .is_err()
        );
        assert!(matches(&shown, &json!({"id": 7, "email": "ann@x", "items": [], "x": 2})).is_err());
        assert!(matches(&shown, &json!({"email": "ann@x", "items": [], "x": 1})).is_err());
    }

    #[test]
    fn an_ellipsis_among_keys_stands_for_more_keys() {
        let shown =
            example_json(r#"{"id": "…", "deviceId": "a1b2…", …, "deviceToken": "stw_dev_…"}"#).unwrap();
        assert_eq!(
            shown,
            json!({"id": "…", "deviceId": "a1b2…", "deviceToken": "stw_dev_…"})
        );
        let leading = example_json(r#"{…, "a": [ … ], "b": {"c": …}}"#).unwrap();
        assert_eq!(leading, json!({"a": ["…"], "b": {"c": "…"}}));
    }

    #[test]
    fn open_arrays_need_each_listed_item_somewhere() {
        let shown = example_json(r#"[{"key": "devices", "limit": 15}, …]"#).unwrap();
        assert!(
            matches(
                &shown,
                &json!([{"key": "users"}, {"key": "devices", "limit": 15}])
            )
            .is_ok()
        );
        assert!(matches(&shown, &json!([{"key": "devices", "limit": 14}])).is_err());
        let closed = example_json("[1, 2]").unwrap();
        assert!(matches(&closed, &json!([1, 2, 3])).is_err());
    }
}
