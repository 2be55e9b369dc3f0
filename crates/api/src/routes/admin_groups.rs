//! `/api/admin/v1/groups`: every group for operators (`groups:read`), and ownership transfers
//! they force (`groups:manage`).

use actix_web::{HttpResponse, get, post, web};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use steward_app::groups::GroupAdminService;
use steward_app::groups::export::{group_csv_rows, group_json_rows};
use steward_domain::group_admin::{GroupFilter, GroupKind, GroupListing};
use steward_domain::group_store::MemberProfile;
use steward_domain::groups::GroupRole;
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use crate::auth::{RequirePermission, permissions};
use crate::envelope::{self, Envelope, ListEnvelope};
use crate::error::{ApiError, ErrorEnvelope};
use crate::extractors::{Json, Origin, PageQuery};
use crate::state::AppState;

/// Filters of the group listing; each present filter narrows the result.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(rename_all = "camelCase")]
#[into_params(parameter_in = Query, rename_all = "camelCase")]
pub struct GroupListQuery {
    /// Part of the name, case-insensitive (at most 200 characters).
    pub q: Option<String>,
    /// `family` (people's groups) or `fleet` (organizations' groups).
    pub kind: Option<String>,
    /// Fleet groups of this organization.
    pub organization_id: Option<Uuid>,
    /// `true`: archived groups only; `false`: live ones only.
    pub archived: Option<bool>,
    /// Groups this user owns.
    pub owner_id: Option<Uuid>,
}

impl GroupListQuery {
    fn into_filter(self) -> Result<GroupFilter, ApiError> {
        let text = self.q.map(|q| q.trim().to_owned()).filter(|q| !q.is_empty());
        if text.as_deref().is_some_and(|q| q.chars().count() > 200) {
            return Err(ApiError::invalid("q", "must be at most 200 characters"));
        }
        if text.as_deref().is_some_and(|q| q.chars().any(char::is_control)) {
            return Err(ApiError::invalid("q", "must not contain control characters"));
        }
        let kind = match self.kind.as_deref() {
            None => None,
            Some(kind) => Some(
                GroupKind::parse(kind).ok_or_else(|| ApiError::invalid("kind", "must be family or fleet"))?,
            ),
        };
        Ok(GroupFilter {
            text,
            kind,
            organization: self.organization_id,
            archived: self.archived,
            owner: self.owner_id,
            after: None,
        })
    }
}

/// A group's owner.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct GroupOwnerView {
    pub user_id: Uuid,
    pub email: String,
    pub display_name: String,
}

/// A group as operators see it.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AdminGroupView {
    pub id: Uuid,
    pub name: String,
    pub description: Option<String>,
    /// `family` or `fleet`.
    pub kind: String,
    /// The organization of a fleet group.
    pub organization_id: Option<Uuid>,
    pub member_count: u64,
    /// `null` for an archived group whose owner left.
    pub owner: Option<GroupOwnerView>,
    pub archived_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub version: i32,
}

impl From<GroupListing> for AdminGroupView {
    fn from(listing: GroupListing) -> Self {
        Self {
            kind: listing.kind().as_str().to_owned(),
            id: listing.group.id,
            name: listing.group.name,
            description: listing.group.description,
            organization_id: listing.organization_id,
            member_count: listing.member_count,
            owner: listing.owner.map(|owner| GroupOwnerView {
                user_id: owner.user_id,
                email: owner.email,
                display_name: owner.display_name,
            }),
            archived_at: listing.group.archived_at,
            created_at: listing.group.created_at,
            version: listing.group.version,
        }
    }
}

/// A member as operators see them.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AdminMemberView {
    pub user_id: Uuid,
    pub email: String,
    pub display_name: String,
    #[schema(value_type = String, example = "member")]
    pub role: GroupRole,
    pub joined_at: DateTime<Utc>,
}

/// One group with its members, most powerful first.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AdminGroupDetail {
    #[serde(flatten)]
    pub group: AdminGroupView,
    pub members: Vec<AdminMemberView>,
}

fn detail((listing, members): (GroupListing, Vec<MemberProfile>)) -> AdminGroupDetail {
    AdminGroupDetail {
        group: AdminGroupView::from(listing),
        members: members
            .into_iter()
            .map(|member| AdminMemberView {
                user_id: member.user_id,
                email: member.email,
                display_name: member.display_name,
                role: member.role,
                joined_at: member.joined_at,
            })
            .collect(),
    }
}

/// Every group, newest first (`groups:read`): family groups and organizations' fleet groups,
/// with owner and member count. Deleted groups are not listed.
#[utoipa::path(
    operation_id = "admin_list_groups",
    tag = "admin",
    security(("bearer" = [])),
    params(GroupListQuery, PageQuery),
    responses(
        (status = 200, body = ListEnvelope<AdminGroupView>),
        (status = 400, body = ErrorEnvelope),
        (status = 403, body = ErrorEnvelope),
    )
)]
#[get("/groups")]
pub async fn list_groups(
    state: web::Data<AppState>,
    _admin: RequirePermission<permissions::GroupsRead>,
    query: web::Query<GroupListQuery>,
    page: web::Query<PageQuery>,
) -> Result<HttpResponse, ApiError> {
    let page = page.into_inner().into_request()?;
    let filter = query.into_inner().into_filter()?;
    let (listings, total) = GroupAdminService::new(&state.store).list(&filter, page).await?;
    let items: Vec<AdminGroupView> = listings.into_iter().map(AdminGroupView::from).collect();
    Ok(envelope::page(items, page, total))
}

/// The export's format.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct GroupExportFormat {
    /// `json` (default: an array of groups as `GET /groups/{groupId}` answers them, members
    /// included) or `csv` (a row per group and member, `groupId,name,kind,organizationId,
    /// ownerId,memberCount,archivedAt,createdAt,userId,email,displayName,role,joinedAt`; a group
    /// without members has one row with empty member cells).
    pub format: Option<String>,
}

/// Export every group the listing's filters select, with its members (`groups:read`), newest
/// first, streamed a page of 100 groups at a time: JSON (an array of group details) or CSV (a
/// row per group and member); cells a spreadsheet would run as formulas start with `'`.
#[utoipa::path(
    operation_id = "admin_export_groups",
    tag = "admin",
    security(("bearer" = [])),
    params(GroupListQuery, GroupExportFormat),
    responses(
        (status = 200, description = "`groups.json` or `groups.csv`, as an attachment", content(
            (Vec<AdminGroupDetail> = "application/json"),
            (String = "text/csv"),
        )),
        (status = 400, description = "A filter that does not parse, or a format other than `json` or `csv`", body = ErrorEnvelope),
        (status = 403, body = ErrorEnvelope),
    )
)]
#[get("/groups/export")]
pub async fn export_groups(
    state: web::Data<AppState>,
    _admin: RequirePermission<permissions::GroupsRead>,
    query: web::Query<GroupListQuery>,
    format: web::Query<GroupExportFormat>,
) -> Result<HttpResponse, ApiError> {
    const BATCH: u64 = 100;
    let csv = match format.format.as_deref() {
        None | Some("json") => false,
        Some("csv") => true,
        Some(_) => return Err(ApiError::invalid("format", "must be json or csv")),
    };
    let filter = query.into_inner().into_filter()?;
    // The first page is read before the answer starts: a failure is still a proper error.
    let first_page = GroupAdminService::new(&state.store)
        .export_page(&filter, None, BATCH)
        .await?;
    // (the page when already read, or the cursor to read it after; nothing written yet), or
    // None when done. Pages follow a keyset cursor: groups created or deleted meanwhile
    // neither repeat nor hide others.
    type Stage = (
        Option<steward_app::groups::ExportPage>,
        Option<(DateTime<Utc>, Uuid)>,
        bool,
    );
    let start: Option<Stage> = Some((Some(first_page), None, true));
    let stream = futures_util::stream::unfold(start, move |stage| {
        let (state, filter) = (state.clone(), filter.clone());
        async move {
            let (read, cursor, first) = stage?;
            let fetched = match read {
                Some(page) => Ok(page),
                None => {
                    GroupAdminService::new(&state.store)
                        .export_page(&filter, cursor, BATCH)
                        .await
                }
            };
            let page = match fetched {
                Ok(page) => page,
                Err(error) => {
                    tracing::error!(%error, "group export failed mid-stream");
                    return Some((Err(actix_web::Error::from(ApiError::from(error))), None));
                }
            };
            let (groups, next) = (page.groups, page.next);
            let last = page.last;
            let mut chunk = Vec::new();
            if csv {
                match group_csv_rows(&groups, first) {
                    Ok(bytes) => chunk.extend_from_slice(&bytes),
                    Err(_) => return Some((Err(ApiError::internal().into()), None)),
                }
            } else {
                if first {
                    chunk.push(b'[');
                }
                match group_json_rows(&groups, first) {
                    Ok(bytes) => chunk.extend_from_slice(&bytes),
                    Err(_) => return Some((Err(ApiError::internal().into()), None)),
                }
                if last {
                    chunk.push(b']');
                }
            }
            let stage: Option<Stage> = (!last).then_some((None, next, false));
            Some((Ok(web::Bytes::from(chunk)), stage))
        }
    });
    let (content_type, name) = if csv {
        ("text/csv; charset=utf-8", "groups.csv")
    } else {
        ("application/json", "groups.json")
    };
    Ok(crate::envelope::attachment(content_type, name).streaming(stream))
}

/// Export the groups matching the listing's filters, with their members, as a background job
/// (`groups:read`): `202` at once with `Location: /api/admin/v1/jobs/{id}`; the job's file
/// (`GET /jobs/{id}/result`) is the export, as `GET /groups/export` streams it.
#[utoipa::path(
    operation_id = "admin_export_groups_job",
    tag = "admin",
    security(("bearer" = [])),
    params(GroupListQuery, GroupExportFormat),
    responses(
        (status = 202, description = "The export job, at `Location`", body = Envelope<crate::routes::jobs::JobView>),
        (status = 400, description = "A filter or format that does not parse", body = ErrorEnvelope),
        (status = 403, description = "Without `groups:read`", body = ErrorEnvelope),
        (status = 429, description = "Ten of your jobs are already waiting or running", body = ErrorEnvelope),
    )
)]
#[post("/groups/export")]
pub async fn export_groups_job(
    state: web::Data<AppState>,
    admin: RequirePermission<permissions::GroupsRead>,
    origin: Origin,
    query: web::Query<GroupListQuery>,
    format: web::Query<GroupExportFormat>,
) -> Result<HttpResponse, ApiError> {
    let csv = match format.format.as_deref() {
        None | Some("json") => false,
        Some("csv") => true,
        Some(_) => return Err(ApiError::invalid("format", "must be json or csv")),
    };
    let filter = query.into_inner().into_filter()?;
    let job = steward_app::jobs::JobService::new(&state)
        .submit_group_export(&admin.0.principal, &filter, csv, &origin.0)
        .await?;
    Ok(crate::routes::jobs::accepted(job))
}

/// One group with its members (`groups:read`); deleted groups are 404.
#[utoipa::path(
    operation_id = "admin_get_group",
    tag = "admin",
    security(("bearer" = [])),
    params(("groupId" = Uuid, Path)),
    responses(
        (status = 200, body = Envelope<AdminGroupDetail>),
        (status = 403, body = ErrorEnvelope),
        (status = 404, body = ErrorEnvelope),
    )
)]
#[get("/groups/{groupId}")]
pub async fn get_group(
    state: web::Data<AppState>,
    _admin: RequirePermission<permissions::GroupsRead>,
    path: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    let found = GroupAdminService::new(&state.store)
        .detail(path.into_inner())
        .await?;
    Ok(envelope::ok(detail(found)))
}

/// Who is to own the group.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ForceTransferRequest {
    /// A member of the group.
    pub user_id: Uuid,
}

/// Make a member the group's owner (`groups:manage`); the owner so far becomes an admin.
/// Audited as `admin.group_ownership_transferred` with the roles before and after.
#[utoipa::path(
    operation_id = "admin_transfer_group",
    tag = "admin",
    security(("bearer" = [])),
    params(("groupId" = Uuid, Path)),
    request_body = ForceTransferRequest,
    responses(
        (status = 200, body = Envelope<AdminGroupDetail>),
        (status = 400, description = "Not a member, or already the owner", body = ErrorEnvelope),
        (status = 403, body = ErrorEnvelope),
        (status = 404, body = ErrorEnvelope),
        (status = 409, description = "The group is archived", body = ErrorEnvelope),
    )
)]
#[post("/groups/{groupId}/transfer")]
pub async fn transfer_group(
    state: web::Data<AppState>,
    admin: RequirePermission<permissions::GroupsManage>,
    origin: Origin,
    path: web::Path<Uuid>,
    body: Json<ForceTransferRequest>,
) -> Result<HttpResponse, ApiError> {
    let found = GroupAdminService::new(&state.store)
        .transfer_ownership(admin.0.user_id, path.into_inner(), body.user_id, &origin.0)
        .await?;
    Ok(envelope::ok(detail(found)))
}
