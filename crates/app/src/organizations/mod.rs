//! Organization use cases: who may act in an organization, the organizations themselves, their
//! users and usage. Rules are the domain's (`steward_domain::organizations`): names, slugs,
//! roles, "the default organization stays", "an organization keeps an owner".

pub mod export;
mod user_import;

use chrono::Utc;
use serde_json::{Value, json};
use steward_domain::accounts::UserRecord;
use steward_domain::identity::EmailAddress;
use steward_domain::organizations::{
    OrgActor, OrgMember, OrgPermission, OrgRole, OrgRuleError, OrgUsage, OrganizationRecord, Slug,
    may_delete_organization, may_remove_org_user, may_set_org_role, parse_org_description, parse_org_name,
    parse_org_settings,
};
use steward_domain::quotas::{Limits, OrgQuota, QuotaKey};
use steward_domain::rbac::Permission;
use steward_domain::{Actor, AuditAction, AuditEntry, PageRequest, RepositoryError, RequestOrigin};
use uuid::Uuid;

use crate::error::AppError;
use crate::principal::Principal;
use crate::steward::{Steward, Store};

/// A caller's standing in one organization, as decided by [`OrganizationService::standing`].
#[derive(Debug, Clone)]
pub struct OrgStanding {
    pub user: Uuid,
    pub actor: OrgActor,
    pub organization: OrganizationRecord,
}

/// One quota of an organization: its limit (`None`: unlimited) beside its use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QuotaLine {
    pub key: QuotaKey,
    pub limit: Option<u64>,
    pub used: u64,
    /// Set for this organization rather than by its plan.
    pub overridden: bool,
}

/// An organization's quotas.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QuotaReport {
    pub plan: String,
    pub overrides: Limits,
    pub lines: Vec<QuotaLine>,
}

/// A new organization as an administrator describes it.
#[derive(Debug, Clone, Default)]
pub struct NewOrganization {
    pub name: String,
    pub slug: String,
    pub description: Option<String>,
    pub settings: Option<Value>,
    /// An existing user who becomes the first owner.
    pub owner: Option<Uuid>,
}

/// Changes to an organization; absent fields keep their value.
#[derive(Debug, Clone, Default)]
pub struct OrganizationChanges {
    pub name: Option<String>,
    pub slug: Option<String>,
    pub description: Option<String>,
    pub settings: Option<Value>,
    pub expected_version: Option<i32>,
}

/// Whom an organization user change names.
#[derive(Debug, Clone)]
pub enum UserRef {
    Id(Uuid),
    Email(String),
}

pub struct OrganizationService<'a, S> {
    steward: &'a Steward<S>,
}

fn audit(actor: Uuid, action: &'static str, organization: Uuid, origin: &RequestOrigin) -> AuditEntry {
    AuditEntry::new(Actor::admin(actor), AuditAction::known(action), "organization")
        .resource_id(organization)
        .organization(organization)
        .origin(origin.clone())
}

fn slug_taken(error: RepositoryError) -> AppError {
    match error {
        RepositoryError::Conflict(_) => AppError::conflict("this slug is taken"),
        other => other.into(),
    }
}

impl<'a, S: Store> OrganizationService<'a, S> {
    pub fn new(steward: &'a Steward<S>) -> Self {
        Self { steward }
    }

    /// The caller's standing in `organization` if it allows `need`: a system administrator
    /// whose roles and credential allow `system` reaches every organization; anyone else needs
    /// an organization role that allows `need`. Outsiders and unknown organizations are
    /// `NotFound` alike; members whose role lacks `need`, `Forbidden`.
    pub async fn standing(
        &self,
        principal: Principal,
        organization: Uuid,
        need: OrgPermission,
        system: Permission,
    ) -> Result<OrgStanding, AppError> {
        let found = self
            .steward
            .store
            .find_organization(organization)
            .await?
            .ok_or(OrgRuleError::NotFound)?;
        let principal = self.steward.auth.with_roles(principal).await?;
        let user = principal.user;
        if principal.allows(system) {
            return Ok(OrgStanding {
                user,
                actor: OrgActor::SystemAdmin,
                organization: found,
            });
        }
        let role = self
            .steward
            .store
            .org_role(organization, user)
            .await?
            .ok_or(OrgRuleError::NotFound)?;
        if !role.allows(need) {
            return Err(OrgRuleError::Forbidden("your organization role does not allow this").into());
        }
        Ok(OrgStanding {
            user,
            actor: OrgActor::Member(role),
            organization: found,
        })
    }

    /// Creates an organization (a system administrator's act).
    pub async fn create(
        &self,
        admin: Uuid,
        new: NewOrganization,
        origin: &RequestOrigin,
    ) -> Result<OrganizationRecord, AppError> {
        let now = Utc::now();
        let record = OrganizationRecord {
            id: Uuid::now_v7(),
            name: parse_org_name(&new.name)?,
            slug: Slug::parse(&new.slug)?.as_str().to_owned(),
            description: parse_org_description(new.description.as_deref()),
            status: "active".to_owned(),
            is_default: false,
            settings: parse_org_settings(new.settings)?,
            version: 1,
            created_at: now,
            updated_at: now,
            quota: steward_domain::quotas::OrgQuota {
                plan: steward_domain::quotas::DEFAULT_PLAN.to_owned(),
                overrides: Default::default(),
            },
        };
        if let Some(owner) = new.owner
            && self.steward.store.find_user(owner).await?.is_none()
        {
            return Err(OrgRuleError::Invalid {
                field: "ownerUserId",
                message: "no such user",
            }
            .into());
        }
        let entry = audit(admin, "organization.created", record.id, origin).change(
            None,
            Some(json!({"name": record.name, "slug": record.slug, "owner": new.owner})),
        );
        self.steward
            .store
            .create_organization(&record, new.owner, &entry)
            .await
            .map_err(slug_taken)?;
        Ok(record)
    }

    /// Every organization for a system administrator allowed `organizations:read`, otherwise
    /// those the caller belongs to.
    pub async fn list(
        &self,
        principal: Principal,
        page: PageRequest,
    ) -> Result<(Vec<OrganizationRecord>, u64), AppError> {
        let principal = self.steward.auth.with_roles(principal).await?;
        let everything = principal.allows(Permission::OrganizationsRead);
        let member = (!everything).then_some(principal.user);
        Ok(self.steward.store.organizations(member, page).await?)
    }

    pub async fn update(
        &self,
        standing: OrgStanding,
        changes: OrganizationChanges,
        origin: &RequestOrigin,
    ) -> Result<OrganizationRecord, AppError> {
        let mut record = standing.organization;
        if let Some(value) = changes.name {
            record.name = parse_org_name(&value)?;
        }
        if let Some(value) = changes.slug {
            record.slug = Slug::parse(&value)?.as_str().to_owned();
        }
        if let Some(value) = changes.description {
            record.description = parse_org_description(Some(&value));
        }
        if changes.settings.is_some() {
            record.settings = parse_org_settings(changes.settings)?;
        }
        let entry = audit(standing.user, "organization.updated", record.id, origin)
            .change(None, Some(json!({"name": record.name, "slug": record.slug})));
        self.steward
            .store
            .update_organization(&record, changes.expected_version, &entry)
            .await
            .map_err(slug_taken)
    }

    /// Deletes the organization; with `force`, retires the devices still in it first (in the
    /// same transaction). This instance forgets what it remembered of them at once.
    pub async fn delete(
        &self,
        standing: OrgStanding,
        force: bool,
        origin: &RequestOrigin,
    ) -> Result<(), AppError> {
        let organization = &standing.organization;
        may_delete_organization(organization)?;
        let entry = audit(standing.user, "organization.deleted", organization.id, origin);
        let retire = AuditEntry::new(
            Actor::admin(standing.user),
            AuditAction::known("device.retired"),
            "device",
        )
        .origin(origin.clone());
        let retired = self
            .steward
            .store
            .delete_organization(organization.id, force, &entry, &retire)
            .await
            .map_err(|error| match error {
                RepositoryError::Conflict(message) => AppError::conflict(message),
                other => other.into(),
            })?;
        for device in retired {
            self.steward.device_auth.forget_device(device);
            self.steward.device_states.forget(device);
        }
        Ok(())
    }

    /// Counts one request to `organization`'s routes by one of its members against its
    /// `api_requests_per_minute` quota (operators acting through a system role are not
    /// counted); past it, `RateLimited` with `Retry-After`.
    pub async fn count_request(&self, standing: &OrgStanding) -> Result<(), AppError> {
        if matches!(standing.actor, OrgActor::SystemAdmin) {
            return Ok(());
        }
        let limit = self
            .steward
            .quota_plans
            .limit(&standing.organization.quota, QuotaKey::ApiRequestsPerMinute);
        self.steward
            .organization_requests
            .count_shared(
                self.steward.shared_limits.as_deref(),
                standing.organization.id,
                limit,
                Utc::now().timestamp(),
            )
            .await
    }

    pub async fn usage(&self, organization: Uuid) -> Result<OrgUsage, AppError> {
        Ok(self.steward.store.org_usage(organization).await?)
    }

    /// The organization's plan, overrides, and each limit beside its use.
    pub async fn quotas(&self, organization: &OrganizationRecord) -> Result<QuotaReport, AppError> {
        let mut usage = self.steward.store.quota_usage(organization.id).await?;
        usage.insert(
            QuotaKey::ApiRequestsPerMinute,
            self.steward
                .organization_requests
                .used_shared(
                    self.steward.shared_limits.as_deref(),
                    organization.id,
                    Utc::now().timestamp(),
                )
                .await,
        );
        let plans = &self.steward.quota_plans;
        Ok(QuotaReport {
            plan: organization.quota.plan.clone(),
            overrides: organization.quota.overrides.clone(),
            lines: QuotaKey::ORGANIZATION
                .into_iter()
                .map(|key| QuotaLine {
                    key,
                    limit: plans.limit(&organization.quota, key),
                    used: usage.get(&key).copied().unwrap_or(0),
                    overridden: organization.quota.overrides.contains_key(&key),
                })
                .collect(),
        })
    }

    /// Sets an organization's plan (kept when `None`) and overrides (a key absent uses the
    /// plan's limit; `None` as a value is unlimited). An operator's act, audited with the values
    /// before and after. Lowering a limit below the use removes nothing; it refuses further
    /// creations.
    pub async fn set_quotas(
        &self,
        admin: Uuid,
        organization: Uuid,
        plan: Option<String>,
        overrides: Limits,
        origin: &RequestOrigin,
    ) -> Result<QuotaReport, AppError> {
        if let Some(key) = overrides.keys().find(|key| !QuotaKey::ORGANIZATION.contains(key)) {
            return Err(AppError::invalid(
                "overrides",
                format!(
                    "`{}` is an account's limit (set it on the account); an organization's are {}",
                    key.as_str(),
                    crate::quotas::organization_keys()
                ),
            ));
        }
        let found = self
            .steward
            .store
            .find_organization(organization)
            .await?
            .ok_or(OrgRuleError::NotFound)?;
        let plan = match plan {
            Some(plan) => crate::quotas::configured_plan(&self.steward.quota_plans, &plan)?,
            None => found.quota.plan.clone(),
        };
        let quota = OrgQuota { plan, overrides };
        let audit = AuditEntry::new(
            Actor::admin(admin),
            AuditAction::known("organization.quota_changed"),
            "organization",
        )
        .resource_id(organization)
        .organization(organization)
        .change(
            Some(serde_json::json!(found.quota)),
            Some(serde_json::json!(quota)),
        )
        .origin(origin.clone());
        let stored = self
            .steward
            .store
            .set_org_quota(organization, &quota, &audit)
            .await?;
        self.quotas(&stored).await
    }

    pub async fn users(&self, organization: Uuid) -> Result<Vec<OrgMember>, AppError> {
        Ok(self.steward.store.org_members(organization).await?)
    }

    /// One page of the organization's users and how many there are.
    pub async fn user_page(
        &self,
        organization: Uuid,
        page: steward_domain::PageRequest,
    ) -> Result<(Vec<OrgMember>, u64), AppError> {
        Ok(self.steward.store.org_member_page(organization, page).await?)
    }

    async fn active_user(&self, user: UserRef) -> Result<UserRecord, AppError> {
        let found = match user {
            UserRef::Id(id) => self.steward.store.find_user(id).await?,
            UserRef::Email(email) => {
                let email = EmailAddress::parse(&email).map_err(|_| OrgRuleError::Invalid {
                    field: "email",
                    message: "must be an email address",
                })?;
                self.steward.store.find_user_by_email(&email).await?
            }
        };
        Ok(found.filter(UserRecord::is_active).ok_or(OrgRuleError::Invalid {
            field: "userId",
            message: "no active account matches",
        })?)
    }

    /// Adds an active user with `role`; only owners (and system administrators) grant owner.
    pub async fn add_user(
        &self,
        standing: &OrgStanding,
        user: UserRef,
        role: OrgRole,
        origin: &RequestOrigin,
    ) -> Result<Uuid, AppError> {
        let organization = standing.organization.id;
        let actor = standing.actor;
        let user = self.active_user(user).await?;
        let entry = audit(standing.user, "organization.user_added", organization, origin);
        self.steward
            .store
            .change_org_user(
                organization,
                user.id,
                Some(role),
                move |current, owners| {
                    if current.is_some() {
                        return Err(OrgRuleError::Conflict("already a user of this organization"));
                    }
                    may_set_org_role(actor, None, role, owners)
                },
                &entry,
            )
            .await?;
        Ok(user.id)
    }

    /// Changes a user's role; the last owner stays an owner.
    pub async fn change_user_role(
        &self,
        standing: &OrgStanding,
        user: Uuid,
        role: OrgRole,
        origin: &RequestOrigin,
    ) -> Result<(), AppError> {
        let organization = standing.organization.id;
        let actor = standing.actor;
        let entry = audit(
            standing.user,
            "organization.user_role_changed",
            organization,
            origin,
        );
        self.steward
            .store
            .change_org_user(
                organization,
                user,
                Some(role),
                move |current, owners| {
                    let current = current.ok_or(OrgRuleError::NotFound)?;
                    may_set_org_role(actor, Some(current), role, owners)
                },
                &entry,
            )
            .await?;
        Ok(())
    }

    /// Removes a user; never the last owner.
    pub async fn remove_user(
        &self,
        standing: &OrgStanding,
        user: Uuid,
        origin: &RequestOrigin,
    ) -> Result<(), AppError> {
        let organization = standing.organization.id;
        let actor = standing.actor;
        let entry = audit(standing.user, "organization.user_removed", organization, origin);
        self.steward
            .store
            .change_org_user(
                organization,
                user,
                None,
                move |current, owners| {
                    let current = current.ok_or(OrgRuleError::NotFound)?;
                    may_remove_org_user(actor, current, owners)
                },
                &entry,
            )
            .await?;
        Ok(())
    }
}
