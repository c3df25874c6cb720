//! Accounts, the token key and once-only chores on PostgreSQL: each one statement.

use async_trait::async_trait;
use boxoffice_domain::{Email, User, UserId};
use boxoffice_ports::{IdentityStore, StoreError};

use crate::rows::UserRow;
use crate::writes::count_commit;
use crate::{map_err, ts, PgStore};

#[async_trait]
impl IdentityStore for PgStore {
    async fn create_user(&self, user: &User) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO users (id, email, password_hash, role, created_at) VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(user.id.as_str())
        .bind(user.email.as_str())
        .bind(&user.password_hash)
        .bind(user.role.as_str())
        .bind(ts(user.created_at))
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
