//! Accounts, the token key and once-only chores on PostgreSQL: each one statement.

use async_trait::async_trait;
use boxoffice_domain::{Email, User, UserId};
use boxoffice_ports::{IdentityStore, Session, StoreError};
use time::OffsetDateTime;

use crate::rows::{SessionRow, UserRow};
use crate::writes::count_commit;
use crate::{map_err, ts, PgStore};

#[async_trait]
impl IdentityStore for PgStore {
    async fn create_user(&self, user: &User) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO users (id, email, password_hash, role, created_at, org_id) VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(user.id.as_str())
        .bind(user.email.as_str())
        .bind(&user.password_hash)
        .bind(user.role.as_str())
        .bind(ts(user.created_at))
        .bind(user.org_id.as_ref().map(|o| o.as_str()))
        .execute(&self.pool)
        .await
        .map_err(map_err)?;
        count_commit();
        Ok(())
    }

    async fn user_by_email(&self, email: &Email) -> Result<Option<User>, StoreError> {
        sqlx::query_as::<_, UserRow>(&format!(
            "SELECT {} FROM users WHERE email = $1",
            UserRow::COLUMNS
        ))
        .bind(email.as_str())
        .fetch_optional(&self.pool)
        .await
        .map_err(map_err)?
        .map(User::try_from)
        .transpose()
    }

    async fn admin_exists(&self) -> Result<bool, StoreError> {
        sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM users WHERE role = 'admin')")
            .fetch_one(&self.pool)
            .await
            .map_err(map_err)
    }

    async fn set_password_hash(&self, user: &UserId, hash: &str) -> Result<bool, StoreError> {
        let done = sqlx::query("UPDATE users SET password_hash = $1 WHERE id = $2")
            .bind(hash)
            .bind(user.as_str())
            .execute(&self.pool)
            .await
            .map_err(map_err)?;
        count_commit();
        Ok(done.rows_affected() == 1)
    }

    /// One statement: the candidate is stored unless a key is, and the stored one
    /// comes back either way. `DO UPDATE` (to the same value) rather than `DO
    /// NOTHING`: it waits for a racing node's insert and returns that row, where a
    /// second SELECT in the same statement would not see it.
    async fn secret_key(&self, candidate: &[u8]) -> Result<Vec<u8>, StoreError> {
        let key = sqlx::query_scalar(
            "INSERT INTO settings (key, value) VALUES ('token_key', $1) \
             ON CONFLICT (key) DO UPDATE SET value = settings.value RETURNING value",
        )
        .bind(candidate)
        .fetch_one(&self.pool)
        .await
        .map_err(map_err)?;
        count_commit();
        Ok(key)
    }

    async fn user(&self, user: &UserId) -> Result<Option<User>, StoreError> {
        sqlx::query_as::<_, UserRow>(&format!(
            "SELECT {} FROM users WHERE id = $1",
            UserRow::COLUMNS
        ))
        .bind(user.as_str())
        .fetch_optional(&self.pool)
        .await
        .map_err(map_err)?
        .map(User::try_from)
        .transpose()
    }

    async fn create_session(&self, s: &Session) -> Result<(), StoreError> {
        sqlx::query(&format!(
            "INSERT INTO sessions ({}) VALUES ($1, $2, $3, $4, $5, $6, $7)",
            SessionRow::COLUMNS
        ))
        .bind(&s.id)
        .bind(s.user_id.as_str())
        .bind(s.generation)
        .bind(&s.token_hash)
        .bind(ts(s.created_at))
        .bind(ts(s.expires_at))
        .bind(s.revoked_at.map(ts))
        .execute(&self.pool)
        .await
        .map_err(map_err)?;
        count_commit();
        Ok(())
    }

    async fn session(&self, id: &str) -> Result<Option<Session>, StoreError> {
        sqlx::query_as::<_, SessionRow>(&format!(
            "SELECT {} FROM sessions WHERE id = $1",
            SessionRow::COLUMNS
        ))
        .bind(id)
        .fetch_optional(&self.pool)
        .await
        .map_err(map_err)?
        .map(Session::try_from)
        .transpose()
    }

    async fn rotate_session(
        &self,
        id: &str,
        from_generation: i64,
        token_hash: &str,
        expires_at: OffsetDateTime,
    ) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "UPDATE sessions SET generation = generation + 1, token_hash = $1, expires_at = $2 \
             WHERE id = $3 AND generation = $4 AND revoked_at IS NULL",
        )
        .bind(token_hash)
        .bind(ts(expires_at))
        .bind(id)
        .bind(from_generation)
        .execute(&self.pool)
        .await
        .map_err(map_err)?;
        count_commit();
        Ok(done.rows_affected() == 1)
    }

    async fn revoke_session(&self, id: &str, now: OffsetDateTime) -> Result<(), StoreError> {
        self.revoke_sessions(Some(id), None, now).await.map(|_| ())
    }

    async fn revoke_user_sessions(
        &self,
        user: &UserId,
        now: OffsetDateTime,
    ) -> Result<u64, StoreError> {
        self.revoke_sessions(None, Some(user), now).await
    }

    async fn claim_once(&self, what: &str) -> Result<bool, StoreError> {
        let done =
            sqlx::query("INSERT INTO settings (key, value) VALUES ($1, '') ON CONFLICT DO NOTHING")
                .bind(format!("once:{what}"))
                .execute(&self.pool)
                .await
                .map_err(map_err)?;
        count_commit();
        Ok(done.rows_affected() == 1)
    }
}

impl PgStore {
    /// Revokes one session, or every session of a user, in one statement.
    async fn revoke_sessions(
        &self,
        session: Option<&str>,
        user: Option<&UserId>,
        now: OffsetDateTime,
    ) -> Result<u64, StoreError> {
        let done = sqlx::query(
            "UPDATE sessions SET revoked_at = $1 \
             WHERE revoked_at IS NULL AND (id = $2 OR user_id = $3)",
        )
        .bind(ts(now))
        .bind(session)
        .bind(user.map(UserId::as_str))
        .execute(&self.pool)
        .await
        .map_err(map_err)?;
        count_commit();
        Ok(done.rows_affected())
    }
}
