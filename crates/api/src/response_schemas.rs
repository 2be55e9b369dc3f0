//! Schemas of answers whose JSON is assembled outside this crate (the JWKS, the GDPR export,
//! the audit log's entries, the chain report, a device's compliance). They describe the served
//! JSON for the spec only; the black-box test `every_typed_answer_matches_its_schema` compares
//! real answers with them, so they cannot drift unseen.
#![allow(dead_code)]

use chrono::{DateTime, Utc};
use serde_json::Value;
use utoipa::ToSchema;
use uuid::Uuid;

/// One public RSA key (RFC 7517).
#[derive(ToSchema)]
pub struct Jwk {
    /// `RSA`.
    kty: String,
    /// `sig`.
    #[schema(rename = "use")]
    use_: String,
    /// `RS256`.
    alg: String,
    /// The RFC 7638 thumbprint of the key; access tokens name it in their header.
    kid: String,
    /// The modulus, base64url.
    n: String,
    /// The exponent, base64url.
    e: String,
}

/// The keys that verify access tokens; the one signing new tokens first.
#[derive(ToSchema)]
pub struct Jwks {
    keys: Vec<Jwk>,
}

/// Where resource servers find what they need to verify Steward's access tokens.
#[derive(ToSchema)]
pub struct Discovery {
    /// The `iss` of every access token (`STEWARD_JWT_ISSUER`).
    issuer: String,
    /// The JWKS URL under `STEWARD_PUBLIC_URL`.
    jwks_uri: String,
    /// `["RS256"]`.
    id_token_signing_alg_values_supported: Vec<String>,
    /// `["public"]`.
    subject_types_supported: Vec<String>,
    /// `["token"]`.
    response_types_supported: Vec<String>,
    /// The claims of an access token.
    claims_supported: Vec<String>,
    /// The `aud` of every access token (`STEWARD_JWT_AUDIENCE`).
    audience: String,
}

/// A page of audit entries.
#[derive(ToSchema)]
pub struct AuditPageEnvelope {
    success: bool,
    data: Vec<AuditEntryView>,
    meta: crate::routes::audit::AuditPageMeta,
}

/// One audit entry.
#[derive(ToSchema)]
#[schema(rename_all = "camelCase")]
pub struct AuditEntryView {
    id: Uuid,
    occurred_at: DateTime<Utc>,
    /// `user`, `admin`, `system`, `device` or `api_key`.
    actor_kind: String,
    actor_id: Option<Uuid>,
    /// The action, e.g. `auth.login_succeeded` (docs/events.md lists them).
    action: String,
    resource_type: String,
    resource_id: Option<String>,
    organization_id: Option<Uuid>,
    /// The resource before the change, where it has one.
    before: Option<Value>,
    /// The resource after the change, where it has one.
    after: Option<Value>,
    ip_address: Option<String>,
    user_agent: Option<String>,
    request_id: Option<String>,
    /// The entry's position in the hash chain; `null` until sealed (within seconds).
    chain_seq: Option<i64>,
    /// The sign-in session the actor made the change in; `null` for personal access tokens,
    /// API keys, devices, the system, and entries from before sessions were recorded.
    session_id: Option<Uuid>,
}

/// The first place the chain does not hold.
#[derive(ToSchema)]
#[schema(rename_all = "camelCase")]
pub struct ChainBreakView {
    seq: i64,
    entry_id: Option<Uuid>,
    reason: String,
}

/// What verifying the audit chain found.
#[derive(ToSchema)]
#[schema(rename_all = "camelCase")]
pub struct ChainReportView {
    /// Entries in the chain.
    sealed: u64,
    /// Entries written and not yet sealed.
    unsealed: u64,
    intact: bool,
    first_break: Option<ChainBreakView>,
}

/// A device's desired settings version against the one it applied.
#[derive(ToSchema)]
#[schema(rename_all = "camelCase")]
pub struct SettingsStatusView {
    desired_version: i64,
    applied_version: Option<i64>,
    applied_at: Option<DateTime<Utc>>,
    /// What the device reported it could not apply (as it sent it).
    failures: Value,
    /// Applied the desired version with no failures.
    compliant: bool,
}

/// The account as the GDPR export shows it.
#[derive(ToSchema)]
#[schema(rename_all = "camelCase")]
pub struct ExportedProfile {
    id: Uuid,
    email: String,
    pending_email: Option<String>,
    email_verified_at: Option<DateTime<Utc>>,
    display_name: String,
    avatar_url: Option<String>,
    locale: Option<String>,
    timezone: Option<String>,
    status: String,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
    last_login_at: Option<DateTime<Utc>>,
}

/// The second factor as the GDPR export shows it.
#[derive(ToSchema)]
#[schema(rename_all = "camelCase")]
pub struct ExportedMfa {
    enabled: bool,
    /// `totp` when enabled.
    method: Option<String>,
    enabled_at: Option<DateTime<Utc>>,
}

/// A session, live or ended.
#[derive(ToSchema)]
#[schema(rename_all = "camelCase")]
pub struct ExportedSession {
    id: Uuid,
    ip_address: Option<String>,
    user_agent: Option<String>,
    created_at: DateTime<Utc>,
    last_used_at: Option<DateTime<Utc>>,
    expires_at: DateTime<Utc>,
    revoked_at: Option<DateTime<Utc>>,
    revoked_reason: Option<String>,
}

/// A linked sign-in provider.
#[derive(ToSchema)]
#[schema(rename_all = "camelCase")]
pub struct ExportedLinkedAccount {
    provider: String,
    email: Option<String>,
    created_at: DateTime<Utc>,
}

/// An audit entry by or about the account.
#[derive(ToSchema)]
#[schema(rename_all = "camelCase")]
pub struct ExportedActivity {
    occurred_at: DateTime<Utc>,
    action: String,
    actor_kind: String,
    resource_type: String,
    resource_id: Option<String>,
    ip_address: Option<String>,
    user_agent: Option<String>,
}

/// Everything Steward stores about the caller.
#[derive(ToSchema)]
#[schema(rename_all = "camelCase")]
pub struct GdprExport {
    profile: ExportedProfile,
    /// The account's system roles.
    system_roles: Vec<String>,
    mfa: ExportedMfa,
    sessions: Vec<ExportedSession>,
    linked_accounts: Vec<ExportedLinkedAccount>,
    activity: Vec<ExportedActivity>,
}
