//! JSON exports: an array of objects, read one element at a time.
//!
//! serde_json reads a whole array or nothing, so the file is first checked as a whole
//! ([`check_syntax`], in constant memory: nothing is kept), and then each element of the
//! top-level array is cut out by following strings and nesting, and parsed alone. The cut
//! also gives the line each element starts on, which serde_json only reports for errors.

use std::collections::HashMap;
use std::io::{BufRead, Read};
use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde_json::Value;

use super::columns::{Field, ImportRow};
use super::report::Rejected;
use super::run::{Item, Records};
use super::{ImportError, MAX_RECORD_BYTES};

fn json_error(err: serde_json::Error, path: &Path) -> ImportError {
    if err.is_io() {
        return ImportError::Read {
            path: path.to_owned(),
            source: err.into(),
        };
    }
    ImportError::Json {
        line: err.line(),
        column: err.column(),
        message: err.to_string(),
    }
}

/// Checks that the whole text is JSON, keeping none of it.
pub(super) fn check_syntax(input: impl Read, path: &Path) -> Result<(), ImportError> {
    let mut de = serde_json::Deserializer::from_reader(input);
    serde::de::IgnoredAny::deserialize(&mut de)
        .and_then(|_| de.end())
        .map_err(|err| json_error(err, path))
}

/// The elements of a JSON array, as records. Only run on text [`check_syntax`] accepted.
pub(super) struct JsonRecords<R> {
    input: R,
    path: PathBuf,
    line: usize,
    /// Elements read so far.
    index: usize,
    finished: bool,
    element: Vec<u8>,
    ignored: Vec<String>,
}

impl<R: BufRead + Send> JsonRecords<R> {
    pub(super) fn open(input: R, path: PathBuf) -> Result<JsonRecords<R>, ImportError> {
        let mut records = JsonRecords {
            input,
            path,
            line: 1,
            index: 0,
            finished: false,
            element: Vec::new(),
            ignored: Vec::new(),
        };
        match records.skip_whitespace()? {
            Some(b'[') => records.input.consume(1),
            Some(b'{') => return Err(ImportError::NotAnArray),
            _ => return Err(ImportError::Empty),
        }
        Ok(records)
    }

    /// Skips white space and returns the next byte, not consumed.
    fn skip_whitespace(&mut self) -> Result<Option<u8>, ImportError> {
        loop {
            let buf = match self.input.fill_buf() {
                Ok(buf) => buf,
                Err(source) => {
                    return Err(ImportError::Read {
                        path: self.path.clone(),
                        source,
                    })
                }
            };
            let Some(&byte) = buf.first() else {
                return Ok(None);
            };
            match byte {
                b'\n' => self.line += 1,
                b' ' | b'\t' | b'\r' => {}
                _ => return Ok(Some(byte)),
            }
            self.input.consume(1);
        }
    }

    /// Cuts the next element into `self.element` and returns the line it starts on; `None`
    /// after the last one.
    fn next_element(&mut self) -> Result<Option<usize>, ImportError> {
        if self.finished {
            return Ok(None);
        }
        if self.index > 0 && self.skip_whitespace()? == Some(b',') {
            self.input.consume(1);
        }
        if matches!(self.skip_whitespace()?, Some(b']') | None) {
            self.finished = true;
            return Ok(None);
        }
        self.element.clear();
        let start_line = self.line;
        let mut depth = 0usize;
        let mut in_string = false;
        let mut escaped = false;
        'element: loop {
            let buf = match self.input.fill_buf() {
                Ok(buf) => buf,
                Err(source) => {
                    return Err(ImportError::Read {
                        path: self.path.clone(),
                        source,
                    })
                }
            };
            if buf.is_empty() {
                break;
            }
            let mut used = 0;
            let mut done = false;
            for &byte in buf {
                if in_string {
                    if escaped {
                        escaped = false;
                    } else if byte == b'\\' {
                        escaped = true;
                    } else if byte == b'"' {
                        in_string = false;
                        done = depth == 0;
                    }
                } else {
                    match byte {
                        b',' | b']' | b'}' if depth == 0 => {
                            done = true;
                            break;
                        }
                        b' ' | b'\t' | b'\r' | b'\n' if depth == 0 => {
                            done = true;
                            break;
                        }
                        b'"' => in_string = true,
                        b'[' | b'{' => depth += 1,
                        b']' | b'}' => {
                            depth -= 1;
                            done = depth == 0;
                        }
                        _ => {}
                    }
                }
                if byte == b'\n' {
                    self.line += 1;
                }
                used += 1;
                if done {
                    break;
                }
            }
            self.element.extend_from_slice(&buf[..used]);
            self.input.consume(used);
            if self.element.len() > MAX_RECORD_BYTES {
                return Err(ImportError::RecordTooLarge { line: start_line });
            }
            if done {
                break 'element;
            }
        }
        self.index += 1;
        Ok(Some(start_line))
    }
}

impl<R: BufRead + Send> Records for JsonRecords<R> {
    fn next_item(&mut self) -> Result<Option<Item>, ImportError> {
        let Some(line) = self.next_element()? else {
            return Ok(None);
        };
        let record = self.index;
        let value: Value = serde_json::from_slice(&self.element).map_err(|err| {
            // Not expected: the whole file was checked. Point into the file all the same.
            ImportError::Json {
                line: line + err.line() - 1,
                column: err.column(),
                message: err.to_string(),
            }
        })?;
        let reject = |reason: String| {
            Ok(Some(Item::Rejected(Rejected {
                line,
                record,
                reason,
            })))
        };
        let Value::Object(object) = value else {
            return reject(format!(
                "expected an object such as {{\"guild_id\": …, \"name\": …}}, found {}",
                json_kind(&value)
            ));
        };
        let mut row = ImportRow {
            line,
            record,
            ..ImportRow::default()
        };
        let mut keys: HashMap<Field, String> = HashMap::new();
        let mut problems = Vec::new();
        for (key, value) in object {
            let Some(field) = Field::from_column(&key) else {
                if !self.ignored.contains(&key) {
                    self.ignored.push(key);
                }
                continue;
            };
            if let Some(first) = keys.get(&field) {
                // Sorted: serde_json's key order depends on a crate feature.
                let (a, b) = if *first <= key {
                    (first.as_str(), key.as_str())
                } else {
                    (key.as_str(), first.as_str())
                };
                problems.push(format!(
                    "both `{a}` and `{b}` give the {}; keep one",
                    field.name()
                ));
                continue;
            }
            match json_text(field, &value) {
                Ok(text) => *field.slot(&mut row) = Some(text),
                Err(problem) => problems.push(problem),
            }
            keys.insert(field, key);
        }
        if problems.is_empty() {
            Ok(Some(Item::Row(row)))
        } else {
            reject(problems.join("; "))
        }
    }

    fn ignored_columns(&self) -> &[String] {
        &self.ignored
    }
}

/// A JSON value as the text the validation reads. Ids may be numbers or strings; text may be a
/// number (a character named 42); `null` is an empty value.
fn json_text(field: Field, value: &Value) -> Result<String, String> {
    match value {
        Value::String(text) => Ok(text.clone()),
        Value::Null => Ok(String::new()),
        // serde_json reads integers exactly as u64 (no float rounding), so a snowflake written
        // as a bare number keeps every digit; anything else is shown as written and refused
        // by the validation.
        Value::Number(number) => Ok(number
            .as_u64()
            .map(|n| n.to_string())
            .unwrap_or_else(|| number.to_string())),
        other => Err(format!(
            "{} must be {}, not {}",
            field.name(),
            if matches!(field, Field::GuildId | Field::OwnerId) {
                "a number or a string"
            } else {
                "text"
            },
            json_kind(other)
        )),
    }
}

fn json_kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "true or false",
        Value::Number(_) => "a number",
        Value::String(_) => "text",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}
