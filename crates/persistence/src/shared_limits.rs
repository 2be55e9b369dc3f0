//! Limits every instance counts in one Redis (`STEWARD_REDIS_URL`): a GCRA per key in one Lua
//! script on Redis's own clock (atomic, so instances racing for the last request of a quota
//! admit it once), and fixed windows counted with `INCR`.
//!
//! Each call gives up after the store's timeout (`STEWARD_REDIS_TIMEOUT_MS`, 100 ms by
//! default); the caller then counts in memory (see
//! `steward_app::limits`). The connection is opened on first use and reopened after a failure
//! by redis-rs's connection manager.

use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use steward_domain::limits::{LimitFuture, Refused, SharedLimitError, SharedLimitStore, WindowCount};

/// How long one call may take before the store counts as unavailable, by default.
pub const CALL_TIMEOUT: Duration = Duration::from_millis(100);

/// Whether `url` is a Redis URL this build can use: `redis://` or `unix://` (`redis+unix://`),
/// as redis-rs parses it. TLS (`rediss://`) is not built in.
pub fn check_url(url: &str) -> Result<(), String> {
    if !["redis://", "unix://", "redis+unix://"]
        .iter()
        .any(|scheme| url.starts_with(scheme))
    {
        return Err(
            "must be redis://[:password@]host[:port][/db] or unix:///path/to/redis.sock (rediss:// is not supported)"
                .to_owned(),
        );
    }
    redis::Client::open(url)
        .map(|_| ())
        .map_err(|error| format!("is not a Redis URL: {error}"))
}

/// GCRA: KEYS[1] holds the theoretical arrival time in microseconds; ARGV[1] is the interval
/// between requests (period / burst) and ARGV[2] the burst, both in microseconds and requests.
/// Answers -1 when admitted, else the microseconds to wait.
const GCRA: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local interval = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local tat = tonumber(redis.call('GET', KEYS[1]))
if not tat or tat < now then tat = now end
local next_tat = tat + interval
local allow_at = next_tat - interval * burst
if now < allow_at then
  return allow_at - now
end
redis.call('SET', KEYS[1], string.format('%d', next_tat), 'PX', math.ceil((next_tat - now) / 1000))
return -1
";

/// A fixed window: refuses at ARGV[1] without counting; else counts and sets the expiry
/// (ARGV[2] ms) on the window's first request. Answers {admitted, used}.
const WINDOW: &str = r"
local used = tonumber(redis.call('GET', KEYS[1]) or '0')
if used >= tonumber(ARGV[1]) then
  return {0, used}
end
used = redis.call('INCR', KEYS[1])
if used == 1 then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return {1, used}
";

/// The Redis store of shared limits.
pub struct RedisLimitStore {
    connection: ConnectionManager,
    timeout: Duration,
    prefix: String,
    gcra: redis::Script,
    window: redis::Script,
}

impl std::fmt::Debug for RedisLimitStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisLimitStore")
            .field("prefix", &self.prefix)
            .finish_non_exhaustive()
    }
}

fn unavailable(error: impl std::fmt::Display) -> SharedLimitError {
    SharedLimitError(error.to_string())
}

impl RedisLimitStore {
    /// A store at `url` (`redis://`, `rediss://`, `unix://`) whose keys start with `prefix`.
    /// Connects on first use: an unreachable Redis does not stop start-up. A malformed URL is
    /// an error here. Must be called inside a Tokio runtime.
    pub fn open(url: &str, prefix: &str, timeout: Duration) -> Result<Self, SharedLimitError> {
        check_url(url).map_err(SharedLimitError)?;
        let client = redis::Client::open(url).map_err(unavailable)?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(timeout))
            .set_response_timeout(Some(timeout))
            .set_number_of_retries(1)
            .set_max_delay(Duration::from_secs(1));
        let connection = ConnectionManager::new_lazy_with_config(client, config).map_err(unavailable)?;
        Ok(Self {
            connection,
            timeout,
            prefix: prefix.to_owned(),
            gcra: redis::Script::new(GCRA),
            window: redis::Script::new(WINDOW),
        })
    }

    async fn bounded<T>(
        &self,
        call: impl std::future::Future<Output = redis::RedisResult<T>>,
    ) -> Result<T, SharedLimitError> {
        match tokio::time::timeout(self.timeout, call).await {
            Ok(answer) => answer.map_err(unavailable),
            Err(_) => Err(SharedLimitError(format!(
                "no answer within {} ms",
                self.timeout.as_millis()
            ))),
        }
    }
}

impl SharedLimitStore for RedisLimitStore {
    fn take<'a>(
        &'a self,
        key: &'a str,
        burst: u32,
        period: Duration,
    ) -> LimitFuture<'a, Result<(), Refused>> {
        Box::pin(async move {
            let burst = burst.max(1);
            let interval = u64::try_from(period.as_micros() / u128::from(burst))
                .unwrap_or(u64::MAX / 4)
                .max(1);
            let mut connection = self.connection.clone();
            // The quota is part of the key: instances configured differently keep apart.
            let mut invocation =
                self.gcra
                    .key(format!("{}rl:{key}:{burst}/{}s", self.prefix, period.as_secs()));
            invocation.arg(interval).arg(burst);
            let wait: i64 = self.bounded(invocation.invoke_async(&mut connection)).await?;
            Ok(match u64::try_from(wait) {
                Ok(micros) => Err(Refused {
                    retry_after: Duration::from_micros(micros),
                }),
                Err(_) => Ok(()),
            })
        })
    }

    fn count<'a>(
        &'a self,
        key: &'a str,
        window: i64,
        limit: u64,
        ttl: Duration,
    ) -> LimitFuture<'a, WindowCount> {
        Box::pin(async move {
            let mut connection = self.connection.clone();
            let mut invocation = self.window.key(format!("{}win:{key}:{window}", self.prefix));
            invocation
                .arg(limit)
                .arg(u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX).max(1));
            let (admitted, used): (i64, i64) = self.bounded(invocation.invoke_async(&mut connection)).await?;
            Ok(WindowCount {
                admitted: admitted == 1,
                used: u64::try_from(used).unwrap_or(0),
            })
        })
    }

    fn used<'a>(&'a self, key: &'a str, window: i64) -> LimitFuture<'a, u64> {
        Box::pin(async move {
            let mut connection = self.connection.clone();
            let used: Option<u64> = self
                .bounded(
                    redis::cmd("GET")
                        .arg(format!("{}win:{key}:{window}", self.prefix))
                        .query_async(&mut connection),
                )
                .await?;
            Ok(used.unwrap_or(0))
        })
    }

    fn ping(&self) -> LimitFuture<'_, ()> {
        Box::pin(async move {
            let mut connection = self.connection.clone();
            let _: String = self
                .bounded(redis::cmd("PING").query_async(&mut connection))
                .await?;
            Ok(())
        })
    }
}
