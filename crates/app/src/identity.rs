//! Accounts and bearer tokens.
//!
//! Passwords are hashed with argon2id (OWASP parameters) on the blocking pool, at
//! most `hashing_concurrency` at a time, so a login storm cannot starve the runtime.
//! Tokens are compact JWTs (HS256) signed with a key every node shares; verifying
//! one needs no database round trip. We sign them with `hmac`/`sha2` directly rather
//! than through a JWT crate: one fixed algorithm needs no algorithm negotiation, and
//! the JWT crates pull in RSA/EC backends we would never call.

use argon2::password_hash::{
    rand_core::OsRng, PasswordHash, PasswordHasher, PasswordVerifier, SaltString,
};
use argon2::Argon2;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use base64::Engine;
use boxoffice_domain::{Email, Password, Role, User, UserId};
use boxoffice_ports::{Clock, IdentityStore, StoreError};
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use std::fmt;
use std::time::Duration;
use time::OffsetDateTime;

use crate::{App, AppError};

/// Who is calling: from a verified token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    pub user_id: UserId,
    pub role: Role,
}

impl Principal {
    /// The server itself, acting as an admin (seeding the demo, maintenance).
    pub fn system() -> Self {
        Self {
            user_id: UserId::new(),
            role: Role::Admin,
        }
    }

    pub fn require_admin(&self) -> Result<(), AppError> {
        if self.role == Role::Admin {
            Ok(())
        } else {
            Err(AppError::Forbidden)
        }
    }

    /// May this caller see something owned by `owner`?
    pub fn may_see(&self, owner: &UserId) -> bool {
        self.role == Role::Admin || &self.user_id == owner
    }
}

#[derive(Serialize, Deserialize)]
struct Claims {
    sub: String,
    role: Role,
    iat: i64,
    exp: i64,
}

pub struct Tokens {
    key: Vec<u8>,
    ttl: Duration,
}

impl fmt::Debug for Tokens {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Tokens")
            .field("key", &"***")
            .field("ttl", &self.ttl)
            .finish()
    }
}

const HEADER: &str = r#"{"alg":"HS256","typ":"JWT"}"#;

impl Tokens {
    pub fn new(key: Vec<u8>, ttl: Duration) -> Self {
        Self { key, ttl }
    }

    fn mac(&self) -> Hmac<Sha256> {
        Hmac::<Sha256>::new_from_slice(&self.key).expect("HMAC takes any key length")
    }

    pub fn issue(&self, who: &Principal, now: OffsetDateTime) -> String {
        let claims = Claims {
            sub: who.user_id.to_string(),
            role: who.role,
            iat: now.unix_timestamp(),
            exp: now.unix_timestamp() + self.ttl.as_secs() as i64,
        };
        let body = format!(
            "{}.{}",
            B64.encode(HEADER),
            B64.encode(serde_json::to_vec(&claims).expect("claims serialize"))
        );
        let mut mac = self.mac();
        mac.update(body.as_bytes());
        format!("{body}.{}", B64.encode(mac.finalize().into_bytes()))
    }

    /// The principal of a valid, unexpired token; `None` for anything else.
    pub fn verify(&self, token: &str, now: OffsetDateTime) -> Option<Principal> {
        let (body, sig) = token.rsplit_once('.')?;
        let (header, payload) = body.split_once('.')?;
        if B64.decode(header).ok()? != HEADER.as_bytes() {
            return None;
        }
        let mut mac = self.mac();
        mac.update(body.as_bytes());
        mac.verify_slice(&B64.decode(sig).ok()?).ok()?;
        let claims: Claims = serde_json::from_slice(&B64.decode(payload).ok()?).ok()?;
        if claims.exp <= now.unix_timestamp() {
            return None;
        }
        Some(Principal {
            user_id: UserId::try_from(claims.sub).ok()?,
            role: claims.role,
        })
    }
}

/// A valid hash of nothing anyone knows, verified against when the email is unknown
/// so that a login takes as long whether or not the account exists.
const DECOY_HASH: &str = "$argon2id$v=19$m=19456,t=2,p=1$c29tZXNhbHRzb21lc2FsdA$0yqf0oxBgPk1Shk1e8kpDD3J8NL0PBr0cCj6tW/9jz8";

impl App {
    async fn hash_password(&self, password: Password) -> Result<String, AppError> {
        let _permit = self
            .hashing
            .acquire()
            .await
            .map_err(|e| AppError::Internal(e.into()))?;
        hash_off_runtime(password).await
    }

    async fn verify_password(&self, password: String, hash: String) -> Result<bool, AppError> {
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
        };
        match self.store.create_user(&user).await {
            Ok(()) => Ok(user),
            Err(StoreError::Conflict {
                constraint: "users_email",
            }) => Err(AppError::EmailTaken),
            Err(e) => Err(e.into()),
        }
    }

    /// Registers a customer and returns a token for them.
    pub async fn register(&self, email: &str, password: &str) -> Result<String, AppError> {
        let email = Email::parse(email)?;
        let password = Password::parse(password)?;
        let user = self.create_account(email, password, Role::Customer).await?;
        Ok(self.tokens.issue(
            &Principal {
                user_id: user.id,
                role: user.role,
            },
            self.clock.now(),
        ))
    }

    pub async fn login(&self, email: &str, password: &str) -> Result<String, AppError> {
        let user = match Email::parse(email) {
            Ok(e) => self.store.user_by_email(&e).await?,
            Err(_) => None,
        };
        let hash = user
            .as_ref()
            .map_or(DECOY_HASH.to_owned(), |u| u.password_hash.clone());
        let ok = self.verify_password(password.to_owned(), hash).await?;
        match user {
            Some(u) if ok => Ok(self.tokens.issue(
                &Principal {
                    user_id: u.id,
                    role: u.role,
                },
                self.clock.now(),
            )),
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
        }
    }

    #[test]
    fn tokens_round_trip_and_expire() {
        let t = Tokens::new(b"k".to_vec(), Duration::from_secs(60));
        let now = OffsetDateTime::now_utc();
        let who = p();
        let tok = t.issue(&who, now);
        assert_eq!(t.verify(&tok, now), Some(who));
        assert_eq!(t.verify(&tok, now + time::Duration::seconds(61)), None);
    }

    #[test]
    fn tampered_or_foreign_tokens_fail() {
        let t = Tokens::new(b"k".to_vec(), Duration::from_secs(60));
        let now = OffsetDateTime::now_utc();
        let tok = t.issue(&p(), now);
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
    fn decoy_hash_parses() {
        assert!(PasswordHash::new(DECOY_HASH).is_ok());
    }
}
