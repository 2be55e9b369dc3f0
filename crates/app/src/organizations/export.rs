//! An organization's users as a file: CSV with a header row (cells a spreadsheet would run as
//! formulas prefixed with `'`) or a JSON array of the listing's rows.

use steward_domain::organizations::OrgMember;

use crate::audit::csv_cell;

/// The columns of an organization's users in CSV.
pub const ORG_USER_CSV_HEADER: [&str; 5] = ["userId", "email", "displayName", "role", "joinedAt"];

/// The members as CSV, header first.
pub fn org_users_csv(members: &[OrgMember]) -> Result<Vec<u8>, csv::Error> {
    let mut writer = csv::Writer::from_writer(Vec::new());
    writer.write_record(ORG_USER_CSV_HEADER)?;
    for member in members {
        writer.write_record([
            member.user_id.to_string(),
            csv_cell(member.email.clone()),
            csv_cell(member.display_name.clone()),
            member.role.as_str().to_owned(),
            member.joined_at.to_rfc3339(),
        ])?;
    }
    writer
        .into_inner()
        .map_err(|error| csv::Error::from(error.into_error()))
}
