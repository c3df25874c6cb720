//! Accounts, the token key and once-only chores on SQLite.

use async_trait::async_trait;
use boxoffice_domain::{Email, User, UserId};
use boxoffice_ports::{IdentityStore, Session, StoreError};
use rusqlite::params;
use time::OffsetDateTime;

use crate::db::{ms, OrStore};
use crate::rows::{self, USER_COLUMNS};
use crate::SqliteStore;

#[async_trait]
impl IdentityStore for SqliteStore {
    async fn create_user(&self, user: &User) -> Result<(), StoreError> {
        let user = user.clone();
        let (role, staff_role) = rows::role_columns(user.role);
        self.transaction(move |tx| {
            tx.prepare_cached(&format!(
                "INSERT INTO users ({USER_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?)"
            ))
            .db()?
            .execute({
                params![
                    user.id.as_str(),
                    user.email.as_str(),
                    user.password_hash,
                    role,
                    ms(user.created_at),
                    staff_role,
                    user.org_id.as_ref().map(|o| o.as_str())
                ]
            })
            .db()?;
            Ok(())
        })
        .await
    }

    async fn user_by_email(&self, email: &Email) -> Result<Option<User>, StoreError> {
        let email = email.as_str().to_owned();
        self.db
            .read(move |conn| {
                rows::first(
                    conn,
                    &format!("SELECT {USER_COLUMNS} FROM users WHERE email = ?"),
                    [email],
                    rows::user,
                )
            })
            .await
    }

    async fn admin_exists(&self) -> Result<bool, StoreError> {
        self.db
            .read(|conn| {
                rows::scalar::<i64>(conn, "SELECT COUNT(*) FROM users WHERE role = 'admin'", [])
                    .map(|n| n.unwrap_or(0) > 0)
            })
            .await
    }

    async fn set_password_hash(&self, user: &UserId, hash: &str) -> Result<bool, StoreError> {
        let (user, hash) = (user.as_str().to_owned(), hash.to_owned());
        self.transaction(move |tx| {
            let n = tx
                .prepare_cached("UPDATE users SET password_hash = ? WHERE id = ?")
                .db()?
                .execute([hash, user])
                .db()?;
            Ok(n == 1)
        })
        .await
    }

    async fn secret_key(&self, candidate: &[u8]) -> Result<Vec<u8>, StoreError> {
        let candidate = candidate.to_vec();
        self.transaction(move |tx| {
            tx.prepare_cached(
                "INSERT INTO settings (key, value) VALUES ('token_key', ?) ON CONFLICT (key) DO NOTHING",
            )
            .db()?
            .execute([candidate])
            .db()?;
            rows::scalar::<Vec<u8>>(tx, "SELECT value FROM settings WHERE key = 'token_key'", [])?
                .ok_or(StoreError::NotFound)
        })
        .await
    }

    async fn user(&self, id: &UserId) -> Result<Option<User>, StoreError> {
        let id = id.as_str().to_owned();
        self.db
            .read(move |conn| {
                rows::first(
                    conn,
                    &format!("SELECT {USER_COLUMNS} FROM users WHERE id = ?"),
                    [id],
                    rows::user,
                )
            })
            .await
    }

    async fn create_session(&self, session: &Session) -> Result<(), StoreError> {
        let s = session.clone();
        self.transaction(move |tx| {
            tx.prepare_cached(
                "INSERT INTO sessions (id, user_id, generation, token_hash, created_at, expires_at, revoked_at) \
                 VALUES (?, ?, ?, ?, ?, ?, ?)",
            )
            .db()?
            .execute(params![
                s.id,
                s.user_id.as_str(),
                s.generation,
                s.token_hash,
                ms(s.created_at),
                ms(s.expires_at),
                s.revoked_at.map(ms)
            ])
            .db()?;
            Ok(())
        })
        .await
    }

    async fn session(&self, id: &str) -> Result<Option<Session>, StoreError> {
        let id = id.to_owned();
        self.db
            .read(move |conn| {
                rows::first(
                    conn,
                    "SELECT id, user_id, generation, token_hash, created_at, expires_at, revoked_at \
                     FROM sessions WHERE id = ?",
                    [id],
                    rows::session,
                )
            })
            .await
    }

    async fn rotate_session(
        &self,
        id: &str,
        from_generation: i64,
        token_hash: &str,
        expires_at: OffsetDateTime,
    ) -> Result<bool, StoreError> {
        let (id, hash) = (id.to_owned(), token_hash.to_owned());
        self.transaction(move |tx| {
            let n = tx
                .prepare_cached(
                    "UPDATE sessions SET generation = generation + 1, token_hash = ?, expires_at = ? \
                     WHERE id = ? AND generation = ? AND revoked_at IS NULL",
                )
                .db()?
                .execute(params![hash, ms(expires_at), id, from_generation])
                .db()?;
            Ok(n == 1)
        })
        .await
    }

    async fn revoke_session(&self, id: &str, now: OffsetDateTime) -> Result<(), StoreError> {
        let id = id.to_owned();
        self.transaction(move |tx| {
            tx.prepare_cached(
                "UPDATE sessions SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL",
            )
            .db()?
            .execute(params![ms(now), id])
            .db()?;
            Ok(())
        })
        .await
    }

    async fn revoke_user_sessions(
        &self,
        user: &UserId,
        now: OffsetDateTime,
    ) -> Result<u64, StoreError> {
        let user = user.as_str().to_owned();
        self.transaction(move |tx| {
            let n = tx
                .prepare_cached(
                    "UPDATE sessions SET revoked_at = ? WHERE user_id = ? AND revoked_at IS NULL",
                )
                .db()?
                .execute(params![ms(now), user])
                .db()?;
            Ok(n as u64)
        })
        .await
    }

    async fn claim_once(&self, what: &str) -> Result<bool, StoreError> {
        let key = format!("once:{what}");
        self.transaction(move |tx| {
            let n = tx
                .prepare_cached(
                    "INSERT INTO settings (key, value) VALUES (?, x'') ON CONFLICT DO NOTHING",
                )
                .db()?
                .execute([key])
                .db()?;
            Ok(n == 1)
        })
        .await
    }
}
