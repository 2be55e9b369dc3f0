//! Events: every audit entry, announced to webhook subscribers and to the operators'
//! notification rules. An entry's outbox row is written in the transaction that writes the
//! entry, so nothing is announced that did not happen and nothing that happened is lost.

pub mod catalog;
pub mod webhooks;

use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{Value, json};
use uuid::Uuid;

use crate::AuditEntry;

pub use catalog::{EVENT_TYPES, EventType, PING, announced_as, event_type};

/// An event as subscribers receive it: `{id, type, occurredAt, actor, organizationId?, data}`.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    /// The audit entry's id (a `ping` gets a fresh one): the same event sent to several
    /// subscriptions, or sent again, keeps it.
    pub id: Uuid,
    pub event_type: String,
    pub occurred_at: DateTime<Utc>,
    pub actor: Value,
    pub organization_id: Option<Uuid>,
    pub data: Value,
}

impl Event {
    /// The event an audit entry announces.
    pub fn from_audit(entry: &AuditEntry) -> Self {
        Self {
            id: entry.id,
            event_type: announced_as(entry.action.as_str(), entry.after.as_ref()).to_owned(),
            occurred_at: entry.occurred_at,
            actor: json!({"kind": entry.actor.kind.as_str(), "id": entry.actor.id}),
            organization_id: entry.organization_id,
            data: json!({
                "resourceType": entry.resource_type,
                "resourceId": entry.resource_id,
                "before": entry.before,
                "after": entry.after,
                "ipAddress": entry.origin.ip_address,
                "userAgent": entry.origin.user_agent,
                "requestId": entry.origin.request_id,
            }),
        }
    }

    /// The test event of `POST /webhooks/{id}/test`.
    pub fn ping(webhook: Uuid, actor: Uuid, organization_id: Option<Uuid>, now: DateTime<Utc>) -> Self {
        Self {
            id: Uuid::now_v7(),
            event_type: PING.to_owned(),
            occurred_at: now,
            actor: json!({"kind": "admin", "id": actor}),
            organization_id,
            data: json!({"webhookId": webhook, "message": "Steward is able to reach this endpoint."}),
        }
    }

    /// The JSON body a delivery posts (the bytes that are signed).
    pub fn body(&self) -> String {
        let mut body = json!({
            "id": self.id,
            "type": self.event_type,
            "occurredAt": self.occurred_at.to_rfc3339_opts(SecondsFormat::Micros, true),
            "actor": self.actor,
            "data": self.data,
        });
        if let (Some(organization), Some(object)) = (self.organization_id, body.as_object_mut()) {
            object.insert("organizationId".to_owned(), json!(organization));
        }
        body.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Actor, AuditAction, RequestOrigin};

    #[test]
    fn an_audit_entry_becomes_the_documented_payload() {
        let entry = AuditEntry::new(Actor::system(), AuditAction::known("auth.account_locked"), "user")
            .resource_id("42")
            .change(None, Some(json!({"until": "later"})))
            .origin(RequestOrigin {
                ip_address: Some("192.0.2.1".into()),
                user_agent: None,
                request_id: Some("r1".into()),
                ..RequestOrigin::default()
            });
        let event = Event::from_audit(&entry);
        let body: Value = serde_json::from_str(&event.body()).unwrap();
        assert_eq!(body["type"], "auth.account_locked");
        assert_eq!(body["id"], json!(entry.id));
        assert_eq!(body["actor"], json!({"kind": "system", "id": null}));
        assert_eq!(body["data"]["resourceId"], "42");
        assert_eq!(body["data"]["after"]["until"], "later");
        assert_eq!(body["data"]["ipAddress"], "192.0.2.1");
        assert!(body.get("organizationId").is_none());
        let organization = Uuid::now_v7();
        let ping = Event::ping(Uuid::nil(), Uuid::nil(), Some(organization), Utc::now());
        let body: Value = serde_json::from_str(&ping.body()).unwrap();
        assert_eq!(body["type"], "ping");
        assert_eq!(body["organizationId"], json!(organization));
    }
}
