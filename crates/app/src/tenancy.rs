//! Row-level security, read and changed by operators (`steward db rls`, the admin API) and at
//! start-up when `STEWARD_RLS_ENFORCE` is on.

use steward_domain::tenancy::{RlsReport, TenancyStore};
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
