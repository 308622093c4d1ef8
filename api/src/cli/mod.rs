//! The `despacho` command line: one module per subcommand.

pub mod solve;

use clap::{Parser, Subcommand};
use std::io::Write;

/// Field-technician scheduling and dispatch optimizer for ISPs.
#[derive(Debug, Parser)]
#[command(name = "despacho", version, about)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Solve a VRPTW benchmark file and print the plan as one JSON object.
    Solve(solve::SolveArgs),
}

/// Why a command failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CliError {
    #[error(transparent)]
    Solve(#[from] solve::SolveError),
    #[error("cannot write the result to stdout")]
    Output(#[source] std::io::Error),
}

/// Runs a parsed command, writing its result to `out`.
pub fn run(cli: Cli, out: &mut impl Write) -> Result<(), CliError> {
    match cli.command {
        Command::Solve(args) => {
            let report = solve::run(&args)?;
            let json = serde_json::to_string(&report).expect("a solve report always serialises");
            writeln!(out, "{json}")
                .and_then(|()| out.flush())
                .map_err(CliError::Output)
        }
    }
}
