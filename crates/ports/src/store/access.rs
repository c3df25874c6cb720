//! Organizations, invitations, check-in staff assignments and password resets:
//! who may come in, and as what. Tokens (invitations, resets) are kept as their
//! SHA-256 only; using one is a single transaction that also marks it used, so
//! two uses of one token cannot both succeed.

use async_trait::async_trait;
use boxoffice_domain::{Email, EventId, InvitationId, OrgId, Organization, Role, User, UserId};
use time::OffsetDateTime;

use super::StoreError;

/// An invitation to join `org_id` as `role`, sent by email to `email`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invitation {
    pub id: InvitationId,
    pub org_id: OrgId,
    pub email: Email,
    pub role: Role,
    /// SHA-256 (hex) of the emailed token.
    pub token_hash: String,
    pub invited_by: UserId,
    pub created_at: OffsetDateTime,
    pub expires_at: OffsetDateTime,
    pub accepted_at: Option<OffsetDateTime>,
    /// Withdrawn by the organization before it was used: never accepted after.
    pub revoked_at: Option<OffsetDateTime>,
}

/// Who an accepted invitation makes a member.
#[derive(Debug, Clone)]
pub enum Joining {
    /// A new account (the invitation's email, role and organization).
    New(User),
    /// An existing customer account, which takes the invitation's role and
    /// organization.
    Existing(UserId),
}

/// A password reset: one token, emailed, usable once before it expires.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PasswordReset {
    /// SHA-256 (hex) of the emailed token.
    pub token_hash: String,
    pub user_id: UserId,
    pub created_at: OffsetDateTime,
    pub expires_at: OffsetDateTime,
}

#[async_trait]
pub trait AccessStore: Send + Sync + std::fmt::Debug + 'static {
    async fn create_org(&self, org: &Organization) -> Result<(), StoreError>;
    async fn org(&self, id: &OrgId) -> Result<Option<Organization>, StoreError>;

    async fn create_invitation(&self, invitation: &Invitation) -> Result<(), StoreError>;
    async fn invitation_by_token(&self, token_hash: &str)
        -> Result<Option<Invitation>, StoreError>;
    async fn invitation(&self, id: &InvitationId) -> Result<Option<Invitation>, StoreError>;
    /// An organization's invitations, newest first, at most `limit`.
    async fn invitations(&self, org: &OrgId, limit: u32) -> Result<Vec<Invitation>, StoreError>;
    /// Revokes the invitation `id` of `org` if it is neither accepted nor revoked
    /// (a conditional update: against a concurrent accept exactly one wins).
    /// `Ok(false)`: no such open invitation of `org`, nothing changed.
    async fn revoke_invitation(
        &self,
        org: &OrgId,
        id: &InvitationId,
        now: OffsetDateTime,
    ) -> Result<bool, StoreError>;
    /// In one transaction: marks the invitation accepted if it is open at `now`
    /// (not accepted, not revoked, not expired), and creates the account or gives the existing
    /// customer the invitation's role and organization. `Ok(false)`: it was not
    /// open (a concurrent accept won, or it expired), nothing changed.
    /// `Conflict { "users_email" }`: a new account's email is taken;
    /// `Conflict { "users_role" }`: the existing account is no longer a customer.
    async fn accept_invitation(
        &self,
        id: &InvitationId,
        now: OffsetDateTime,
        joining: &Joining,
    ) -> Result<bool, StoreError>;

    async fn create_password_reset(&self, reset: &PasswordReset) -> Result<(), StoreError>;
    /// In one transaction: uses the reset if it is unused and unexpired at `now`,
    /// sets its account's password hash and revokes every session of the account.
    /// The account, or `None` when the token is not usable (nothing changed).
    async fn use_password_reset(
        &self,
        token_hash: &str,
        now: OffsetDateTime,
        password_hash: &str,
    ) -> Result<Option<UserId>, StoreError>;

    /// Assigns check-in staff to an event; harmless twice.
    async fn assign_staff(
        &self,
        event: &EventId,
        user: &UserId,
        now: OffsetDateTime,
    ) -> Result<(), StoreError>;
    async fn is_staff(&self, event: &EventId, user: &UserId) -> Result<bool, StoreError>;
    /// The event's check-in staff, in the order they were assigned.
    async fn event_staff(&self, event: &EventId) -> Result<Vec<UserId>, StoreError>;
}
