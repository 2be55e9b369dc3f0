//! Per-client-IP rate limits of sensitive endpoints (governor, GCRA). In-memory per instance:
//! with N instances behind a balancer a client gets at most N times the limit, which still
//! stops scripted abuse; the per-email login lock lives in the database and holds everywhere.

use std::marker::PhantomData;
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::Arc;

use actix_web::dev::Payload;
use actix_web::{FromRequest, HttpRequest, web};
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};

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

type Limiter = Option<DefaultKeyedRateLimiter<IpAddr>>;

pub struct RateLimits {
    register: Limiter,
    login: Limiter,
    password_reset: Limiter,
    refresh: Limiter,
    admin: Option<DefaultKeyedRateLimiter<uuid::Uuid>>,
    device_events: Option<DefaultKeyedRateLimiter<uuid::Uuid>>,
}

fn limiter(per_hour: u32) -> Limiter {
    NonZeroU32::new(per_hour).map(|n| RateLimiter::keyed(Quota::per_hour(n).allow_burst(n)))
}

impl RateLimits {
    pub fn new(settings: RateLimitSettings) -> Arc<Self> {
        Arc::new(Self {
            register: limiter(settings.register_per_hour),
            login: limiter(settings.login_per_hour),
            password_reset: limiter(settings.password_reset_per_hour),
            refresh: limiter(settings.refresh_per_hour),
            admin: NonZeroU32::new(settings.admin_per_minute)
                .map(|n| RateLimiter::keyed(Quota::per_minute(n).allow_burst(n))),
            device_events: NonZeroU32::new(settings.device_events_per_minute)
                .map(|n| RateLimiter::keyed(Quota::per_minute(n).allow_burst(n))),
        })
    }

    /// Counts one admin API request of `user`; `429 RATE_LIMITED` with `Retry-After` beyond the
    /// per-minute allowance.
    pub fn check_admin(&self, user: uuid::Uuid) -> Result<(), ApiError> {
        let Some(limiter) = &self.admin else { return Ok(()) };
        limiter.check_key(&user).map_err(|not_until| {
            crate::metrics::record_rate_limited("admin");
            let wait = not_until.wait_time_from(DefaultClock::default().now());
            ApiError::new(ErrorCode::RateLimited, "too many admin requests; slow down")
                .with_retry_after(wait.as_secs().max(1))
        })
    }

    /// Counts one event batch of `device`; `429 RATE_LIMITED` with `Retry-After` beyond the
    /// per-minute allowance.
    pub fn check_device_events(&self, device: uuid::Uuid) -> Result<(), ApiError> {
        let Some(limiter) = &self.device_events else {
            return Ok(());
        };
        limiter.check_key(&device).map_err(|not_until| {
            crate::metrics::record_rate_limited("device_events");
            let wait = not_until.wait_time_from(DefaultClock::default().now());
            ApiError::new(
                ErrorCode::RateLimited,
                "too many event batches from this device; slow down",
            )
            .with_retry_after(wait.as_secs().max(1))
        })
    }

    fn check(limiter: &Limiter, name: &'static str, ip: IpAddr) -> Result<(), ApiError> {
        let Some(limiter) = limiter else { return Ok(()) };
        limiter.check_key(&client_network(ip)).map_err(|not_until| {
            crate::metrics::record_rate_limited(name);
            let wait = not_until.wait_time_from(DefaultClock::default().now());
            ApiError::new(ErrorCode::RateLimited, "too many requests; slow down")
                .with_retry_after(wait.as_secs().max(1))
        })
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
    fn limiter(limits: &RateLimits) -> &Limiter;
}

macro_rules! limited_action {
    ($name:ident, $field:ident) => {
        #[derive(Debug)]
        pub struct $name;
        impl LimitedAction for $name {
            const NAME: &'static str = stringify!($field);
            fn limiter(limits: &RateLimits) -> &Limiter {
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
    type Future = std::future::Ready<Result<Self, Self::Error>>;

    fn from_request(request: &HttpRequest, _: &mut Payload) -> Self::Future {
        let result = match (request.app_data::<web::Data<AppState>>(), client_ip(request)) {
            (Some(state), Some(ip)) => RateLimits::check(A::limiter(&state.rate_limits), A::NAME, ip),
            _ => Ok(()),
        };
        std::future::ready(result.map(|()| RateLimited(PhantomData)).map_err(Into::into))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
