//! Organizations (B2B tenants) and their users: roles owner > admin > viewer, slugs, and the
//! rule that an organization never loses its last owner.

use std::future::Future;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use uuid::Uuid;

mod user_import;

pub use crate::rules::{RuleError as OrgRuleError, RuleStoreError as OrgStoreError};
use crate::{AuditEntry, PageRequest, RepositoryError};
pub use user_import::*;

/// A user's role in an organization, most powerful first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OrgRole {
    Owner,
    Admin,
    Viewer,
    /// Belongs to the organization (the default organization's users, seed 002's tenant
    /// member) without reading any of it: its routes answer 403.
    Member,
}

impl OrgRole {
    pub const ALL: [OrgRole; 4] = [Self::Owner, Self::Admin, Self::Viewer, Self::Member];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Owner => "owner",
            Self::Admin => "admin",
            Self::Viewer => "viewer",
            Self::Member => "member",
        }
    }

    pub fn parse(value: &str) -> Option<Self> {
        Self::ALL
            .into_iter()
            .find(|role| role.as_str().eq_ignore_ascii_case(value.trim()))
    }

    fn rank(self) -> u8 {
        match self {
            Self::Owner => 3,
            Self::Admin => 2,
            Self::Viewer => 1,
            Self::Member => 0,
        }
    }

    pub fn allows(self, permission: OrgPermission) -> bool {
        match permission {
            OrgPermission::View => self.rank() >= 1,
            OrgPermission::Manage | OrgPermission::ManageUsers => self.rank() >= 2,
            OrgPermission::Delete => self == Self::Owner,
        }
    }
}

/// The default organization's fixed id (migration `m20260701_000011_organizations`).
pub const DEFAULT_ORGANIZATION_ID: &str = "00000000-0000-7000-8000-000000000001";

/// What an organization role may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum OrgPermission {
    View,
    /// Settings, policies, devices, enrollment.
    Manage,
    ManageUsers,
    Delete,
}

/// An organization's URL name: 3 to 63 of `a-z`, `0-9` and inner `-`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Slug(String);

impl Slug {
    pub fn parse(value: &str) -> Result<Self, OrgRuleError> {
        let slug = value.trim();
        let valid = (3..=63).contains(&slug.len())
            && slug
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
            && !slug.starts_with('-')
            && !slug.ends_with('-')
            && !slug.contains("--");
        if valid {
            Ok(Self(slug.to_owned()))
        } else {
            Err(OrgRuleError::Invalid {
                field: "slug",
                message: "must be 3 to 63 lower-case letters, digits and single inner dashes",
            })
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// An organization's display name: 1 to 200 characters once trimmed.
pub fn parse_org_name(value: &str) -> Result<String, OrgRuleError> {
    let trimmed = value.trim();
    if trimmed.is_empty() || trimmed.chars().count() > 200 {
        return Err(OrgRuleError::Invalid {
            field: "name",
            message: "must be 1 to 200 characters",
        });
    }
    Ok(trimmed.to_owned())
}

/// An organization's description: trimmed; blank means none.
pub fn parse_org_description(value: Option<&str>) -> Option<String> {
    value.map(str::trim).filter(|d| !d.is_empty()).map(str::to_owned)
}

/// An organization's free-form settings: a JSON object, or none (`null`).
pub fn parse_org_settings(
    value: Option<serde_json::Value>,
) -> Result<Option<serde_json::Value>, OrgRuleError> {
    match value {
        Some(serde_json::Value::Object(map)) => Ok(Some(serde_json::Value::Object(map))),
        None | Some(serde_json::Value::Null) => Ok(None),
        Some(_) => Err(OrgRuleError::Invalid {
            field: "settings",
            message: "must be an object",
        }),
    }
}

/// An organization role as clients name it.
pub fn parse_org_role(value: &str) -> Result<OrgRole, OrgRuleError> {
    OrgRole::parse(value).ok_or(OrgRuleError::Invalid {
        field: "role",
        message: "must be owner, admin, viewer or member",
    })
}

/// Whether `organization` may be deleted at all: the default organization holds everything
/// that belongs to no tenant and stays.
pub fn may_delete_organization(organization: &OrganizationRecord) -> Result<(), OrgRuleError> {
    if organization.is_default {
        return Err(OrgRuleError::Conflict(
            "the default organization cannot be deleted",
        ));
    }
    Ok(())
}

/// Who changes an organization's users: one of its members, or a system administrator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OrgActor {
    Member(OrgRole),
    SystemAdmin,
}

impl OrgActor {
    fn may_manage_users(self) -> bool {
        match self {
            Self::SystemAdmin => true,
            Self::Member(role) => role.allows(OrgPermission::ManageUsers),
        }
    }

    fn is_owner_or_system(self) -> bool {
        matches!(self, Self::SystemAdmin | Self::Member(OrgRole::Owner))
    }
}

/// Whether `actor` may set `target` (currently `current`, `None` when adding) to `new_role`,
/// given how many owners the organization has. Only owners (and system admins) touch owners.
pub fn may_set_org_role(
    actor: OrgActor,
    current: Option<OrgRole>,
    new_role: OrgRole,
    owners: usize,
) -> Result<(), OrgRuleError> {
    if !actor.may_manage_users() {
        return Err(OrgRuleError::Forbidden(
            "your organization role does not allow this",
        ));
    }
    let touches_owner = new_role == OrgRole::Owner || current == Some(OrgRole::Owner);
    if touches_owner && !actor.is_owner_or_system() {
        return Err(OrgRuleError::Forbidden(
            "only owners grant or change the owner role",
        ));
    }
    if current == Some(OrgRole::Owner) && new_role != OrgRole::Owner && owners <= 1 {
        return Err(OrgRuleError::Conflict("an organization keeps at least one owner"));
    }
    Ok(())
}

/// Whether `actor` may remove `target` (holding `current`).
pub fn may_remove_org_user(actor: OrgActor, current: OrgRole, owners: usize) -> Result<(), OrgRuleError> {
    if !actor.may_manage_users() {
        return Err(OrgRuleError::Forbidden(
            "your organization role does not allow this",
        ));
    }
    if current == OrgRole::Owner {
        if !actor.is_owner_or_system() {
            return Err(OrgRuleError::Forbidden("only owners remove owners"));
        }
        if owners <= 1 {
            return Err(OrgRuleError::Conflict("an organization keeps at least one owner"));
        }
    }
    Ok(())
}

/// An organization as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrganizationRecord {
    pub id: Uuid,
    pub name: String,
    pub slug: String,
    pub description: Option<String>,
    pub status: String,
    pub is_default: bool,
    pub settings: Option<Value>,
    pub version: i32,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// Its plan and per-limit overrides.
    pub quota: crate::quotas::OrgQuota,
}

/// An organization user with their profile.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrgMember {
    pub user_id: Uuid,
    pub email: String,
    pub display_name: String,
    pub role: OrgRole,
    pub joined_at: DateTime<Utc>,
}

/// Counts for the usage view.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct OrgUsage {
    pub devices_by_status: std::collections::BTreeMap<String, u64>,
    pub users: u64,
    pub policies: u64,
    pub enrollment_tokens: u64,
}

pub trait OrganizationStore {
    /// `Conflict` when the slug is taken.
    fn create_organization(
        &self,
        organization: &OrganizationRecord,
        owner: Option<Uuid>,
        audit: &AuditEntry,
    ) -> impl Future<Output = Result<(), RepositoryError>> + Send;

    fn find_organization(
        &self,
        id: Uuid,
    ) -> impl Future<Output = Result<Option<OrganizationRecord>, RepositoryError>> + Send;

    /// The organization with this slug (lower case).
    fn find_organization_by_slug(
        &self,
        slug: &str,
    ) -> impl Future<Output = Result<Option<OrganizationRecord>, RepositoryError>> + Send;

    /// All organizations (`None`) or those `user` belongs to.
    fn organizations(
        &self,
        member: Option<Uuid>,
        page: PageRequest,
    ) -> impl Future<Output = Result<(Vec<OrganizationRecord>, u64), RepositoryError>> + Send;

    fn update_organization(
        &self,
        organization: &OrganizationRecord,
        expected_version: Option<i32>,
        audit: &AuditEntry,
    ) -> impl Future<Output = Result<OrganizationRecord, RepositoryError>> + Send;

    /// Deletes a (non-default) organization and what it owns. Its devices decide: without
    /// `force`, any device still in the organization refuses the deletion (`Conflict`); with
    /// it, each is retired in the same transaction — unmanaged, out of the organization,
    /// device tokens revoked, open commands expired, settings version bumped, a push queued,
    /// `retire_audit` recorded per device. Answers the retired devices.
    fn delete_organization(
        &self,
        id: Uuid,
        force: bool,
        audit: &AuditEntry,
        retire_audit: &AuditEntry,
    ) -> impl Future<Output = Result<Vec<Uuid>, RepositoryError>> + Send;

    fn org_role(
        &self,
        organization: Uuid,
        user: Uuid,
    ) -> impl Future<Output = Result<Option<OrgRole>, RepositoryError>> + Send;

    fn org_members(
        &self,
        organization: Uuid,
    ) -> impl Future<Output = Result<Vec<OrgMember>, RepositoryError>> + Send;

    /// One page of the organization's users, oldest membership first, and how many there are.
    fn org_member_page(
        &self,
        organization: Uuid,
        page: crate::PageRequest,
    ) -> impl Future<Output = Result<(Vec<OrgMember>, u64), RepositoryError>> + Send;

    /// Sets (adds or changes) or, with `None`, removes `user`'s role after `decide` approves it
    /// on data read under the organization's row lock (current role, owner count).
    fn change_org_user<F>(
        &self,
        organization: Uuid,
        user: Uuid,
        role: Option<OrgRole>,
        decide: F,
        audit: &AuditEntry,
    ) -> impl Future<Output = Result<(), OrgStoreError>> + Send
    where
        F: FnOnce(Option<OrgRole>, usize) -> Result<(), OrgRuleError> + Send;

    fn org_usage(&self, organization: Uuid)
    -> impl Future<Output = Result<OrgUsage, RepositoryError>> + Send;

    /// How much of each quota the organization uses now.
    fn quota_usage(
        &self,
        organization: Uuid,
    ) -> impl Future<
        Output = Result<std::collections::BTreeMap<crate::quotas::QuotaKey, u64>, RepositoryError>,
    > + Send;

    /// Every organization that has a limit under `plans`, with its use of each
    /// [`QuotaKey::ORGANIZATION`](crate::quotas::QuotaKey::ORGANIZATION) key (a few grouped
    /// counts, for the utilisation metrics).
    fn limited_organizations_usage(
        &self,
        plans: &crate::quotas::QuotaPlans,
    ) -> impl Future<Output = Result<Vec<OrganizationUsage>, RepositoryError>> + Send;

    /// Gives the organization a plan and overrides (its version goes up). `NotFound` when
    /// there is no such organization.
    fn set_org_quota(
        &self,
        organization: Uuid,
        quota: &crate::quotas::OrgQuota,
        audit: &AuditEntry,
    ) -> impl Future<Output = Result<OrganizationRecord, RepositoryError>> + Send;
}

/// One organization's quota and its use of each limit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrganizationUsage {
    pub id: Uuid,
    pub slug: String,
    pub quota: crate::quotas::OrgQuota,
    pub used: std::collections::BTreeMap<crate::quotas::QuotaKey, u64>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_settings_and_roles_are_checked() {
        assert_eq!(parse_org_name("  Acme  ").as_deref(), Ok("Acme"));
        assert!(parse_org_name("   ").is_err());
        assert!(parse_org_name(&"x".repeat(201)).is_err());
        assert!(parse_org_name(&"é".repeat(200)).is_ok());
        assert_eq!(parse_org_description(Some("  ")), None);
        assert_eq!(parse_org_settings(Some(serde_json::json!(null))), Ok(None));
        assert!(parse_org_settings(Some(serde_json::json!([1]))).is_err());
        assert_eq!(parse_org_role("admin"), Ok(OrgRole::Admin));
        assert!(parse_org_role("root").is_err());
    }

    #[test]
    fn the_default_organization_stays() {
        let now = chrono::Utc::now();
        let mut organization = OrganizationRecord {
            id: Uuid::nil(),
            name: "Default".to_owned(),
            slug: "default".to_owned(),
            description: None,
            status: "active".to_owned(),
            is_default: true,
            settings: None,
            version: 1,
            created_at: now,
            updated_at: now,
            quota: crate::quotas::OrgQuota::default(),
        };
        assert!(matches!(
            may_delete_organization(&organization),
            Err(OrgRuleError::Conflict(_))
        ));
        organization.is_default = false;
        assert_eq!(may_delete_organization(&organization), Ok(()));
    }

    #[test]
    fn slugs_are_url_safe() {
        assert!(Slug::parse("acme-corp").is_ok());
        for bad in [
            "ab",
            "Acme",
            "-acme",
            "acme-",
            "ac--me",
            "acme corp",
            &"a".repeat(64),
        ] {
            assert!(Slug::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn every_actor_on_every_role_change_keeps_an_owner() {
        use OrgRole::*;
        let actors = [
            OrgActor::SystemAdmin,
            OrgActor::Member(Owner),
            OrgActor::Member(Admin),
            OrgActor::Member(Viewer),
        ];
        for actor in actors {
            for current in [None, Some(Owner), Some(Admin), Some(Viewer)] {
                for new_role in OrgRole::ALL {
                    for owners in [1usize, 2] {
                        let outcome = may_set_org_role(actor, current, new_role, owners);
                        let manager = !matches!(actor, OrgActor::Member(Viewer));
                        let strong = matches!(actor, OrgActor::SystemAdmin | OrgActor::Member(Owner));
                        let touches_owner = new_role == Owner || current == Some(Owner);
                        let loses_last = current == Some(Owner) && new_role != Owner && owners == 1;
                        let expected = manager && (!touches_owner || strong) && !loses_last;
                        assert_eq!(
                            outcome.is_ok(),
                            expected,
                            "{actor:?} {current:?}→{new_role:?} owners={owners}"
                        );
                    }
                }
            }
            for current in OrgRole::ALL {
                for owners in [1usize, 2] {
                    let outcome = may_remove_org_user(actor, current, owners);
                    let manager = !matches!(actor, OrgActor::Member(Viewer));
                    let strong = matches!(actor, OrgActor::SystemAdmin | OrgActor::Member(Owner));
                    let expected = manager && (current != Owner || (strong && owners > 1));
                    assert_eq!(
                        outcome.is_ok(),
                        expected,
                        "{actor:?} removes {current:?} owners={owners}"
                    );
                }
            }
        }
    }
}
