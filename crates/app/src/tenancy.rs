//! Row-level security, read and changed by operators (`steward db rls`, the admin API) and at
//! start-up when `STEWARD_RLS_ENFORCE` is on.

use steward_domain::organizations::OrgRole;
use steward_domain::tenancy::{DefaultOrgRepair, RlsReport, TenancyStore};
use steward_domain::{Actor, AuditAction, AuditEntry, RequestOrigin};

use crate::error::AppError;

/// The audit entry of a change to `enable` by `actor`.
fn change_record(actor: Actor, enable: bool, origin: RequestOrigin) -> AuditEntry {
    AuditEntry::new(
        actor,
        AuditAction::known(if enable {
            "database.rls_enabled"
        } else {
            "database.rls_disabled"
        }),
        "database",
    )
    .origin(origin)
}

/// Each organization-owned table's row-level security as it stands (`change = None`) or after
/// turning it on or off; a change that changed anything is audited as `actor`'s.
pub async fn row_level_security<S: TenancyStore>(
    store: &S,
    change: Option<bool>,
    actor: Actor,
    origin: RequestOrigin,
) -> Result<RlsReport, AppError> {
    let record = change.map(|enable| change_record(actor, enable, origin));
    Ok(store.row_level_security(change, record.as_ref()).await?)
}

/// `steward db repair-default-org`: the default organization exists, every account without an
/// organization is its user with `role`, managed devices without one are attached to it.
pub async fn repair_default_organization<S: TenancyStore>(
    store: &S,
    role: OrgRole,
    actor: Actor,
) -> Result<DefaultOrgRepair, AppError> {
    let record = AuditEntry::new(
        actor,
        AuditAction::known("organization.default_repaired"),
        "organization",
    )
    .resource_id(steward_domain::organizations::DEFAULT_ORGANIZATION_ID);
    let record = match steward_domain::organizations::DEFAULT_ORGANIZATION_ID.parse() {
        Ok(organization) => record.organization(organization),
        Err(_) => record,
    };
    Ok(store.repair_default_organization(role, &record).await?)
}
