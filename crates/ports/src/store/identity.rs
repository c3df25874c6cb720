//! Accounts, the token key, and once-only chores.

use async_trait::async_trait;
use boxoffice_domain::{Email, User, UserId};
use time::OffsetDateTime;

use super::StoreError;

/// A login's refresh-token family. Each refresh moves it to the next generation
/// with a new token; the hash of the current token is all the store keeps.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    pub id: String,
    pub user_id: UserId,
    pub generation: i64,
    /// SHA-256 (hex) of the current refresh token's secret part.
    pub token_hash: String,
    pub created_at: OffsetDateTime,
    pub expires_at: OffsetDateTime,
    pub revoked_at: Option<OffsetDateTime>,
}

#[async_trait]
pub trait IdentityStore: Send + Sync + std::fmt::Debug + 'static {
    /// `Conflict { constraint: "users_email" }` when the email is taken.
    async fn create_user(&self, user: &User) -> Result<(), StoreError>;
    async fn user_by_email(&self, email: &Email) -> Result<Option<User>, StoreError>;
    async fn admin_exists(&self) -> Result<bool, StoreError>;
    /// Replaces an account's password hash (an operator's reset); false when there
    /// is no such account.
    async fn set_password_hash(&self, user: &UserId, hash: &str) -> Result<bool, StoreError>;
    /// Returns the stored secret, storing `candidate` first if there is none; every
    /// node calling this at once gets the same answer.
    async fn secret_key(&self, candidate: &[u8]) -> Result<Vec<u8>, StoreError>;

    async fn user(&self, id: &UserId) -> Result<Option<User>, StoreError>;

    // --- sessions (refresh tokens) ---
    /// `Conflict { constraint: "sessions_pkey" }` when the id exists.
    async fn create_session(&self, session: &Session) -> Result<(), StoreError>;
    async fn session(&self, id: &str) -> Result<Option<Session>, StoreError>;
    /// Moves a session that is at `from_generation` and not revoked to the next
    /// generation with `token_hash` and `expires_at`. False when it is not (a
    /// concurrent refresh won, or the session is revoked): nothing changes.
    async fn rotate_session(
        &self,
        id: &str,
        from_generation: i64,
        token_hash: &str,
        expires_at: OffsetDateTime,
    ) -> Result<bool, StoreError>;
    /// Revokes one session (its refresh token stops working); harmless twice.
    async fn revoke_session(&self, id: &str, now: OffsetDateTime) -> Result<(), StoreError>;
    /// Revokes every session of `user`; returns how many were live.
    async fn revoke_user_sessions(
        &self,
        user: &UserId,
        now: OffsetDateTime,
    ) -> Result<u64, StoreError>;

    /// True for exactly one caller ever per `what`, across every node (startup chores
    /// such as seeding the demo).
    async fn claim_once(&self, what: &str) -> Result<bool, StoreError>;
}
