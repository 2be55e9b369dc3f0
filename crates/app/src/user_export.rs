//! The operators' account export, rendered once for the streaming endpoint and the export job:
//! CSV with a header row (cells a spreadsheet would run as formulas prefixed with `'`), or a
//! JSON array of the listing's rows.

use chrono::{DateTime, Utc};
use serde::Serialize;
use steward_domain::accounts::UserListing;
use uuid::Uuid;

use crate::audit::csv_cell;

/// The columns of an account export in CSV.
pub const USER_CSV_HEADER: [&str; 10] = [
    "id",
    "email",
    "displayName",
    "status",
    "emailVerified",
    "systemRoles",
    "organizations",
    "createdAt",
    "lastLoginAt",
    "failedLoginAttempts",
];

/// An organization an exported account belongs to.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ExportedMembership {
    pub organization_id: Uuid,
    pub role: String,
}

/// One exported account: the admin listing's row.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ExportedUser {
    pub id: Uuid,
    pub email: String,
    pub display_name: String,
    pub status: String,
    pub email_verified: bool,
    pub system_roles: Vec<String>,
    pub organizations: Vec<ExportedMembership>,
    pub created_at: DateTime<Utc>,
    pub last_login_at: Option<DateTime<Utc>>,
    pub failed_login_attempts: i32,
    pub mfa_enrolled: bool,
}

impl From<UserListing> for ExportedUser {
    fn from(listing: UserListing) -> Self {
        let user = listing.user;
        Self {
            id: user.id,
            email: user.email,
            display_name: user.display_name,
            status: user.status,
            email_verified: user.email_verified_at.is_some(),
            system_roles: listing.roles,
            organizations: listing
                .organizations
                .into_iter()
                .map(|(organization_id, role)| ExportedMembership {
                    organization_id,
                    role,
                })
                .collect(),
            created_at: user.created_at,
            last_login_at: user.last_login_at,
            failed_login_attempts: listing.failed_attempts,
            mfa_enrolled: listing.mfa_enrolled,
        }
    }
}

/// Accounts as CSV lines (with the header row first when `header`).
pub fn user_csv_rows(users: &[ExportedUser], header: bool) -> Result<Vec<u8>, csv::Error> {
    let mut writer = csv::Writer::from_writer(Vec::new());
    if header {
        writer.write_record(USER_CSV_HEADER)?;
    }
    for user in users {
        let organizations: Vec<String> = user
            .organizations
            .iter()
            .map(|o| format!("{}:{}", o.organization_id, o.role))
            .collect();
        writer.write_record(
            [
                user.id.to_string(),
                user.email.clone(),
                user.display_name.clone(),
                user.status.clone(),
                user.email_verified.to_string(),
                user.system_roles.join(";"),
                organizations.join(";"),
                user.created_at.to_rfc3339(),
                user.last_login_at.map(|at| at.to_rfc3339()).unwrap_or_default(),
                user.failed_login_attempts.to_string(),
            ]
            .map(csv_cell),
        )?;
    }
    writer
        .into_inner()
        .map_err(|error| csv::Error::from(error.into_error()))
}

/// Accounts as the inside of a JSON array (a comma before each but the very first).
pub fn user_json_rows(users: &[ExportedUser], first: bool) -> Result<Vec<u8>, serde_json::Error> {
    let mut out = Vec::new();
    for (index, user) in users.iter().enumerate() {
        if !(first && index == 0) {
            out.push(b',');
        }
        serde_json::to_writer(&mut out, user)?;
    }
    Ok(out)
}
