//! `portrait-bot`: parse the command line, start logging, run the command.

use std::process::ExitCode;

use clap::Parser;
use portrait_bot::{cli, telemetry};

fn main() -> ExitCode {
    let cli = cli::Cli::parse();
    telemetry::init(cli.config.log_format);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("error: could not start the async runtime: {err}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(cli::run(cli)) {
        Ok(code) => code,
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::FAILURE
        }
    }
}
