//! Every group with its members as a file, rendered once for the streaming endpoint and the
//! export job: a JSON array of groups as the admin API's group detail shows them, or CSV with a
//! row per group and member (cells a spreadsheet would run as formulas prefixed with `'`).

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::{Value, json};
use steward_domain::group_admin::{GroupFilter, GroupKind, GroupListing};
use steward_domain::group_store::MemberProfile;
use steward_domain::groups::GroupRole;
use uuid::Uuid;

use crate::audit::csv_cell;
use crate::error::AppError;

/// The columns of a group export in CSV.
pub const GROUP_CSV_HEADER: [&str; 13] = [
    "groupId",
    "name",
    "kind",
    "organizationId",
    "ownerId",
    "memberCount",
    "archivedAt",
    "createdAt",
    "userId",
    "email",
    "displayName",
    "role",
    "joinedAt",
];

/// A group's owner in an export.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ExportedOwner {
    pub user_id: Uuid,
    pub email: String,
    pub display_name: String,
}

/// A member in an export.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ExportedMember {
    pub user_id: Uuid,
    pub email: String,
    pub display_name: String,
    pub role: GroupRole,
    pub joined_at: DateTime<Utc>,
}

/// One exported group: the admin API's group detail.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ExportedGroup {
    pub id: Uuid,
    pub name: String,
    pub description: Option<String>,
    /// `family` or `fleet`.
    pub kind: String,
    pub organization_id: Option<Uuid>,
    pub member_count: u64,
    pub owner: Option<ExportedOwner>,
    pub archived_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub version: i32,
    pub members: Vec<ExportedMember>,
}

impl ExportedGroup {
    pub fn new(listing: GroupListing, members: Vec<MemberProfile>) -> Self {
        Self {
            kind: listing.kind().as_str().to_owned(),
            id: listing.group.id,
            name: listing.group.name,
            description: listing.group.description,
            organization_id: listing.organization_id,
            member_count: listing.member_count,
            owner: listing.owner.map(|owner| ExportedOwner {
                user_id: owner.user_id,
                email: owner.email,
                display_name: owner.display_name,
            }),
            archived_at: listing.group.archived_at,
            created_at: listing.group.created_at,
            version: listing.group.version,
            members: members
                .into_iter()
                .map(|member| ExportedMember {
                    user_id: member.user_id,
                    email: member.email,
                    display_name: member.display_name,
                    role: member.role,
                    joined_at: member.joined_at,
                })
                .collect(),
        }
    }
}

/// Groups as CSV lines, a row per member (a group without members: one row with empty member
/// cells), with the header row first when `header`.
pub fn group_csv_rows(groups: &[ExportedGroup], header: bool) -> Result<Vec<u8>, csv::Error> {
    let mut writer = csv::Writer::from_writer(Vec::new());
    if header {
        writer.write_record(GROUP_CSV_HEADER)?;
    }
    for group in groups {
        let cells = [
            group.id.to_string(),
            csv_cell(group.name.clone()),
            group.kind.clone(),
            group.organization_id.map(|id| id.to_string()).unwrap_or_default(),
            group
                .owner
                .as_ref()
                .map(|owner| owner.user_id.to_string())
                .unwrap_or_default(),
            group.member_count.to_string(),
            group.archived_at.map(|at| at.to_rfc3339()).unwrap_or_default(),
            group.created_at.to_rfc3339(),
        ];
        if group.members.is_empty() {
            writer.write_record(cells.iter().cloned().chain(std::iter::repeat_n(String::new(), 5)))?;
        }
        for member in &group.members {
            writer.write_record(cells.iter().cloned().chain([
                member.user_id.to_string(),
                csv_cell(member.email.clone()),
                csv_cell(member.display_name.clone()),
                member.role.as_str().to_owned(),
                member.joined_at.to_rfc3339(),
            ]))?;
        }
    }
    writer
        .into_inner()
        .map_err(|error| csv::Error::from(error.into_error()))
}

/// Groups as JSON array elements, comma-separated; the first of the whole array (`first`)
/// without a leading comma.
pub fn group_json_rows(groups: &[ExportedGroup], first: bool) -> Result<Vec<u8>, serde_json::Error> {
    let mut out = Vec::new();
    for (index, group) in groups.iter().enumerate() {
        if !(first && index == 0) {
            out.push(b',');
        }
        serde_json::to_writer(&mut out, group)?;
    }
    Ok(out)
}

/// The filter as a job keeps it.
pub fn filter_to_json(filter: &GroupFilter) -> Value {
    json!({
        "q": filter.text,
        "kind": filter.kind.map(GroupKind::as_str),
        "organizationId": filter.organization,
        "archived": filter.archived,
        "ownerId": filter.owner,
    })
}

/// The filter a job kept.
pub fn filter_from_json(value: &Value) -> Result<GroupFilter, AppError> {
    let unreadable = || AppError::validation("the export's filter is unreadable");
    let text = |key: &str| value.get(key).and_then(Value::as_str).map(str::to_owned);
    let id = |key: &str| -> Result<Option<Uuid>, AppError> {
        text(key)
            .map(|id| id.parse().map_err(|_| unreadable()))
            .transpose()
    };
    Ok(GroupFilter {
        text: text("q"),
        kind: text("kind")
            .map(|kind| GroupKind::parse(&kind).ok_or_else(unreadable))
            .transpose()?,
        organization: id("organizationId")?,
        archived: value.get("archived").and_then(Value::as_bool),
        owner: id("ownerId")?,
        after: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_filter_survives_the_jobs_parameters() {
        let filter = GroupFilter {
            text: Some("smith".into()),
            kind: Some(GroupKind::Family),
            organization: Some(Uuid::now_v7()),
            archived: Some(false),
            owner: Some(Uuid::now_v7()),
            after: None,
        };
        assert_eq!(filter_from_json(&filter_to_json(&filter)).unwrap(), filter);
        assert_eq!(filter_from_json(&json!({})).unwrap(), GroupFilter::default());
        assert!(filter_from_json(&json!({"kind": "castle"})).is_err());
    }

    #[test]
    fn json_rows_join_across_pages() {
        assert_eq!(group_json_rows(&[], true).unwrap(), b"");
    }
}
