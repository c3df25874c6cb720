//! Organizations, invitations, staff assignments and password resets on SQLite.

use async_trait::async_trait;
use boxoffice_domain::{Email, EventId, InvitationId, OrgId, Organization, Role, UserId};
use boxoffice_ports::{AccessStore, Invitation, Joining, PasswordReset, StoreError};
use rusqlite::{params, OptionalExtension, Row};
use time::OffsetDateTime;

use crate::db::{corrupt, dt, ms, parse, OrStore};
use crate::rows::{self, USER_COLUMNS};
use crate::SqliteStore;

const INVITATION_COLUMNS: &str =
    "id, org_id, email, role, token_hash, invited_by, created_at, expires_at, accepted_at, revoked_at";

fn invitation(r: &Row) -> Result<Invitation, StoreError> {
    let text = |c: &str| r.get::<_, String>(c).db();
    Ok(Invitation {
        id: parse(InvitationId::try_from(text("id")?), "invitations.id")?,
        org_id: parse(OrgId::try_from(text("org_id")?), "invitations.org_id")?,
        email: parse(Email::parse(&text("email")?), "invitations.email")?,
        role: Role::parse(&text("role")?).ok_or_else(|| corrupt("invitations.role"))?,
        token_hash: text("token_hash")?,
        invited_by: parse(
            UserId::try_from(text("invited_by")?),
            "invitations.invited_by",
        )?,
        created_at: dt(r.get("created_at").db()?),
        expires_at: dt(r.get("expires_at").db()?),
        accepted_at: r.get::<_, Option<i64>>("accepted_at").db()?.map(dt),
        revoked_at: r.get::<_, Option<i64>>("revoked_at").db()?.map(dt),
    })
}

#[async_trait]
impl AccessStore for SqliteStore {
    async fn create_org(&self, org: &Organization) -> Result<(), StoreError> {
        let org = org.clone();
        self.transaction(move |tx| {
            tx.prepare_cached("INSERT INTO organizations (id, name, created_at) VALUES (?, ?, ?)")
                .db()?
                .execute(params![org.id.as_str(), org.name, ms(org.created_at)])
                .db()?;
            Ok(())
        })
        .await
    }

    async fn org(&self, id: &OrgId) -> Result<Option<Organization>, StoreError> {
        let id = id.as_str().to_owned();
        self.db
            .read(move |conn| {
                rows::first(
                    conn,
                    "SELECT id, name, created_at FROM organizations WHERE id = ?",
                    [id],
                    |r| {
                        Ok(Organization {
                            id: parse(OrgId::try_from(r.get::<_, String>("id").db()?), "org")?,
                            name: r.get("name").db()?,
                            created_at: dt(r.get("created_at").db()?),
                        })
                    },
                )
            })
            .await
    }

    async fn create_invitation(&self, inv: &Invitation) -> Result<(), StoreError> {
        let inv = inv.clone();
        self.transaction(move |tx| {
            tx.prepare_cached(&format!(
                "INSERT INTO invitations ({INVITATION_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
            ))
            .db()?
            .execute(params![
                inv.id.as_str(),
                inv.org_id.as_str(),
                inv.email.as_str(),
                inv.role.as_str(),
                inv.token_hash,
                inv.invited_by.as_str(),
                ms(inv.created_at),
                ms(inv.expires_at),
                inv.accepted_at.map(ms),
                inv.revoked_at.map(ms)
            ])
            .db()?;
            Ok(())
        })
        .await
    }

    async fn invitation_by_token(
        &self,
        token_hash: &str,
    ) -> Result<Option<Invitation>, StoreError> {
        let hash = token_hash.to_owned();
        self.db
            .read(move |conn| {
                rows::first(
                    conn,
                    &format!("SELECT {INVITATION_COLUMNS} FROM invitations WHERE token_hash = ?"),
                    [hash],
                    invitation,
                )
            })
            .await
    }

    async fn invitation(&self, id: &InvitationId) -> Result<Option<Invitation>, StoreError> {
        let id = id.as_str().to_owned();
        self.db
            .read(move |conn| {
                rows::first(
                    conn,
                    &format!("SELECT {INVITATION_COLUMNS} FROM invitations WHERE id = ?"),
                    [id],
                    invitation,
                )
            })
            .await
    }

    async fn invitations(&self, org: &OrgId, limit: u32) -> Result<Vec<Invitation>, StoreError> {
        let org = org.as_str().to_owned();
        self.db
            .read(move |conn| {
                let mut st = conn
                    .prepare_cached(&format!(
                        "SELECT {INVITATION_COLUMNS} FROM invitations WHERE org_id = ? \
                         ORDER BY created_at DESC, id DESC LIMIT ?"
                    ))
                    .db()?;
                let mut rows = st.query(params![org, limit]).db()?;
                let mut out = Vec::new();
                while let Some(r) = rows.next().db()? {
                    out.push(invitation(r)?);
                }
                Ok(out)
            })
            .await
    }

    async fn revoke_invitation(
        &self,
        org: &OrgId,
        id: &InvitationId,
        now: OffsetDateTime,
    ) -> Result<bool, StoreError> {
        let (org, id) = (org.as_str().to_owned(), id.as_str().to_owned());
        self.transaction(move |tx| {
            let n = tx
                .prepare_cached(
                    "UPDATE invitations SET revoked_at = ? \
                     WHERE id = ? AND org_id = ? AND accepted_at IS NULL AND revoked_at IS NULL",
                )
                .db()?
                .execute(params![ms(now), id, org])
                .db()?;
            Ok(n == 1)
        })
        .await
    }

    async fn accept_invitation(
        &self,
        id: &InvitationId,
        now: OffsetDateTime,
        joining: &Joining,
    ) -> Result<bool, StoreError> {
        let (id, joining) = (id.as_str().to_owned(), joining.clone());
        self.transaction(move |tx| {
            let open = tx
                .prepare_cached(
                    "UPDATE invitations SET accepted_at = ?1 \
                     WHERE id = ?2 AND accepted_at IS NULL AND revoked_at IS NULL AND expires_at > ?1",
                )
                .db()?
                .execute(params![ms(now), id])
                .db()?;
            if open != 1 {
                return Ok(false);
            }
            let (role, org): (String, String) = tx
                .query_row(
                    "SELECT role, org_id FROM invitations WHERE id = ?",
                    [&id],
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )
                .db()?;
            let role = Role::parse(&role).ok_or_else(|| corrupt("invitations.role"))?;
            let org = role.has_org().then_some(org);
            let (role_col, staff_role) = rows::role_columns(role);
            match joining {
                Joining::New(user) => {
                    tx.prepare_cached(&format!(
                        "INSERT INTO users ({USER_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?)"
                    ))
                    .db()?
                    .execute(params![
                        user.id.as_str(),
                        user.email.as_str(),
                        user.password_hash,
                        role_col,
                        ms(user.created_at),
                        staff_role,
                        org
                    ])
                    .db()?;
                }
                Joining::Existing(user) => {
                    let n = tx
                        .prepare_cached(
                            "UPDATE users SET role = ?, staff_role = ?, org_id = ? \
                             WHERE id = ? AND role = 'customer' AND staff_role IS NULL",
                        )
                        .db()?
                        .execute(params![role_col, staff_role, org, user.as_str()])
                        .db()?;
                    if n != 1 {
                        return Err(StoreError::Conflict {
                            constraint: "users_role",
                        });
                    }
                }
            }
            Ok(true)
        })
        .await
    }

    async fn create_password_reset(&self, reset: &PasswordReset) -> Result<(), StoreError> {
        let r = reset.clone();
        self.transaction(move |tx| {
            tx.prepare_cached(
                "INSERT INTO password_resets (token_hash, user_id, created_at, expires_at) \
                 VALUES (?, ?, ?, ?)",
            )
            .db()?
            .execute(params![
                r.token_hash,
                r.user_id.as_str(),
                ms(r.created_at),
                ms(r.expires_at)
            ])
            .db()?;
            Ok(())
        })
        .await
    }

    async fn use_password_reset(
        &self,
        token_hash: &str,
        now: OffsetDateTime,
        password_hash: &str,
    ) -> Result<Option<UserId>, StoreError> {
        let (token, hash) = (token_hash.to_owned(), password_hash.to_owned());
        self.transaction(move |tx| {
            let user: Option<String> = tx
                .query_row(
                    "UPDATE password_resets SET used_at = ?1 \
                     WHERE token_hash = ?2 AND used_at IS NULL AND expires_at > ?1 \
                     RETURNING user_id",
                    params![ms(now), token],
                    |r| r.get(0),
                )
                .optional()
                .db()?;
            let Some(user) = user else {
                return Ok(None);
            };
            tx.prepare_cached("UPDATE users SET password_hash = ? WHERE id = ?")
                .db()?
                .execute(params![hash, user])
                .db()?;
            tx.prepare_cached(
                "UPDATE sessions SET revoked_at = ? WHERE user_id = ? AND revoked_at IS NULL",
            )
            .db()?
            .execute(params![ms(now), user])
            .db()?;
            Ok(Some(parse(
                UserId::try_from(user),
                "password_resets.user_id",
            )?))
        })
        .await
    }

    async fn assign_staff(
        &self,
        event: &EventId,
        user: &UserId,
        now: OffsetDateTime,
    ) -> Result<(), StoreError> {
        let (event, user) = (event.as_str().to_owned(), user.as_str().to_owned());
        self.transaction(move |tx| {
            tx.prepare_cached(
                "INSERT INTO event_staff (event_id, user_id, assigned_at) VALUES (?, ?, ?) \
                 ON CONFLICT DO NOTHING",
            )
            .db()?
            .execute(params![event, user, ms(now)])
            .db()?;
            Ok(())
        })
        .await
    }

    async fn is_staff(&self, event: &EventId, user: &UserId) -> Result<bool, StoreError> {
        let (event, user) = (event.as_str().to_owned(), user.as_str().to_owned());
        self.db
            .read(move |conn| {
                rows::scalar::<i64>(
                    conn,
                    "SELECT 1 FROM event_staff WHERE event_id = ? AND user_id = ?",
                    [event, user],
                )
                .map(|n| n.is_some())
            })
            .await
    }

    async fn event_staff(&self, event: &EventId) -> Result<Vec<UserId>, StoreError> {
        let event = event.as_str().to_owned();
        self.db
            .read(move |conn| {
                rows::all(
                    conn,
                    "SELECT user_id FROM event_staff WHERE event_id = ? ORDER BY assigned_at, user_id",
                    [event],
                    |r| parse(UserId::try_from(r.get::<_, String>(0).db()?), "event_staff"),
                )
            })
            .await
    }
}
