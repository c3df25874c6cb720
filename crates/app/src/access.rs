//! Organizations, invitations, check-in staff and password resets: the use
//! cases that let people in, and as what.
//!
//! Invitation and reset tokens are 32 random bytes, emailed, and kept as their
//! SHA-256 only; using one is a single store transaction that claims it, so a
//! token works once. Their emails are sent directly through the mail port rather
//! than through the outbox: a job would have to carry the token in clear through
//! the outbox and the queue, which is what keeping only its hash avoids. A lost
//! email is asked for again (a new invitation, a new reset).
//!
//! A password reset request is always answered the same way (202), whether or not
//! the account exists: the store write and the email happen after the answer, so
//! neither the answer nor its timing tells.

use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use base64::Engine;
use boxoffice_domain::{
    Email, EventId, InvitationId, OrgId, Organization, Password, Role, User, UserId,
};
use boxoffice_ports::{Invitation, Joining, OutgoingEmail, PasswordReset, StoreError};
use std::time::Duration;

use crate::identity::hash_token;
use crate::{App, AppError, IssuedTokens, Principal};

/// How long an invitation may be accepted.
pub const INVITATION_TTL: Duration = Duration::from_secs(7 * 24 * 3600);
/// How long a password reset token works.
pub const RESET_TTL: Duration = Duration::from_secs(3600);

fn new_token() -> String {
    B64.encode(rand::random::<[u8; 32]>())
}

/// What an invitation shows its sender (never its token).
#[derive(Debug, Clone)]
pub struct InvitationView {
    pub id: InvitationId,
    pub org_id: OrgId,
    pub email: Email,
    pub role: Role,
    pub expires_at: time::OffsetDateTime,
}

/// An invitation as its organization sees it (never its token).
#[derive(Debug, Clone)]
pub struct InvitationListing {
    pub view: InvitationView,
    /// `open`, `accepted`, `revoked` or `expired`.
    pub state: &'static str,
    pub invited_by: UserId,
    pub created_at: time::OffsetDateTime,
}

/// Most invitations one listing returns (the newest).
pub const MAX_INVITATIONS_LISTED: u32 = 500;

impl App {
    /// A new organization (admins).
    pub async fn create_org(&self, who: &Principal, name: &str) -> Result<Organization, AppError> {
        who.require_admin()?;
        let org = Organization {
            id: OrgId::new(),
            name: Organization::name(name)?,
            created_at: self.clock.now(),
        };
        self.store.create_org(&org).await?;
        tracing::info!(org = %org.id, "organization created");
        self.audit_action(
            who,
            "org.created",
            org.id.as_str(),
            None,
            serde_json::json!({"name": org.name}),
        )
        .await;
        Ok(org)
    }

    /// An organization, for its members, ops and admins (404 for anyone else).
    pub async fn org(&self, who: &Principal, id: &str) -> Result<Organization, AppError> {
        let id = OrgId::try_from(id).map_err(|_| AppError::NotFound)?;
        who.require_see_org(&id)?;
        self.store.org(&id).await?.ok_or(AppError::NotFound)
    }

    /// Invites `email` to organization `org` as `role` and emails the token.
    pub async fn invite(
        &self,
        who: &Principal,
        org: &str,
        email: &str,
        role: &str,
    ) -> Result<InvitationView, AppError> {
        let org = self.org(who, org).await?.id;
        let role = Role::parse(role)
            .filter(|r| *r != Role::Customer)
            .ok_or_else(|| {
                boxoffice_domain::ValidationError::new(
                    "role",
                    "one of organizer, checkin, ops, admin",
                )
            })?;
        who.require_invite(&org, role)?;
        let email = Email::parse(email)?;
        let token = new_token();
        let now = self.clock.now();
        let invitation = Invitation {
            id: InvitationId::new(),
            org_id: org,
            email,
            role,
            token_hash: hash_token(&token),
            invited_by: who.user_id.clone(),
            created_at: now,
            expires_at: now + INVITATION_TTL,
            accepted_at: None,
            revoked_at: None,
        };
        self.store.create_invitation(&invitation).await?;
        let mail = OutgoingEmail {
            message_id: invitation.id.to_string(),
            to: invitation.email.to_string(),
            subject: format!("You are invited to boxoffice as {}", role.as_str()),
            text: format!(
                "You have been invited to an organization on boxoffice as {role}.\n\n\
                 Your invitation token (valid 7 days, usable once):\n\n{token}\n\n\
                 Accept it with POST /v1/invitations/accept {{\"token\": \"<the token>\", \"password\": \"<your password>\"}}.\n\
                 If you already have a customer account with this email, give its password.\n",
                role = role.as_str()
            ),
            ..Default::default()
        };
        self.mailer
            .send(&mail)
            .await
            .map_err(|e| AppError::Unavailable(e.into()))?;
        tracing::info!(invitation = %invitation.id, org = %invitation.org_id, role = role.as_str(), "invitation sent");
        self.audit_action(
            who,
            "org.invitation_sent",
            invitation.org_id.as_str(),
            None,
            serde_json::json!({"invitation_id": invitation.id, "role": role.as_str()}),
        )
        .await;
        Ok(InvitationView {
            id: invitation.id,
            org_id: invitation.org_id,
            email: invitation.email,
            role,
            expires_at: invitation.expires_at,
        })
    }

    /// An organization's invitations, newest first, for whoever may invite to
    /// it (its organizers, admins).
    pub async fn invitations(
        &self,
        who: &Principal,
        org: &str,
    ) -> Result<Vec<InvitationListing>, AppError> {
        let org = self.org(who, org).await?.id;
        who.require_invite(&org, Role::Checkin)?;
        let now = self.clock.now();
        Ok(self
            .store
            .invitations(&org, MAX_INVITATIONS_LISTED)
            .await?
            .into_iter()
            .map(|i| InvitationListing {
                state: match (i.accepted_at, i.revoked_at) {
                    (Some(_), _) => "accepted",
                    (None, Some(_)) => "revoked",
                    (None, None) if i.expires_at <= now => "expired",
                    (None, None) => "open",
                },
                invited_by: i.invited_by,
                created_at: i.created_at,
                view: InvitationView {
                    id: i.id,
                    org_id: i.org_id,
                    email: i.email,
                    role: i.role,
                    expires_at: i.expires_at,
                },
            })
            .collect())
    }

    /// Withdraws an invitation before it is used (whoever may invite its role to
    /// its organization). 404 for another organization's or an unknown one; 409
    /// `invitation_closed` once accepted or revoked (a revoke racing an accept:
    /// exactly one of them wins).
    pub async fn revoke_invitation(
        &self,
        who: &Principal,
        org: &str,
        id: &str,
    ) -> Result<(), AppError> {
        let org = self.org(who, org).await?.id;
        let id = InvitationId::try_from(id).map_err(|_| AppError::NotFound)?;
        let inv = self
            .store
            .invitation(&id)
            .await?
            .filter(|i| i.org_id == org)
            .ok_or(AppError::NotFound)?;
        who.require_invite(&org, inv.role)?;
        if self
            .store
            .revoke_invitation(&org, &id, self.clock.now())
            .await?
        {
            tracing::info!(invitation = %id, org = %org, by = %who.user_id, "invitation revoked");
            Ok(())
        } else {
            Err(AppError::Conflict {
                constraint: "invitation_closed",
            })
        }
    }

    /// Accepts an invitation: creates the account with `password`, or, when a
    /// customer account has the invitation's email, gives it the invitation's role
    /// once `password` is that account's (holding the emailed token alone does not
    /// take over an account). Returns the account's tokens.
    pub async fn accept_invitation(
        &self,
        token: &str,
        password: &str,
    ) -> Result<IssuedTokens, AppError> {
        let now = self.clock.now();
        let inv = self
            .store
            .invitation_by_token(&hash_token(token))
            .await?
            .filter(|i| i.accepted_at.is_none() && i.revoked_at.is_none() && i.expires_at > now)
            .ok_or(AppError::InvalidToken)?;
        let (joining, user_id) = match self.store.user_by_email(&inv.email).await? {
            Some(existing) => {
                let ok = self
                    .verify_password(password.to_owned(), existing.password_hash.clone())
                    .await?;
                if !ok {
                    return Err(AppError::InvalidCredentials);
                }
                if existing.role != Role::Customer {
                    return Err(AppError::Conflict {
                        constraint: "users_role",
                    });
                }
                (Joining::Existing(existing.id.clone()), existing.id)
            }
            None => {
                let password = Password::parse(password)?;
                let user = User {
                    id: UserId::new(),
                    email: inv.email.clone(),
                    password_hash: self.hash_password(password).await?,
                    role: inv.role,
                    created_at: now,
                    org_id: inv.role.has_org().then(|| inv.org_id.clone()),
                };
                let id = user.id.clone();
                (Joining::New(user), id)
            }
        };
        match self.store.accept_invitation(&inv.id, now, &joining).await {
            Ok(true) => {}
            Ok(false) => return Err(AppError::InvalidToken),
            Err(StoreError::Conflict {
                constraint: "users_email",
            }) => return Err(AppError::EmailTaken),
            Err(e) => return Err(e.into()),
        }
        tracing::info!(invitation = %inv.id, user = %user_id, role = inv.role.as_str(), "invitation accepted");
        let user = self.store.user(&user_id).await?.ok_or(AppError::NotFound)?;
        self.start_session(&user).await
    }

    /// Starts a password reset for `email`: if such an account exists, a token is
    /// stored (hashed) and emailed. The answer never says whether it exists.
    pub async fn request_password_reset(&self, email: &str) -> Result<(), AppError> {
        let Ok(email) = Email::parse(email) else {
            return Ok(());
        };
        let user = self.store.user_by_email(&email).await?;
        let Some(user) = user else {
            return Ok(());
        };
        let (store, mailer, now) = (self.store.clone(), self.mailer.clone(), self.clock.now());
        self.detached.spawn(async move {
            let token = new_token();
            let reset = PasswordReset {
                token_hash: hash_token(&token),
                user_id: user.id.clone(),
                created_at: now,
                expires_at: now + RESET_TTL,
            };
            if let Err(e) = store.create_password_reset(&reset).await {
                tracing::warn!(error = %e, user = %user.id, "password reset not stored");
                return;
            }
            let mail = OutgoingEmail {
                message_id: format!("reset-{}", &reset.token_hash[..16]),
                to: user.email.to_string(),
                subject: "Reset your boxoffice password".into(),
                text: format!(
                    "Someone (hopefully you) asked to reset the password of this account.\n\n\
                     Your reset token (valid 1 hour, usable once):\n\n{token}\n\n\
                     Use it with POST /v1/auth/password-reset/confirm {{\"token\": \"<the token>\", \"password\": \"<new password>\"}}.\n\
                     If you did not ask, ignore this email: your password stays as it is.\n"
                ),
                ..Default::default()
            };
            match mailer.send(&mail).await {
                Ok(()) => tracing::info!(user = %user.id, "password reset emailed"),
                Err(e) => tracing::warn!(error = %e, user = %user.id, "password reset email not sent"),
            }
        });
        Ok(())
    }

    /// Sets a new password with a reset token; every session of the account is
    /// revoked (refresh tokens stop working; access tokens run out).
    pub async fn confirm_password_reset(
        &self,
        token: &str,
        password: &str,
    ) -> Result<(), AppError> {
        let password = Password::parse(password)?;
        let hash = self.hash_password(password).await?;
        let user = self
            .store
            .use_password_reset(&hash_token(token), self.clock.now(), &hash)
            .await?
            .ok_or(AppError::InvalidToken)?;
        tracing::info!(%user, "password reset: sessions revoked");
        Ok(())
    }

    /// Assigns check-in staff `user` (of the event's organization) to scan `event`:
    /// its organizers and admins. Returns the event's staff.
    pub async fn assign_staff(
        &self,
        who: &Principal,
        event: &str,
        user: &str,
    ) -> Result<Vec<UserId>, AppError> {
        let ev = self.event(event).await?;
        let ev = ev.event();
        who.require_manage_event(ev)?;
        let not_staff = || {
            boxoffice_domain::ValidationError::new(
                "user_id",
                "a check-in staff account of the event's organization",
            )
        };
        let user = UserId::try_from(user).map_err(|_| not_staff())?;
        let account = self.store.user(&user).await?.ok_or_else(not_staff)?;
        if !crate::permissions::assignable_staff(account.role, account.org_id.as_ref(), ev) {
            return Err(not_staff().into());
        }
        self.store
            .assign_staff(&ev.id, &user, self.clock.now())
            .await?;
        tracing::info!(event = %ev.id, %user, "check-in staff assigned");
        self.audit_action(
            who,
            "event.staff_assigned",
            ev.id.as_str(),
            Some(&ev.id),
            serde_json::json!({"user_id": user}),
        )
        .await;
        Ok(self.store.event_staff(&ev.id).await?)
    }

    /// The event's check-in staff: its organizers and admins.
    pub async fn event_staff(&self, who: &Principal, event: &str) -> Result<Vec<UserId>, AppError> {
        let ev = self.event(event).await?;
        who.require_manage_event(ev.event())?;
        Ok(self.store.event_staff(&ev.event().id).await?)
    }

    /// Whether `who` may scan the tickets of `event` (the check-in endpoint asks).
    pub async fn may_scan(&self, who: &Principal, event: &EventId) -> Result<bool, AppError> {
        let ev = self.cached_event(event).await?;
        let assigned =
            who.scans_by_assignment() && self.store.is_staff(&ev.event().id, &who.user_id).await?;
        Ok(who.may_scan(ev.event(), assigned))
    }
}
