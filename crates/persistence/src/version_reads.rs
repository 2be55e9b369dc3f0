//! Devices' settings versions read in batches on PostgreSQL.
//!
//! A fleet polling once a second asks for each device's version about once a second (the
//! instances' version cache lives at most a second), so 10,000 devices are 10,000 one-row
//! queries a second: PostgreSQL's per-statement cost, not the rows, saturated the machine and
//! polls queued for seconds. Here the reads queue instead: each of a few readers takes every
//! read waiting (up to [`BATCH`]), answers them with one `WHERE id = ANY($1)`, and goes back
//! for more. Nothing waits for a batch to fill: an idle server answers a read at once, a busy one
//! answers many with one statement. SQLite reads in-process and keeps one query per read.

use std::collections::HashMap;

use sea_orm::{ColumnTrait, DatabaseConnection, EntityTrait, QueryFilter, QuerySelect};
use steward_domain::RepositoryError;
use tokio::sync::{mpsc, oneshot};
use uuid::Uuid;

use crate::entities::devices;
use crate::error::db_err_to_repository as db;

/// Most reads answered by one statement.
const BATCH: usize = 256;

/// The lengths a batch's id list is padded to.
const SIZES: [usize; 5] = [1, 4, 16, 64, BATCH];

/// Readers taking turns on the queue: batches in flight at once.
const READERS: usize = 4;

type Reply = oneshot::Sender<Result<Option<i64>, RepositoryError>>;

/// The queue in front of the readers.
#[derive(Debug, Clone)]
pub(crate) struct VersionReads {
    queue: mpsc::UnboundedSender<(Uuid, Reply)>,
}

impl VersionReads {
    /// Starts the readers on the current runtime; they end when the last handle is gone.
    pub(crate) fn start(connection: DatabaseConnection) -> Self {
        let (queue, reads) = mpsc::unbounded_channel();
        let reads = std::sync::Arc::new(tokio::sync::Mutex::new(reads));
        for _ in 0..READERS {
            tokio::spawn(read(connection.clone(), std::sync::Arc::clone(&reads)));
        }
        Self { queue }
    }

    /// The device's settings version (`None`: no such device).
    pub(crate) async fn version(&self, device: Uuid) -> Result<Option<i64>, RepositoryError> {
        let (reply, answer) = oneshot::channel();
        self.queue
            .send((device, reply))
            .map_err(|_| RepositoryError::Unavailable("the version readers stopped".to_owned()))?;
        answer
            .await
            .map_err(|_| RepositoryError::Unavailable("the version readers stopped".to_owned()))?
    }
}

/// One reader: takes what waits (under the queue's lock, so readers split the work), answers it
/// with one statement.
async fn read(
    connection: DatabaseConnection,
    reads: std::sync::Arc<tokio::sync::Mutex<mpsc::UnboundedReceiver<(Uuid, Reply)>>>,
) {
    loop {
        let mut batch = Vec::new();
        {
            let mut queue = reads.lock().await;
            if queue.recv_many(&mut batch, BATCH).await == 0 {
                return;
            }
        }
        let mut ids: Vec<Uuid> = batch.iter().map(|(id, _)| *id).collect();
        ids.sort_unstable();
        ids.dedup();
        // A few list lengths only (the last id repeated), so a handful of prepared statements
        // serve every batch instead of one per length.
        let length = SIZES
            .iter()
            .copied()
            .find(|size| *size >= ids.len())
            .unwrap_or(BATCH);
        if let Some(last) = ids.last().copied() {
            ids.resize(length, last);
        }
        let found = devices::Entity::find()
            .select_only()
            .column(devices::Column::Id)
            .column(devices::Column::SettingsVersion)
            .filter(devices::Column::Id.is_in(ids))
            .into_tuple::<(Uuid, i64)>()
            .all(&connection)
            .await;
        match found {
            Ok(rows) => {
                let versions: HashMap<Uuid, i64> = rows.into_iter().collect();
                for (id, reply) in batch {
                    let _ = reply.send(Ok(versions.get(&id).copied()));
                }
            }
            Err(error) => {
                let error = db(error);
                for (_, reply) in batch {
                    let _ = reply.send(Err(error.clone()));
                }
            }
        }
    }
}
