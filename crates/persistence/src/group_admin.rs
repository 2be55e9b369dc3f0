//! Every group for operators: filters and paging in SQL; the page's member counts and owners
//! in two more queries, whatever the page size.

use std::collections::HashMap;

use sea_orm::sea_query::{Expr, Func, Query};
use sea_orm::{
    ColumnTrait, Condition, EntityTrait, ExprTrait, PaginatorTrait, QueryFilter, QueryOrder, QuerySelect,
};
use steward_domain::group_admin::{GroupAdminStore, GroupFilter, GroupKind, GroupListing, GroupOwner};
use steward_domain::{PageRequest, RepositoryError};
use uuid::Uuid;

use crate::database::Database;
use crate::entities::{group_memberships, groups, users};
use crate::error::db_err_to_repository as db;
use crate::fleet::search_pattern;

impl Database {
    async fn listings(&self, rows: Vec<groups::Model>) -> Result<Vec<GroupListing>, RepositoryError> {
        let ids: Vec<Uuid> = rows.iter().map(|row| row.id).collect();
        let counts: HashMap<Uuid, i64> = group_memberships::Entity::find()
            .select_only()
            .column(group_memberships::Column::GroupId)
            .column_as(group_memberships::Column::Id.count(), "members")
            .filter(group_memberships::Column::GroupId.is_in(ids.clone()))
            .group_by(group_memberships::Column::GroupId)
            .into_tuple::<(Uuid, i64)>()
            .all(self.connection())
            .await
            .map_err(db)?
            .into_iter()
            .collect();
        let owners: Vec<(Uuid, Uuid)> = group_memberships::Entity::find()
            .select_only()
            .column(group_memberships::Column::GroupId)
            .column(group_memberships::Column::UserId)
            .filter(group_memberships::Column::GroupId.is_in(ids))
            .filter(crate::database::literal_eq(
                group_memberships::Column::Role,
                "owner",
            ))
            .into_tuple()
            .all(self.connection())
            .await
            .map_err(db)?;
        let people: HashMap<Uuid, users::Model> = users::Entity::find()
            .filter(users::Column::Id.is_in(owners.iter().map(|(_, user)| *user)))
            .all(self.connection())
            .await
            .map_err(db)?
            .into_iter()
            .map(|user| (user.id, user))
            .collect();
        let owner_of: HashMap<Uuid, GroupOwner> = owners
            .into_iter()
            .filter_map(|(group, user)| {
                let person = people.get(&user)?;
                Some((
                    group,
                    GroupOwner {
                        user_id: user,
                        email: person.email.clone(),
                        display_name: person.display_name.clone(),
                    },
                ))
            })
            .collect();
        Ok(rows
            .into_iter()
            .map(|row| GroupListing {
                member_count: u64::try_from(counts.get(&row.id).copied().unwrap_or(0)).unwrap_or(0),
                owner: owner_of.get(&row.id).cloned(),
                organization_id: row.organization_id,
                group: crate::groups::record(row),
            })
            .collect())
    }
}

impl GroupAdminStore for Database {
    async fn list_all_groups(
        &self,
        filter: &GroupFilter,
        page: PageRequest,
    ) -> Result<(Vec<GroupListing>, u64), RepositoryError> {
        let mut select = groups::Entity::find().filter(groups::Column::DeletedAt.is_null());
        if let Some(text) = filter.text.as_deref().map(str::trim).filter(|t| !t.is_empty()) {
            select = select
                .filter(Expr::expr(Func::lower(Expr::col(groups::Column::Name))).like(search_pattern(text)));
        }
        match filter.kind {
            Some(GroupKind::Family) => select = select.filter(groups::Column::OrganizationId.is_null()),
            Some(GroupKind::Fleet) => select = select.filter(groups::Column::OrganizationId.is_not_null()),
            None => {}
        }
        if let Some(organization) = filter.organization {
            select = select.filter(groups::Column::OrganizationId.eq(organization));
        }
        match filter.archived {
            Some(true) => select = select.filter(groups::Column::ArchivedAt.is_not_null()),
            Some(false) => select = select.filter(groups::Column::ArchivedAt.is_null()),
            None => {}
        }
        if let Some(owner) = filter.owner {
            select = select.filter(
                groups::Column::Id.in_subquery(
                    Query::select()
                        .column(group_memberships::Column::GroupId)
                        .from(group_memberships::Entity)
                        .and_where(group_memberships::Column::UserId.eq(owner))
                        .and_where(crate::database::literal_eq(
                            group_memberships::Column::Role,
                            "owner",
                        ))
                        .to_owned(),
                ),
            );
        }
        if let Some((created_at, id)) = filter.after {
            select = select.filter(
                Condition::any()
                    .add(groups::Column::CreatedAt.lt(created_at))
                    .add(
                        Condition::all()
                            .add(groups::Column::CreatedAt.eq(created_at))
                            .add(groups::Column::Id.lt(id)),
                    ),
            );
        }
        let total = select.clone().count(self.connection()).await.map_err(db)?;
        let rows = select
            .order_by_desc(groups::Column::CreatedAt)
            .order_by_desc(groups::Column::Id)
            .offset(page.offset())
            .limit(page.per_page())
            .all(self.connection())
            .await
            .map_err(db)?;
        Ok((self.listings(rows).await?, total))
    }

    async fn group_listing(&self, group: Uuid) -> Result<Option<GroupListing>, RepositoryError> {
        let rows: Vec<groups::Model> = groups::Entity::find_by_id(group)
            .filter(groups::Column::DeletedAt.is_null())
            .all(self.connection())
            .await
            .map_err(db)?;
        Ok(self.listings(rows).await?.into_iter().next())
    }
}
