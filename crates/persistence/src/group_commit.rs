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
use std::sync::atomic::{AtomicU64, Ordering};

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
    #[cfg_attr(not(test), allow(dead_code))]
    stats: std::sync::Arc<Stats>,
}

/// What the committer did, for tests.
#[derive(Debug, Default)]
pub(crate) struct Stats {
    /// Transactions that committed a group.
    pub(crate) groups: AtomicU64,
    /// Jobs committed in those groups.
    pub(crate) grouped_jobs: AtomicU64,
    /// Jobs run again alone after their group failed.
    pub(crate) retried: AtomicU64,
}

impl GroupCommit {
    /// Starts the committer on the current runtime; it ends when the last queue handle is gone.
    pub(crate) fn start(writer: DatabaseConnection) -> Self {
        let (jobs, queue) = mpsc::unbounded_channel();
        let stats = std::sync::Arc::new(Stats::default());
        let committer = tokio::spawn(run(writer, queue, std::sync::Arc::clone(&stats)));
        tokio::spawn(async move {
            if let Err(error) = committer.await
                && error.is_panic()
            {
                tracing::error!(
                    "the SQLite write committer stopped (a grouped write panicked); every write now runs in a transaction of its own"
                );
            }
        });
        Self { jobs, stats }
    }

    #[cfg(test)]
    pub(crate) fn stats(&self) -> &Stats {
        &self.stats
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

/// Why a group did not commit.
enum Failure {
    /// No transaction could be opened (the writer stayed busy past the acquire timeout): every
    /// job of the group gets that answer, none is tried again.
    Begin(RepositoryError),
    /// A job failed, or the commit did: each job runs again alone.
    Run(RepositoryError),
}

/// The committer: takes what waits (up to [`GROUP_LIMIT`]), runs it in one transaction, answers.
async fn run(
    writer: DatabaseConnection,
    mut queue: mpsc::UnboundedReceiver<(Job, oneshot::Sender<Answer>)>,
    stats: std::sync::Arc<Stats>,
) {
    let mut group = Vec::with_capacity(GROUP_LIMIT);
    while let Some(first) = queue.recv().await {
        group.push(first);
        while group.len() < GROUP_LIMIT {
            match queue.try_recv() {
                Ok(next) => group.push(next),
                Err(_) => break,
            }
        }
        // A caller that stopped waiting (its request was cancelled) gets nothing written.
        group.retain(|(_, reply)| !reply.is_closed());
        if group.is_empty() {
            continue;
        }
        match together(&writer, &group).await {
            Ok(answers) => {
                stats.groups.fetch_add(1, Ordering::Relaxed);
                stats
                    .grouped_jobs
                    .fetch_add(answers.len() as u64, Ordering::Relaxed);
                for ((_, reply), answer) in group.drain(..).zip(answers) {
                    let _ = reply.send(Ok(answer));
                }
            }
            Err(Failure::Begin(error)) => {
                for (_, reply) in group.drain(..) {
                    let _ = reply.send(Err(error.clone()));
                }
            }
            Err(Failure::Run(error)) if group.len() == 1 => {
                if let Some((_, reply)) = group.pop() {
                    let _ = reply.send(Err(error));
                }
            }
            Err(Failure::Run(error)) => {
                tracing::debug!(%error, jobs = group.len(), "a grouped write failed; its group runs again job by job");
                stats.retried.fetch_add(group.len() as u64, Ordering::Relaxed);
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
) -> Result<Vec<Box<dyn Any + Send>>, Failure> {
    let transaction = begin(writer).await.map_err(Failure::Begin)?;
    let mut answers = Vec::with_capacity(group.len());
    for (job, _) in group {
        answers.push(job(&transaction).await.map_err(Failure::Run)?);
    }
    transaction
        .commit()
        .await
        .map_err(|error| Failure::Run(db(error)))?;
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
        let stopped = GroupCommit {
            jobs,
            stats: Default::default(),
        };
        assert_eq!(stopped.run(&writer, note(1, false)).await, Ok(1));
        assert_eq!(
            stopped.run(&writer, note(2, true)).await,
            Err(RepositoryError::Conflict("note 2 refused".to_owned()))
        );
        assert_eq!(notes(&database).await, vec![1]);
    }

    /// Jobs queued while the writer is busy form one group; a failing job in it sends the group
    /// back job by job, and each answer still matches what is stored.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn jobs_waiting_for_the_writer_commit_as_one_group() {
        let (_dir, database) = database().await;
        let group = database.group.clone().unwrap();
        // The writer is busy: the first job takes a group of its own and waits for it.
        let busy = database.begin_write().await.unwrap();
        let first = tokio::spawn({
            let database = database.clone();
            async move { database.write_grouped(note(1, false)).await }
        });
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        // These queue behind it and are taken together once it committed.
        let waiting: Vec<_> = (2..=11)
            .map(|id| {
                let database = database.clone();
                tokio::spawn(async move { database.write_grouped(note(id, false)).await })
            })
            .collect();
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        busy.rollback().await.unwrap();
        assert_eq!(first.await.unwrap(), Ok(1));
        for (id, write) in (2..=11).zip(waiting) {
            assert_eq!(write.await.unwrap(), Ok(id));
        }
        assert_eq!(
            group.stats().groups.load(Ordering::Relaxed),
            2,
            "one group for the first job, one for the ten behind it"
        );
        assert_eq!(group.stats().grouped_jobs.load(Ordering::Relaxed), 11);

        // Again with a failing job among the waiting ones: the group is rolled back, each job
        // runs alone, only the failing one's row is missing.
        let busy = database.begin_write().await.unwrap();
        let first = tokio::spawn({
            let database = database.clone();
            async move { database.write_grouped(note(12, false)).await }
        });
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        let waiting: Vec<_> = (13..=18)
            .map(|id| {
                let database = database.clone();
                tokio::spawn(async move { database.write_grouped(note(id, id == 15)).await })
            })
            .collect();
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        busy.rollback().await.unwrap();
        assert_eq!(first.await.unwrap(), Ok(12));
        for (id, write) in (13..=18).zip(waiting) {
            let expected = if id == 15 {
                Err(RepositoryError::Conflict("note 15 refused".to_owned()))
            } else {
                Ok(id)
            };
            assert_eq!(write.await.unwrap(), expected);
        }
        assert_eq!(group.stats().retried.load(Ordering::Relaxed), 6);
        let mut stored: Vec<i64> = (1..=18).filter(|id| *id != 15).collect();
        stored.sort();
        assert_eq!(notes(&database).await, stored);
    }

    /// When no transaction can be opened the whole group gets that answer at once, not a retry
    /// per job (each would wait out the acquire timeout again).
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_writer_that_stays_busy_fails_the_group_once() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}/steward.db?mode=rwc", dir.path().display());
        let mut options = DatabaseOptions::new(url);
        options.acquire_timeout = std::time::Duration::from_millis(300);
        let database = Database::connect(&options).await.unwrap();
        database
            .writer()
            .execute_unprepared("CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT NOT NULL)")
            .await
            .unwrap();
        let group = database.group.clone().unwrap();
        let busy = database.begin_write().await.unwrap();
        let first = tokio::spawn({
            let database = database.clone();
            async move { database.write_grouped(note(1, false)).await }
        });
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        let started = std::time::Instant::now();
        let waiting: Vec<_> = (2..=6)
            .map(|id| {
                let database = database.clone();
                tokio::spawn(async move { database.write_grouped(note(id, false)).await })
            })
            .collect();
        assert!(matches!(
            first.await.unwrap(),
            Err(RepositoryError::Unavailable(_) | RepositoryError::Other(_))
        ));
        for write in waiting {
            assert!(write.await.unwrap().is_err());
        }
        // One more acquire timeout for the five behind, not five.
        assert!(
            started.elapsed() < std::time::Duration::from_millis(900),
            "{:?}",
            started.elapsed()
        );
        assert_eq!(group.stats().retried.load(Ordering::Relaxed), 0);
        busy.rollback().await.unwrap();
        assert_eq!(database.write_grouped(note(7, false)).await, Ok(7));
        assert_eq!(notes(&database).await, vec![7]);
    }
}
