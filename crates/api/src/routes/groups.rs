//! `/api/v1/groups`: family and team groups, their members, roles and invites.

use actix_web::{HttpRequest, HttpResponse, delete, get, post, put, web};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use steward_domain::group_store::{GroupInvite, GroupSummary, MemberProfile};
use steward_domain::groups::{GroupPermission, GroupRole};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::auth::Caller;
use crate::auth::scopes::{GroupsRead, GroupsWrite};
use crate::envelope::{self, Envelope, ListEnvelope};
use crate::error::{ApiError, ErrorEnvelope};
use crate::extractors::{Json, Origin, PageQuery};
use crate::groups::{GroupAccess, GroupService, GroupUpdate, InviteRequest, actions};
use crate::state::AppState;

/// A group as the caller sees it.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct GroupView {
    pub id: Uuid,
    pub name: String,
    pub description: Option<String>,
    /// The caller's role: owner, admin, member or viewer.
    #[schema(value_type = String, example = "owner")]
    pub my_role: GroupRole,
    pub member_count: u64,
    pub version: i32,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// Set when the only owner's account was deleted and no admin could take over; archived
    /// groups are read-only.
    pub archived_at: Option<DateTime<Utc>>,
}

impl From<GroupSummary> for GroupView {
    fn from(summary: GroupSummary) -> Self {
        Self {
            id: summary.group.id,
            name: summary.group.name,
            description: summary.group.description,
            my_role: summary.my_role,
            member_count: summary.member_count,
            version: summary.group.version,
            created_at: summary.group.created_at,
            updated_at: summary.group.updated_at,
            archived_at: summary.group.archived_at,
        }
    }
}

fn versioned(view: GroupView) -> HttpResponse {
    let etag = format!("\"{}\"", view.version);
    let mut response = envelope::ok(view);
    if let Ok(value) = actix_web::http::header::HeaderValue::from_str(&etag) {
        response
            .headers_mut()
            .insert(actix_web::http::header::ETAG, value);
    }
    response
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CreateGroupRequest {
    /// 1 to 100 characters.
    pub name: String,
    /// At most 1000 characters.
    pub description: Option<String>,
}

/// Create a group; the caller becomes its owner.
#[utoipa::path(
    tag = "groups",
    security(("bearer" = [])),
    request_body = CreateGroupRequest,
    responses(
        (status = 201, body = Envelope<GroupView>),
        (status = 400, body = ErrorEnvelope),
        (status = 401, body = ErrorEnvelope),
    )
)]
#[post("")]
pub async fn create_group(
    state: web::Data<AppState>,
    caller: Caller<GroupsWrite>,
    origin: Origin,
    body: Json<CreateGroupRequest>,
) -> Result<HttpResponse, ApiError> {
    let group = GroupService::new(&state.store)
        .create(caller.user_id, &body.name, body.description.as_deref(), &origin.0)
        .await?;
    Ok(envelope::created(GroupView::from(group)))
}

/// The groups the caller belongs to, with their role in each.
#[utoipa::path(
    tag = "groups",
    security(("bearer" = [])),
    params(PageQuery),
    responses((status = 200, body = ListEnvelope<GroupView>), (status = 401, body = ErrorEnvelope))
)]
#[get("")]
pub async fn list_groups(
    state: web::Data<AppState>,
    caller: Caller<GroupsRead>,
    query: web::Query<PageQuery>,
) -> Result<HttpResponse, ApiError> {
    let page = query.into_inner().into_request()?;
    let (groups, total) = GroupService::new(&state.store).list(caller.user_id, page).await?;
    let views: Vec<GroupView> = groups.into_iter().map(GroupView::from).collect();
    Ok(envelope::page(views, page, total))
}

/// One group. Outsiders get 404.
#[utoipa::path(
    tag = "groups",
    security(("bearer" = [])),
    params(("groupId" = Uuid, Path)),
    responses((status = 200, body = Envelope<GroupView>), (status = 404, body = ErrorEnvelope))
)]
#[get("/{groupId}")]
pub async fn get_group(access: GroupAccess<actions::View>) -> Result<HttpResponse, ApiError> {
    Ok(versioned(GroupView::from(access.group)))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct UpdateGroupRequest {
    pub name: Option<String>,
    /// `null` clears the description; absent keeps it.
    #[serde(default, deserialize_with = "super::auth::present")]
    #[schema(value_type = Option<String>)]
    pub description: Option<Option<String>>,
    /// The version you read (or send `If-Match`).
    pub version: Option<i32>,
}

/// Rename or re-describe a group (owner or admin). Honours `If-Match` / `version`.
#[utoipa::path(
    tag = "groups",
    security(("bearer" = [])),
    params(("groupId" = Uuid, Path), ("If-Match" = Option<String>, Header, description = "The version you read")),
    request_body = UpdateGroupRequest,
    responses(
        (status = 200, body = Envelope<GroupView>),
        (status = 400, body = ErrorEnvelope),
        (status = 403, body = ErrorEnvelope),
        (status = 404, body = ErrorEnvelope),
        (status = 409, description = "VERSION_CONFLICT, or the group is archived", body = ErrorEnvelope),
    )
)]
#[put("/{groupId}")]
pub async fn update_group(
    request: HttpRequest,
    state: web::Data<AppState>,
    access: GroupAccess<actions::Update>,
    origin: Origin,
    body: Json<UpdateGroupRequest>,
) -> Result<HttpResponse, ApiError> {
    let body = body.into_inner();
    let expected_version = super::auth::if_match_version(&request)?.or(body.version);
    let group = GroupService::new(&state.store)
        .update(
            access.user_id,
            &access.group,
            GroupUpdate {
                name: body.name,
                description: body.description,
                expected_version,
            },
            &origin.0,
        )
        .await?;
    Ok(versioned(GroupView::from(group)))
}

/// Delete a group (owner only). The rows stay for the audit trail; members lose access and
/// invites stop working.
#[utoipa::path(
    tag = "groups",
    security(("bearer" = [])),
    params(("groupId" = Uuid, Path)),
    responses(
        (status = 204, description = "Deleted"),
        (status = 403, body = ErrorEnvelope),
        (status = 404, body = ErrorEnvelope),
    )
)]
#[delete("/{groupId}")]
pub async fn delete_group(
    state: web::Data<AppState>,
    access: GroupAccess<actions::Delete>,
    origin: Origin,
) -> Result<HttpResponse, ApiError> {
    GroupService::new(&state.store)
        .delete(access.user_id, access.group_id(), &origin.0)
        .await?;
    // Locks may have been released with the membership change: polls see it at once here.
    state.device_states.forget_versions();
    Ok(HttpResponse::NoContent().finish())
}

/// A member's device, as fellow members see it.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct MemberDeviceView {
    pub id: Uuid,
    pub display_name: String,
    pub platform: Option<String>,
    pub last_seen_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct MemberView {
    pub user_id: Uuid,
    pub display_name: String,
    /// Shown to owners and admins only.
    pub email: Option<String>,
    pub avatar_url: Option<String>,
    #[schema(value_type = String, example = "member")]
    pub role: GroupRole,
    pub joined_at: DateTime<Utc>,
    /// The member's devices; present for callers who are members or above.
    pub devices: Option<Vec<MemberDeviceView>>,
}

/// The members, most powerful first, with their devices' basic info for members and above.
#[utoipa::path(
    tag = "groups",
    security(("bearer" = [])),
    params(("groupId" = Uuid, Path)),
    responses((status = 200, body = Envelope<Vec<MemberView>>), (status = 404, body = ErrorEnvelope))
)]
#[get("/{groupId}/members")]
pub async fn list_members(
    state: web::Data<AppState>,
    access: GroupAccess<actions::ViewMembers>,
) -> Result<HttpResponse, ApiError> {
    let service = GroupService::new(&state.store);
    let members = service.members(access.group_id()).await?;
    let show_devices = access.role().allows(GroupPermission::ViewMemberDevices);
    let show_email = access.role().allows(GroupPermission::ManageMembers);
    let mut devices = if show_devices {
        let owners: Vec<Uuid> = members.iter().map(|member| member.user_id).collect();
        crate::devices::DeviceService::new(&state)
            .owned_by(&owners)
            .await?
    } else {
        Default::default()
    };
    let views: Vec<MemberView> = members
        .into_iter()
        .map(|member: MemberProfile| MemberView {
            devices: show_devices.then(|| {
                devices
                    .remove(&member.user_id)
                    .unwrap_or_default()
                    .into_iter()
                    .map(|device| MemberDeviceView {
                        id: device.id,
                        display_name: device.display_name,
                        platform: device.platform,
                        last_seen_at: device.last_seen_at,
                    })
                    .collect()
            }),
            user_id: member.user_id,
            display_name: member.display_name,
            email: show_email.then_some(member.email),
            avatar_url: member.avatar_url,
            role: member.role,
            joined_at: member.joined_at,
        })
        .collect();
    Ok(envelope::ok(views))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ChangeRoleRequest {
    /// admin, member or viewer (ownership moves by transfer).
    pub role: String,
}

fn parse_role(value: &str) -> Result<GroupRole, ApiError> {
    GroupRole::parse(value).ok_or_else(|| ApiError::invalid("role", "must be owner, admin, member or viewer"))
}

/// A member's role in a group after a change.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = GroupMembershipView)]
pub struct MembershipView {
    pub user_id: Uuid,
    #[schema(value_type = String)]
    pub role: GroupRole,
}

/// Change a member's role. Nobody grants a role above their own or changes someone at or above
/// their own role.
#[utoipa::path(
    tag = "groups",
    security(("bearer" = [])),
    params(("groupId" = Uuid, Path), ("userId" = Uuid, Path)),
    request_body = ChangeRoleRequest,
    responses(
        (status = 200, body = Envelope<MembershipView>),
        (status = 400, body = ErrorEnvelope),
        (status = 403, body = ErrorEnvelope),
        (status = 404, body = ErrorEnvelope),
        (status = 409, description = "The group would be left without its owner", body = ErrorEnvelope),
    )
)]
#[put("/{groupId}/members/{userId}/role")]
pub async fn change_member_role(
    state: web::Data<AppState>,
    access: GroupAccess<actions::ChangeMembership>,
    origin: Origin,
    path: web::Path<(Uuid, Uuid)>,
    body: Json<ChangeRoleRequest>,
) -> Result<HttpResponse, ApiError> {
    let (_, target) = path.into_inner();
    let role = parse_role(&body.role)?;
    GroupService::new(&state.store)
        .change_role(access.user_id, access.group_id(), target, role, &origin.0)
        .await?;
    // Locks may have been released with the membership change: polls see it at once here.
    state.device_states.forget_versions();
    Ok(envelope::ok(MembershipView {
        user_id: target,
        role,
    }))
}

/// Remove a member, or leave the group by naming yourself. The owner cannot leave.
#[utoipa::path(
    tag = "groups",
    security(("bearer" = [])),
    params(("groupId" = Uuid, Path), ("userId" = Uuid, Path)),
    responses(
        (status = 204, description = "Removed"),
        (status = 403, body = ErrorEnvelope),
        (status = 404, body = ErrorEnvelope),
        (status = 409, description = "The owner must transfer ownership first", body = ErrorEnvelope),
    )
)]
#[delete("/{groupId}/members/{userId}")]
pub async fn remove_member(
    state: web::Data<AppState>,
    access: GroupAccess<actions::ChangeMembership>,
    origin: Origin,
    path: web::Path<(Uuid, Uuid)>,
) -> Result<HttpResponse, ApiError> {
    let (_, target) = path.into_inner();
    GroupService::new(&state.store)
        .remove_member(access.user_id, access.group_id(), target, &origin.0)
        .await?;
    // Locks may have been released with the membership change: polls see it at once here.
    state.device_states.forget_versions();
    Ok(HttpResponse::NoContent().finish())
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct TransferGroupRequest {
    /// An existing member who becomes the owner; the current owner becomes an admin.
    pub user_id: Uuid,
}

/// Transfer ownership to an existing member (owner only).
#[utoipa::path(
    tag = "groups",
    security(("bearer" = [])),
    params(("groupId" = Uuid, Path)),
    request_body = TransferGroupRequest,
    responses(
        (status = 200, body = Envelope<GroupView>),
        (status = 400, description = "Not a member", body = ErrorEnvelope),
        (status = 403, body = ErrorEnvelope),
        (status = 404, body = ErrorEnvelope),
    )
)]
#[post("/{groupId}/transfer")]
pub async fn transfer_group(
    state: web::Data<AppState>,
    access: GroupAccess<actions::TransferOwnership>,
    origin: Origin,
    body: Json<TransferGroupRequest>,
) -> Result<HttpResponse, ApiError> {
    let group = GroupService::new(&state.store)
        .transfer_ownership(access.user_id, access.group_id(), body.user_id, &origin.0)
        .await?;
    // Locks may have been released with the membership change: polls see it at once here.
    state.device_states.forget_versions();
    Ok(envelope::ok(GroupView::from(group)))
}

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CreateInviteRequest {
    /// admin, member (default) or viewer; never above your own role.
    pub role: Option<String>,
    /// 1 to 100 (default 1).
    pub max_uses: Option<i32>,
    /// 1 to 720 (default 72).
    pub expires_in_hours: Option<i64>,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct InviteView {
    pub id: Uuid,
    /// 8 characters without 0/O/1/I/L; typing is case-insensitive and ignores dashes.
    pub code: String,
    #[schema(value_type = String)]
    pub role: GroupRole,
    pub max_uses: i32,
    pub use_count: i32,
    pub expires_at: DateTime<Utc>,
    pub created_by: Option<Uuid>,
    pub created_at: DateTime<Utc>,
}

impl From<GroupInvite> for InviteView {
    fn from(invite: GroupInvite) -> Self {
        Self {
            id: invite.id,
            code: invite.code,
            role: invite.role,
            max_uses: invite.max_uses,
            use_count: invite.use_count,
            expires_at: invite.expires_at,
            created_by: invite.created_by,
            created_at: invite.created_at,
        }
    }
}

/// Create an invite code (owner or admin).
#[utoipa::path(
    tag = "groups",
    security(("bearer" = [])),
    params(("groupId" = Uuid, Path)),
    request_body = CreateInviteRequest,
    responses(
        (status = 201, body = Envelope<InviteView>),
        (status = 400, body = ErrorEnvelope),
        (status = 403, body = ErrorEnvelope),
        (status = 404, body = ErrorEnvelope),
    )
)]
#[post("/{groupId}/invites")]
pub async fn create_invite(
    state: web::Data<AppState>,
    access: GroupAccess<actions::ManageInvites>,
    origin: Origin,
    body: Json<CreateInviteRequest>,
) -> Result<HttpResponse, ApiError> {
    let body = body.into_inner();
    let request = InviteRequest {
        role: body.role.as_deref().map(parse_role).transpose()?,
        max_uses: body.max_uses,
        expires_in_hours: body.expires_in_hours,
    };
    let invite = GroupService::new(&state.store)
        .create_invite(
            access.user_id,
            access.role(),
            access.group_id(),
            request,
            &origin.0,
        )
        .await?;
    Ok(envelope::created(InviteView::from(invite)))
}

/// The group's usable invites (owner or admin).
#[utoipa::path(
    tag = "groups",
    security(("bearer" = [])),
    params(("groupId" = Uuid, Path)),
    responses(
        (status = 200, body = Envelope<Vec<InviteView>>),
        (status = 403, body = ErrorEnvelope),
        (status = 404, body = ErrorEnvelope),
    )
)]
#[get("/{groupId}/invites")]
pub async fn list_invites(
    state: web::Data<AppState>,
    access: GroupAccess<actions::ManageInvites>,
) -> Result<HttpResponse, ApiError> {
    let invites = GroupService::new(&state.store).invites(access.group_id()).await?;
    let views: Vec<InviteView> = invites.into_iter().map(InviteView::from).collect();
    Ok(envelope::ok(views))
}

/// Revoke an invite (owner or admin).
#[utoipa::path(
    tag = "groups",
    security(("bearer" = [])),
    params(("groupId" = Uuid, Path), ("inviteId" = Uuid, Path)),
    responses(
        (status = 204, description = "Revoked"),
        (status = 403, body = ErrorEnvelope),
        (status = 404, body = ErrorEnvelope),
    )
)]
#[delete("/{groupId}/invites/{inviteId}")]
pub async fn revoke_invite(
    state: web::Data<AppState>,
    access: GroupAccess<actions::ManageInvites>,
    origin: Origin,
    path: web::Path<(Uuid, Uuid)>,
) -> Result<HttpResponse, ApiError> {
    let (_, invite) = path.into_inner();
    GroupService::new(&state.store)
        .revoke_invite(access.user_id, access.group_id(), invite, &origin.0)
        .await?;
    Ok(HttpResponse::NoContent().finish())
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct JoinGroupRequest {
    pub code: String,
}

/// Join a group with an invite code; answers the group with your new role.
#[utoipa::path(
    tag = "groups",
    security(("bearer" = [])),
    request_body = JoinGroupRequest,
    responses(
        (status = 200, body = Envelope<GroupView>),
        (status = 400, body = ErrorEnvelope),
        (status = 404, description = "Unknown, expired, revoked or used-up code", body = ErrorEnvelope),
        (status = 409, description = "Already a member", body = ErrorEnvelope),
    )
)]
#[post("/join")]
pub async fn join_group(
    state: web::Data<AppState>,
    caller: Caller<GroupsWrite>,
    origin: Origin,
    body: Json<JoinGroupRequest>,
) -> Result<HttpResponse, ApiError> {
    let group = GroupService::new(&state.store)
        .join(caller.user_id, &body.code, &origin.0)
        .await?;
    Ok(envelope::ok(GroupView::from(group)))
}
