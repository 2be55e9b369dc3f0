//! The request id: taken from the client's `X-Request-Id` when it is sane, otherwise a new
//! UUIDv7. It is visible to everything the request runs (task-local), so error envelopes and
//! audit entries carry it without threading it through every call.

use actix_web::HttpMessage;
use actix_web::dev::ServiceRequest;

pub const HEADER: &str = "x-request-id";

tokio::task_local! {
    static CURRENT: String;
    static SESSION: steward_domain::SessionSlot;
}

/// The id of the request being served on this task, if any.
pub fn current() -> Option<String> {
    CURRENT.try_with(Clone::clone).ok()
}

/// The slot of the session the request being served was made in: filled when its credential
/// is checked, shared by every origin taken from the request (before or after that).
pub fn session_slot() -> steward_domain::SessionSlot {
    SESSION.try_with(Clone::clone).unwrap_or_default()
}

/// The request's credential was checked: a session names the request's session.
pub fn note_principal(principal: &steward_app::Principal) {
    if let steward_app::Credential::Session { session } = principal.credential {
        let _ = SESSION.try_with(|slot| slot.fill(session));
    }
    // From here on the request's database work acts for this user (row-level security).
    steward_persistence::tenancy::act_for(steward_persistence::tenancy::Tenancy::User(principal.user));
}

/// Notes that the request is made by a device (its token or the legacy key): from here on its
/// database work acts for that device (row-level security).
pub fn note_device(device: uuid::Uuid) {
    steward_persistence::tenancy::act_for(steward_persistence::tenancy::Tenancy::Device(device));
}

/// Runs `future` with `id` as the current request id (and an empty session slot).
pub async fn scope<F: Future>(id: String, future: F) -> F::Output {
    CURRENT
        .scope(
            id,
            SESSION.scope(
                steward_domain::SessionSlot::default(),
                steward_persistence::tenancy::in_request(future),
            ),
        )
        .await
}

/// Runs `f` synchronously with `id` as the current request id.
pub fn sync_scope<R>(id: String, f: impl FnOnce() -> R) -> R {
    CURRENT.sync_scope(id, f)
}

/// The request id stored in request extensions, for extractors.
#[derive(Debug, Clone)]
pub struct RequestId(pub String);

/// Accepts the client's id when it is short printable ASCII; anything else is replaced so logs
/// and headers cannot be polluted.
pub fn assign(request: &ServiceRequest) -> String {
    let incoming = request
        .headers()
        .get(HEADER)
        .and_then(|value| value.to_str().ok())
        .filter(|value| is_acceptable(value));
    let id = match incoming {
        Some(value) => value.to_owned(),
        None => uuid::Uuid::now_v7().to_string(),
    };
    request.extensions_mut().insert(RequestId(id.clone()));
    id
}

fn is_acceptable(value: &str) -> bool {
    !value.is_empty()
        && value.len() <= 128
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_short_printable_ids_are_echoed() {
        assert!(is_acceptable("abc-123_x.y:z"));
        assert!(!is_acceptable(""));
        assert!(!is_acceptable("has space"));
        assert!(!is_acceptable("new\nline"));
        assert!(!is_acceptable(&"a".repeat(129)));
    }
}
