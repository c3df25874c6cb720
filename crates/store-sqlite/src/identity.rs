//! Accounts, the token key and once-only chores on SQLite.

use async_trait::async_trait;
use boxoffice_domain::{Email, User, UserId};
use boxoffice_ports::{IdentityStore, StoreError};
use rusqlite::params;

use crate::db::{ms, OrStore};
use crate::rows::{self, USER_COLUMNS};
use crate::SqliteStore;

#[async_trait]
impl IdentityStore for SqliteStore {
    async fn create_user(&self, user: &User) -> Result<(), StoreError> {
        let user = user.clone();
        self.transaction(move |tx| {
            tx.prepare_cached(&format!(
                "INSERT INTO users ({USER_COLUMNS}) VALUES (?, ?, ?, ?, ?)"
            ))
            .db()?
            .execute(params![
                user.id.as_str(),
                user.email.as_str(),
                user.password_hash,
                user.role.as_str(),
                ms(user.created_at)
            ])
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
