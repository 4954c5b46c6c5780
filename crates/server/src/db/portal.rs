//! The portal's tables (migrations/0004, 0010): the people who sign in and their
//! browser sessions.
//!
//! Disabling a user, removing one or giving one a new password raises the
//! user's `session_epoch` and deletes their sessions; a session is honoured only
//! while its epoch is the user's, which also covers a sign-in that checked the
//! old password just before the change.

use sqlx::Row;

use super::{conflict, Db, DbResult};

/// Someone who signs in to the portal: a subscription's user, or an operator.
#[derive(Debug, Clone)]
pub struct PortalUserRow {
    pub id: String,
    pub email: String,
    /// `None` for an operator.
    pub subscription_id: Option<String>,
    pub password_hash: String,
    pub created: i64,
    /// Since when an operator has disabled the user.
    pub disabled: Option<i64>,
    /// Sessions of another epoch are refused (see the module's doc).
    pub session_epoch: i64,
}

/// A signed-in browser.
#[derive(Debug, Clone)]
pub struct SessionRow {
    pub id: String,
    pub user_id: String,
    pub secret_hash: String,
    pub csrf_token: String,
    pub expires: i64,
    /// The user's `session_epoch` when they signed in.
    pub session_epoch: i64,
}

fn user_row(row: &sqlx::any::AnyRow) -> Result<PortalUserRow, sqlx::Error> {
    Ok(PortalUserRow {
        id: row.try_get("id")?,
        email: row.try_get("email")?,
        subscription_id: row.try_get("subscription_id")?,
        password_hash: row.try_get("password_hash")?,
        created: row.try_get("created")?,
        disabled: row.try_get("disabled")?,
        session_epoch: row.try_get("session_epoch")?,
    })
}

impl Db {
    pub async fn insert_portal_user(&self, user: &PortalUserRow) -> DbResult<()> {
        sqlx::query(
            "INSERT INTO portal_users (id, email, subscription_id, password_hash, created) VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(&user.id)
        .bind(&user.email)
        .bind(&user.subscription_id)
        .bind(&user.password_hash)
        .bind(user.created)
        .execute(self.pool())
        .await
        .map_err(conflict(format!("a portal user with the email address '{}'", user.email)))?;
        Ok(())
    }

    pub async fn portal_user(&self, id: &str) -> DbResult<Option<PortalUserRow>> {
        let row = sqlx::query("SELECT * FROM portal_users WHERE id = $1").bind(id).fetch_optional(self.pool()).await?;
        Ok(row.as_ref().map(user_row).transpose()?)
    }

    /// Email addresses are compared as stored: the portal lowercases them first.
    pub async fn portal_user_by_email(&self, email: &str) -> DbResult<Option<PortalUserRow>> {
        let row =
            sqlx::query("SELECT * FROM portal_users WHERE email = $1").bind(email).fetch_optional(self.pool()).await?;
        Ok(row.as_ref().map(user_row).transpose()?)
    }

    /// Every portal user, operators first, for the operator's user list.
    pub async fn portal_users(&self) -> DbResult<Vec<PortalUserRow>> {
        let rows =
            sqlx::query("SELECT * FROM portal_users ORDER BY subscription_id, email").fetch_all(self.pool()).await?;
        Ok(rows.iter().map(user_row).collect::<Result<_, _>>()?)
    }

    pub async fn insert_session(&self, session: &SessionRow, created: i64) -> DbResult<()> {
        sqlx::query(
            "INSERT INTO portal_sessions (id, user_id, secret_hash, csrf_token, created, expires, session_epoch) \
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(&session.id)
        .bind(&session.user_id)
        .bind(&session.secret_hash)
        .bind(&session.csrf_token)
        .bind(created)
        .bind(session.expires)
        .bind(session.session_epoch)
        .execute(self.pool())
        .await?;
        Ok(())
    }

    pub async fn session(&self, id: &str) -> DbResult<Option<SessionRow>> {
        let row =
            sqlx::query("SELECT * FROM portal_sessions WHERE id = $1").bind(id).fetch_optional(self.pool()).await?;
        let Some(row) = row else { return Ok(None) };
        Ok(Some(SessionRow {
            id: row.try_get("id")?,
            user_id: row.try_get("user_id")?,
            secret_hash: row.try_get("secret_hash")?,
            csrf_token: row.try_get("csrf_token")?,
            expires: row.try_get("expires")?,
            session_epoch: row.try_get("session_epoch")?,
        }))
    }

    /// Signs a session out; also drops every expired session, so the table only
    /// holds live ones.
    pub async fn remove_session(&self, id: &str, now: i64) -> DbResult<()> {
        sqlx::query("DELETE FROM portal_sessions WHERE id = $1 OR expires <= $2")
            .bind(id)
            .bind(now)
            .execute(self.pool())
            .await?;
        Ok(())
    }

    /// Disables (`Some(since)`) or enables (`None`) a user; disabling ends their
    /// sessions. False when there is no such user. Disabling a disabled user
    /// keeps the first time.
    pub async fn set_portal_user_disabled(&self, id: &str, disabled: Option<i64>) -> DbResult<bool> {
        let sql = if disabled.is_some() {
            "UPDATE portal_users SET disabled = COALESCE(disabled, $1), session_epoch = session_epoch + 1 \
             WHERE id = $2"
        } else {
            "UPDATE portal_users SET disabled = $1 WHERE id = $2"
        };
        self.change_portal_user(id, sqlx::query(sql).bind(disabled).bind(id), disabled.is_some()).await
    }

    /// Stores a user's new password hash and ends their sessions; false when
    /// there is no such user.
    pub async fn set_portal_user_password(&self, id: &str, password_hash: &str) -> DbResult<bool> {
        let query =
            sqlx::query("UPDATE portal_users SET password_hash = $1, session_epoch = session_epoch + 1 WHERE id = $2")
                .bind(password_hash)
                .bind(id);
        self.change_portal_user(id, query, true).await
    }

    /// Removes a user and their sessions; false when there is no such user.
    pub async fn remove_portal_user(&self, id: &str) -> DbResult<bool> {
        let mut tx = self.pool().begin().await?;
        sqlx::query("DELETE FROM portal_sessions WHERE user_id = $1").bind(id).execute(&mut *tx).await?;
        let done = sqlx::query("DELETE FROM portal_users WHERE id = $1").bind(id).execute(&mut *tx).await?;
        tx.commit().await?;
        Ok(done.rows_affected() == 1)
    }

    /// Runs `change` on a user, and with `end_sessions` deletes their sessions,
    /// in one transaction.
    async fn change_portal_user<'q>(
        &self,
        id: &str,
        change: sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments<'q>>,
        end_sessions: bool,
    ) -> DbResult<bool> {
        let mut tx = self.pool().begin().await?;
        let done = change.execute(&mut *tx).await?;
        if end_sessions {
            sqlx::query("DELETE FROM portal_sessions WHERE user_id = $1").bind(id).execute(&mut *tx).await?;
        }
        tx.commit().await?;
        Ok(done.rows_affected() == 1)
    }
}

// ---------------------------------------------------------------- sign-in tallies

impl Db {
    /// Counts one attempt against `tally`, unless it already holds `max` within
    /// its window (a window that began at or before `expired_before` starts again
    /// at `now`). One UPDATE decides, so replicas counting at once cannot pass the
    /// limit together. `Err(since)`: refused, the window began at `since`.
    pub async fn count_sign_in(
        &self,
        tally: &str,
        max: i64,
        now: i64,
        expired_before: i64,
    ) -> DbResult<Result<(), i64>> {
        sqlx::query(
            "INSERT INTO sign_in_tallies (tally, count, since) VALUES ($1, 0, $2) ON CONFLICT (tally) DO NOTHING",
        )
        .bind(tally)
        .bind(now)
        .execute(self.pool())
        .await?;
        let counted = sqlx::query(
            "UPDATE sign_in_tallies SET \
                count = CASE WHEN since <= $2 THEN 1 ELSE count + 1 END, \
                since = CASE WHEN since <= $2 THEN $3 ELSE since END \
             WHERE tally = $1 AND (since <= $2 OR count < $4)",
        )
        .bind(tally)
        .bind(expired_before)
        .bind(now)
        .bind(max)
        .execute(self.pool())
        .await?
        .rows_affected();
        if counted == 1 {
            return Ok(Ok(()));
        }
        let since: i64 = sqlx::query_scalar("SELECT since FROM sign_in_tallies WHERE tally = $1")
            .bind(tally)
            .fetch_optional(self.pool())
            .await?
            .unwrap_or(now);
        Ok(Err(since))
    }

    /// Takes one attempt back from `tally`.
    pub async fn uncount_sign_in(&self, tally: &str) -> DbResult<()> {
        sqlx::query(
            "UPDATE sign_in_tallies SET count = CASE WHEN count > 0 THEN count - 1 ELSE 0 END WHERE tally = $1",
        )
        .bind(tally)
        .execute(self.pool())
        .await?;
        Ok(())
    }

    /// Forgets `tally` (a right password starts its source afresh).
    pub async fn clear_sign_in(&self, tally: &str) -> DbResult<()> {
        sqlx::query("DELETE FROM sign_in_tallies WHERE tally = $1").bind(tally).execute(self.pool()).await?;
        Ok(())
    }

    /// Drops the tallies whose window began at or before `expired_before`.
    pub async fn sweep_sign_in_tallies(&self, expired_before: i64) -> DbResult<u64> {
        let swept = sqlx::query("DELETE FROM sign_in_tallies WHERE since <= $1")
            .bind(expired_before)
            .execute(self.pool())
            .await?
            .rows_affected();
        Ok(swept)
    }
}
