//! The `despacho` command line: one module per subcommand.

pub mod field;
pub mod phone;
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
    /// Solve a field-service problem (--problem, prints the plan JSON) or a Solomon
    /// VRPTW benchmark file (--solomon, prints one JSON object).
    Solve(solve::SolveArgs),
    /// Check a plan against its problem, independently of the solver; exit 1 on any violation.
    Check(field::CheckArgs),
    /// Test and demo data.
    #[command(subcommand)]
    Fixtures(field::FixturesCommand),
    /// Print the JSON Schema of the problem or plan format.
    Schema {
        #[arg(value_enum)]
        kind: field::SchemaKind,
    },
    /// Run the HTTP service (SQLite file by default, or PostgreSQL). The admin key comes
    /// from DESPACHO_ADMIN_KEY; --demo loads a generated operation and prints a key per role.
    Serve(crate::server::ServeArgs),
    /// Deliver customer messages (the outbox) of the service's database until Ctrl-C or
    /// SIGTERM; as many as wanted may run next to `despacho serve` on PostgreSQL.
    Worker(crate::server::messages::worker::WorkerArgs),
    /// A technician's phone on the command line (the reference sync client): record
    /// status events and notes offline in a local SQLite file, sync with the service.
    Phone(phone::PhoneArgs),
}

/// Why a command failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CliError {
    #[error(transparent)]
    Solve(#[from] solve::SolveError),
    #[error(transparent)]
    Field(#[from] field::FieldError),
    #[error(transparent)]
    Serve(#[from] crate::server::ServeError),
    #[error(transparent)]
    Phone(#[from] despacho_phone::PhoneError),
    #[error("cannot write the result to stdout")]
    Output(#[source] std::io::Error),
}

/// Runs a parsed command, writing its result to `out`.
pub fn run(cli: Cli, out: &mut impl Write) -> Result<(), CliError> {
    let json = match cli.command {
        Command::Solve(args) => match &args.problem {
            Some(problem) => {
                let solved =
                    field::solve_problem(problem, args.previous.as_deref(), &args.config())?;
                eprintln!("{}", field::summary(&solved.plan, solved.lower_bound));
                serde_json::to_string_pretty(&solved.plan).expect("plans always serialise")
            }
            None => {
                let report = solve::run(&args)?;
                serde_json::to_string(&report).expect("a solve report always serialises")
            }
        },
        Command::Check(args) => {
            let report = field::check(&args)?;
            let json = serde_json::to_string_pretty(&report).expect("reports always serialise");
            write_line(out, &json)?;
            if !report.feasible {
                return Err(field::FieldError::Violations(report.violations.len()).into());
            }
            return Ok(());
        }
        Command::Fixtures(field::FixturesCommand::Generate(args)) => {
            match field::generate_fixture(&args)? {
                Some(json) => json,
                None => return Ok(()),
            }
        }
        Command::Schema { kind } => field::schema(kind),
        Command::Serve(args) => return Ok(crate::server::run_blocking(args, out)?),
        Command::Worker(args) => return Ok(crate::server::messages::worker::run_blocking(args)?),
        Command::Phone(args) => {
            let answer = phone::run(&args)?;
            serde_json::to_string_pretty(&answer).expect("JSON values always serialise")
        }
    };
    write_line(out, &json)
}

fn write_line(out: &mut impl Write, text: &str) -> Result<(), CliError> {
    writeln!(out, "{text}")
        .and_then(|()| out.flush())
        .map_err(CliError::Output)
}
