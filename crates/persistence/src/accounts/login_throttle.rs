//! Sign-in attempt reservations and lockouts.

use super::*;

/// `in_flight - 1`, never below zero.
pub(super) fn released() -> sea_orm::sea_query::SimpleExpr {
    Expr::cust("CASE WHEN in_flight > 0 THEN in_flight - 1 ELSE 0 END")
}

impl LoginThrottleStore for Database {
    async fn reserve_attempt(
        &self,
        email: &str,
        policy: LoginThrottlePolicy,
        now: DateTime<Utc>,
    ) -> Result<AttemptPermit, RepositoryError> {
        let connection = self.connection();
        login_throttles::Entity::insert(login_throttles::ActiveModel {
            email: Set(email.to_owned()),
            attempts: Set(0),
            in_flight: Set(0),
            window_started_at: Set(now),
            locked_until: Set(None),
        })
        .on_conflict(
            OnConflict::column(login_throttles::Column::Email)
                .do_nothing()
                .to_owned(),
        )
        .exec_without_returning(connection)
        .await
        .map_err(db)?;

        let unlocked = login_throttles::Column::LockedUntil
            .is_null()
            .or(login_throttles::Column::LockedUntil.lte(now));
        // A window that has passed starts over (this also frees checks whose request vanished).
        login_throttles::Entity::update_many()
            .col_expr(login_throttles::Column::Attempts, Expr::value(0))
            .col_expr(login_throttles::Column::InFlight, Expr::value(0))
            .col_expr(login_throttles::Column::WindowStartedAt, Expr::value(now))
            .col_expr(
                login_throttles::Column::LockedUntil,
                Expr::value(Option::<DateTime<Utc>>::None),
            )
            .filter(login_throttles::Column::Email.eq(email))
            .filter(unlocked.clone())
            .filter(login_throttles::Column::WindowStartedAt.lte(now - policy.window))
            .exec(connection)
            .await
            .map_err(db)?;
        // Failures plus checks in progress never exceed the allowance: the condition and the
        // increment are one statement, so parallel attempts cannot both take the last check.
        let reserved = login_throttles::Entity::update_many()
            .col_expr(
                login_throttles::Column::InFlight,
                Expr::col(login_throttles::Column::InFlight).add(1),
            )
            .filter(login_throttles::Column::Email.eq(email))
            .filter(unlocked)
            .filter(
                Expr::col(login_throttles::Column::Attempts)
                    .add(Expr::col(login_throttles::Column::InFlight))
                    .lt(policy.max_attempts),
            )
            .exec(connection)
            .await
            .map_err(db)?;
        if reserved.rows_affected == 1 {
            return Ok(AttemptPermit::Granted);
        }
        let Some(row) = login_throttles::Entity::find_by_id(email.to_owned())
            .one(connection)
            .await
            .map_err(db)?
        else {
            return Ok(AttemptPermit::Busy);
        };
        let locked_until = match row.locked_until {
            Some(until) if until > now => Some(until),
            _ if row.attempts >= policy.max_attempts => Some(row.window_started_at + policy.window),
            _ => None,
        };
        Ok(match locked_until {
            Some(until) => AttemptPermit::Locked {
                retry_after_seconds: Ord::max((until - now).num_seconds(), 1),
            },
            None => AttemptPermit::Busy,
        })
    }

    async fn record_failure(
        &self,
        email: &str,
        policy: LoginThrottlePolicy,
        now: DateTime<Utc>,
    ) -> Result<bool, RepositoryError> {
        login_throttles::Entity::update_many()
            .col_expr(login_throttles::Column::InFlight, released())
            .col_expr(
                login_throttles::Column::Attempts,
                Expr::col(login_throttles::Column::Attempts).add(1),
            )
            .filter(login_throttles::Column::Email.eq(email))
            .exec(self.writer())
            .await
            .map_err(db)?;
        let locked = login_throttles::Entity::update_many()
            .col_expr(
                login_throttles::Column::LockedUntil,
                Expr::value(Some(now + policy.lockout)),
            )
            .filter(login_throttles::Column::Email.eq(email))
            .filter(login_throttles::Column::Attempts.gte(policy.max_attempts))
            .filter(
                login_throttles::Column::LockedUntil
                    .is_null()
                    .or(login_throttles::Column::LockedUntil.lte(now)),
            )
            .exec(self.writer())
            .await
            .map_err(db)?;
        Ok(locked.rows_affected == 1)
    }

    async fn record_success(&self, email: &str) -> Result<(), RepositoryError> {
        login_throttles::Entity::update_many()
            .col_expr(login_throttles::Column::InFlight, released())
            .col_expr(login_throttles::Column::Attempts, Expr::value(0))
            .filter(login_throttles::Column::Email.eq(email))
            .exec(self.writer())
            .await
            .map_err(db)?;
        Ok(())
    }

    async fn release_attempt(&self, email: &str) -> Result<(), RepositoryError> {
        login_throttles::Entity::update_many()
            .col_expr(login_throttles::Column::InFlight, released())
            .filter(login_throttles::Column::Email.eq(email))
            .exec(self.writer())
            .await
            .map_err(db)?;
        Ok(())
    }

    async fn clear(&self, email: &str) -> Result<(), RepositoryError> {
        login_throttles::Entity::delete_by_id(email.to_owned())
            .exec(self.writer())
            .await
            .map_err(db)?;
        Ok(())
    }
}
