//! `despacho serve`: the HTTP service.
//!
//! axum on a multi-thread tokio runtime, sqlx over SQLite (default, one file) or
//! PostgreSQL ([`store::db`]). A folder per context, a file per concept, each with its
//! routes (`router()`), its handlers and its SQL. The folders are layers, bottom first;
//! a module imports only from its own layer and those below (docs/architecture.md, checked
//! by `api/tests/api/layers.rs`):
//!
//! | layer | what |
//! |---|---|
//! | [`store`], [`http`] | the platform: the database (pool, migrations, write transactions, retries), ids, the clock; errors that name the field, API keys and roles, request bodies, pagination, the accept loop with its limits, health checks, the shared [`AppState`] |
//! | [`catalog`] | settings, API keys, technicians, customers, jobs, imports, territories, the upsell catalogue, customers' equipment; the solver's validation of single records |
//! | [`booking`] | slot search with sealed tokens, holds, bookings, reschedule, cancel (docs/booking.md) |
//! | [`messages`] | the transactional outbox and its worker, templates and channels, webhook endpoints, customers' replies, the dispatchers' queue, visit events (docs/messages.md) |
//! | [`sync`] | the phones' push and pull, the dispatchers' flag queue (docs/sync.md) |
//! | [`dispatch`] | day plans: optimisation runs, versions, changes with feasibility, publishing, KPIs, the `/dispatch` page (docs/dispatch.md) |
//! | this module, [`openapi`], [`demo`] | the composition root: every router, [`build_app`], [`serve`], the API document, the demo data |
//!
//! Tests drive the service in-process: [`build_app`] returns the [`Router`] and its
//! [`AppState`]; [`serve`] is the command (logging, listener, graceful shutdown).
//!
//! ```no_run
//! # async fn f() -> Result<(), despacho_api::server::ServeError> {
//! use despacho_api::server::{build_app, Config};
//! let app = build_app(&Config::new("sqlite://./despacho.db")).await?;
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
//! axum::serve(listener, app.router).await.unwrap();
//! # Ok(()) }
//! ```

// Layers, bottom first; a module imports only from its own layer and those below
// (docs/architecture.md; checked by tests/api/layers.rs).
pub mod booking;
pub mod catalog;
pub mod dispatch;
pub mod http;
pub mod messages;
pub mod store;
pub mod sync;
// The composition root: the router, the API document, the demo data.
pub mod demo;
pub mod openapi;

use booking::bookings;
use catalog::{
    api_keys, customers, equipment, import, job_cancel, jobs, settings, technicians, territories,
    upsells,
};
use dispatch::{day_plans, map_tiles, page, plan_runs, plans};
use http::{body, error, health, listener};
use messages::{
    dispatcher_queue, inbound, notify, outbox, visit_events, webhook_endpoints, worker,
};
use store::db;
use sync::{push_pull, sync_flags};

pub use http::auth::{roles, Auth, Role};
pub use http::error::{ApiError, ErrorDetail};
pub use http::state::AppState;
pub use store::db::{Backend, Db, Tx};

use axum::extract::{DefaultBodyLimit, MatchedPath, Request};
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::Router;
use clap::Args;
use std::io::Write;
use std::net::SocketAddr;
use std::time::Instant;
use tracing::Instrument;

/// Arguments of `despacho serve`.
#[derive(Debug, Clone, Args)]
pub struct ServeArgs {
    /// Address and port to listen on (port 0: any free port, printed at start).
    #[arg(long, value_name = "ADDR:PORT", default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,
    /// sqlite://PATH (created if missing) or postgres://USER@HOST:PORT/DB.
    #[arg(long, value_name = "URL", default_value = "sqlite://./despacho.db")]
    pub database_url: String,
    /// Load a generated São Paulo operation into an empty database and print one API
    /// key per role.
    #[arg(long)]
    pub demo: bool,
    /// Do not deliver customer messages from this process (run `despacho worker`
    /// elsewhere instead).
    #[arg(long)]
    pub no_worker: bool,
    /// Database connections of this process (PostgreSQL: each is a server process;
    /// SQLite: readers, with one writer at a time).
    #[arg(long, value_name = "N", default_value_t = 10,
          value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub max_connections: u32,
    /// A raster tile server for the /dispatch map, e.g.
    /// `https://tile.example.org/{z}/{x}/{y}.png` (Web-Mercator tiles). Default: none,
    /// the page draws an SVG map from coordinates and nothing leaves the server.
    #[arg(long, value_name = "URL", env = "DESPACHO_MAP_TILES")]
    pub map_tiles: Option<String>,
    /// The attribution the tile server's terms ask for, shown under the map.
    #[arg(
        long,
        value_name = "TEXT",
        env = "DESPACHO_MAP_ATTRIBUTION",
        default_value = ""
    )]
    pub map_attribution: String,
    #[command(flatten)]
    pub smtp: notify::email::SmtpArgs,
    #[command(flatten)]
    pub webhook_targets: notify::targets::WebhookTargetArgs,
    #[command(flatten)]
    pub limits: listener::LimitArgs,
}

/// How to build the service.
#[derive(Debug, Clone)]
pub struct Config {
    pub database_url: String,
    /// Pooled connections (default 10).
    pub max_connections: u32,
    /// Load the demo dataset (if the database is empty) and make demo keys.
    pub demo: bool,
    /// A secret to make a working admin key (from `DESPACHO_ADMIN_KEY`).
    pub admin_key: Option<String>,
    /// The /dispatch page's tile server (none: the offline SVG map).
    pub map_tiles: Option<map_tiles::MapTiles>,
    /// Networks webhook endpoints may be in besides the public internet.
    pub webhook_targets: notify::targets::WebhookTargets,
}

impl Config {
    pub fn new(database_url: impl Into<String>) -> Self {
        Config {
            database_url: database_url.into(),
            max_connections: 10,
            demo: false,
            admin_key: None,
            map_tiles: None,
            webhook_targets: Default::default(),
        }
    }
}

/// The service, built and ready to serve.
#[derive(Debug)]
pub struct App {
    pub router: Router,
    pub state: AppState,
    /// What `--demo` did (keys to print), when asked.
    pub demo: Option<demo::DemoReport>,
}

/// Why the service could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServeError {
    #[error(transparent)]
    Database(#[from] db::DbError),
    #[error("cannot set the admin key from DESPACHO_ADMIN_KEY: {}", public(.0))]
    AdminKey(#[source] ApiError),
    #[error("cannot load the demo data: {}", public(.0))]
    Demo(#[source] ApiError),
    #[error("--map-tiles: {0}")]
    MapTiles(String),
    #[error("the SMTP settings are not valid: {0}")]
    Smtp(String),
    #[error("the message templates are not valid: {0}")]
    Templates(#[source] notify::templates::TemplateError),
    #[error("cannot listen on {addr}")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("the server stopped with an error")]
    Serve(#[source] std::io::Error),
    #[error("cannot start the async runtime")]
    Runtime(#[source] std::io::Error),
    #[error("cannot write to stdout")]
    Output(#[source] std::io::Error),
}

fn public(e: &ApiError) -> String {
    match e {
        ApiError::Database(e) => format!("database error: {e}"),
        other => other.to_string(),
    }
}

/// Opens (and migrates) the database, applies the admin key and `--demo`, and builds
/// the router.
pub async fn build_app(config: &Config) -> Result<App, ServeError> {
    // Every message template is checked now, not when a message is sent.
    notify::templates::builtin().map_err(ServeError::Templates)?;
    let db = Db::connect(&config.database_url, config.max_connections).await?;
    if let Some(secret) = &config.admin_key {
        match api_keys::ensure_admin_key(&db, secret)
            .await
            .map_err(ServeError::AdminKey)?
        {
            api_keys::AdminKeyOutcome::Created => {
                tracing::info!("admin key from DESPACHO_ADMIN_KEY created")
            }
            api_keys::AdminKeyOutcome::AlreadyPresent => {}
            api_keys::AdminKeyOutcome::Revoked => tracing::warn!(
                "the admin key in DESPACHO_ADMIN_KEY was revoked through the API and stays revoked"
            ),
        }
    }
    let demo = if config.demo {
        Some(demo::load(&db).await.map_err(ServeError::Demo)?)
    } else {
        None
    };
    let mut state = AppState::new(db, openapi::rendered());
    state.map_tiles = config.map_tiles.clone().map(std::sync::Arc::new);
    state.webhook_targets = config.webhook_targets.clone();
    Ok(App {
        router: app(state.clone()),
        state,
        demo,
    })
}

/// Every route, with request logging and the body size limit.
pub fn app(state: AppState) -> Router {
    Router::new()
        .merge(health::router())
        .merge(openapi::router())
        .merge(api_keys::router())
        .merge(settings::router())
        .merge(technicians::router())
        .merge(territories::router())
        .merge(customers::router())
        .merge(jobs::router())
        .merge(job_cancel::router())
        .merge(import::router())
        .merge(bookings::router())
        .merge(plans::router())
        .merge(day_plans::router())
        .merge(plan_runs::router())
        .merge(page::router())
        .merge(outbox::router())
        .merge(webhook_endpoints::router())
        .merge(inbound::router())
        .merge(dispatcher_queue::router())
        .merge(push_pull::router())
        .merge(sync_flags::router())
        .merge(upsells::router())
        .merge(equipment::router())
        .merge(visit_events::router())
        .fallback(error::no_route)
        .method_not_allowed_fallback(error::method_not_allowed)
        .layer(DefaultBodyLimit::max(body::MAX_BODY_BYTES))
        .layer(middleware::from_fn(body::refuse_control_characters_in_path))
        .layer(middleware::from_fn(log_request))
        .with_state(state)
}

/// One log line per request: method, route, status, milliseconds (and the caller's role
/// when authenticated).
async fn log_request(request: Request, next: Next) -> Response {
    let route = request.extensions().get::<MatchedPath>().map_or_else(
        || request.uri().path().to_owned(),
        |p| p.as_str().to_owned(),
    );
    let method = request.method().clone();
    let span = tracing::info_span!("request", %method, %route, role = tracing::field::Empty);
    let started = Instant::now();
    let response = next.run(request).instrument(span.clone()).await;
    let status = response.status().as_u16();
    let ms = started.elapsed().as_secs_f64() * 1e3;
    span.in_scope(|| {
        if status >= 500 {
            tracing::error!(status, ms, "request failed");
        } else {
            tracing::info!(status, ms, "request");
        }
    });
    response
}

/// Starts `tracing` output on stderr: `RUST_LOG` filter (default `info`), JSON lines
/// when `DESPACHO_LOG_FORMAT=json`. Does nothing if a subscriber is already set.
pub fn init_logging() {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = if std::env::var("DESPACHO_LOG_FORMAT").is_ok_and(|f| f == "json") {
        builder.json().try_init()
    } else {
        builder.try_init()
    };
}

/// `despacho serve`: builds the service, prints the demo keys (with `--demo`) and the
/// URL to `out`, and serves until Ctrl-C or SIGTERM, then finishes the requests in
/// flight and closes the database.
pub async fn serve(args: ServeArgs, out: &mut impl Write) -> Result<(), ServeError> {
    init_logging();
    let smtp = args.smtp.config().map_err(ServeError::Smtp)?;
    let mut config = Config::new(args.database_url.clone());
    config.demo = args.demo;
    config.max_connections = args.max_connections;
    config.map_tiles = match &args.map_tiles {
        Some(url) if !url.trim().is_empty() => Some(
            map_tiles::MapTiles::parse(url, &args.map_attribution).map_err(ServeError::MapTiles)?,
        ),
        _ => None,
    };
    config.webhook_targets = args.webhook_targets.targets();
    config.admin_key = std::env::var("DESPACHO_ADMIN_KEY")
        .ok()
        .filter(|k| !k.is_empty());
    let app = build_app(&config).await?;
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .map_err(|source| ServeError::Bind {
            addr: args.listen,
            source,
        })?;
    let addr = listener.local_addr().map_err(ServeError::Serve)?;
    let url = format!("http://{addr}");
    print_banner(out, &url, app.demo.as_ref()).map_err(ServeError::Output)?;
    tracing::info!(%url, database = ?app.state.db.backend(), "listening");
    tokio::spawn(purge_hourly(app.state.db.clone()));
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let worker = if args.no_worker {
        None
    } else {
        let config = worker::WorkerConfig {
            name: format!("serve-{}", std::process::id()),
            smtp,
            webhook_targets: config.webhook_targets.clone(),
            ..worker::WorkerConfig::default()
        };
        let w = worker::Worker::new(app.state.db.clone(), config).map_err(ServeError::Templates)?;
        Some(tokio::spawn(w.run(stopped.clone())))
    };
    // Optimisation runs: every node claims queued runs (and runs of dead nodes).
    let runs = plan_runs::RunWorker::new(
        app.state.clone(),
        plan_runs::RunWorkerConfig {
            name: format!("runs-{}", std::process::id()),
            ..plan_runs::RunWorkerConfig::default()
        },
    );
    let runs = tokio::spawn(runs.run(stopped));
    listener::serve(listener, app.router, args.limits.limits(), async move {
        shutdown_signal().await;
        let _ = stop.send(true);
    })
    .await;
    tracing::info!("shutting down");
    if let Some(task) = worker {
        // The worker finishes its round (bounded by the HTTP timeout); an unfinished
        // delivery is safe to drop: its lease expires and it is sent again.
        let _ = tokio::time::timeout(std::time::Duration::from_secs(15), task).await;
    }
    // A run in progress is left to its lease: another node (or the next start) runs it.
    runs.abort();
    app.state.db.close().await;
    Ok(())
}

fn print_banner(
    out: &mut impl Write,
    url: &str,
    demo: Option<&demo::DemoReport>,
) -> std::io::Result<()> {
    if let Some(d) = demo {
        let what = if d.loaded {
            "loaded"
        } else {
            "already present, nothing added"
        };
        writeln!(
            out,
            "Demo data {what}: {} technicians, {} customers, {} jobs (São Paulo).",
            d.technicians, d.customers, d.jobs
        )?;
        writeln!(
            out,
            "Demo API keys (shown once; the previous demo keys are revoked):"
        )?;
        for key in &d.keys {
            let whom = key
                .technician_id
                .as_ref()
                .map(|t| format!(" ({t})"))
                .unwrap_or_default();
            writeln!(out, "  {:<10} {}{whom}", key.role.as_str(), key.secret)?;
        }
    }
    writeln!(out, "Despacho listening on {url}  (docs: {url}/docs)")?;
    out.flush()
}

/// Deletes the idempotency keys past their keeping time, at start and every hour.
async fn purge_hourly(db: db::Db) {
    let mut every = tokio::time::interval(std::time::Duration::from_secs(3600));
    loop {
        every.tick().await;
        match bookings::purge_idempotency_keys(&db).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(purged = n, "old idempotency keys"),
            Err(e) => tracing::warn!(error = %e, "cannot purge old idempotency keys"),
        }
    }
}

/// Resolves on Ctrl-C or (Unix) SIGTERM.
pub(crate) async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(e) = tokio::signal::ctrl_c().await {
            tracing::error!(error = %e, "cannot listen for Ctrl-C");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(e) => {
                tracing::error!(error = %e, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
}

/// Runs `despacho serve` on a new multi-thread runtime (for the command line).
pub fn run_blocking(args: ServeArgs, out: &mut impl Write) -> Result<(), ServeError> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(ServeError::Runtime)?;
    runtime.block_on(serve(args, out))
}
