//! Reading whole files into records: the format, the header, JSON positions.

use super::run::{Item, Source};
use super::*;

/// A file read into records, before validation.
#[derive(Debug)]
struct Parsed {
    format: ImportFormat,
    rows: Vec<ImportRow>,
    rejected: Vec<Rejected>,
    ignored_columns: Vec<String>,
}

fn parse(text: &str) -> Result<Parsed, ImportError> {
    let source = Source::Text(text);
    let format = source.sniff()?;
    if format == ImportFormat::Json {
        json_file::check_syntax(source.open()?, std::path::Path::new(""))?;
    }
    let mut records = source.records(Some(format))?;
    let mut parsed = Parsed {
        format,
        rows: Vec::new(),
        rejected: Vec::new(),
        ignored_columns: Vec::new(),
    };
    while let Some(item) = records.next_item()? {
        match item {
            Item::Row(row) => parsed.rows.push(row),
            Item::Rejected(rejected) => parsed.rejected.push(rejected),
        }
    }
    parsed.ignored_columns = records.ignored_columns().to_vec();
    Ok(parsed)
}

/// The line each element of a JSON array starts on.
fn json_element_lines(text: &str) -> Vec<usize> {
    let parsed = parse(text).unwrap();
    let mut lines: Vec<usize> = parsed
        .rows
        .iter()
        .map(|r| r.line)
        .chain(parsed.rejected.iter().map(|r| r.line))
        .collect();
    lines.sort();
    lines
}

#[test]
fn json_elements_are_located_on_the_line_they_start() {
    let text = "[\n  {\"a\": \"[{,\\\"}\"},\n  {\n    \"b\": [1, 2]\n  }, 3,\n\n  null\n]";
    assert_eq!(json_element_lines(text), [2, 3, 5, 7]);
    assert_eq!(json_element_lines("[]"), Vec::<usize>::new());
    assert_eq!(json_element_lines(" [ ] "), Vec::<usize>::new());
    assert_eq!(json_element_lines("[{},{}]"), [1, 1]);
}

#[test]
fn json_elements_are_numbered_and_rejected_in_file_order() {
    let parsed =
        parse("[{\"name\": \"A\"}, \"text\", [], {\"name\": \"B\", \"level\": 3}]").unwrap();
    assert_eq!(
        parsed.rows.iter().map(|r| r.record).collect::<Vec<_>>(),
        [1, 4]
    );
    assert_eq!(
        parsed.rejected.iter().map(|r| r.record).collect::<Vec<_>>(),
        [2, 3]
    );
    assert_eq!(parsed.ignored_columns, ["level"]);
}

#[test]
fn json_syntax_errors_point_into_the_whole_file() {
    let err = parse("[\n  {\"name\": \"A\"},\n  {\"name\" \"B\"}\n]").unwrap_err();
    assert!(matches!(&err, ImportError::Json { line: 3, .. }), "{err:?}");
    assert!(parse("[{}] trailing").is_err());
}

#[test]
fn the_format_comes_from_the_content_not_the_name() {
    let json =
        parse("\u{feff}  \n[{\"guild\": 1, \"Owner\": \"2\", \"character\": \"A\"}]").unwrap();
    assert_eq!(json.format, ImportFormat::Json);
    assert_eq!(json.rows[0].guild_id.as_deref(), Some("1"));
    assert_eq!(json.rows[0].owner_id.as_deref(), Some("2"));
    assert_eq!(json.rows[0].name.as_deref(), Some("A"));
    assert_eq!(json.rows[0].line, 2);

    let csv = parse("Guild ID,ownerId,NAME,Image-URL\n1,2,A,\n").unwrap();
    assert_eq!(csv.format, ImportFormat::Csv);
    assert_eq!(csv.rows[0].portrait_url.as_deref(), Some(""));
    assert_eq!(
        csv.rows[0].class, None,
        "no class column: absent, not empty"
    );

    assert!(matches!(parse(" \n "), Err(ImportError::Empty)));
    assert!(matches!(
        parse("{\"characters\": []}"),
        Err(ImportError::NotAnArray)
    ));
}

#[test]
fn a_csv_header_missing_a_required_column_names_it_and_guesses_why() {
    let err = parse("guild_id;owner_id;name;portrait_url\n1;2;A;\n")
        .err()
        .unwrap();
    let message = err.to_string();
    assert!(
        message.contains("no column for guild_id, owner_id, name, portrait_url"),
        "{message}"
    );
    assert!(message.contains("separated by semicolons"), "{message}");

    let err = parse("guild,owner,name,avatar_link\n").err().unwrap();
    assert!(
        matches!(&err, ImportError::MissingColumns { missing, .. } if missing == &["portrait_url"])
    );
    assert!(err.to_string().contains("`avatar_link`"), "{err}");

    let err = parse("123,456,Aria,\n").err().unwrap();
    assert!(err.to_string().contains("looks like data"), "{err}");

    let err = parse("name,character,guild,owner,portrait\n")
        .err()
        .unwrap();
    assert_eq!(
        err.to_string(),
        "the CSV header has two columns for name, `name` and `character`; keep one"
    );
}

#[test]
fn a_csv_header_with_text_after_a_closing_quote_is_an_error() {
    let err = parse("\"guild\"x,owner,name,portrait\n").err().unwrap();
    assert!(
        matches!(&err, ImportError::Csv { line: 1, message } if message.starts_with("in the header: text after a closing quote")),
        "{err}"
    );
}

#[test]
fn unknown_columns_are_ignored_and_listed() {
    let parsed = parse("guild,owner,level,name,portrait,\n1,2,5,A,,\n").unwrap();
    assert_eq!(parsed.ignored_columns, ["level"]);
    assert_eq!(parsed.rows.len(), 1);
}
