//! Groups for operators: every group with its owner and member count, one group with its
//! members, and an ownership transfer an operator forces (audited as the operator's, with the
//! roles before and after).

use steward_domain::group_admin::{self, GroupAdminStore, GroupFilter, GroupListing};
use steward_domain::group_store::{GroupStore, MemberProfile};
use steward_domain::{Actor, AuditAction, AuditEntry, PageRequest, RequestOrigin};
use uuid::Uuid;

use crate::error::AppError;

pub struct GroupAdminService<'a, S> {
    store: &'a S,
}

/// One page of the group export, read after the cursor of the page before.
#[derive(Debug)]
pub struct ExportPage {
    pub groups: Vec<super::export::ExportedGroup>,
    /// Groups from this page on (for progress).
    pub remaining: u64,
    /// The cursor of the next page.
    pub next: Option<(chrono::DateTime<chrono::Utc>, Uuid)>,
    /// No page follows.
    pub last: bool,
}

impl<'a, S: GroupStore + GroupAdminStore> GroupAdminService<'a, S> {
    pub fn new(store: &'a S) -> Self {
        Self { store }
    }

    pub async fn list(
        &self,
        filter: &GroupFilter,
        page: PageRequest,
    ) -> Result<(Vec<GroupListing>, u64), AppError> {
        Ok(self.store.list_all_groups(filter, page).await?)
    }

    /// A page of the groups `filter` selects, each with its members (most powerful first).
    pub async fn export_page(
        &self,
        filter: &GroupFilter,
        after: Option<(chrono::DateTime<chrono::Utc>, Uuid)>,
        limit: u64,
    ) -> Result<ExportPage, AppError> {
        let filter = GroupFilter {
            after,
            ..filter.clone()
        };
        let page = steward_domain::PageRequest::parse(Some(1), Some(limit))?;
        let (listings, remaining) = self.store.list_all_groups(&filter, page).await?;
        let next = listings
            .last()
            .map(|listing| (listing.group.created_at, listing.group.id));
        let ids: Vec<Uuid> = listings.iter().map(|listing| listing.group.id).collect();
        let mut members = self.store.members_of_groups(&ids).await?;
        let groups = listings
            .into_iter()
            .map(|listing| {
                let of_group = members.remove(&listing.group.id).unwrap_or_default();
                super::export::ExportedGroup::new(listing, of_group)
            })
            .collect::<Vec<_>>();
        Ok(ExportPage {
            last: (groups.len() as u64) < limit,
            groups,
            remaining,
            next,
        })
    }

    /// One live group with its members, most powerful first.
    pub async fn detail(&self, group: Uuid) -> Result<(GroupListing, Vec<MemberProfile>), AppError> {
        let listing = self
            .store
            .group_listing(group)
            .await?
            .ok_or_else(|| AppError::not_found("no such group"))?;
        let members = self.store.members(group).await?;
        Ok((listing, members))
    }

    /// Makes `target` (a member) the owner; the owner so far becomes an admin. Decided on the
    /// members read under the group's lock, like every membership change.
    pub async fn transfer_ownership(
        &self,
        admin: Uuid,
        group: Uuid,
        target: Uuid,
        origin: &RequestOrigin,
    ) -> Result<(GroupListing, Vec<MemberProfile>), AppError> {
        // Deleted groups are not found here, whatever the membership store would say.
        self.detail(group).await?;
        let entry = AuditEntry::new(
            Actor::admin(admin),
            AuditAction::known("admin.group_ownership_transferred"),
            "group",
        )
        .resource_id(group)
        .origin(origin.clone());
        self.store
            .change_membership(
                group,
                |snapshot| group_admin::force_ownership_transfer(snapshot, target),
                &entry,
            )
            .await?;
        self.detail(group).await
    }
}
