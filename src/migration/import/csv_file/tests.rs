//! The CSV reading rules, through [`CsvReader`] (the `csv` crate and what is kept around it).

use super::*;
use crate::migration::import::run::{Item, Records};

fn read_csv(text: &str) -> Result<Vec<CsvRecord>, ImportError> {
    let mut reader = CsvReader::new(text.as_bytes(), PathBuf::new());
    let mut records = Vec::new();
    while let Some(record) = reader.next_record()? {
        records.push(record);
    }
    Ok(records)
}

fn fields(records: &[CsvRecord]) -> Vec<Vec<&str>> {
    records
        .iter()
        .map(|r| r.fields.iter().map(String::as_str).collect())
        .collect()
}

#[test]
fn csv_reads_plain_fields_and_the_last_line_without_a_line_break() {
    let records = read_csv("a,b,c\n1,,3").unwrap();
    assert_eq!(fields(&records), [vec!["a", "b", "c"], vec!["1", "", "3"]]);
    assert_eq!(records[1].line, 2);
    assert!(records.iter().all(|r| r.problem.is_none()));
}

#[test]
fn csv_quoted_fields_keep_commas_doubled_quotes_and_line_breaks() {
    let text = "name,bio\n\"Kael, \"\"the Quick\"\"\",\"line one\nline two\"\nnext,x\n";
    let records = read_csv(text).unwrap();
    assert_eq!(
        fields(&records),
        [
            vec!["name", "bio"],
            vec!["Kael, \"the Quick\"", "line one\nline two"],
            vec!["next", "x"],
        ]
    );
    // A record starts on its first line; the one after a two-line value starts on 4.
    assert_eq!(
        records.iter().map(|r| r.line).collect::<Vec<_>>(),
        [1, 2, 4]
    );
    // A spreadsheet shows it on row 3: a value's line breaks are not rows.
    assert_eq!(records[2].row, 3);
}

#[test]
fn csv_crlf_ends_records_and_is_kept_inside_quotes() {
    let text = "a,b\r\n\"x\r\ny\",2\r\nlast,3\r\n";
    let records = read_csv(text).unwrap();
    assert_eq!(
        fields(&records),
        [vec!["a", "b"], vec!["x\r\ny", "2"], vec!["last", "3"]]
    );
    assert_eq!(
        records.iter().map(|r| r.line).collect::<Vec<_>>(),
        [1, 2, 4]
    );
}

#[test]
fn csv_a_lone_carriage_return_ends_a_record() {
    let records = read_csv("a\rb\r").unwrap();
    assert_eq!(fields(&records), [vec!["a"], vec!["b"]]);
    assert_eq!(records[1].line, 2);
    // Inside quotes it is a line break of the value, counted as a line.
    let records = read_csv("\"x\ry\"\rnext\r").unwrap();
    assert_eq!(fields(&records), [vec!["x\ry"], vec!["next"]]);
    assert_eq!((records[1].line, records[1].row), (3, 2));
}

#[test]
fn csv_empty_quoted_fields_and_trailing_commas_are_empty_values() {
    let records = read_csv("\"\",x,\n").unwrap();
    assert_eq!(fields(&records), [vec!["", "x", ""]]);
}

#[test]
fn csv_blank_lines_are_skipped_and_keep_line_and_row_numbers_right() {
    let records = read_csv("a\n\n,,\n\r\n\rb\n").unwrap();
    assert_eq!(fields(&records), [vec!["a"], vec!["", "", ""], vec!["b"]]);
    assert!(!records[0].is_blank());
    assert!(records[1].is_blank());
    assert_eq!(
        records.iter().map(|r| (r.line, r.row)).collect::<Vec<_>>(),
        [(1, 1), (3, 3), (6, 6)]
    );
}

#[test]
fn csv_a_quote_inside_an_unquoted_value_is_an_ordinary_character() {
    let records = read_csv("5\" tall,b\n").unwrap();
    assert_eq!(fields(&records), [vec!["5\" tall", "b"]]);
    assert_eq!(records[0].problem, None);
}

#[test]
fn csv_text_after_a_closing_quote_marks_only_that_record() {
    let records = read_csv("\"abc\"def,x\n\"ok\" ,y\nnext,z\n").unwrap();
    assert_eq!(fields(&records)[0], ["abcdef", "x"]);
    assert!(records[0]
        .problem
        .as_deref()
        .unwrap()
        .contains("after a closing quote"));
    // Spaces after a closing quote are dropped, not a problem.
    assert_eq!(fields(&records)[1], ["ok", "y"]);
    assert_eq!(records[1].problem, None);
    assert_eq!(fields(&records)[2], ["next", "z"]);
}

#[test]
fn csv_a_quote_never_closed_is_an_error_naming_the_line_it_opened_on() {
    let err = read_csv("a,b\n1,2\n3,\"never\nclosed,4\n").unwrap_err();
    let ImportError::Csv { line, message } = err else {
        panic!("{err}")
    };
    assert_eq!(line, 3);
    assert!(message.contains("never closed"), "{message}");
}

#[test]
fn csv_a_quote_never_closed_in_a_long_file_stops_at_the_record_limit_naming_its_line() {
    let mut text = String::from("a,b\n1,\"open\n");
    while text.len() < 3 * MAX_RECORD_BYTES {
        text.push_str("more,text\n");
    }
    let err = read_csv(&text).unwrap_err();
    assert!(
        matches!(&err, ImportError::Csv { line: 2, message } if message.contains("never closed")),
        "{err}"
    );
}

#[test]
fn csv_an_empty_text_has_no_records() {
    assert_eq!(read_csv("").unwrap(), []);
}

#[test]
fn csv_records_skip_blank_rows_and_count_them_as_spreadsheet_rows() {
    let text = "guild,owner,name,portrait\n\n1,2,\"A\nB\",\n,,,\n3,4,C,\n";
    let mut records = CsvRecords::open(text.as_bytes(), PathBuf::new()).unwrap();
    let mut rows = Vec::new();
    while let Some(item) = records.next_item().unwrap() {
        let Item::Row(row) = item else {
            panic!("a rejection")
        };
        rows.push((row.line, row.record, row.name.unwrap()));
    }
    assert_eq!(rows, [(3, 3, "A\nB".to_owned()), (6, 5, "C".to_owned())]);
}
