//! Administrators' user listing: filters, order and paging in SQL; the page's roles,
//! organizations and failed sign-ins in three more queries, whatever the page size.

use std::collections::BTreeMap;

use sea_orm::sea_query::{Expr, Func, Query};
use sea_orm::{
    ColumnTrait, Condition, ConnectionTrait, DatabaseBackend, EntityTrait, ExprTrait, Order, PaginatorTrait,
    QueryFilter, QueryOrder, QuerySelect, Statement,
};
use steward_domain::accounts::{UserFilter, UserListing, UserSort};
use steward_domain::{PageRequest, RepositoryError};
use uuid::Uuid;

use crate::database::Database;
use crate::entities::{login_throttles, org_users, user_system_roles, users};
use crate::error::db_err_to_repository as db;
use crate::fleet::search_pattern;

use super::user_record;

/// Above this many matches the trigram table stops paying off against a scan.
const INDEXED_SEARCH_CAP: usize = 1000;

impl Database {
    /// On SQLite, the accounts whose email or display name contain `text` (3 characters or
    /// more), from the trigram table `users_search` — `None` when the term is shorter, the
    /// database is PostgreSQL (its trigram indexes serve the plain query), or more than
    /// [`INDEXED_SEARCH_CAP`] accounts match (a scan is then as fast).
    async fn indexed_search(&self, text: &str) -> Result<Option<Vec<Uuid>>, RepositoryError> {
        let connection = self.connection();
        if connection.get_database_backend() != DatabaseBackend::Sqlite || text.chars().count() < 3 {
            return Ok(None);
        }
        // A quoted FTS5 phrase: the trigram tokenizer matches it as a substring, any case.
        let phrase = format!("\"{}\"", text.replace('"', "\"\""));
        let rows = connection
            .query_all_raw(Statement::from_sql_and_values(
                DatabaseBackend::Sqlite,
                "SELECT user_id FROM users_search WHERE users_search MATCH ? LIMIT ?",
                [phrase.into(), ((INDEXED_SEARCH_CAP + 1) as i64).into()],
            ))
            .await
            .map_err(db)?;
        if rows.len() > INDEXED_SEARCH_CAP {
            return Ok(None);
        }
        let mut found = Vec::with_capacity(rows.len());
        for row in rows {
            found.push(row.try_get::<Uuid>("", "user_id").map_err(db)?);
        }
        Ok(Some(found))
    }

    pub(crate) async fn user_listing(
        &self,
        filter: &UserFilter,
        page: PageRequest,
    ) -> Result<(Vec<UserListing>, u64), RepositoryError> {
        let mut select = users::Entity::find()
            .filter(users::Column::DeletedAt.is_null())
            .filter(users::Column::Status.ne("deleted"));
        if let Some(text) = filter.text.as_deref().map(str::trim).filter(|t| !t.is_empty()) {
            match self.indexed_search(text).await? {
                Some(found) => select = select.filter(users::Column::Id.is_in(found)),
                None if self.connection().get_database_backend() == DatabaseBackend::Postgres => {
                    // Exactly the expression of the trigram index idx_users_search_trgm
                    // (m20261201_000015_user_search).
                    select = select.filter(
                        Expr::cust(r#"(lower("users"."email") || ' ' || lower("users"."display_name"))"#)
                            .like(search_pattern(text)),
                    );
                }
                None => {
                    let pattern = search_pattern(text);
                    let lower = |column: users::Column| Expr::expr(Func::lower(Expr::col(column)));
                    select = select.filter(
                        Condition::any()
                            .add(lower(users::Column::Email).like(pattern.clone()))
                            .add(lower(users::Column::DisplayName).like(pattern)),
                    );
                }
            }
        }
        if let Some(status) = &filter.status {
            select = select.filter(users::Column::Status.eq(status.clone()));
        }
        if let Some(role) = &filter.role {
            select = select.filter(
                users::Column::Id.in_subquery(
                    Query::select()
                        .column(user_system_roles::Column::UserId)
                        .from(user_system_roles::Entity)
                        .and_where(user_system_roles::Column::Role.eq(role.clone()))
                        .to_owned(),
                ),
            );
        }
        if let Some(organization) = filter.organization {
            select = select.filter(
                users::Column::Id.in_subquery(
                    Query::select()
                        .column(org_users::Column::UserId)
                        .from(org_users::Entity)
                        .and_where(org_users::Column::OrganizationId.eq(organization))
                        .to_owned(),
                ),
            );
        }
        if let Some(from) = filter.created_from {
            select = select.filter(users::Column::CreatedAt.gte(from));
        }
        if let Some(to) = filter.created_to {
            select = select.filter(users::Column::CreatedAt.lt(to));
        }
        if let Some(from) = filter.last_login_from {
            select = select.filter(users::Column::LastLoginAt.gte(from));
        }
        if let Some(to) = filter.last_login_to {
            select = select.filter(users::Column::LastLoginAt.lt(to));
        }
        let order = if filter.descending {
            Order::Desc
        } else {
            Order::Asc
        };
        let column = match filter.sort {
            UserSort::CreatedAt => users::Column::CreatedAt,
            UserSort::Email => users::Column::Email,
            UserSort::DisplayName => users::Column::DisplayName,
            UserSort::LastLoginAt => users::Column::LastLoginAt,
        };
        let rows = select
            .clone()
            .order_by(column, order.clone())
            .order_by(users::Column::Id, order)
            .offset(page.offset())
            .limit(page.per_page())
            .all(self.connection())
            .await
            .map_err(db)?;
        // A page that is not full ends the listing, so it tells the total without a count
        // (a search usually fits on its first page); past the end, or on a full page, count.
        let fetched = rows.len() as u64;
        let total = if fetched < page.per_page() && (fetched > 0 || page.offset() == 0) {
            page.offset() + fetched
        } else {
            select.count(self.connection()).await.map_err(db)?
        };
        let ids: Vec<Uuid> = rows.iter().map(|row| row.id).collect();
        let emails: Vec<String> = rows.iter().map(|row| row.email.to_lowercase()).collect();
        let mut roles: BTreeMap<Uuid, Vec<String>> = BTreeMap::new();
        for (user, role) in user_system_roles::Entity::find()
            .select_only()
            .column(user_system_roles::Column::UserId)
            .column(user_system_roles::Column::Role)
            .filter(user_system_roles::Column::UserId.is_in(ids.clone()))
            .order_by_asc(user_system_roles::Column::Role)
            .into_tuple::<(Uuid, String)>()
            .all(self.connection())
            .await
            .map_err(db)?
        {
            roles.entry(user).or_default().push(role);
        }
        let mut organizations: BTreeMap<Uuid, Vec<(Uuid, String)>> = BTreeMap::new();
        for (user, organization, role) in org_users::Entity::find()
            .select_only()
            .column(org_users::Column::UserId)
            .column(org_users::Column::OrganizationId)
            .column(org_users::Column::Role)
            .filter(org_users::Column::UserId.is_in(ids))
            .order_by_asc(org_users::Column::CreatedAt)
            .into_tuple::<(Uuid, Uuid, String)>()
            .all(self.connection())
            .await
            .map_err(db)?
        {
            organizations.entry(user).or_default().push((organization, role));
        }
        let failures: BTreeMap<String, i32> = login_throttles::Entity::find()
            .select_only()
            .column(login_throttles::Column::Email)
            .column(login_throttles::Column::Attempts)
            .filter(login_throttles::Column::Email.is_in(emails))
            .into_tuple::<(String, i32)>()
            .all(self.connection())
            .await
            .map_err(db)?
            .into_iter()
            .collect();
        let listings = rows
            .into_iter()
            .map(|row| {
                let failed_attempts = failures.get(&row.email.to_lowercase()).copied().unwrap_or(0);
                let id = row.id;
                UserListing {
                    user: user_record(row),
                    roles: roles.remove(&id).unwrap_or_default(),
                    organizations: organizations.remove(&id).unwrap_or_default(),
                    failed_attempts,
                }
            })
            .collect();
        Ok((listings, total))
    }
}
