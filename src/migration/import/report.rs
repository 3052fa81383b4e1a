//! What an import did, as the operator reads it.

use std::fmt;

use super::columns::recognised_columns;

/// Rejections an [`ImportReport`] keeps and lists (the earliest in the file); the others are
/// counted. A million-record file full of errors still gives a report of a few lines.
pub const SHOWN_REJECTIONS: usize = 20;

/// The format of an import file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ImportFormat {
    Json,
    Csv,
}

impl fmt::Display for ImportFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ImportFormat::Json => "JSON",
            ImportFormat::Csv => "CSV",
        })
    }
}

/// A record that was not imported, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejected {
    /// The line the record starts on, 1-based.
    pub line: usize,
    /// See [`super::ImportRow::record`].
    pub record: usize,
    /// Every problem found, for the person fixing the file.
    pub reason: String,
}

/// What an import did (or, in a dry run, would do).
///
/// `records == created + updated + unchanged + rejected_count()`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ImportReport {
    /// The file's format; `None` for [`super::import_records`].
    pub format: Option<ImportFormat>,
    /// Nothing was saved.
    pub dry_run: bool,
    /// Records read (blank CSV lines and the header are not records).
    pub records: usize,
    /// New characters: the "imported" count.
    pub created: usize,
    /// Existing characters whose class, bio or portrait link changed.
    pub updated: usize,
    /// Existing characters the record matched exactly (or whose stored portrait was kept).
    pub unchanged: usize,
    /// Records not imported, in file order: the first [`SHOWN_REJECTIONS`] of them.
    pub rejected: Vec<Rejected>,
    /// Records not imported beyond those in `rejected`.
    pub more_rejected: usize,
    /// Characters whose portrait a player uploaded to this bot, kept instead of the file's
    /// link (counted in `updated` or `unchanged` too).
    pub kept_uploads: usize,
    /// Characters whose stored portrait had been migrated from a different link and that
    /// now show the file's link, for the next migration to store (counted in `updated` too).
    pub relinked: usize,
    /// Columns (or JSON keys) that are not recognised, ignored.
    pub ignored_columns: Vec<String>,
}

impl ImportReport {
    /// Every record not imported, listed or not.
    pub fn rejected_count(&self) -> usize {
        self.rejected.len() + self.more_rejected
    }

    /// Records a rejection, keeping only the earliest [`SHOWN_REJECTIONS`] in file order
    /// (rejections may arrive out of order: a batch's are known when it is saved).
    pub(super) fn reject(&mut self, rejected: Rejected) {
        let at = self
            .rejected
            .partition_point(|r| (r.line, r.record) <= (rejected.line, rejected.record));
        if at < SHOWN_REJECTIONS {
            self.rejected.insert(at, rejected);
        }
        if self.rejected.len() > SHOWN_REJECTIONS || at >= SHOWN_REJECTIONS {
            self.rejected.truncate(SHOWN_REJECTIONS);
            self.more_rejected += 1;
        }
    }

    fn location(&self, rejected: &Rejected) -> String {
        match self.format {
            Some(ImportFormat::Json) => {
                format!("line {} (object #{})", rejected.line, rejected.record)
            }
            Some(ImportFormat::Csv) if rejected.record != rejected.line => {
                format!(
                    "line {} (spreadsheet row {})",
                    rejected.line, rejected.record
                )
            }
            _ => format!("line {}", rejected.line),
        }
    }
}

impl fmt::Display for ImportReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.dry_run {
            writeln!(f, "Dry run: nothing was saved. The import would give:")?;
        }
        let format = self.format.map(|f| format!(" ({f})")).unwrap_or_default();
        writeln!(f, "records read: {:>6}{format}", self.records)?;
        writeln!(f, "created:      {:>6}", self.created)?;
        writeln!(f, "updated:      {:>6}", self.updated)?;
        writeln!(f, "unchanged:    {:>6}", self.unchanged)?;
        writeln!(f, "rejected:     {:>6}", self.rejected_count())?;
        if self.kept_uploads > 0 {
            writeln!(
                f,
                "\n{} kept the portrait a player uploaded to this bot; the file's link was not used.",
                characters(self.kept_uploads)
            )?;
        }
        if self.relinked > 0 {
            writeln!(
                f,
                "\n{} had a portrait migrated from a different link: they now show the file's \
                 link, which the next migration stores.",
                characters(self.relinked)
            )?;
        }
        if !self.ignored_columns.is_empty() {
            writeln!(
                f,
                "\nIgnored columns (not recognised): {}.\nRecognised: {}.",
                self.ignored_columns.join(", "),
                recognised_columns()
            )?;
        }
        if !self.rejected.is_empty() {
            writeln!(f, "\nRejected:")?;
            for rejected in self.rejected.iter().take(SHOWN_REJECTIONS) {
                writeln!(f, "  {}: {}", self.location(rejected), rejected.reason)?;
            }
            let shown = self.rejected.len().min(SHOWN_REJECTIONS);
            if self.rejected_count() > shown {
                writeln!(f, "  … and {} more", self.rejected_count() - shown)?;
            }
        }
        Ok(())
    }
}

fn characters(n: usize) -> String {
    if n == 1 {
        "1 character".to_owned()
    } else {
        format!("{n} characters")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_report_lists_the_first_rejections_with_their_lines() {
        let report = ImportReport {
            format: Some(ImportFormat::Csv),
            records: 30,
            created: 5,
            rejected: (0..25)
                .map(|i| Rejected {
                    line: i + 6,
                    record: if i == 0 { 5 } else { i + 6 },
                    reason: format!("problem {i}"),
                })
                .collect(),
            ignored_columns: vec!["level".into()],
            ..ImportReport::default()
        };
        let text = report.to_string();
        assert!(text.contains("records read:     30 (CSV)"), "{text}");
        assert!(text.contains("created:           5"), "{text}");
        assert!(text.contains("rejected:         25"), "{text}");
        assert!(
            text.contains("  line 6 (spreadsheet row 5): problem 0\n"),
            "{text}"
        );
        assert!(text.contains("  line 7: problem 1\n"), "{text}");
        assert!(text.contains("  line 25: problem 19\n"), "{text}");
        assert!(!text.contains("problem 20"), "{text}");
        assert!(text.contains("… and 5 more"), "{text}");
        assert!(
            text.contains("Ignored columns (not recognised): level."),
            "{text}"
        );
    }

    #[test]
    fn a_report_keeps_the_earliest_rejections_and_counts_the_rest_whatever_their_order() {
        let mut report = ImportReport {
            format: Some(ImportFormat::Csv),
            ..ImportReport::default()
        };
        // 1,000 rejections arriving out of order, as a batch's arrive after later records'.
        for i in (0..1000usize).map(|i| (i * 7919) % 1000) {
            report.reject(Rejected {
                line: i + 2,
                record: i + 2,
                reason: format!("problem on {}", i + 2),
            });
        }
        assert_eq!(report.rejected_count(), 1000);
        assert_eq!(report.rejected.len(), SHOWN_REJECTIONS);
        assert_eq!(
            report.rejected.iter().map(|r| r.line).collect::<Vec<_>>(),
            (2..2 + SHOWN_REJECTIONS).collect::<Vec<_>>()
        );
        let text = report.to_string();
        assert!(text.contains("rejected:       1000"), "{text}");
        assert!(text.contains("  line 2: problem on 2\n"), "{text}");
        assert!(text.contains("… and 980 more"), "{text}");
    }
}
