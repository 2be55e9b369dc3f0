//! Group commit for SQLite's one writer.
//!
//! SQLite runs one write transaction at a time, and every statement of it is a round trip to the
//! connection's worker thread and back to the task that holds the transaction. Small frequent
//! writes (a profile change, an audit entry of its own) spend most of their turn on `BEGIN`,
//! `COMMIT` and those hand-overs while the lock sits idle. Here they queue as jobs instead: one
//! committer task takes every job waiting, runs them one after another in one transaction on the
//! writer connection, commits once and answers each. What a job returns is announced only after
//! the commit, so nobody hears of a write that did not happen.
//!
//! A job that fails (the outer error) may have written part of its work into the shared
//! transaction: the whole group is rolled back and every job of it runs again in a transaction of
//! its own, so one failure costs its neighbours a retry, never their writes. A job's own answer
//! (for example "the version moved on") is its inner result and does not fail the group; a job
//! must only answer so when it wrote nothing.
//!
//! On PostgreSQL (many writers at once) and in-memory SQLite a job simply runs in a transaction
//! of its own.

use std::any::Any;
use std::future::Future;
use std::pin::Pin;

use sea_orm::{DatabaseConnection, DatabaseTransaction, TransactionTrait};
use steward_domain::RepositoryError;
use tokio::sync::{mpsc, oneshot};

use crate::error::db_err_to_repository as db;

/// What a job's run answers: its value (boxed, to travel through one queue) or a failure that
/// undoes the group.
type Answer = Result<Box<dyn Any + Send>, RepositoryError>;

/// One run of a job inside a transaction.
pub(crate) type JobFuture<'a, T> = Pin<Box<dyn Future<Output = Result<T, RepositoryError>> + Send + 'a>>;

/// A job: callable more than once, since a failed group runs it again on its own.
type Job = Box<dyn for<'a> Fn(&'a DatabaseTransaction) -> JobFuture<'a, Box<dyn Any + Send>> + Send + Sync>;

/// Most jobs in one transaction: a group holds the writer for about this many small writes.
const GROUP_LIMIT: usize = 64;

/// The queue in front of the committer.
#[derive(Debug, Clone)]
pub(crate) struct GroupCommit {
    jobs: mpsc::UnboundedSender<(Job, oneshot::Sender<Answer>)>,
}

impl GroupCommit {
    /// Starts the committer on the current runtime; it ends when the last queue handle is gone.
    pub(crate) fn start(writer: DatabaseConnection) -> Self {
        let (jobs, queue) = mpsc::unbounded_channel();
        tokio::spawn(run(writer, queue));
        Self { jobs }
    }

    /// Runs `job` in a group's transaction, or on its own (`writer`) if the committer is gone
    /// (its runtime shut down).
    pub(crate) async fn run<T, F>(&self, writer: &DatabaseConnection, job: F) -> Result<T, RepositoryError>
    where
        T: Send + 'static,
        F: for<'a> Fn(&'a DatabaseTransaction) -> JobFuture<'a, T> + Send + Sync + 'static,
    {
        let job = std::sync::Arc::new(job);
        let boxed: Job = {
            let job = std::sync::Arc::clone(&job);
            Box::new(move |transaction| {
                let run = job(transaction);
                Box::pin(async move { run.await.map(|value| Box::new(value) as Box<dyn Any + Send>) })
            })
        };
        let (reply, answer) = oneshot::channel();
        if self.jobs.send((boxed, reply)).is_err() {
            return alone(writer, &*job).await;
        }
        match answer.await {
            Ok(Ok(value)) => value
                .downcast::<T>()
                .map(|value| *value)
                .map_err(|_| RepositoryError::Other("a grouped write answered with another type".to_owned())),
            Ok(Err(error)) => Err(error),
            // The committer stopped with the job in hand; its transaction was rolled back.
            Err(_) => Err(RepositoryError::Unavailable(
                "the database writer stopped; nothing was written".to_owned(),
            )),
        }
    }
}

/// A job in a write transaction of its own.
pub(crate) async fn alone<T, F>(connection: &DatabaseConnection, job: &F) -> Result<T, RepositoryError>
where
    F: for<'a> Fn(&'a DatabaseTransaction) -> JobFuture<'a, T> + ?Sized,
{
    let transaction = begin(connection).await?;
    let value = job(&transaction).await?;
    transaction.commit().await.map_err(db)?;
    Ok(value)
}

/// `BEGIN IMMEDIATE` on SQLite (the write lock first, see `Database::begin_write`).
async fn begin(connection: &DatabaseConnection) -> Result<DatabaseTransaction, RepositoryError> {
    let mode = (connection.get_database_backend() == sea_orm::DbBackend::Sqlite)
        .then_some(sea_orm::SqliteTransactionMode::Immediate);
    connection
        .begin_with_options(sea_orm::TransactionOptions {
            sqlite_transaction_mode: mode,
            ..Default::default()
        })
        .await
        .map_err(db)
}

/// The committer: takes what waits (up to [`GROUP_LIMIT`]), runs it in one transaction, answers.
async fn run(writer: DatabaseConnection, mut queue: mpsc::UnboundedReceiver<(Job, oneshot::Sender<Answer>)>) {
    let mut group = Vec::with_capacity(GROUP_LIMIT);
    while let Some(first) = queue.recv().await {
        group.push(first);
        while group.len() < GROUP_LIMIT {
            match queue.try_recv() {
                Ok(next) => group.push(next),
                Err(_) => break,
            }
        }
        match together(&writer, &group).await {
            Ok(answers) => {
                for ((_, reply), answer) in group.drain(..).zip(answers) {
                    let _ = reply.send(Ok(answer));
                }
            }
            Err(error) if group.len() == 1 => {
                if let Some((_, reply)) = group.pop() {
                    let _ = reply.send(Err(error));
                }
            }
            Err(error) => {
                tracing::debug!(%error, jobs = group.len(), "a grouped write failed; its group runs again job by job");
                for (job, reply) in group.drain(..) {
                    let _ = reply.send(alone(&writer, &job).await);
                }
            }
        }
    }
}

/// Every job of the group in one transaction; the first failure rolls all of it back.
async fn together(
    writer: &DatabaseConnection,
    group: &[(Job, oneshot::Sender<Answer>)],
) -> Result<Vec<Box<dyn Any + Send>>, RepositoryError> {
    let transaction = begin(writer).await?;
    let mut answers = Vec::with_capacity(group.len());
    for (job, _) in group {
        answers.push(job(&transaction).await?);
    }
    transaction.commit().await.map_err(db)?;
    Ok(answers)
}

#[cfg(test)]
mod tests {
    use sea_orm::{ConnectionTrait, Statement};

    use crate::{Database, DatabaseOptions};

    use super::*;

    async fn database() -> (tempfile::TempDir, Database) {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}/steward.db?mode=rwc", dir.path().display());
        let database = Database::connect(&DatabaseOptions::new(url)).await.unwrap();
        database
            .writer()
            .execute_unprepared("CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT NOT NULL)")
            .await
            .unwrap();
        (dir, database)
    }

    /// Writes a note; `fail_after_writing` makes the job fail once its row is in.
    fn note(
        id: i64,
        fail_after_writing: bool,
    ) -> impl for<'a> Fn(&'a DatabaseTransaction) -> JobFuture<'a, i64> + Send + Sync + 'static {
        move |transaction| {
            Box::pin(async move {
                transaction
                    .execute_raw(Statement::from_sql_and_values(
                        sea_orm::DbBackend::Sqlite,
                        "INSERT INTO notes (id, body) VALUES (?, 'x')",
                        [id.into()],
                    ))
                    .await
                    .map_err(db)?;
                if fail_after_writing {
                    return Err(RepositoryError::Conflict(format!("note {id} refused")));
                }
                Ok(id)
            })
        }
    }

    async fn notes(database: &Database) -> Vec<i64> {
        database
            .connection()
            .query_all_raw(Statement::from_string(
                sea_orm::DbBackend::Sqlite,
                "SELECT id FROM notes ORDER BY id",
            ))
            .await
            .unwrap()
            .iter()
            .map(|row| row.try_get::<i64>("", "id").unwrap())
            .collect()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_writes_commit_together_and_a_failure_undoes_only_its_own() {
        let (_dir, database) = database().await;
        // 200 writers at once, every seventh failing after its row went in.
        let writes = (1..=200).map(|id| {
            let database = database.clone();
            tokio::spawn(async move { (id, database.write_grouped(note(id, id % 7 == 0)).await) })
        });
        let mut committed = Vec::new();
        for write in writes.collect::<Vec<_>>() {
            let (id, answer) = write.await.unwrap();
            if id % 7 == 0 {
                assert_eq!(
                    answer,
                    Err(RepositoryError::Conflict(format!("note {id} refused")))
                );
            } else {
                assert_eq!(answer, Ok(id));
                committed.push(id);
            }
        }
        // Each answer matches what is stored: every successful write and none of the failed.
        assert_eq!(notes(&database).await, committed);
        assert_eq!(committed.len(), 200 - 200 / 7);
    }

    #[tokio::test]
    async fn a_job_runs_alone_when_the_committer_is_gone() {
        let (_dir, database) = database().await;
        let writer = database.writer().clone();
        // A queue whose committer never started: its receiver is dropped at once.
        let (jobs, _) = mpsc::unbounded_channel();
        let stopped = GroupCommit { jobs };
        assert_eq!(stopped.run(&writer, note(1, false)).await, Ok(1));
        assert_eq!(
            stopped.run(&writer, note(2, true)).await,
            Err(RepositoryError::Conflict("note 2 refused".to_owned()))
        );
        assert_eq!(notes(&database).await, vec![1]);
    }
}
