//! Audit entries: who did what to which resource, from where.
//!
//! Every mutation records one entry through [`AuditRecorder`] *inside the transaction of the
//! change itself*, so an entry exists exactly when its change does: a rolled-back change leaves
//! no entry, and a committed change cannot lose its entry.

use std::fmt;
use std::future::Future;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use uuid::Uuid;

use crate::repository::RepositoryError;

/// The kind of principal that caused a change.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ActorKind {
    /// A signed-in user acting on their own behalf.
    User,
    /// A user acting through the admin API with a system role.
    Admin,
    /// A device authenticated by device token or legacy API key.
    Device,
    /// An API key or personal access token.
    ApiKey,
    /// Steward itself: background jobs, expiries, migrations.
    System,
}

impl ActorKind {
    pub fn as_str(&self) -> &'static str {
        match self {
            ActorKind::User => "user",
            ActorKind::Admin => "admin",
            ActorKind::Device => "device",
            ActorKind::ApiKey => "api_key",
            ActorKind::System => "system",
        }
    }

    pub fn parse(value: &str) -> Option<Self> {
        Some(match value {
            "user" => ActorKind::User,
            "admin" => ActorKind::Admin,
            "device" => ActorKind::Device,
            "api_key" => ActorKind::ApiKey,
            "system" => ActorKind::System,
            _ => return None,
        })
    }
}

/// Who caused a change. The system has no id; everyone else does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Actor {
    pub kind: ActorKind,
    pub id: Option<Uuid>,
}

impl Actor {
    pub fn user(id: Uuid) -> Self {
        Self {
            kind: ActorKind::User,
            id: Some(id),
        }
    }

    pub fn admin(id: Uuid) -> Self {
        Self {
            kind: ActorKind::Admin,
            id: Some(id),
        }
    }

    pub fn device(id: Uuid) -> Self {
        Self {
            kind: ActorKind::Device,
            id: Some(id),
        }
    }

    pub fn api_key(id: Uuid) -> Self {
        Self {
            kind: ActorKind::ApiKey,
            id: Some(id),
        }
    }

    pub fn system() -> Self {
        Self {
            kind: ActorKind::System,
            id: None,
        }
    }
}

/// An audit action name such as `user.created` or `device.setting.locked`.
///
/// Dotted lowercase segments, resource first and verb last, so audit queries can filter by
/// prefix (`device.` finds everything that happened to devices).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct AuditAction(String);

/// Why a string is not an audit action name.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("audit action `{0}` must be dotted lowercase segments like `user.created`")]
pub struct InvalidAuditAction(pub String);

impl AuditAction {
    pub fn parse(value: impl Into<String>) -> Result<Self, InvalidAuditAction> {
        let value = value.into();
        let segments: Vec<&str> = value.split('.').collect();
        let valid = segments.len() >= 2
            && value.len() <= 100
            && segments.iter().all(|segment| {
                !segment.is_empty()
                    && segment.starts_with(|c: char| c.is_ascii_lowercase())
                    && segment
                        .chars()
                        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
            });
        if valid {
            Ok(Self(value))
        } else {
            Err(InvalidAuditAction(value))
        }
    }

    /// An action name written in code. Checked in debug builds and by the tests of its callers;
    /// release builds trust the literal.
    pub fn known(value: &'static str) -> Self {
        debug_assert!(Self::parse(value).is_ok(), "invalid audit action literal {value}");
        debug_assert!(
            crate::events::catalog::is_cataloged_action(value),
            "audit action {value} is missing from the event catalog (steward_domain::events::catalog)"
        );
        Self(value.to_owned())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for AuditAction {
    type Error = InvalidAuditAction;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::parse(value)
    }
}

impl From<AuditAction> for String {
    fn from(value: AuditAction) -> Self {
        value.0
    }
}

impl fmt::Display for AuditAction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Where a request came from, copied onto every audit entry it causes.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RequestOrigin {
    pub ip_address: Option<String>,
    pub user_agent: Option<String>,
    pub request_id: Option<String>,
    /// The sign-in session the request was made in (none for personal access tokens, API keys,
    /// devices and anonymous requests).
    #[serde(default)]
    pub session: SessionSlot,
}

/// The session a request was made in. Shared between the request's origin and the check of
/// its credential, which may finish after the origin was taken: the check fills it once, and
/// every copy of the origin sees it.
#[derive(Clone, Default)]
pub struct SessionSlot(std::sync::Arc<std::sync::OnceLock<Uuid>>);

impl SessionSlot {
    /// A slot that already names `session`.
    pub fn known(session: Uuid) -> Self {
        let slot = Self::default();
        slot.fill(session);
        slot
    }

    /// Names the session; a slot keeps the first session it was given.
    pub fn fill(&self, session: Uuid) {
        let _ = self.0.set(session);
    }

    pub fn get(&self) -> Option<Uuid> {
        self.0.get().copied()
    }
}

impl fmt::Debug for SessionSlot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.get(), f)
    }
}

impl PartialEq for SessionSlot {
    fn eq(&self, other: &Self) -> bool {
        self.get() == other.get()
    }
}

impl Eq for SessionSlot {}

impl Serialize for SessionSlot {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.get().serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for SessionSlot {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        Ok(Option::<Uuid>::deserialize(deserializer)?.map_or_else(Self::default, Self::known))
    }
}

/// One immutable record of a change.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AuditEntry {
    pub id: Uuid,
    pub occurred_at: DateTime<Utc>,
    pub actor: Actor,
    pub action: AuditAction,
    pub resource_type: String,
    pub resource_id: Option<String>,
    pub organization_id: Option<Uuid>,
    pub before: Option<Value>,
    pub after: Option<Value>,
    pub origin: RequestOrigin,
}

impl AuditEntry {
    /// A copy with an id of its own: one template, many entries (one per device, per command).
    pub fn another(&self) -> Self {
        let mut entry = self.clone();
        entry.id = Uuid::now_v7();
        entry
    }

    /// Starts an entry for `action` by `actor` on a resource of `resource_type`, stamped now.
    pub fn new(actor: Actor, action: AuditAction, resource_type: impl Into<String>) -> Self {
        Self {
            id: Uuid::now_v7(),
            occurred_at: Utc::now(),
            actor,
            action,
            resource_type: resource_type.into(),
            resource_id: None,
            organization_id: None,
            before: None,
            after: None,
            origin: RequestOrigin::default(),
        }
    }

    pub fn resource_id(mut self, id: impl ToString) -> Self {
        self.resource_id = Some(id.to_string());
        self
    }

    pub fn organization(mut self, organization_id: Uuid) -> Self {
        self.organization_id = Some(organization_id);
        self
    }

    /// Records the state before and after the change; either may be absent (creation, deletion).
    pub fn change(mut self, before: Option<Value>, after: Option<Value>) -> Self {
        self.before = before;
        self.after = after;
        self
    }

    pub fn origin(mut self, origin: RequestOrigin) -> Self {
        self.origin = origin;
        self
    }
}

/// Appends audit entries within the unit of work that makes the change they describe.
pub trait AuditRecorder {
    fn record(&self, entry: &AuditEntry) -> impl Future<Output = Result<(), RepositoryError>> + Send;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dotted_lowercase_names_are_actions() {
        for name in [
            "user.created",
            "device.setting.locked",
            "auth.refresh_reuse_detected",
            "org2.updated",
        ] {
            assert_eq!(AuditAction::parse(name).unwrap().as_str(), name);
        }
    }

    #[test]
    fn other_shapes_are_refused() {
        for name in [
            "",
            "user",
            "User.created",
            "user..created",
            ".user",
            "user.created.",
            "user.cre ated",
            "1user.x",
        ] {
            assert!(AuditAction::parse(name).is_err(), "{name:?} should be refused");
        }
    }

    #[test]
    fn an_entry_carries_what_the_builder_was_given() {
        let org = Uuid::now_v7();
        let entry = AuditEntry::new(
            Actor::system(),
            AuditAction::parse("org.updated").unwrap(),
            "organization",
        )
        .resource_id(org)
        .organization(org)
        .change(
            Some(serde_json::json!({"name": "a"})),
            Some(serde_json::json!({"name": "b"})),
        );
        assert_eq!(entry.resource_id.as_deref(), Some(org.to_string().as_str()));
        assert_eq!(entry.organization_id, Some(org));
        assert_eq!(entry.after, Some(serde_json::json!({"name": "b"})));
        assert_eq!(entry.actor.kind.as_str(), "system");
        assert_eq!(ActorKind::parse("api_key"), Some(ActorKind::ApiKey));
    }
}
