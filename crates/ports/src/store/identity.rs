//! Accounts, the token key, and once-only chores.

use async_trait::async_trait;
use boxoffice_domain::{Email, User, UserId};

use super::StoreError;

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

    /// True for exactly one caller ever per `what`, across every node (startup chores
    /// such as seeding the demo).
    async fn claim_once(&self, what: &str) -> Result<bool, StoreError>;
}
