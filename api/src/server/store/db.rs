//! The database: one [`Db`] over SQLite (embedded default, one file) or PostgreSQL
//! (several API nodes), and the transactions that write to it.
//!
//! ## How the two backends are supported
//!
//! [`Db`] is an enum of the two sqlx pools, not sqlx's `Any` driver: each backend keeps its
//! own types (TIMESTAMPTZ on PostgreSQL, RFC 3339 text on SQLite) and its own migrations
//! (`migrations/sqlite`, `migrations/postgres`: the same tables, column for column).
//!
//! SQL lives with its concept (`technicians.rs`, `jobs.rs`, …), in one `impl Db` block
//! per concept. Both backends accept `$1`-style parameters, `ON CONFLICT … DO UPDATE`
//! and `RETURNING`, and timestamps are always bound from Rust (never `now()` in SQL), so
//! most statements are written once and run on either pool with [`on_pool!`] or inside a
//! transaction with [`on_tx!`]: the macro expands the body once per backend, so the same
//! source is type-checked against each driver. Where the dialects differ, write the two
//! statements next to each other in the concept's file and `match` on the backend.
//!
//! ## Write transactions
//!
//! [`Db::begin_write`] starts a transaction that will write:
//!
//! - **SQLite:** `BEGIN IMMEDIATE`, which takes the database's write lock at the start,
//!   so a write transaction never fails half-way because its read snapshot went stale
//!   (`SQLITE_BUSY_SNAPSHOT`); readers are never blocked (WAL). Writers of this process
//!   first queue for a one-permit semaphore (FIFO, without holding a pooled connection),
//!   so they take turns fairly instead of polling SQLite's busy handler, and reads keep
//!   their connections under a burst of writes; the 5 s busy timeout then only covers
//!   writers in *other* processes.
//! - **PostgreSQL:** `BEGIN` (READ COMMITTED). Rules are put in the database
//!   (conditional `UPDATE … WHERE`, unique indexes, row locks with `FOR UPDATE`), and
//!   [`Db::write`] retries serialization failures and deadlocks (SQLSTATE 40001, 40P01)
//!   a few times with jitter.
//!
//! [`Db::write`] is the usual entry point: it runs a closure in a write transaction,
//! commits, and retries the whole closure on a retryable error. Reads that need no
//! transaction use the pool directly (`on_pool!`).

use crate::server::http::error::ApiError;
use sqlx::error::DatabaseError;
use sqlx::pool::PoolOptions;
use sqlx::postgres::{PgConnectOptions, PgPool, Postgres};
use sqlx::sqlite::{
    Sqlite, SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqliteSynchronous,
};
use sqlx::Transaction;
use std::future::Future;
use std::pin::Pin;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// How long a SQLite connection waits for another writer's lock before giving up.
pub const SQLITE_BUSY_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a request waits for a free pooled connection.
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(10);
/// Attempts of a [`Db::write`] closure on a retryable error (serialization failure,
/// deadlock) before the error is returned.
pub const WRITE_ATTEMPTS: u32 = 5;

/// Which database a [`Db`] talks to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// A pool of connections to the service's database.
#[derive(Clone, Debug)]
pub enum Db {
    Sqlite(SqliteDb),
    Postgres(PgPool),
}

/// A SQLite pool and the turn writers of this process queue for.
#[derive(Clone, Debug)]
pub struct SqliteDb {
    pub pool: SqlitePool,
    writer: Arc<Semaphore>,
}

/// A writer's turn on SQLite (see [`Db::begin_write`]); released when the transaction ends.
#[derive(Debug)]
pub struct WriteTurn {
    _permit: Option<OwnedSemaphorePermit>,
}

/// Why the database could not be opened or migrated.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DbError {
    #[error(
        "unsupported database URL `{0}`; use sqlite://PATH (e.g. sqlite://./despacho.db) \
         or postgres://USER@HOST:PORT/DATABASE"
    )]
    UnsupportedUrl(String),
    #[error("cannot connect to the database")]
    Connect(#[source] sqlx::Error),
    #[error("cannot migrate the database schema")]
    Migrate(#[source] sqlx::migrate::MigrateError),
}

/// A transaction on either backend, begun by [`Db::begin_write`] or [`Db::begin_read`].
/// Dropped without [`Tx::commit`], it rolls back.
#[derive(Debug)]
pub enum Tx {
    Sqlite(Transaction<'static, Sqlite>, WriteTurn),
    Postgres(Transaction<'static, Postgres>),
}

/// The future a [`Db::write`] closure returns.
pub type TxFuture<'t, T> = Pin<Box<dyn Future<Output = Result<T, ApiError>> + Send + 't>>;

/// Runs `$body` with `$pool` bound to the concrete pool of `$db` (`&SqlitePool` or
/// `&PgPool`). The body is expanded once per backend, so it may use anything both
/// drivers implement.
///
/// ```ignore
/// let n: i64 = on_pool!(&state.db, |pool| {
///     sqlx::query_scalar("SELECT COUNT(*) FROM jobs").fetch_one(pool).await
/// })?;
/// ```
#[macro_export]
macro_rules! on_pool {
    ($db:expr, |$pool:ident| $body:expr) => {
        match $db {
            $crate::server::store::db::Db::Sqlite(db) => {
                let $pool = &db.pool;
                $body
            }
            $crate::server::store::db::Db::Postgres($pool) => $body,
        }
    };
}

/// Runs `$body` with `$conn` bound to the transaction's connection
/// (`&mut SqliteConnection` or `&mut PgConnection`); use `&mut *$conn` as the executor
/// of each statement. Expanded once per backend, like [`on_pool!`].
///
/// ```ignore
/// on_tx!(tx, |conn| {
///     sqlx::query("UPDATE jobs SET status = $1 WHERE id = $2")
///         .bind("cancelled").bind(id).execute(&mut *conn).await
/// })?;
/// ```
#[macro_export]
macro_rules! on_tx {
    ($tx:expr, |$conn:ident| $body:expr) => {
        match $tx {
            $crate::server::store::db::Tx::Sqlite(t, _) => {
                let $conn = &mut **t;
                $body
            }
            $crate::server::store::db::Tx::Postgres(t) => {
                let $conn = &mut **t;
                $body
            }
        }
    };
}

pub use crate::{on_pool, on_tx};

impl Db {
    /// Opens the database at `url` (`sqlite://PATH` or `postgres://…`) and brings its
    /// schema up to date.
    ///
    /// SQLite: the file is created if missing; WAL journal, `synchronous=FULL` (a
    /// committed booking survives a power cut), foreign keys on, 5 s busy timeout.
    pub async fn connect(url: &str, max_connections: u32) -> Result<Db, DbError> {
        let db = if url.starts_with("sqlite:") {
            let options = SqliteConnectOptions::from_str(url)
                .map_err(DbError::Connect)?
                .create_if_missing(true)
                .journal_mode(SqliteJournalMode::Wal)
                .synchronous(SqliteSynchronous::Full)
                .foreign_keys(true)
                .busy_timeout(SQLITE_BUSY_TIMEOUT);
            let pool = PoolOptions::<Sqlite>::new()
                .max_connections(max_connections)
                .acquire_timeout(ACQUIRE_TIMEOUT)
                .connect_with(options)
                .await
                .map_err(DbError::Connect)?;
            Db::Sqlite(SqliteDb {
                pool,
                writer: Arc::new(Semaphore::new(1)),
            })
        } else if url.starts_with("postgres:") || url.starts_with("postgresql:") {
            let options = PgConnectOptions::from_str(url).map_err(DbError::Connect)?;
            let pool = PoolOptions::<Postgres>::new()
                .max_connections(max_connections)
                .acquire_timeout(ACQUIRE_TIMEOUT)
                .connect_with(options)
                .await
                .map_err(DbError::Connect)?;
            Db::Postgres(pool)
        } else {
            return Err(DbError::UnsupportedUrl(url.to_owned()));
        };
        db.migrate().await?;
        Ok(db)
    }

    /// Applies the migrations of this backend that the database has not seen yet.
    pub async fn migrate(&self) -> Result<(), DbError> {
        match self {
            Db::Sqlite(db) => sqlx::migrate!("./migrations/sqlite").run(&db.pool).await,
            Db::Postgres(pool) => sqlx::migrate!("./migrations/postgres").run(pool).await,
        }
        .map_err(DbError::Migrate)
    }

    pub fn backend(&self) -> Backend {
        match self {
            Db::Sqlite(_) => Backend::Sqlite,
            Db::Postgres(_) => Backend::Postgres,
        }
    }

    /// Begins a transaction that will write. SQLite: waits for this process's writer
    /// turn (at most the pool's acquire timeout, then `PoolTimedOut`, a 503), then
    /// `BEGIN IMMEDIATE` (the write lock is taken now); PostgreSQL: `BEGIN` (READ
    /// COMMITTED).
    pub async fn begin_write(&self) -> Result<Tx, sqlx::Error> {
        Ok(match self {
            Db::Sqlite(db) => {
                let turn = tokio::time::timeout(ACQUIRE_TIMEOUT, db.writer.clone().acquire_owned())
                    .await
                    .map_err(|_| sqlx::Error::PoolTimedOut)?
                    .map_err(|_| sqlx::Error::PoolClosed)?;
                let tx = db.pool.begin_with("BEGIN IMMEDIATE").await?;
                Tx::Sqlite(
                    tx,
                    WriteTurn {
                        _permit: Some(turn),
                    },
                )
            }
            Db::Postgres(pool) => Tx::Postgres(pool.begin().await?),
        })
    }

    /// Begins a transaction that only reads, from one consistent snapshot. SQLite:
    /// `BEGIN` (deferred; the snapshot starts at the first read); PostgreSQL:
    /// `BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY`.
    pub async fn begin_read(&self) -> Result<Tx, sqlx::Error> {
        Ok(match self {
            Db::Sqlite(db) => Tx::Sqlite(db.pool.begin().await?, WriteTurn { _permit: None }),
            Db::Postgres(pool) => Tx::Postgres(
                pool.begin_with("BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY")
                    .await?,
            ),
        })
    }

    /// Runs `f` in a write transaction ([`Db::begin_write`]) and commits. On a
    /// retryable database error (PostgreSQL serialization failure or deadlock) the
    /// transaction is rolled back and `f` runs again, up to [`WRITE_ATTEMPTS`] times
    /// with a growing, jittered pause. Any other error rolls back and is returned.
    ///
    /// `f` may run more than once, so it owns (or clones) what it needs:
    ///
    /// ```ignore
    /// let created = state.db.write(move |tx| {
    ///     let tech = tech.clone();
    ///     Box::pin(async move { insert_technician(tx, &tech).await })
    /// }).await?;
    /// ```
    pub async fn write<T, F>(&self, mut f: F) -> Result<T, ApiError>
    where
        T: Send,
        F: for<'t> FnMut(&'t mut Tx) -> TxFuture<'t, T> + Send,
    {
        let mut attempt = 1;
        loop {
            let result = async {
                let mut tx = self.begin_write().await?;
                let value = f(&mut tx).await?;
                tx.commit().await?;
                Ok(value)
            }
            .await;
            match result {
                Err(ApiError::Database(e)) if is_retryable(&e) && attempt < WRITE_ATTEMPTS => {
                    let pause = 10 * (1u64 << attempt) + fastrand::u64(0..20);
                    tracing::debug!(attempt, pause_ms = pause, error = %e, "retrying a write transaction");
                    tokio::time::sleep(Duration::from_millis(pause)).await;
                    attempt += 1;
                }
                other => return other,
            }
        }
    }

    /// Whether the database answers (`SELECT 1`).
    pub async fn ping(&self) -> Result<(), sqlx::Error> {
        on_pool!(self, |pool| sqlx::query("SELECT 1")
            .execute(pool)
            .await
            .map(|r| r.rows_affected()))?;
        Ok(())
    }

    /// Closes every connection of the pool (waits for those in use).
    pub async fn close(&self) {
        on_pool!(self, |pool| pool.close().await)
    }
}

impl Tx {
    pub async fn commit(self) -> Result<(), sqlx::Error> {
        match self {
            Tx::Sqlite(t, _turn) => t.commit().await,
            Tx::Postgres(t) => t.commit().await,
        }
    }

    pub async fn rollback(self) -> Result<(), sqlx::Error> {
        match self {
            Tx::Sqlite(t, _turn) => t.rollback().await,
            Tx::Postgres(t) => t.rollback().await,
        }
    }

    pub fn backend(&self) -> Backend {
        match self {
            Tx::Sqlite(..) => Backend::Sqlite,
            Tx::Postgres(_) => Backend::Postgres,
        }
    }
}

/// A PostgreSQL serialization failure (40001) or deadlock (40P01): the transaction
/// did nothing and may simply run again.
pub fn is_retryable(error: &sqlx::Error) -> bool {
    match error {
        sqlx::Error::Database(e) => matches!(e.code().as_deref(), Some("40001" | "40P01")),
        _ => false,
    }
}

/// SQLite could not get a lock within the busy timeout (SQLITE_BUSY and its extended
/// codes, SQLITE_LOCKED), or no pooled connection was free in time: the service is
/// overloaded, not wrong; the client may retry later.
pub fn is_busy(error: &sqlx::Error) -> bool {
    match error {
        sqlx::Error::PoolTimedOut => true,
        sqlx::Error::Database(e) => e
            .try_downcast_ref::<sqlx::sqlite::SqliteError>()
            .and_then(|e| e.code())
            .and_then(|c| c.parse::<u32>().ok())
            .is_some_and(|code| matches!(code & 0xff, 5 | 6)),
        _ => false,
    }
}

/// A unique index or primary key refused the row.
pub fn is_unique_violation(error: &sqlx::Error) -> bool {
    matches!(error, sqlx::Error::Database(e) if e.is_unique_violation())
}

/// A foreign key refused the row.
pub fn is_foreign_key_violation(error: &sqlx::Error) -> bool {
    matches!(error, sqlx::Error::Database(e) if e.is_foreign_key_violation())
}

/// The current time, to the microsecond: what both backends store exactly, so a record
/// returned by a write equals the record read back.
pub fn now() -> chrono::DateTime<chrono::Utc> {
    use chrono::SubsecRound;
    chrono::Utc::now().trunc_subsecs(6)
}
