//! Administrators' user listing: filters, order and paging in SQL, and each row's system
//! roles, organizations and failed sign-ins from correlated subqueries of the same statement
//! (one round trip per page, whatever its size).

use sea_orm::sea_query::{Expr, Func, Query};
use sea_orm::{
    ColumnTrait, Condition, ConnectionTrait, DatabaseBackend, DbErr, EntityTrait, ExprTrait, FromQueryResult,
    Order, PaginatorTrait, QueryFilter, QueryOrder, QueryResult, QuerySelect, Statement,
};
use steward_domain::accounts::{MfaFilter, UserFilter, UserListing, UserSort};
use steward_domain::{PageRequest, RepositoryError};
use uuid::Uuid;

use crate::database::Database;
use crate::entities::{mfa_exemptions, org_users, user_mfa, user_system_roles, users};
use crate::error::db_err_to_repository as db;
use crate::fleet::search_pattern;

use super::user_record;

/// A row's system roles, by name, comma-separated (role names hold no commas).
fn page_roles_sql(backend: DatabaseBackend) -> &'static str {
    match backend {
        DatabaseBackend::Postgres => {
            r#"(SELECT string_agg(r."role", ',' ORDER BY r."role") FROM "user_system_roles" r WHERE r."user_id" = "users"."id")"#
        }
        _ => {
            r#"(SELECT group_concat(x."role", ',') FROM (SELECT r."role" FROM "user_system_roles" r WHERE r."user_id" = "users"."id" ORDER BY r."role") x)"#
        }
    }
}

/// A row's organizations as `id:role`, comma-separated, oldest membership first (the id in
/// hex on SQLite, where it is stored as 16 bytes).
fn page_organizations_sql(backend: DatabaseBackend) -> &'static str {
    match backend {
        DatabaseBackend::Postgres => {
            r#"(SELECT string_agg(o."organization_id"::text || ':' || o."role", ',' ORDER BY o."created_at") FROM "org_users" o WHERE o."user_id" = "users"."id")"#
        }
        _ => {
            r#"(SELECT group_concat(x.entry, ',') FROM (SELECT hex(o."organization_id") || ':' || o."role" AS entry FROM "org_users" o WHERE o."user_id" = "users"."id" ORDER BY o."created_at") x)"#
        }
    }
}

/// A row's failed sign-ins counted against its (lower-cased) address.
const PAGE_FAILURES_SQL: &str =
    r#"(SELECT t."attempts" FROM "login_throttles" t WHERE t."email" = lower("users"."email"))"#;

/// Whether a row's second factor is on (a count of 0 or 1).
const PAGE_MFA_SQL: &str = r#"(SELECT COUNT(*) FROM "user_mfa" m WHERE m."user_id" = "users"."id" AND m."confirmed_at" IS NOT NULL)"#;

/// One listed account with what the subqueries found for it.
struct ListingRow {
    user: users::Model,
    roles: Option<String>,
    organizations: Option<String>,
    failures: Option<i32>,
    mfa: i64,
}

impl FromQueryResult for ListingRow {
    fn from_query_result(row: &QueryResult, prefix: &str) -> Result<Self, DbErr> {
        Ok(Self {
            user: users::Model::from_query_result(row, prefix)?,
            roles: row.try_get(prefix, "listing_roles")?,
            organizations: row.try_get(prefix, "listing_organizations")?,
            failures: row.try_get(prefix, "listing_failures")?,
            mfa: row.try_get(prefix, "listing_mfa")?,
        })
    }
}

impl ListingRow {
    fn into_listing(self) -> Result<UserListing, RepositoryError> {
        let split = |list: Option<String>| -> Vec<String> {
            list.map(|list| {
                list.split(',')
                    .filter(|s| !s.is_empty())
                    .map(str::to_owned)
                    .collect()
            })
            .unwrap_or_default()
        };
        let mut organizations = Vec::new();
        for entry in split(self.organizations) {
            let (id, role) = entry
                .split_once(':')
                .ok_or_else(|| RepositoryError::Other(format!("unreadable organization entry {entry:?}")))?;
            let id = Uuid::parse_str(id)
                .map_err(|_| RepositoryError::Other(format!("unreadable organization id {id:?}")))?;
            organizations.push((id, role.to_owned()));
        }
        Ok(UserListing {
            roles: split(self.roles),
            organizations,
            failed_attempts: self.failures.unwrap_or(0),
            mfa_enrolled: self.mfa > 0,
            user: user_record(self.user),
        })
    }
}

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
                None => {
                    let pattern = search_pattern(text);
                    if self.connection().get_database_backend() == DatabaseBackend::Postgres {
                        // Exactly the expression of the trigram index idx_users_search_trgm
                        // (m20261201_000015_user_search), which finds the candidates; the
                        // condition below then drops a match spanning the joining space.
                        select = select.filter(
                            Expr::cust(r#"(lower("users"."email") || ' ' || lower("users"."display_name"))"#)
                                .like(pattern.clone()),
                        );
                    }
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
        if let Some(mfa) = filter.mfa {
            let enrolled = Query::select()
                .column(user_mfa::Column::UserId)
                .from(user_mfa::Entity)
                .and_where(user_mfa::Column::ConfirmedAt.is_not_null())
                .to_owned();
            select = match mfa {
                MfaFilter::Enrolled => select.filter(users::Column::Id.in_subquery(enrolled)),
                MfaFilter::Missing => select.filter(users::Column::Id.not_in_subquery(enrolled)),
                MfaFilter::Exempt => select.filter(
                    users::Column::Id.in_subquery(
                        Query::select()
                            .column(mfa_exemptions::Column::UserId)
                            .from(mfa_exemptions::Entity)
                            .cond_where(
                                Condition::any()
                                    .add(mfa_exemptions::Column::ExpiresAt.is_null())
                                    .add(mfa_exemptions::Column::ExpiresAt.gt(chrono::Utc::now())),
                            )
                            .to_owned(),
                    ),
                ),
            };
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
        let backend = self.connection().get_database_backend();
        let rows = select
            .clone()
            .column_as(Expr::cust(page_roles_sql(backend)), "listing_roles")
            .column_as(
                Expr::cust(page_organizations_sql(backend)),
                "listing_organizations",
            )
            .column_as(Expr::cust(PAGE_FAILURES_SQL), "listing_failures")
            .column_as(Expr::cust(PAGE_MFA_SQL), "listing_mfa")
            .order_by(column, order.clone())
            .order_by(users::Column::Id, order)
            .offset(page.offset())
            .limit(page.per_page())
            .into_model::<ListingRow>()
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
        let listings = rows
            .into_iter()
            .map(ListingRow::into_listing)
            .collect::<Result<Vec<_>, _>>()?;
        Ok((listings, total))
    }
}
