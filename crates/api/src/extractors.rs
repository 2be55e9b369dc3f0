//! Extractor configuration and Steward's own extractors.
//!
//! actix answers bad JSON, bad paths and bad queries with plain text unless told otherwise;
//! the configs here turn each into an [`ApiError`] with a useful message.

use std::cell::Cell;

use chrono::{DateTime, Datelike, Utc};
use std::net::IpAddr;
use std::rc::Rc;

use actix_web::dev::Payload;
use actix_web::error::{JsonPayloadError, PathError, PayloadError, QueryPayloadError};
use actix_web::web::{self, JsonConfig, PathConfig, PayloadConfig, QueryConfig};
use actix_web::{FromRequest, HttpMessage, HttpRequest};
use futures_util::future::LocalBoxFuture;
use ipnet::IpNet;
use serde::Deserialize;
use serde::de::DeserializeOwned;
use steward_domain::{PageRequest, RequestOrigin};
use utoipa::IntoParams;

use crate::error::{ApiError, ErrorCode, FieldError};
use crate::request_id::RequestId;

/// Registers the extractor configs on an app: body limits and error mapping.
pub fn configure(config: &mut web::ServiceConfig, body_limit: usize) {
    config
        .app_data(
            JsonConfig::default()
                .limit(body_limit)
                .error_handler(|error, _| json_error(error).into()),
        )
        .app_data(PayloadConfig::new(body_limit))
        .app_data(PathConfig::default().error_handler(|error, _| path_error(error).into()))
        .app_data(QueryConfig::default().error_handler(|error, _| query_error(error).into()));
}

fn json_error(error: JsonPayloadError) -> ApiError {
    match error {
        JsonPayloadError::OverflowKnownLength { limit, .. } | JsonPayloadError::Overflow { limit } => {
            ApiError::new(
                ErrorCode::PayloadTooLarge,
                format!("the request body is larger than {limit} bytes"),
            )
        }
        JsonPayloadError::Payload(PayloadError::Overflow) => {
            ApiError::new(ErrorCode::PayloadTooLarge, "the request body is too large")
        }
        JsonPayloadError::ContentType => ApiError::new(
            ErrorCode::UnsupportedMediaType,
            "send the body as JSON with Content-Type: application/json",
        ),
        JsonPayloadError::Deserialize(error) if error.is_data() => ApiError::validation(format!(
            "the request body does not match the expected shape: {error}"
        )),
        JsonPayloadError::Deserialize(error) => ApiError::validation(format!("malformed JSON: {error}")),
        other => ApiError::validation(format!("unreadable request body: {other}")),
    }
}

fn path_error(error: PathError) -> ApiError {
    match error {
        PathError::Deserialize(error) => ApiError::validation(format!("invalid path parameter: {error}")),
        other => ApiError::validation(format!("invalid path parameter: {other}")),
    }
}

fn query_error(error: QueryPayloadError) -> ApiError {
    match error {
        QueryPayloadError::Deserialize(error) => {
            ApiError::validation(format!("invalid query parameter: {error}"))
        }
        other => ApiError::validation(format!("invalid query parameter: {other}")),
    }
}

/// Authorization before parsing: an authorization extractor declared before a body extractor
/// registers here (synchronously, when the handler's arguments are set up); the body extractor
/// holds back its refusal (malformed JSON, failed validation) until every registered
/// authorization has finished. A caller who may not use the endpoint therefore learns 401, 403
/// or 404, never what the body should have looked like. actix polls a handler's extractors
/// together, so without this a body error could win the race.
#[derive(Clone, Default)]
pub struct AuthGate(Rc<GateState>);

#[derive(Default)]
struct GateState {
    pending: Cell<usize>,
    opened: tokio::sync::Notify,
}

/// Held by an authorization extractor's future; dropping it (success or refusal) opens its part
/// of the gate.
pub struct AuthGateGuard(AuthGate);

impl Drop for AuthGateGuard {
    fn drop(&mut self) {
        let state = &self.0.0;
        state.pending.set(state.pending.get().saturating_sub(1));
        if state.pending.get() == 0 {
            state.opened.notify_waiters();
        }
    }
}

impl AuthGate {
    /// Registers an authorization in progress for this request.
    pub fn begin(request: &HttpRequest) -> AuthGateGuard {
        let gate = {
            let mut extensions = request.extensions_mut();
            match extensions.get::<AuthGate>() {
                Some(gate) => gate.clone(),
                None => {
                    let gate = AuthGate::default();
                    extensions.insert(gate.clone());
                    gate
                }
            }
        };
        gate.0.pending.set(gate.0.pending.get() + 1);
        AuthGateGuard(gate)
    }

    /// The gate of authorizations registered so far, if any.
    fn of(request: &HttpRequest) -> Option<AuthGate> {
        request.extensions().get::<AuthGate>().cloned()
    }

    /// Waits until no authorization is in progress.
    async fn passed(gate: Option<AuthGate>) {
        let Some(gate) = gate else { return };
        loop {
            let opened = gate.0.opened.notified();
            if gate.0.pending.get() == 0 {
                return;
            }
            opened.await;
        }
    }
}

/// A JSON body (`Content-Type: application/json`); its refusals (415, 413, 400) come after
/// the handler's authorization.
#[derive(Debug)]
pub struct Json<T>(pub T);

impl<T> Json<T> {
    pub fn into_inner(self) -> T {
        self.0
    }
}

impl<T> std::ops::Deref for Json<T> {
    type Target = T;

    fn deref(&self) -> &T {
        &self.0
    }
}

impl<T: DeserializeOwned + 'static> FromRequest for Json<T> {
    type Error = actix_web::Error;
    type Future = LocalBoxFuture<'static, Result<Self, Self::Error>>;

    fn from_request(request: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let gate = AuthGate::of(request);
        let json_content = is_json(request);
        let bytes = web::Bytes::from_request(request, payload);
        Box::pin(async move {
            let parsed = match bytes.await {
                Err(error) => Err(error),
                Ok(_) if json_content != Some(true) => Err(ApiError::new(
                    ErrorCode::UnsupportedMediaType,
                    "send the body as JSON with Content-Type: application/json",
                )
                .into()),
                Ok(bytes) => parse_json_body(&bytes).map_err(Into::into),
            };
            match parsed {
                Ok(body) => Ok(Json(body)),
                Err(error) => {
                    AuthGate::passed(gate).await;
                    Err(error)
                }
            }
        })
    }
}

/// Whether the request says its body is JSON (`application/json` or a `+json` type); `None`
/// without a `Content-Type`.
fn is_json(request: &HttpRequest) -> Option<bool> {
    request
        .headers()
        .get(actix_web::http::header::CONTENT_TYPE)
        .map(|value| {
            let value = value.to_str().unwrap_or("");
            let essence = value.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
            essence == "application/json"
                || (essence.starts_with("application/") && essence.ends_with("+json"))
        })
}

/// An optional JSON body: absent or empty (whitespace only) means `T::default()`; anything else
/// must be JSON (`Content-Type: application/json`, else 415) that parses (else 400) — a typo in
/// an approval's duration or a wipe's options is refused, never read as "no options".
#[derive(Debug)]
pub struct OptionalJson<T>(pub T);

impl<T> OptionalJson<T> {
    pub fn into_inner(self) -> T {
        self.0
    }
}

impl<T: DeserializeOwned + Default + 'static> FromRequest for OptionalJson<T> {
    type Error = actix_web::Error;
    type Future = LocalBoxFuture<'static, Result<Self, Self::Error>>;

    fn from_request(request: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let gate = AuthGate::of(request);
        let json_content = is_json(request);
        let bytes = web::Bytes::from_request(request, payload);
        Box::pin(async move {
            let parsed = match bytes.await {
                Err(error) => Err(error),
                Ok(bytes) if bytes.iter().all(u8::is_ascii_whitespace) => Ok(T::default()),
                Ok(bytes) => {
                    if json_content != Some(true) {
                        Err(ApiError::new(
                            ErrorCode::UnsupportedMediaType,
                            "send the body as JSON with Content-Type: application/json",
                        )
                        .into())
                    } else {
                        parse_json_body(&bytes).map_err(Into::into)
                    }
                }
            };
            match parsed {
                Ok(body) => Ok(OptionalJson(body)),
                Err(error) => {
                    AuthGate::passed(gate).await;
                    Err(error)
                }
            }
        })
    }
}

/// A JSON body, parsed. A string holding U+0000 anywhere (a value or a key) is refused with
/// 400 naming where: no database stores it alike (PostgreSQL refuses it outright), so it is
/// never input.
pub fn parse_json_body<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    if has_escaped_nul(bytes)
        && let Ok(value) = serde_json::from_slice::<serde_json::Value>(bytes)
        && let Some(field) = nul_path(&value, String::new())
    {
        let field = if field.is_empty() {
            "body".to_owned()
        } else {
            field
        };
        return Err(
            ApiError::validation("the request has invalid fields").with_details(vec![FieldError {
                field,
                message: "must not contain the NUL character (U+0000)".to_owned(),
            }]),
        );
    }
    serde_json::from_slice(bytes).map_err(|error| {
        if error.is_data() {
            ApiError::validation(format!(
                "the request body does not match the expected shape: {error}"
            ))
        } else {
            ApiError::validation(format!("malformed JSON: {error}"))
        }
    })
}

/// A time from the client, checked to be one both databases store alike: years 1 to 9999
/// (RFC 3339's four-digit years). Anything else is 400 naming `field`.
pub fn checked_time(field: &str, value: Option<DateTime<Utc>>) -> Result<Option<DateTime<Utc>>, ApiError> {
    match value {
        Some(time) if !(1..=9999).contains(&time.year()) => Err(ApiError::invalid(
            field,
            "must be an RFC 3339 time between the years 1 and 9999",
        )),
        other => Ok(other),
    }
}

/// The first path parameter named `…Id` that is not a UUID, as the 400 every route answers
/// for it (access extractors check it before looking anything up, so a malformed id is a bad
/// request even where the resource around it does not exist).
pub fn malformed_path_id(request: &HttpRequest) -> Option<ApiError> {
    request
        .match_info()
        .iter()
        .find(|(name, value)| name.ends_with("Id") && value.parse::<uuid::Uuid>().is_err())
        .map(|(name, _)| ApiError::invalid(name, "must be a UUID"))
}

/// `?page=&perPage=` of list endpoints.
#[derive(Debug, Clone, Copy, Deserialize, IntoParams)]
#[serde(rename_all = "camelCase")]
#[into_params(parameter_in = Query, rename_all = "camelCase")]
pub struct PageQuery {
    /// 1-based page number, 1 to 1,000,000 (default 1).
    #[param(minimum = 1, maximum = 1_000_000)]
    pub page: Option<u64>,
    /// Items per page, 1 to 100 (default 20).
    #[param(minimum = 1, maximum = 100)]
    pub per_page: Option<u64>,
}

impl PageQuery {
    pub fn into_request(self) -> Result<PageRequest, ApiError> {
        Ok(PageRequest::parse(self.page, self.per_page)?)
    }
}

/// Proxies whose `X-Forwarded-For` Steward believes.
#[derive(Debug, Clone, Default)]
pub struct TrustedProxies(pub Vec<IpNet>);

/// An IPv4 address written as IPv6 (`::ffff:a.b.c.d`, as dual-stack sockets report it) is the
/// IPv4 address.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4),
        v4 => v4,
    }
}

impl TrustedProxies {
    fn trusts(&self, ip: IpAddr) -> bool {
        let ip = canonical(ip);
        self.0.iter().any(|net| net.contains(&ip))
    }

    /// The client's address: the peer, unless the peer is a trusted proxy, in which case the
    /// right-most `X-Forwarded-For` hop that is not itself a trusted proxy. A client cannot
    /// choose its address by sending the header itself. A hop that does not parse ends the
    /// walk at the last one that did.
    pub fn client_ip(&self, peer: Option<IpAddr>, forwarded_for: Option<&str>) -> Option<IpAddr> {
        self.resolve(peer, Ok(forwarded_for), false)
    }

    /// As [`Self::client_ip`], but `None` whenever the answer is not certain: a trusted peer's
    /// header that is unreadable, or a hop that does not parse before an untrusted one is
    /// found. For decisions that must fail closed (the admin API's IP allowlist).
    pub fn certain_client_ip(
        &self,
        peer: Option<IpAddr>,
        forwarded_for: Result<Option<&str>, ()>,
    ) -> Option<IpAddr> {
        self.resolve(peer, forwarded_for, true)
    }

    fn resolve(
        &self,
        peer: Option<IpAddr>,
        forwarded_for: Result<Option<&str>, ()>,
        strict: bool,
    ) -> Option<IpAddr> {
        let peer = canonical(peer?);
        if !self.trusts(peer) {
            return Some(peer);
        }
        let header = match forwarded_for {
            Ok(Some(header)) => header,
            Ok(None) => return Some(peer),
            Err(()) if strict => return None,
            Err(()) => return Some(peer),
        };
        let mut client = peer;
        for hop in header.rsplit(',') {
            match hop.trim().parse::<IpAddr>() {
                Ok(ip) => {
                    client = canonical(ip);
                    if !self.trusts(client) {
                        return Some(client);
                    }
                }
                Err(_) if strict => return None,
                Err(_) => break,
            }
        }
        Some(client)
    }
}

/// Every `X-Forwarded-For` line of the request, in order, joined with `,` (a proxy may add
/// its own line rather than extend the client's); `Err` when one is not readable text.
fn forwarded_for(request: &HttpRequest) -> Result<Option<String>, ()> {
    let mut lines = Vec::new();
    for value in request.headers().get_all("x-forwarded-for") {
        lines.push(value.to_str().map_err(|_| ())?);
    }
    Ok((!lines.is_empty()).then(|| lines.join(",")))
}

/// The client's IP address, through trusted proxies.
pub fn client_ip(request: &HttpRequest) -> Option<IpAddr> {
    let peer = request.peer_addr().map(|addr| addr.ip());
    let header = forwarded_for(request).ok().flatten();
    match request.app_data::<web::Data<TrustedProxies>>() {
        Some(proxies) => proxies.client_ip(peer, header.as_deref()),
        None => peer.map(canonical),
    }
}

/// The client's IP address when it is certain (see [`TrustedProxies::certain_client_ip`]).
pub fn certain_client_ip(request: &HttpRequest) -> Option<IpAddr> {
    let peer = request.peer_addr().map(|addr| addr.ip());
    let header = forwarded_for(request);
    match request.app_data::<web::Data<TrustedProxies>>() {
        Some(proxies) => {
            proxies.certain_client_ip(peer, header.as_ref().map(|h| h.as_deref()).map_err(|_| ()))
        }
        None => peer.map(canonical),
    }
}

/// Where the request came from: client IP, user agent and request id, ready for audit entries.
#[derive(Debug, Clone)]
pub struct Origin(pub RequestOrigin);

impl FromRequest for Origin {
    type Error = actix_web::Error;
    type Future = std::future::Ready<Result<Self, Self::Error>>;

    fn from_request(request: &HttpRequest, _: &mut Payload) -> Self::Future {
        std::future::ready(Ok(Origin::of(request)))
    }
}

impl Origin {
    /// Where `request` comes from: client IP (behind trusted proxies), user agent, request id.
    pub fn of(request: &HttpRequest) -> Self {
        let ip = client_ip(request);
        let user_agent = request
            .headers()
            .get(actix_web::http::header::USER_AGENT)
            .and_then(|v| v.to_str().ok())
            .map(|v| v.chars().take(512).collect());
        let request_id = request.extensions().get::<RequestId>().map(|id| id.0.clone());
        Origin(RequestOrigin {
            ip_address: ip.map(|ip| ip.to_string()),
            user_agent,
            request_id,
            session: crate::request_id::session_slot(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn proxies(nets: &[&str]) -> TrustedProxies {
        TrustedProxies(nets.iter().map(|n| n.parse().unwrap()).collect())
    }

    #[test]
    fn forwarded_for_is_ignored_from_untrusted_peers() {
        let ip = proxies(&["10.0.0.0/8"]).client_ip(Some("203.0.113.9".parse().unwrap()), Some("1.2.3.4"));
        assert_eq!(ip, Some("203.0.113.9".parse().unwrap()));
    }

    #[test]
    fn the_first_untrusted_hop_from_the_right_is_the_client() {
        let ip = proxies(&["10.0.0.0/8"]).client_ip(
            Some("10.0.0.2".parse().unwrap()),
            Some("6.6.6.6, 198.51.100.7, 10.0.0.5"),
        );
        assert_eq!(ip, Some("198.51.100.7".parse().unwrap()));
    }

    #[test]
    fn an_unusable_hop_makes_the_certain_address_unknown() {
        let trusted = proxies(&["10.0.0.0/8"]);
        let peer = Some("10.0.0.2".parse().unwrap());
        assert_eq!(trusted.certain_client_ip(peer, Ok(Some("unknown"))), None);
        assert_eq!(
            trusted.certain_client_ip(peer, Ok(Some("1.2.3.4:5678, 10.0.0.5"))),
            None
        );
        assert_eq!(trusted.certain_client_ip(peer, Err(())), None);
        assert_eq!(
            trusted.certain_client_ip(peer, Ok(Some("garbage, 198.51.100.7"))),
            Some("198.51.100.7".parse().unwrap())
        );
        // The lenient address (rate limits, audit) keeps the last hop that parsed.
        assert_eq!(
            trusted.client_ip(peer, Some("unknown")),
            Some("10.0.0.2".parse().unwrap())
        );
    }

    #[test]
    fn mapped_ipv6_peers_are_their_ipv4_address() {
        let trusted = proxies(&["127.0.0.1/32"]);
        let ip = trusted.client_ip(Some("::ffff:127.0.0.1".parse().unwrap()), Some("203.0.113.9"));
        assert_eq!(ip, Some("203.0.113.9".parse().unwrap()));
    }

    #[test]
    fn a_trusted_peer_without_the_header_is_the_client() {
        let ip = proxies(&["127.0.0.1/32"]).client_ip(Some("127.0.0.1".parse().unwrap()), None);
        assert_eq!(ip, Some("127.0.0.1".parse().unwrap()));
    }
}

/// Whether a JSON text contains the escape `\u0000` (JSON cannot carry a raw NUL byte in a
/// string, so this is the only way one gets in). Skips escaped backslashes correctly.
pub(crate) fn has_escaped_nul(bytes: &[u8]) -> bool {
    let mut index = 0;
    while index < bytes.len() {
        if bytes[index] == b'\\' {
            if bytes.get(index + 1) == Some(&b'u')
                && bytes.get(index + 2..index + 6) == Some(b"0000".as_slice())
            {
                return true;
            }
            index += 2;
        } else {
            index += 1;
        }
    }
    false
}

/// The path (`settings.key`, `items[2].name`) of the first string or key holding U+0000.
fn nul_path(value: &serde_json::Value, at: String) -> Option<String> {
    let join = |key: &str| {
        if at.is_empty() {
            key.to_owned()
        } else {
            format!("{at}.{key}")
        }
    };
    match value {
        serde_json::Value::String(text) if text.contains('\0') => Some(at),
        serde_json::Value::Array(items) => items
            .iter()
            .enumerate()
            .find_map(|(index, item)| nul_path(item, format!("{at}[{index}]"))),
        serde_json::Value::Object(members) => members.iter().find_map(|(key, item)| {
            if key.contains('\0') {
                Some(join(&key.replace('\0', "\\u0000")))
            } else {
                nul_path(item, join(key))
            }
        }),
        _ => None,
    }
}

#[cfg(test)]
mod nul_tests {
    use super::*;

    #[test]
    fn nul_escapes_are_found_with_their_path_and_escaped_backslashes_are_not() {
        assert!(has_escaped_nul(br#"{"name":"a\u0000b"}"#));
        assert!(
            !has_escaped_nul(br#"{"name":"a\\u0000b"}"#),
            "an escaped backslash, then text"
        );
        assert!(!has_escaped_nul(br#"{"name":"a\u0001"}"#));
        let value: serde_json::Value = serde_json::from_str(r#"{"a":{"b":["x","y\u0000"]}}"#).unwrap();
        assert_eq!(nul_path(&value, String::new()).as_deref(), Some("a.b[1]"));
        let error = parse_json_body::<serde_json::Value>(br#"{"description":"a\u0000b"}"#).unwrap_err();
        assert!(format!("{error:?}").contains("description"), "{error:?}");
    }
}
