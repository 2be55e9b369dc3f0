//! Reading a bulk import body — CSV with a header line, or a JSON array of objects — into
//! numbered rows of text fields for the domain to validate.

use std::collections::BTreeMap;

use serde_json::Value;

use crate::error::{AppError, ErrorKind};

/// The most rows one import takes.
pub const MAX_IMPORT_ROWS: usize = 50_000;
/// The largest import body, in bytes.
pub const MAX_IMPORT_BYTES: usize = 32 * 1024 * 1024;

/// A row's number (the CSV line, counting the header as line 1; the JSON item, from 1) and
/// its non-empty fields.
pub type ImportRows = Vec<(usize, BTreeMap<String, String>)>;

fn too_many() -> AppError {
    AppError::new(
        ErrorKind::TooLarge,
        format!("an import takes at most {MAX_IMPORT_ROWS} rows"),
    )
}

pub fn parse_csv(body: &[u8]) -> Result<ImportRows, AppError> {
    let mut reader = csv::ReaderBuilder::new()
        .trim(csv::Trim::All)
        .flexible(false)
        .from_reader(body);
    let headers: Vec<String> = reader
        .headers()
        .map_err(|error| AppError::validation(format!("the CSV header cannot be read: {error}")))?
        .iter()
        .map(str::to_owned)
        .collect();
    let mut rows = Vec::new();
    for record in reader.records() {
        let record = record.map_err(|error| {
            let line = error.position().map_or(0, |p| p.line());
            AppError::invalid(
                &format!("line {line}"),
                format!("the CSV cannot be read: {error}"),
            )
        })?;
        if rows.len() == MAX_IMPORT_ROWS {
            return Err(too_many());
        }
        let line = record.position().map_or(rows.len() + 2, |p| p.line() as usize);
        let fields = headers
            .iter()
            .zip(record.iter())
            .filter(|(_, value)| !value.is_empty())
            .map(|(name, value)| (name.clone(), value.to_owned()))
            .collect();
        rows.push((line, fields));
    }
    Ok(rows)
}

pub fn parse_json(body: &[u8]) -> Result<ImportRows, AppError> {
    let value: Value = serde_json::from_slice(body)
        .map_err(|error| AppError::validation(format!("malformed JSON: {error}")))?;
    let items = match value {
        Value::Array(items) => items,
        Value::Object(mut object) => match object.remove("devices").or_else(|| object.remove("rows")) {
            Some(Value::Array(items)) => items,
            _ => {
                return Err(AppError::validation(
                    "send an array of rows, or {\"devices\": [...]}",
                ));
            }
        },
        _ => {
            return Err(AppError::validation(
                "send an array of rows, or {\"devices\": [...]}",
            ));
        }
    };
    if items.len() > MAX_IMPORT_ROWS {
        return Err(too_many());
    }
    let mut rows = Vec::with_capacity(items.len());
    for (index, item) in items.into_iter().enumerate() {
        let line = index + 1;
        let Value::Object(object) = item else {
            return Err(AppError::invalid(
                &format!("line {line}"),
                "each row must be an object",
            ));
        };
        let mut fields = BTreeMap::new();
        for (name, value) in object {
            let text = match value {
                Value::Null => continue,
                Value::String(text) => text,
                Value::Number(number) => number.to_string(),
                Value::Bool(flag) => flag.to_string(),
                _ => {
                    return Err(AppError::invalid(
                        &format!("line {line}.{name}"),
                        "must be a string, number or boolean",
                    ));
                }
            };
            if !text.trim().is_empty() {
                fields.insert(name, text);
            }
        }
        rows.push((line, fields));
    }
    Ok(rows)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_rows_carry_their_line_and_skip_empty_fields() {
        let rows = parse_csv(b"deviceId,platform\n a ,android\nb,\n").expect("parses");
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[0].0, 2);
        assert_eq!(rows[0].1.get("deviceId").map(String::as_str), Some("a"));
        assert_eq!(rows[1].0, 3);
        assert!(!rows[1].1.contains_key("platform"));
        assert!(
            parse_csv(b"deviceId,platform\na\n").is_err(),
            "a short row is refused"
        );
    }

    #[test]
    fn json_rows_are_numbered_from_one() {
        let rows = parse_json(br#"{"devices":[{"deviceId":"a","n":3},{"deviceId":null}]}"#).expect("parses");
        assert_eq!(rows[0].0, 1);
        assert_eq!(rows[0].1.get("n").map(String::as_str), Some("3"));
        assert!(rows[1].1.is_empty());
        assert!(parse_json(br#"[1]"#).is_err());
    }
}
