//! `despacho phone`: a technician's phone on the command line, for trying the sync by
//! hand, scripting field scenarios and testing end to end. Built on the reference
//! client `despacho-phone`: every command opens the phone's SQLite file (`--store`),
//! does one thing and exits, so work recorded while offline stays queued in the file
//! until a later `sync` gets through.
//!
//! ```text
//! despacho phone --store ana.db --device ana-1 --server http://127.0.0.1:8080 --key KEY sync
//! despacho phone --store ana.db --device ana-1 jobs
//! despacho phone --store ana.db --device ana-1 status J-12 en_route
//! despacho phone --store ana.db --device ana-1 status J-12 failed --reason customer_absent
//! despacho phone --store ana.db --device ana-1 note J-12 "gate code 1234"
//! despacho phone --store ana.db --device ana-1 --server … --key … sync
//! ```
//!
//! Each command prints one JSON object (or array, for `jobs`) on stdout.

use clap::{Args, Subcommand};
use despacho_phone::{FailureReason, JobStatus, Phone, PhoneError, PullOutcome, Server};
use serde_json::{json, Value};
use std::path::PathBuf;

/// Arguments of `despacho phone`.
#[derive(Debug, Clone, Args)]
pub struct PhoneArgs {
    /// The phone's SQLite file (created at first use): its queue, pull cookie and jobs.
    #[arg(long, value_name = "PATH")]
    pub store: PathBuf,
    /// The device id (one app installation); a store belongs to one device.
    #[arg(long, value_name = "ID")]
    pub device: String,
    /// The service's URL, for `pull` and `sync` (or DESPACHO_SERVER).
    #[arg(long, value_name = "URL", env = "DESPACHO_SERVER")]
    pub server: Option<String>,
    /// The technician's API key, for `pull` and `sync` (or DESPACHO_KEY, which keeps it
    /// out of the process list).
    #[arg(long, value_name = "KEY", env = "DESPACHO_KEY", hide_env_values = true)]
    pub key: Option<String>,
    /// Mutations per push (1 to 1000).
    #[arg(long, value_name = "N", default_value_t = 100,
          value_parser = clap::value_parser!(u16).range(1..=1000))]
    pub batch: u16,
    #[command(subcommand)]
    pub command: PhoneCommand,
}

#[derive(Debug, Clone, Subcommand)]
pub enum PhoneCommand {
    /// Push every queued mutation, then pull the changes to this technician's jobs.
    Sync,
    /// Pull only (the queue stays as it is).
    Pull,
    /// The jobs as the technician sees them (the server's view plus unsent work).
    Jobs,
    /// Queued work and this device's mutations the server refused.
    Queue,
    /// Record a status event on a job.
    Status {
        job: String,
        #[arg(value_parser = ["en_route", "arrived", "in_progress", "completed", "failed"])]
        status: String,
        /// Why the visit failed (only with `failed`).
        #[arg(long, value_parser = ["customer_absent", "no_access", "needs_escalation", "wrong_equipment"])]
        reason: Option<String>,
    },
    /// Record a note on a job.
    Note { job: String, text: String },
}

/// Runs one phone command and returns what to print.
pub fn run(args: &PhoneArgs) -> Result<Value, PhoneError> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| PhoneError::InvalidInput {
            field: "runtime",
            message: format!("cannot start the async runtime: {e}"),
        })?;
    runtime.block_on(run_async(args))
}

async fn run_async(args: &PhoneArgs) -> Result<Value, PhoneError> {
    // Checked before the store is touched, so a typo changes nothing.
    let server = match args.command {
        PhoneCommand::Sync | PhoneCommand::Pull => Some(server(args)?),
        _ => None,
    };
    let mut phone =
        Phone::open_with_batch(&args.store, &args.device, usize::from(args.batch)).await?;
    let result = match &args.command {
        PhoneCommand::Sync | PhoneCommand::Pull => {
            let server = server.expect("checked above");
            let outcome = if matches!(args.command, PhoneCommand::Sync) {
                phone.sync(&server).await.map(|r| {
                    json!({"acknowledged": r.acknowledged, "pushes": r.pushes, "pull": pull_name(&r.pull)})
                })
            } else {
                phone
                    .pull(&server)
                    .await
                    .map(|p| json!({"pull": pull_name(&p)}))
            };
            match outcome {
                Ok(mut out) => {
                    out["pending"] = json!(phone.pending());
                    out["jobs"] = json!(phone.jobs().len());
                    out["rejected"] = json!(phone.rejections().len());
                    Ok(out)
                }
                Err(e) => Err(e),
            }
        }
        PhoneCommand::Jobs => Ok(Value::Array(phone.jobs())),
        PhoneCommand::Queue => Ok(json!({
            "pending": phone.state().pending().collect::<Vec<_>>(),
            "rejected": phone.rejections().into_iter()
                .map(|(id, why)| json!({"mutation_id": id, "why": why}))
                .collect::<Vec<_>>(),
        })),
        PhoneCommand::Status {
            job,
            status,
            reason,
        } => {
            let status: JobStatus = parse_enum("status", status)?;
            let reason: Option<FailureReason> = reason
                .as_deref()
                .map(|r| parse_enum("reason", r))
                .transpose()?;
            phone
                .status(job, status, reason)
                .await
                .map(|id| json!({"mutation_id": id, "pending": phone.pending()}))
        }
        PhoneCommand::Note { job, text } => phone
            .note(job, text)
            .await
            .map(|id| json!({"mutation_id": id, "pending": phone.pending()})),
    };
    let pending = phone.pending();
    phone.close().await;
    result.map_err(|e| match e {
        // Say that nothing was lost: the work waits in the file for the next sync.
        PhoneError::Transport(t) if t.is_temporary() => PhoneError::InvalidInput {
            field: "server",
            message: format!("{t} ({pending} mutations kept on the phone; run sync again)"),
        },
        other => other,
    })
}

fn server(args: &PhoneArgs) -> Result<Server, PhoneError> {
    let missing = |field: &'static str, flag: &str, env: &str| PhoneError::InvalidInput {
        field,
        message: format!("needed for pull and sync: pass {flag} or set {env}"),
    };
    let url = args
        .server
        .as_deref()
        .ok_or_else(|| missing("server", "--server URL", "DESPACHO_SERVER"))?;
    let key = args
        .key
        .as_deref()
        .ok_or_else(|| missing("key", "--key KEY", "DESPACHO_KEY"))?;
    Server::new(url, key)
}

fn parse_enum<T: serde::de::DeserializeOwned>(
    field: &'static str,
    text: &str,
) -> Result<T, PhoneError> {
    serde_json::from_value(json!(text)).map_err(|e| PhoneError::InvalidInput {
        field,
        message: e.to_string(),
    })
}

fn pull_name(outcome: &PullOutcome) -> &'static str {
    match outcome {
        PullOutcome::Applied { reset: true, .. } => "full",
        PullOutcome::Applied { .. } => "diff",
        _ => "ignored",
    }
}
