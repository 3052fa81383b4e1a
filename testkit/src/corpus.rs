//! The shared test corpora, in `../shared/corpus/` beside the clone (e.g. PngSuite). A test
//! reads a corpus when it is there and says loudly that it skipped when it is not, so a fresh
//! clone's `cargo test` passes; with `REQUIRE_CORPUS=1` (as CI sets) a missing corpus fails.

use std::path::Path;

/// Set to `1` to make a missing corpus a failure instead of a skip.
pub const REQUIRE_CORPUS: &str = "REQUIRE_CORPUS";

/// Whether the corpus folder `dir` is there for `test`. When it is not: panics if
/// [`REQUIRE_CORPUS`] is set, and otherwise prints that `test` was skipped and returns false.
pub fn present(dir: &Path, test: &str) -> bool {
    if dir.is_dir() {
        return true;
    }
    let required =
        std::env::var(REQUIRE_CORPUS).is_ok_and(|value| !matches!(value.trim(), "" | "0"));
    assert!(
        !required,
        "{REQUIRE_CORPUS} is set but the corpus is missing: expected it at {} (see shared/corpus/README.md); {test} cannot run",
        dir.display()
    );
    crate::say_loudly(&format!(
        "CORPUS MISSING, {test} SKIPPED: expected it at {} (see shared/corpus/README.md); set {REQUIRE_CORPUS}=1 to make this a failure",
        dir.display()
    ));
    false
}
