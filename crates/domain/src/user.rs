//! Accounts: a normalised email, a password policy, a role and (for organizers
//! and check-in staff) an organization.

use serde::{Deserialize, Serialize};
use std::fmt;
use time::OffsetDateTime;

use crate::{UserId, ValidationError};

/// A lower-cased email address of plausible shape (`local@domain`). Delivery is
/// what really validates an address; this only rejects what can never work.
#[derive(Clone, PartialEq, Eq, Hash, Serialize)]
pub struct Email(String);

impl Email {
    pub fn parse(s: &str) -> Result<Self, ValidationError> {
        let s = s.trim().to_lowercase();
        let bad = || ValidationError::new("email", "not a valid email address");
        if s.len() > 254 || s.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(bad());
        }
        let (local, domain) = s.split_once('@').ok_or_else(bad)?;
        if local.is_empty()
            || domain.is_empty()
            || domain.contains('@')
            || domain.starts_with('.')
            || domain.ends_with('.')
        {
            return Err(bad());
        }
        Ok(Email(s))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Email {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Display for Email {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A password that meets the policy (8 to 1024 characters). Its `Debug` is redacted.
#[derive(Clone)]
pub struct Password(String);

impl Password {
    pub const MIN_CHARS: usize = 8;

    pub fn parse(s: &str) -> Result<Self, ValidationError> {
        let n = s.chars().count();
        if n < Self::MIN_CHARS {
            return Err(ValidationError::new(
                "password",
                "must be at least 8 characters",
            ));
        }
        if n > 1024 {
            return Err(ValidationError::new(
                "password",
                "must be at most 1024 characters",
            ));
        }
        Ok(Password(s.to_owned()))
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Password {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Password(***)")
    }
}

/// What an account may do; `permissions.rs` (app) turns it into answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Buys tickets: their own holds and orders.
    Customer,
    /// Manages their organization's venues, events, orders (read), refunds and
    /// sales views.
    Organizer,
    /// Check-in staff of an organization: scans tickets of the events they are
    /// assigned to, nothing else.
    Checkin,
    /// Operators: read-only views (engine audit, sales), never writes.
    Ops,
    /// Everything.
    Admin,
}

impl Role {
    pub const ALL: [Role; 5] = [
        Role::Customer,
        Role::Organizer,
        Role::Checkin,
        Role::Ops,
        Role::Admin,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Customer => "customer",
            Role::Organizer => "organizer",
            Role::Checkin => "checkin",
            Role::Ops => "ops",
            Role::Admin => "admin",
        }
    }

    pub fn parse(s: &str) -> Option<Role> {
        Role::ALL.into_iter().find(|r| r.as_str() == s)
    }

    /// Roles that belong to an organization (an account of them has one).
    pub fn has_org(self) -> bool {
        matches!(self, Role::Organizer | Role::Checkin)
    }
}

/// An organization: its organizers and check-in staff, its venues and events.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Organization {
    pub id: crate::OrgId,
    pub name: String,
    pub created_at: OffsetDateTime,
}

impl Organization {
    /// A trimmed name of 1 to 200 characters.
    pub fn name(s: &str) -> Result<String, ValidationError> {
        let s = s.trim();
        if s.is_empty() || s.chars().count() > 200 || s.chars().any(char::is_control) {
            return Err(ValidationError::new(
                "name",
                "1 to 200 characters, no control characters",
            ));
        }
        Ok(s.to_owned())
    }
}

#[derive(Clone)]
pub struct User {
    pub id: UserId,
    pub email: Email,
    /// PHC string (argon2id); never leaves the server.
    pub password_hash: String,
    pub role: Role,
    pub created_at: OffsetDateTime,
    /// The organization of an organizer or check-in staff (none for the others).
    pub org_id: Option<crate::OrgId>,
}

impl fmt::Debug for User {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("User")
            .field("id", &self.id)
            .field("email", &self.email)
            .field("role", &self.role)
            .field("org_id", &self.org_id)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn emails() {
        assert_eq!(
            Email::parse(" Ann@Example.COM ").unwrap().as_str(),
            "ann@example.com"
        );
        assert!(Email::parse("admin@localhost").is_ok());
        for bad in ["", "a", "@x", "a@", "a@@b", "a b@c", "a@b.", "a@.b"] {
            assert!(Email::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn password_policy_and_redaction() {
        assert!(Password::parse("1234567").is_err());
        let p = Password::parse("12345678").unwrap();
        assert_eq!(format!("{p:?}"), "Password(***)");
    }

    #[test]
    fn roles_round_trip() {
        for r in Role::ALL {
            assert_eq!(Role::parse(r.as_str()), Some(r));
        }
        assert_eq!(Role::parse("root"), None);
    }

    proptest! {
        #[test]
        fn email_parse_never_panics(s in ".{0,300}") {
            let _ = Email::parse(&s);
        }
    }
}
