//! The application assembled over the test kit's servers (the `testkit` crate): what needs
//! `portrait_bot` types lives here, in the test binary, so the kit does not depend on the
//! crate it tests.
pub mod app;
pub mod bot;
pub mod database;
pub mod pictures;
pub mod r2;
