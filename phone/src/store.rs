//! The phone's local SQLite file: everything a killed app needs to resume with
//! nothing lost.
//!
//! | table       | what                                                                  |
//! |-------------|-----------------------------------------------------------------------|
//! | `device`    | one row: the device id, `last_issued`, `last_acknowledged`, `pulled_mutation_id`, the pull cookie |
//! | `mutations` | every mutation recorded and not yet shown by a pull (pending, or acknowledged and awaiting a pull) |
//! | `entries`   | the scope as the server last sent it: key → JSON (`job/<id>`, `rejected/<device>/<id>`) |
//!
//! Each step of the state machine is written in one transaction before it is
//! reported: a recorded mutation with `last_issued`; an acknowledgement; a pull's
//! patch with its cookie and `last_mutation_id`. On open the rows are read back
//! through `ClientState`'s checked deserialisation, so a damaged file is refused with
//! a clear message instead of pushing a queue with holes.
//!
//! The file is opened in WAL mode with `synchronous = FULL` (a commit survives a power
//! cut) and `locking_mode = EXCLUSIVE`: one process owns the phone at a time, because
//! two copies of the queue in two processes would hand out the same mutation id twice.

use crate::error::PhoneError;
use despacho_mobile_sync::{ClientId, ClientState, Mutation, MutationId, PatchOp};
use serde_json::{json, Value};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqliteLockingMode, SqlitePoolOptions,
    SqliteSynchronous,
};
use sqlx::{Row, SqlitePool};
use std::path::{Path, PathBuf};
use std::time::Duration;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS device (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    client_id TEXT NOT NULL,
    last_issued INTEGER NOT NULL,
    last_acknowledged INTEGER NOT NULL,
    pulled_mutation_id INTEGER NOT NULL,
    cookie TEXT
);
CREATE TABLE IF NOT EXISTS mutations (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL,
    args TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS entries (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
";

/// How long opening waits for another process that holds the file.
const LOCK_WAIT: Duration = Duration::from_secs(10);

/// The open store of one device.
#[derive(Debug)]
pub struct Store {
    pool: SqlitePool,
    path: PathBuf,
}

impl Store {
    /// Opens (or creates) the store at `path` for device `client_id` and reads the
    /// device's state back. A store made for another device is refused.
    pub async fn open(
        path: &Path,
        client_id: &ClientId,
        max_batch: usize,
    ) -> Result<(Store, ClientState), PhoneError> {
        let options = SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .locking_mode(SqliteLockingMode::Exclusive)
            .busy_timeout(LOCK_WAIT);
        // One connection: it holds the exclusive lock for the life of the store.
        let pool = SqlitePoolOptions::new()
            .max_connections(1)
            .min_connections(1)
            .idle_timeout(None)
            .max_lifetime(None)
            .connect_with(options)
            .await
            .map_err(|e| store_error(path, e))?;
        let store = Store {
            pool,
            path: path.to_owned(),
        };
        let state = store.load(client_id, max_batch).await?;
        Ok((store, state))
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Closes the file cleanly (the WAL is checkpointed). Dropping without closing is
    /// what a killed app does; the next open recovers from the WAL.
    pub async fn close(self) {
        // Everything into the main file first: the file alone is then the phone's state
        // (copied, backed up), even while the connection's own close finishes later.
        // A failed checkpoint loses nothing (the WAL keeps it), hence ignored.
        let _ = sqlx::query("PRAGMA wal_checkpoint(TRUNCATE)")
            .execute(&self.pool)
            .await;
        self.pool.close().await;
    }

    /// Creates the tables if needed and reads the device's state.
    pub(crate) async fn load(
        &self,
        client_id: &ClientId,
        max_batch: usize,
    ) -> Result<ClientState, PhoneError> {
        let err = |e| store_error(&self.path, e);
        let mut tx = self.pool.begin().await.map_err(err)?;
        sqlx::raw_sql(SCHEMA).execute(&mut *tx).await.map_err(err)?;
        let row = sqlx::query(
            "SELECT client_id, last_issued, last_acknowledged, pulled_mutation_id, cookie \
             FROM device WHERE id = 1",
        )
        .fetch_optional(&mut *tx)
        .await
        .map_err(err)?;
        let Some(row) = row else {
            // A new phone: the device row is written before anything else can be.
            sqlx::query(
                "INSERT INTO device (id, client_id, last_issued, last_acknowledged, \
                 pulled_mutation_id, cookie) VALUES (1, $1, 0, 0, 0, NULL)",
            )
            .bind(&client_id.0)
            .execute(&mut *tx)
            .await
            .map_err(err)?;
            tx.commit().await.map_err(err)?;
            return Ok(ClientState::new(client_id.clone()).with_max_batch(max_batch));
        };
        let stored: String = row.get(0);
        if stored != client_id.0 {
            return Err(PhoneError::DeviceMismatch {
                path: self.path.clone(),
                stored,
                given: client_id.0.clone(),
            });
        }
        let last_issued: i64 = row.get(1);
        let last_acknowledged: i64 = row.get(2);
        let pulled: i64 = row.get(3);
        let cookie: Option<String> = row.get(4);
        let mutations = sqlx::query("SELECT id, name, args FROM mutations ORDER BY id")
            .fetch_all(&mut *tx)
            .await
            .map_err(err)?;
        let mut pending = Vec::new();
        let mut awaiting = Vec::new();
        for m in mutations {
            let id: i64 = m.get(0);
            let args: String = m.get(2);
            let args: Value = serde_json::from_str(&args).map_err(|e| {
                self.corrupt(format!(
                    "mutation {id} has arguments that are not JSON: {e}"
                ))
            })?;
            let mutation = json!({"id": id, "name": m.get::<String, _>(1), "args": args});
            if id <= last_acknowledged {
                awaiting.push(mutation);
            } else {
                pending.push(mutation);
            }
        }
        let entries = sqlx::query("SELECT key, value FROM entries")
            .fetch_all(&mut *tx)
            .await
            .map_err(err)?;
        let mut confirmed = serde_json::Map::new();
        for e in entries {
            let key: String = e.get(0);
            let value: String = e.get(1);
            let value: Value = serde_json::from_str(&value)
                .map_err(|x| self.corrupt(format!("entry {key} is not JSON: {x}")))?;
            confirmed.insert(key, value);
        }
        tx.commit().await.map_err(err)?;
        // Through ClientState's checked form: ids without holes, counters in order.
        let state = json!({
            "client_id": client_id,
            "last_issued": last_issued,
            "last_acknowledged": last_acknowledged,
            "pending": pending,
            "max_batch": max_batch,
            "cookie": cookie,
            "confirmed": confirmed,
            "pulled_mutation_id": pulled,
            "awaiting_pull": awaiting,
        });
        serde_json::from_value(state).map_err(|e| self.corrupt(e.to_string()))
    }

    fn corrupt(&self, detail: String) -> PhoneError {
        PhoneError::CorruptStore {
            path: self.path.clone(),
            detail,
        }
    }

    /// Keeps a mutation just recorded (call before telling the technician "saved").
    pub async fn recorded(&self, mutation: &Mutation) -> Result<(), PhoneError> {
        let err = |e| store_error(&self.path, e);
        let mut tx = self.pool.begin().await.map_err(err)?;
        sqlx::query("INSERT INTO mutations (id, name, args) VALUES ($1, $2, $3)")
            .bind(id(mutation.id))
            .bind(&mutation.name)
            .bind(mutation.args.to_string())
            .execute(&mut *tx)
            .await
            .map_err(err)?;
        sqlx::query("UPDATE device SET last_issued = $1 WHERE id = 1")
            .bind(id(mutation.id))
            .execute(&mut *tx)
            .await
            .map_err(err)?;
        tx.commit().await.map_err(err)
    }

    /// Keeps the server's acknowledgement. The mutations stay until a pull shows
    /// their effect (the optimistic view replays them until then).
    pub async fn acknowledged(&self, state: &ClientState) -> Result<(), PhoneError> {
        sqlx::query("UPDATE device SET last_acknowledged = $1 WHERE id = 1")
            .bind(id(state.last_acknowledged()))
            .execute(&self.pool)
            .await
            .map_err(|e| store_error(&self.path, e))?;
        Ok(())
    }

    /// Keeps an applied pull: its patch, its cookie and the acknowledgement it carried,
    /// and forgets the mutations the new view shows.
    pub async fn pulled(&self, state: &ClientState, patch: &[PatchOp]) -> Result<(), PhoneError> {
        let err = |e| store_error(&self.path, e);
        let mut tx = self.pool.begin().await.map_err(err)?;
        for op in patch {
            match op {
                PatchOp::Clear => sqlx::query("DELETE FROM entries").execute(&mut *tx).await,
                PatchOp::Put { key, value } => {
                    sqlx::query(
                        "INSERT INTO entries (key, value) VALUES ($1, $2) \
                         ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                    )
                    .bind(key)
                    .bind(value.to_string())
                    .execute(&mut *tx)
                    .await
                }
                PatchOp::Del { key } => {
                    sqlx::query("DELETE FROM entries WHERE key = $1")
                        .bind(key)
                        .execute(&mut *tx)
                        .await
                }
            }
            .map_err(err)?;
        }
        sqlx::query(
            "UPDATE device SET cookie = $1, pulled_mutation_id = $2, last_acknowledged = $3 \
             WHERE id = 1",
        )
        .bind(state.cookie().map(|c| c.as_str().to_owned()))
        .bind(id(state.pulled_mutation_id()))
        .bind(id(state.last_acknowledged()))
        .execute(&mut *tx)
        .await
        .map_err(err)?;
        sqlx::query("DELETE FROM mutations WHERE id <= $1")
            .bind(id(state.pulled_mutation_id()))
            .execute(&mut *tx)
            .await
            .map_err(err)?;
        tx.commit().await.map_err(err)
    }
}

fn id(m: MutationId) -> i64 {
    // Ids count one per recorded mutation; i64 is far beyond reach.
    i64::try_from(m.0).unwrap_or(i64::MAX)
}

fn store_error(path: &Path, source: sqlx::Error) -> PhoneError {
    // SQLITE_BUSY (5, or an extended code of it) after the lock wait: another process holds the file.
    let busy = source
        .as_database_error()
        .and_then(|d| d.code())
        .is_some_and(|c| c.parse::<u32>().is_ok_and(|n| n & 0xff == 5));
    if busy {
        return PhoneError::StoreInUse {
            path: path.to_owned(),
        };
    }
    PhoneError::Store {
        path: path.to_owned(),
        source,
    }
}
