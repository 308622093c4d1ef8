//! The `despacho` command. All logic lives in the library; this only parses the
//! command line, runs it and turns an error into a message and an exit code.

use clap::Parser;
use despacho_api::cli::Cli;
use std::process::ExitCode;

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<()> {
    let stdout = std::io::stdout();
    despacho_api::cli::run(cli, &mut stdout.lock())?;
    Ok(())
}
