//! Accounts, access tokens and refresh tokens.
//!
//! Passwords are hashed with argon2id (OWASP parameters) on the blocking pool, at
//! most `hashing_concurrency` at a time, so a login storm cannot starve the runtime.
//!
//! Access tokens are short-lived (15 minutes by default) compact JWTs signed with
//! Ed25519 (`alg: EdDSA`), whose header names the key (`kid`): verifying one needs
//! no database round trip, and a verifier keeps a map of keys by id, so a key can
//! be rotated while tokens signed by the previous one are still honoured. The
//! signing key is derived from the node's token key (every node shares it), so all
//! nodes sign and verify alike. Exactly one algorithm is accepted (`alg` is checked,
//! never negotiated); `ring` does the signing, as it does for TLS elsewhere.
//!
//! Refresh tokens are opaque (`<session>.<generation>.<random>`) and rotate: each
//! use returns a new one and retires the old. A retired one coming back means it
//! was copied: the whole session is revoked (reuse detection). A refresh re-reads
//! the account, so a revoked or demoted user keeps at most what the current access
//! token grants, for at most its lifetime.

use argon2::password_hash::{
    rand_core::OsRng, PasswordHash, PasswordHasher, PasswordVerifier, SaltString,
};
use argon2::Argon2;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use base64::Engine;
use boxoffice_domain::{Email, OrgId, Password, Role, User, UserId};
use boxoffice_ports::{Clock, IdentityStore, Session, StoreError};
use hmac::{Hmac, Mac};
use ring::signature::{Ed25519KeyPair, KeyPair, UnparsedPublicKey, ED25519};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::fmt;
use std::time::Duration;
use time::OffsetDateTime;

use crate::{App, AppError};

/// Who is calling: from a verified token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    pub user_id: UserId,
    pub role: Role,
    /// The organization of an organizer or check-in staff.
    pub org: Option<OrgId>,
    /// Where the request came from (request id, address), set by the edge: what
    /// the audit log records of the caller besides who they are.
    pub origin: boxoffice_domain::Origin,
}

impl Principal {
    /// The server itself, acting as an admin (seeding the demo, maintenance).
    pub fn system() -> Self {
        Self {
            user_id: UserId::new(),
            role: Role::Admin,
            org: None,
            origin: Default::default(),
        }
    }

    /// What a token for `user` carries: read from the account (at login and at
    /// every refresh).
    pub fn of(user: &User) -> Self {
        Self {
            user_id: user.id.clone(),
            role: user.role,
            org: user.org_id.clone(),
            origin: Default::default(),
        }
    }
}

#[derive(Serialize, Deserialize)]
struct Claims {
    sub: String,
    role: Role,
    /// The organization (organizers, check-in staff).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    org: Option<String>,
    /// The session (refresh-token family) this token was issued under.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    sid: Option<String>,
    iat: i64,
    exp: i64,
}

#[derive(Deserialize)]
struct Header {
    alg: String,
    kid: Option<String>,
}

/// What a login, a registration or a refresh hands out.
#[derive(Debug, Clone)]
pub struct IssuedTokens {
    /// The access token (`Authorization: Bearer`).
    pub access: String,
    pub refresh: String,
    /// The access token's lifetime.
    pub expires_in: Duration,
}

pub struct Tokens {
    signing: Ed25519KeyPair,
    kid: String,
    /// Every key a token may be signed with, by id: this node's, and (for a
    /// rotation) earlier ones still honoured.
    verifying: HashMap<String, Vec<u8>>,
    ttl: Duration,
}

impl fmt::Debug for Tokens {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Tokens")
            .field("kid", &self.kid)
            .field("ttl", &self.ttl)
            .finish_non_exhaustive()
    }
}

/// The Ed25519 key pair of a token key: its seed is HMAC-SHA256(key, label), so
/// the signing key is never the raw secret and every node derives the same.
fn key_pair(secret: &[u8]) -> Ed25519KeyPair {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC takes any key length");
    mac.update(b"boxoffice access token ed25519 v1");
    let seed = mac.finalize().into_bytes();
    Ed25519KeyPair::from_seed_unchecked(&seed).expect("a 32-byte seed")
}

/// A key's id: the first 8 bytes of the SHA-256 of its public key.
fn key_id(public: &[u8]) -> String {
    B64.encode(&Sha256::digest(public)[..8])
}

impl Tokens {
    pub fn new(secret: Vec<u8>, ttl: Duration) -> Self {
        let signing = key_pair(&secret);
        let public = signing.public_key().as_ref().to_vec();
        let kid = key_id(&public);
        Self {
            verifying: HashMap::from([(kid.clone(), public)]),
            signing,
            kid,
            ttl,
        }
    }

    /// Also honours tokens signed under `secret` (the key before a rotation).
    pub fn accept_previous(&mut self, secret: &[u8]) {
        let public = key_pair(secret).public_key().as_ref().to_vec();
        self.verifying.insert(key_id(&public), public);
    }

    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    pub fn issue(&self, who: &Principal, session: Option<&str>, now: OffsetDateTime) -> String {
        let claims = Claims {
            sub: who.user_id.to_string(),
            role: who.role,
            org: who.org.as_ref().map(ToString::to_string),
            sid: session.map(str::to_owned),
            iat: now.unix_timestamp(),
            exp: now.unix_timestamp() + self.ttl.as_secs() as i64,
        };
        let header = format!(r#"{{"alg":"EdDSA","typ":"JWT","kid":"{}"}}"#, self.kid);
        let body = format!(
            "{}.{}",
            B64.encode(header),
            B64.encode(serde_json::to_vec(&claims).expect("claims serialize"))
        );
        let sig = self.signing.sign(body.as_bytes());
        format!("{body}.{}", B64.encode(sig.as_ref()))
    }

    /// The principal of a valid, unexpired token; `None` for anything else.
    pub fn verify(&self, token: &str, now: OffsetDateTime) -> Option<Principal> {
        let (body, sig) = token.rsplit_once('.')?;
        let (header, payload) = body.split_once('.')?;
        let header: Header = serde_json::from_slice(&B64.decode(header).ok()?).ok()?;
        if header.alg != "EdDSA" {
            return None;
        }
        let public = self.verifying.get(header.kid.as_deref()?)?;
        UnparsedPublicKey::new(&ED25519, public)
            .verify(body.as_bytes(), &B64.decode(sig).ok()?)
            .ok()?;
        let claims: Claims = serde_json::from_slice(&B64.decode(payload).ok()?).ok()?;
        if claims.exp <= now.unix_timestamp() {
            return None;
        }
        Some(Principal {
            user_id: UserId::try_from(claims.sub).ok()?,
            role: claims.role,
            org: match claims.org {
                Some(o) => Some(OrgId::try_from(o).ok()?),
                None => None,
            },
            origin: Default::default(),
        })
    }
}

/// A refresh token's parts: `<session>.<generation>.<random>`.
fn parse_refresh(token: &str) -> Option<(&str, i64)> {
    let mut parts = token.splitn(3, '.');
    let (sid, generation, secret) = (parts.next()?, parts.next()?, parts.next()?);
    let valid = |s: &str| {
        !s.is_empty()
            && s.len() <= 64
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    };
    if !valid(sid) || !valid(secret) {
        return None;
    }
    Some((sid, generation.parse().ok().filter(|g: &i64| *g >= 0)?))
}

fn refresh_token(sid: &str, generation: i64) -> String {
    format!(
        "{sid}.{generation}.{}",
        B64.encode(rand::random::<[u8; 32]>())
    )
}

/// Equal, compared in time that does not depend on where they differ.
fn same_bytes(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

pub(crate) fn hash_token(token: &str) -> String {
    Sha256::digest(token.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// A valid hash of nothing anyone knows, verified against when the email is unknown
/// so that a login takes as long whether or not the account exists.
const DECOY_HASH: &str = "$argon2id$v=19$m=19456,t=2,p=1$c29tZXNhbHRzb21lc2FsdA$0yqf0oxBgPk1Shk1e8kpDD3J8NL0PBr0cCj6tW/9jz8";

impl App {
    pub(crate) async fn hash_password(&self, password: Password) -> Result<String, AppError> {
        let _permit = self
            .hashing
            .acquire()
            .await
            .map_err(|e| AppError::Internal(e.into()))?;
        hash_off_runtime(password).await
    }

    pub(crate) async fn verify_password(
        &self,
        password: String,
        hash: String,
    ) -> Result<bool, AppError> {
        let _permit = self
            .hashing
            .acquire()
            .await
            .map_err(|e| AppError::Internal(e.into()))?;
        tokio::task::spawn_blocking(move || {
            let Ok(parsed) = PasswordHash::new(&hash) else {
                return false;
            };
            Argon2::default()
                .verify_password(password.as_bytes(), &parsed)
                .is_ok()
        })
        .await
        .map_err(|e| AppError::Internal(e.into()))
    }

    async fn create_account(
        &self,
        email: Email,
        password: Password,
        role: Role,
    ) -> Result<User, AppError> {
        let user = User {
            id: UserId::new(),
            email,
            password_hash: self.hash_password(password).await?,
            role,
            created_at: self.clock.now(),
            org_id: None,
        };
        match self.store.create_user(&user).await {
            Ok(()) => Ok(user),
            Err(StoreError::Conflict {
                constraint: "users_email",
            }) => Err(AppError::EmailTaken),
            Err(e) => Err(e.into()),
        }
    }

    /// Registers a customer and returns their tokens.
    pub async fn register(&self, email: &str, password: &str) -> Result<IssuedTokens, AppError> {
        let email = Email::parse(email)?;
        let password = Password::parse(password)?;
        let user = self.create_account(email, password, Role::Customer).await?;
        self.start_session(&user).await
    }

    /// A new session for `user`: an access token and the first refresh token.
    pub(crate) async fn start_session(&self, user: &User) -> Result<IssuedTokens, AppError> {
        let now = self.clock.now();
        let sid = B64.encode(rand::random::<[u8; 16]>());
        let refresh = refresh_token(&sid, 0);
        self.store
            .create_session(&Session {
                id: sid.clone(),
                user_id: user.id.clone(),
                generation: 0,
                token_hash: hash_token(&refresh),
                created_at: now,
                expires_at: now + self.settings.refresh_ttl,
                revoked_at: None,
            })
            .await?;
        Ok(IssuedTokens {
            access: self.tokens.issue(&Principal::of(user), Some(&sid), now),
            refresh,
            expires_in: self.tokens.ttl(),
        })
    }

    /// A new access token and the next refresh token for `refresh`, which is
    /// retired. The account is read again: its current role goes in the token, and
    /// a revoked session or a deleted account gets nothing. A retired token coming
    /// back (or two refreshes racing with one token) revokes the session.
    pub async fn refresh(&self, refresh: &str) -> Result<IssuedTokens, AppError> {
        let now = self.clock.now();
        let (sid, generation) = parse_refresh(refresh).ok_or(AppError::InvalidRefreshToken)?;
        let session = self
            .store
            .session(sid)
            .await?
            .ok_or(AppError::InvalidRefreshToken)?;
        if session.revoked_at.is_some() || session.expires_at <= now {
            return Err(AppError::InvalidRefreshToken);
        }
        if generation < session.generation {
            tracing::warn!(session = %session.id, user = %session.user_id, "a retired refresh token was used again: session revoked");
            self.store.revoke_session(&session.id, now).await?;
            return Err(AppError::RefreshTokenReused);
        }
        let genuine = generation == session.generation
            && same_bytes(
                hash_token(refresh).as_bytes(),
                session.token_hash.as_bytes(),
            );
        if !genuine {
            return Err(AppError::InvalidRefreshToken);
        }
        let Some(user) = self.store.user(&session.user_id).await? else {
            self.store.revoke_session(&session.id, now).await?;
            return Err(AppError::InvalidRefreshToken);
        };
        let next = refresh_token(sid, generation + 1);
        let rotated = self
            .store
            .rotate_session(
                sid,
                generation,
                &hash_token(&next),
                now + self.settings.refresh_ttl,
            )
            .await?;
        if !rotated {
            // Another refresh with the same token won (or a revocation landed):
            // one token, two users of it.
            self.store.revoke_session(&session.id, now).await?;
            return Err(AppError::RefreshTokenReused);
        }
        Ok(IssuedTokens {
            access: self.tokens.issue(&Principal::of(&user), Some(sid), now),
            refresh: next,
            expires_in: self.tokens.ttl(),
        })
    }

    /// Logs a session out: its refresh token stops working (its access token runs
    /// out within its lifetime). Anything that is not a live token is ignored.
    pub async fn logout(&self, refresh: &str) -> Result<(), AppError> {
        let Some((sid, generation)) = parse_refresh(refresh) else {
            return Ok(());
        };
        if let Some(s) = self.store.session(sid).await? {
            if s.generation == generation
                && same_bytes(hash_token(refresh).as_bytes(), s.token_hash.as_bytes())
            {
                self.store.revoke_session(sid, self.clock.now()).await?;
            }
        }
        Ok(())
    }

    /// Revokes every session of a user (admins): no refresh succeeds any more, and
    /// access ends when the current access tokens expire.
    pub async fn revoke_user(&self, who: &Principal, user: &str) -> Result<u64, AppError> {
        who.require_admin()?;
        let user = UserId::try_from(user).map_err(|_| AppError::NotFound)?;
        if self.store.user(&user).await?.is_none() {
            return Err(AppError::NotFound);
        }
        let n = self
            .store
            .revoke_user_sessions(&user, self.clock.now())
            .await?;
        tracing::info!(%user, sessions = n, "sessions revoked");
        self.audit_action(
            who,
            "user.sessions_revoked",
            user.as_str(),
            None,
            serde_json::json!({"sessions": n}),
        )
        .await;
        Ok(n)
    }

    pub async fn login(&self, email: &str, password: &str) -> Result<IssuedTokens, AppError> {
        let user = match Email::parse(email) {
            Ok(e) => self.store.user_by_email(&e).await?,
            Err(_) => None,
        };
        let hash = user
            .as_ref()
            .map_or(DECOY_HASH.to_owned(), |u| u.password_hash.clone());
        let ok = self.verify_password(password.to_owned(), hash).await?;
        match user {
            Some(u) if ok => self.start_session(&u).await,
            _ => Err(AppError::InvalidCredentials),
        }
    }

    pub fn authenticate(&self, bearer: &str) -> Result<Principal, AppError> {
        self.tokens
            .verify(bearer, self.clock.now())
            .ok_or(AppError::Unauthenticated)
    }

    /// Creates the first admin if there is none. Returns the admin's id when it was
    /// created, with the password if it had to be generated (to print once).
    pub async fn ensure_admin(
        &self,
        email: &str,
        password: Option<&str>,
    ) -> Result<Option<(UserId, Option<String>)>, AppError> {
        if self.store.admin_exists().await? {
            return Ok(None);
        }
        let (password, generated) = match password {
            Some(p) => (p.to_owned(), None),
            None => {
                let p = random_password();
                (p.clone(), Some(p))
            }
        };
        let email = Email::parse(email)?;
        match self
            .create_account(email, Password::parse(&password)?, Role::Admin)
            .await
        {
            Ok(user) => Ok(Some((user.id, generated))),
            // Another node created it at the same moment.
            Err(AppError::EmailTaken) => Ok(None),
            Err(e) => Err(e),
        }
    }
}

/// Hashes on the blocking pool: argon2 takes tens of milliseconds of CPU.
async fn hash_off_runtime(password: Password) -> Result<String, AppError> {
    tokio::task::spawn_blocking(move || {
        let salt = SaltString::generate(&mut OsRng);
        Argon2::default()
            .hash_password(password.expose().as_bytes(), &salt)
            .map(|h| h.to_string())
            .map_err(|e| AppError::Internal(anyhow::anyhow!("hashing: {e}")))
    })
    .await
    .map_err(|e| AppError::Internal(e.into()))?
}

/// An operator's way back in (`boxoffice admin reset-password`): gives the account
/// `email` a new generated password and returns it. It needs the store alone, so it
/// works on a stopped server's database as on a running one's (logins read the
/// store). With no such account and no admin at all, it creates that admin.
pub async fn reset_password(
    store: &dyn IdentityStore,
    clock: &dyn Clock,
    email: &str,
) -> Result<String, AppError> {
    let email = Email::parse(email)?;
    let password = random_password();
    let hash = hash_off_runtime(Password::parse(&password)?).await?;
    if let Some(user) = store.user_by_email(&email).await? {
        return match store.set_password_hash(&user.id, &hash).await? {
            true => Ok(password),
            false => Err(AppError::NotFound),
        };
    }
    if store.admin_exists().await? {
        return Err(AppError::NotFound);
    }
    let admin = User {
        id: UserId::new(),
        email,
        password_hash: hash,
        role: Role::Admin,
        created_at: clock.now(),
        org_id: None,
    };
    store.create_user(&admin).await?;
    Ok(password)
}

fn random_password() -> String {
    use rand::Rng;
    const ALPHABET: &[u8] = b"abcdefghijkmnopqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789";
    let mut rng = rand::thread_rng();
    (0..20)
        .map(|_| ALPHABET[rng.gen_range(0..ALPHABET.len())] as char)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p() -> Principal {
        Principal {
            user_id: UserId::new(),
            role: Role::Customer,
            org: None,
            origin: Default::default(),
        }
    }

    #[test]
    fn tokens_round_trip_and_expire() {
        let t = Tokens::new(b"k".to_vec(), Duration::from_secs(60));
        let now = OffsetDateTime::now_utc();
        let who = p();
        let tok = t.issue(&who, Some("s1"), now);
        assert_eq!(t.verify(&tok, now), Some(who));
        assert_eq!(t.verify(&tok, now + time::Duration::seconds(61)), None);
    }

    #[test]
    fn tampered_or_foreign_tokens_fail() {
        let t = Tokens::new(b"k".to_vec(), Duration::from_secs(60));
        let now = OffsetDateTime::now_utc();
        let tok = t.issue(&p(), None, now);
        let other = Tokens::new(b"other".to_vec(), Duration::from_secs(60));
        assert_eq!(other.verify(&tok, now), None);
        // Promote yourself to admin: the signature no longer matches.
        let (h, rest) = tok.split_once('.').unwrap();
        let (payload, sig) = rest.split_once('.').unwrap();
        let claims = String::from_utf8(B64.decode(payload).unwrap())
            .unwrap()
            .replace("customer", "admin");
        let forged = format!("{h}.{}.{sig}", B64.encode(claims));
        assert_eq!(t.verify(&forged, now), None);
        for junk in ["", "a.b", "a.b.c", "...."] {
            assert_eq!(t.verify(junk, now), None);
        }
    }

    #[test]
    fn tokens_are_eddsa_with_a_kid_and_old_keys_verify_after_a_rotation() {
        let now = OffsetDateTime::now_utc();
        let old = Tokens::new(b"old".to_vec(), Duration::from_secs(60));
        let tok = old.issue(&p(), None, now);
        let header: serde_json::Value =
            serde_json::from_slice(&B64.decode(tok.split('.').next().unwrap()).unwrap()).unwrap();
        assert_eq!(header["alg"], "EdDSA");
        assert_eq!(header["kid"], old.kid.as_str());
        let mut new = Tokens::new(b"new".to_vec(), Duration::from_secs(60));
        assert_eq!(new.verify(&tok, now), None);
        new.accept_previous(b"old");
        assert!(new.verify(&tok, now).is_some());
        assert_ne!(new.kid, old.kid);
        // Another algorithm in the header is refused, whatever the signature.
        let (_, rest) = tok.split_once('.').unwrap();
        let hs = B64.encode(format!(
            r#"{{"alg":"HS256","typ":"JWT","kid":"{}"}}"#,
            old.kid
        ));
        assert_eq!(old.verify(&format!("{hs}.{rest}"), now), None);
        let none = B64.encode(format!(r#"{{"alg":"none","kid":"{}"}}"#, old.kid));
        assert_eq!(old.verify(&format!("{none}.{rest}"), now), None);
    }

    #[test]
    fn refresh_tokens_parse_strictly() {
        let t = refresh_token("abc_-9", 3);
        assert_eq!(parse_refresh(&t), Some(("abc_-9", 3)));
        for junk in ["", "a.b", "a.-1.c", "a.1.", ".1.c", "a b.1.c", "a.x.c"] {
            assert_eq!(parse_refresh(junk), None, "{junk}");
        }
    }

    #[test]
    fn decoy_hash_parses() {
        assert!(PasswordHash::new(DECOY_HASH).is_ok());
    }
}
