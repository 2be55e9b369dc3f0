//! Per-client-IP rate limits of sensitive endpoints, per-caller admin and per-device event
//! limits (GCRA). With a shared store (`STEWARD_REDIS_URL`) every instance counts in it, so
//! the limits hold across instances; without one, or while it does not answer, each instance
//! counts in memory (governor), and N instances allow N times the limit. The per-email login
//! lock lives in the database and holds everywhere either way.

use std::marker::PhantomData;
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use actix_web::dev::Payload;
use actix_web::{FromRequest, HttpRequest, web};
use futures_util::future::LocalBoxFuture;
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};

use steward_app::limits::SharedLimits;

use crate::error::{ApiError, ErrorCode};
use crate::extractors::client_ip;
use crate::state::AppState;

/// Requests per hour per client IP; 0 disables a limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimitSettings {
    pub register_per_hour: u32,
    pub login_per_hour: u32,
    pub password_reset_per_hour: u32,
    pub refresh_per_hour: u32,
    /// Admin API requests per minute per signed-in caller (not per address).
    pub admin_per_minute: u32,
    /// Event batches per minute per device.
    pub device_events_per_minute: u32,
}

impl Default for RateLimitSettings {
    fn default() -> Self {
        Self {
            register_per_hour: 10,
            login_per_hour: 20,
            password_reset_per_hour: 5,
            refresh_per_hour: 60,
            admin_per_minute: 600,
            device_events_per_minute: 120,
        }
    }
}

/// One limit: its quota and this instance's counters of it.
pub struct Limiter<K: std::hash::Hash + Eq + Clone> {
    burst: NonZeroU32,
    period: Duration,
    local: DefaultKeyedRateLimiter<K>,
}

type IpLimiter = Option<Limiter<IpAddr>>;

impl<K: std::hash::Hash + Eq + Clone + std::fmt::Display> Limiter<K> {
    fn new(burst: u32, period: Duration) -> Option<Self> {
        let burst = NonZeroU32::new(burst)?;
        let quota = Quota::with_period(period / burst.get())?.allow_burst(burst);
        Some(Self {
            burst,
            period,
            local: RateLimiter::keyed(quota),
        })
    }

    /// One request of `key`: in the shared store when there is one and it answers, else in
    /// memory. `Err` holds the wait before the next request would be admitted. What the store
    /// admits is counted in memory too (whatever memory says), so when the store stops
    /// answering, this instance's own count already holds its recent requests instead of
    /// starting afresh.
    async fn take(&self, shared: Option<&SharedLimits>, name: &str, key: &K) -> Result<(), Duration> {
        if let Some(shared) = shared
            && let Some(answer) = shared
                .take(&format!("{name}:{key}"), self.burst.get(), self.period)
                .await
        {
            if answer.is_ok() {
                let _ = self.local.check_key(key);
            }
            return answer.map_err(|refused| refused.retry_after);
        }
        self.local
            .check_key(key)
            .map_err(|not_until| not_until.wait_time_from(DefaultClock::default().now()))
    }
}

pub struct RateLimits {
    register: IpLimiter,
    login: IpLimiter,
    password_reset: IpLimiter,
    refresh: IpLimiter,
    admin: Option<Limiter<uuid::Uuid>>,
    device_events: Option<Limiter<uuid::Uuid>>,
    shared: Option<Arc<SharedLimits>>,
}

const HOUR: Duration = Duration::from_secs(3600);
const MINUTE: Duration = Duration::from_secs(60);

fn refusal(name: &'static str, message: &'static str, wait: Duration) -> ApiError {
    crate::metrics::record_rate_limited(name);
    let seconds = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
    ApiError::new(ErrorCode::RateLimited, message).with_retry_after(seconds.max(1))
}

impl RateLimits {
    /// Limits counted by this instance alone.
    pub fn new(settings: RateLimitSettings) -> Arc<Self> {
        Self::shared(settings, None)
    }

    /// Limits counted in `shared` while it answers.
    pub fn shared(settings: RateLimitSettings, shared: Option<Arc<SharedLimits>>) -> Arc<Self> {
        Arc::new(Self {
            register: Limiter::new(settings.register_per_hour, HOUR),
            login: Limiter::new(settings.login_per_hour, HOUR),
            password_reset: Limiter::new(settings.password_reset_per_hour, HOUR),
            refresh: Limiter::new(settings.refresh_per_hour, HOUR),
            admin: Limiter::new(settings.admin_per_minute, MINUTE),
            device_events: Limiter::new(settings.device_events_per_minute, MINUTE),
            shared,
        })
    }

    /// Counts one admin API request of `user`; `429 RATE_LIMITED` with `Retry-After` beyond the
    /// per-minute allowance.
    pub async fn check_admin(&self, user: uuid::Uuid) -> Result<(), ApiError> {
        let Some(limiter) = &self.admin else { return Ok(()) };
        limiter
            .take(self.shared.as_deref(), "admin", &user)
            .await
            .map_err(|wait| refusal("admin", "too many admin requests; slow down", wait))
    }

    /// Counts one event batch of `device`; `429 RATE_LIMITED` with `Retry-After` beyond the
    /// per-minute allowance.
    pub async fn check_device_events(&self, device: uuid::Uuid) -> Result<(), ApiError> {
        let Some(limiter) = &self.device_events else {
            return Ok(());
        };
        limiter
            .take(self.shared.as_deref(), "device_events", &device)
            .await
            .map_err(|wait| {
                refusal(
                    "device_events",
                    "too many event batches from this device; slow down",
                    wait,
                )
            })
    }

    async fn check(&self, limiter: &IpLimiter, name: &'static str, ip: IpAddr) -> Result<(), ApiError> {
        let Some(limiter) = limiter else { return Ok(()) };
        limiter
            .take(self.shared.as_deref(), name, &client_network(ip))
            .await
            .map_err(|wait| refusal(name, "too many requests; slow down", wait))
    }
}

/// The unit a limit counts: an IPv4 address, or an IPv6 address's /64 — one subscriber's
/// network, inside which an attacker may pick addresses at will.
pub fn client_network(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let mut segments = v6.segments();
                segments[4..].fill(0);
                IpAddr::V6(std::net::Ipv6Addr::from(segments))
            }
        },
    }
}

/// Which limit an endpoint counts against.
pub trait LimitedAction {
    /// The limit's name in `steward_rate_limited_total{limit}`.
    const NAME: &'static str;
    fn limiter(limits: &RateLimits) -> &IpLimiter;
}

macro_rules! limited_action {
    ($name:ident, $field:ident) => {
        #[derive(Debug)]
        pub struct $name;
        impl LimitedAction for $name {
            const NAME: &'static str = stringify!($field);
            fn limiter(limits: &RateLimits) -> &IpLimiter {
                &limits.$field
            }
        }
    };
}

limited_action!(Register, register);
limited_action!(Login, login);
limited_action!(PasswordReset, password_reset);
limited_action!(Refresh, refresh);

/// Counts the request against limit `A`; a handler taking it is rate limited.
#[derive(Debug)]
pub struct RateLimited<A: LimitedAction>(PhantomData<A>);

impl<A: LimitedAction> FromRequest for RateLimited<A> {
    type Error = actix_web::Error;
    type Future = LocalBoxFuture<'static, Result<Self, Self::Error>>;

    fn from_request(request: &HttpRequest, _: &mut Payload) -> Self::Future {
        let state = request.app_data::<web::Data<AppState>>().cloned();
        let ip = client_ip(request);
        Box::pin(async move {
            if let (Some(state), Some(ip)) = (state, ip) {
                let limits = &state.rate_limits;
                limits.check(A::limiter(limits), A::NAME, ip).await?;
            }
            Ok(RateLimited(PhantomData))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicBool, Ordering};
    use steward_domain::limits::{LimitFuture, Refused, SharedLimitError, SharedLimitStore, WindowCount};

    /// A store that admits everything until it is broken, then fails.
    #[derive(Default)]
    struct Breakable {
        broken: AtomicBool,
    }

    impl SharedLimitStore for Breakable {
        fn take<'a>(&'a self, _: &'a str, _: u32, _: Duration) -> LimitFuture<'a, Result<(), Refused>> {
            let broken = self.broken.load(Ordering::Relaxed);
            Box::pin(async move {
                if broken {
                    Err(SharedLimitError("connection refused".to_owned()))
                } else {
                    Ok(Ok(()))
                }
            })
        }
        fn count<'a>(&'a self, _: &'a str, _: i64, _: u64, _: Duration) -> LimitFuture<'a, WindowCount> {
            Box::pin(async { Err(SharedLimitError("not used".to_owned())) })
        }
        fn used<'a>(&'a self, _: &'a str, _: i64) -> LimitFuture<'a, u64> {
            Box::pin(async { Err(SharedLimitError("not used".to_owned())) })
        }
        fn ping(&self) -> LimitFuture<'_, ()> {
            Box::pin(async { Ok(()) })
        }
    }

    #[tokio::test]
    async fn when_the_store_fails_the_instance_goes_on_from_its_own_count() {
        let store = Arc::new(Breakable::default());
        let shared = SharedLimits::new(store.clone());
        let limiter = Limiter::<IpAddr>::new(5, HOUR).unwrap();
        let ip: IpAddr = "203.0.113.9".parse().unwrap();
        for _ in 0..3 {
            assert!(limiter.take(Some(&shared), "login", &ip).await.is_ok());
        }
        // The store goes away: two of the five are left here, not a fresh five.
        store.broken.store(true, Ordering::Relaxed);
        let after: Vec<bool> = {
            let mut answers = Vec::new();
            for _ in 0..4 {
                answers.push(limiter.take(Some(&shared), "login", &ip).await.is_ok());
            }
            answers
        };
        assert_eq!(after, [true, true, false, false]);
    }

    #[test]
    fn ipv6_addresses_count_by_their_64_and_ipv4_by_address() {
        let a: IpAddr = "2001:db8:1:2:aaaa::1".parse().unwrap();
        let b: IpAddr = "2001:db8:1:2:ffff:1:2:3".parse().unwrap();
        let other: IpAddr = "2001:db8:1:3::1".parse().unwrap();
        assert_eq!(client_network(a), client_network(b));
        assert_ne!(client_network(a), client_network(other));
        let v4: IpAddr = "203.0.113.7".parse().unwrap();
        assert_eq!(client_network(v4), v4);
        let mapped: IpAddr = "::ffff:203.0.113.7".parse().unwrap();
        assert_eq!(client_network(mapped), v4);
    }
}
