//! Organizations, invitations, staff assignments and password resets on
//! PostgreSQL. Using a token is one transaction whose first statement claims it
//! (`UPDATE … WHERE accepted_at IS NULL`): of two uses at once, the second waits
//! for the first's row lock and then finds it used.

use async_trait::async_trait;
use boxoffice_domain::{Email, EventId, InvitationId, OrgId, Organization, Role, UserId};
use boxoffice_ports::{AccessStore, Invitation, Joining, PasswordReset, StoreError};
use time::OffsetDateTime;

use crate::writes::count_commit;
use crate::{corrupt, map_err, ts, PgStore};

#[derive(sqlx::FromRow)]
struct InvitationRow {
    id: String,
    org_id: String,
    email: String,
    role: String,
    token_hash: String,
    invited_by: String,
    created_at: OffsetDateTime,
    expires_at: OffsetDateTime,
    accepted_at: Option<OffsetDateTime>,
    revoked_at: Option<OffsetDateTime>,
}

impl TryFrom<InvitationRow> for Invitation {
    type Error = StoreError;
    fn try_from(r: InvitationRow) -> Result<Self, StoreError> {
        Ok(Invitation {
            id: InvitationId::try_from(r.id).map_err(|_| corrupt("invitations.id"))?,
            org_id: OrgId::try_from(r.org_id).map_err(|_| corrupt("invitations.org_id"))?,
            email: Email::parse(&r.email).map_err(|_| corrupt("invitations.email"))?,
            role: Role::parse(&r.role).ok_or_else(|| corrupt("invitations.role"))?,
            token_hash: r.token_hash,
            invited_by: UserId::try_from(r.invited_by)
                .map_err(|_| corrupt("invitations.invited_by"))?,
            created_at: r.created_at,
            expires_at: r.expires_at,
            accepted_at: r.accepted_at,
            revoked_at: r.revoked_at,
        })
    }
}

#[async_trait]
impl AccessStore for PgStore {
    async fn create_org(&self, org: &Organization) -> Result<(), StoreError> {
        sqlx::query("INSERT INTO organizations (id, name, created_at) VALUES ($1, $2, $3)")
            .bind(org.id.as_str())
            .bind(&org.name)
            .bind(ts(org.created_at))
            .execute(&self.pool)
            .await
            .map_err(map_err)?;
        count_commit();
        Ok(())
    }

    async fn org(&self, id: &OrgId) -> Result<Option<Organization>, StoreError> {
        let row: Option<(String, String, OffsetDateTime)> =
            sqlx::query_as("SELECT id, name, created_at FROM organizations WHERE id = $1")
                .bind(id.as_str())
                .fetch_optional(&self.pool)
                .await
                .map_err(map_err)?;
        row.map(|(id, name, created_at)| {
            Ok(Organization {
                id: OrgId::try_from(id).map_err(|_| corrupt("organizations.id"))?,
                name,
                created_at,
            })
        })
        .transpose()
    }

    async fn create_invitation(&self, inv: &Invitation) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO invitations (id, org_id, email, role, token_hash, invited_by, created_at, expires_at, accepted_at, revoked_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
        )
        .bind(inv.id.as_str())
        .bind(inv.org_id.as_str())
        .bind(inv.email.as_str())
        .bind(inv.role.as_str())
        .bind(&inv.token_hash)
        .bind(inv.invited_by.as_str())
        .bind(ts(inv.created_at))
        .bind(ts(inv.expires_at))
        .bind(inv.accepted_at.map(ts))
        .bind(inv.revoked_at.map(ts))
        .execute(&self.pool)
        .await
        .map_err(map_err)?;
        count_commit();
        Ok(())
    }

    async fn invitation_by_token(
        &self,
        token_hash: &str,
    ) -> Result<Option<Invitation>, StoreError> {
        sqlx::query_as::<_, InvitationRow>(
            "SELECT id, org_id, email, role, token_hash, invited_by, created_at, expires_at, accepted_at, revoked_at \
             FROM invitations WHERE token_hash = $1",
        )
        .bind(token_hash)
        .fetch_optional(&self.pool)
        .await
        .map_err(map_err)?
        .map(Invitation::try_from)
        .transpose()
    }

    async fn invitation(&self, id: &InvitationId) -> Result<Option<Invitation>, StoreError> {
        sqlx::query_as::<_, InvitationRow>(
            "SELECT id, org_id, email, role, token_hash, invited_by, created_at, expires_at, accepted_at, revoked_at \
             FROM invitations WHERE id = $1",
        )
        .bind(id.as_str())
        .fetch_optional(&self.pool)
        .await
        .map_err(map_err)?
        .map(Invitation::try_from)
        .transpose()
    }

    async fn invitations(&self, org: &OrgId, limit: u32) -> Result<Vec<Invitation>, StoreError> {
        sqlx::query_as::<_, InvitationRow>(
            "SELECT id, org_id, email, role, token_hash, invited_by, created_at, expires_at, accepted_at, revoked_at \
             FROM invitations WHERE org_id = $1 ORDER BY created_at DESC, id DESC LIMIT $2",
        )
        .bind(org.as_str())
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await
        .map_err(map_err)?
        .into_iter()
        .map(Invitation::try_from)
        .collect()
    }

    async fn revoke_invitation(
        &self,
        org: &OrgId,
        id: &InvitationId,
        now: OffsetDateTime,
    ) -> Result<bool, StoreError> {
        let n = sqlx::query(
            "UPDATE invitations SET revoked_at = $1 \
             WHERE id = $2 AND org_id = $3 AND accepted_at IS NULL AND revoked_at IS NULL",
        )
        .bind(ts(now))
        .bind(id.as_str())
        .bind(org.as_str())
        .execute(&self.pool)
        .await
        .map_err(map_err)?
        .rows_affected();
        count_commit();
        Ok(n == 1)
    }

    async fn accept_invitation(
        &self,
        id: &InvitationId,
        now: OffsetDateTime,
        joining: &Joining,
    ) -> Result<bool, StoreError> {
        let mut tx = self.pool.begin().await.map_err(map_err)?;
        let claimed: Option<(String, String)> = sqlx::query_as(
            "UPDATE invitations SET accepted_at = $1 \
             WHERE id = $2 AND accepted_at IS NULL AND revoked_at IS NULL AND expires_at > $1 \
             RETURNING role, org_id",
        )
        .bind(ts(now))
        .bind(id.as_str())
        .fetch_optional(&mut *tx)
        .await
        .map_err(map_err)?;
        let Some((role, org)) = claimed else {
            return Ok(false);
        };
        let role = Role::parse(&role).ok_or_else(|| corrupt("invitations.role"))?;
        let org = role.has_org().then_some(org);
        match joining {
            Joining::New(user) => {
                sqlx::query(
                    "INSERT INTO users (id, email, password_hash, role, created_at, org_id) \
                     VALUES ($1, $2, $3, $4, $5, $6)",
                )
                .bind(user.id.as_str())
                .bind(user.email.as_str())
                .bind(&user.password_hash)
                .bind(role.as_str())
                .bind(ts(user.created_at))
                .bind(&org)
                .execute(&mut *tx)
                .await
                .map_err(map_err)?;
            }
            Joining::Existing(user) => {
                let done = sqlx::query(
                    "UPDATE users SET role = $1, org_id = $2 WHERE id = $3 AND role = 'customer'",
                )
                .bind(role.as_str())
                .bind(&org)
                .bind(user.as_str())
                .execute(&mut *tx)
                .await
                .map_err(map_err)?;
                if done.rows_affected() != 1 {
                    return Err(StoreError::Conflict {
                        constraint: "users_role",
                    });
                }
            }
        }
        tx.commit().await.map_err(map_err)?;
        count_commit();
        Ok(true)
    }

    async fn create_password_reset(&self, r: &PasswordReset) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO password_resets (token_hash, user_id, created_at, expires_at) \
             VALUES ($1, $2, $3, $4)",
        )
        .bind(&r.token_hash)
        .bind(r.user_id.as_str())
        .bind(ts(r.created_at))
        .bind(ts(r.expires_at))
        .execute(&self.pool)
        .await
        .map_err(map_err)?;
        count_commit();
        Ok(())
    }

    async fn use_password_reset(
        &self,
        token_hash: &str,
        now: OffsetDateTime,
        password_hash: &str,
    ) -> Result<Option<UserId>, StoreError> {
        let mut tx = self.pool.begin().await.map_err(map_err)?;
        let user: Option<String> = sqlx::query_scalar(
            "UPDATE password_resets SET used_at = $1 \
             WHERE token_hash = $2 AND used_at IS NULL AND expires_at > $1 \
             RETURNING user_id",
        )
        .bind(ts(now))
        .bind(token_hash)
        .fetch_optional(&mut *tx)
        .await
        .map_err(map_err)?;
        let Some(user) = user else {
            return Ok(None);
        };
        sqlx::query("UPDATE users SET password_hash = $1 WHERE id = $2")
            .bind(password_hash)
            .bind(&user)
            .execute(&mut *tx)
            .await
            .map_err(map_err)?;
        sqlx::query(
            "UPDATE sessions SET revoked_at = $1 WHERE user_id = $2 AND revoked_at IS NULL",
        )
        .bind(ts(now))
        .bind(&user)
        .execute(&mut *tx)
        .await
        .map_err(map_err)?;
        tx.commit().await.map_err(map_err)?;
        count_commit();
        Ok(Some(
            UserId::try_from(user).map_err(|_| corrupt("password_resets.user_id"))?,
        ))
    }

    async fn assign_staff(
        &self,
        event: &EventId,
        user: &UserId,
        now: OffsetDateTime,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO event_staff (event_id, user_id, assigned_at) VALUES ($1, $2, $3) \
             ON CONFLICT DO NOTHING",
        )
        .bind(event.as_str())
        .bind(user.as_str())
        .bind(ts(now))
        .execute(&self.pool)
        .await
        .map_err(map_err)?;
        count_commit();
        Ok(())
    }

    async fn is_staff(&self, event: &EventId, user: &UserId) -> Result<bool, StoreError> {
        sqlx::query_scalar(
            "SELECT EXISTS (SELECT 1 FROM event_staff WHERE event_id = $1 AND user_id = $2)",
        )
        .bind(event.as_str())
        .bind(user.as_str())
        .fetch_one(&self.pool)
        .await
        .map_err(map_err)
    }

    async fn event_staff(&self, event: &EventId) -> Result<Vec<UserId>, StoreError> {
        let ids: Vec<String> = sqlx::query_scalar(
            "SELECT user_id FROM event_staff WHERE event_id = $1 ORDER BY assigned_at, user_id",
        )
        .bind(event.as_str())
        .fetch_all(&self.pool)
        .await
        .map_err(map_err)?;
        ids.into_iter()
            .map(|u| UserId::try_from(u).map_err(|_| corrupt("event_staff.user_id")))
            .collect()
    }
}
