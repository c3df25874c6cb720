//! Opaque identifiers. Each kind of id is its own type, parsed once at the edge
//! (`TryFrom<String>`), so a seat id can never be passed where an event id is due.
//!
//! Format: `<prefix>_<ulid in lowercase>`. Ulids sort by creation time, which keeps
//! listings stable and index inserts append-only.

use std::fmt;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not a valid {kind} id")]
pub struct IdError {
    pub kind: &'static str,
}

fn valid(prefix: &str, s: &str) -> bool {
    let Some(rest) = s.strip_prefix(prefix).and_then(|r| r.strip_prefix('_')) else {
        return false;
    };
    rest.len() == 26 && ulid::Ulid::from_string(rest).is_ok()
}

macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident, $prefix:literal, $kind:literal) => {
        $(#[$doc])*
        #[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
        #[serde(try_from = "String", into = "String")]
        pub struct $name(String);

        impl $name {
            pub const PREFIX: &'static str = $prefix;

            /// A fresh, time-ordered id.
            #[allow(clippy::new_without_default)]
            pub fn new() -> Self {
                Self(format!("{}_{}", $prefix, ulid::Ulid::new().to_string().to_lowercase()))
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl TryFrom<String> for $name {
            type Error = IdError;
            fn try_from(s: String) -> Result<Self, IdError> {
                let lower = s.to_ascii_lowercase();
                if valid($prefix, &lower) {
                    Ok(Self(lower))
                } else {
                    Err(IdError { kind: $kind })
                }
            }
        }

        impl TryFrom<&str> for $name {
            type Error = IdError;
            fn try_from(s: &str) -> Result<Self, IdError> {
                Self::try_from(s.to_owned())
            }
        }

        impl From<$name> for String {
            fn from(id: $name) -> String {
                id.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

id_type!(/// A user account (customer or admin).
    UserId, "usr", "user");
id_type!(/// A venue with its seat map.
    VenueId, "ven", "venue");
id_type!(/// One physical seat of a venue; events at the venue share it.
    SeatId, "st", "seat");
id_type!(/// An event: a venue, a date, tiers and a sale.
    EventId, "evt", "event");
id_type!(/// A price tier of an event, reserved-seat or general admission.
    TierId, "tier", "tier");
id_type!(/// A temporary hold on seats or on a general-admission quantity.
    HoldId, "hld", "hold");
id_type!(/// A place on an event's waitlist.
    WaitlistId, "wl", "waitlist entry");
id_type!(/// An organization: organizers and check-in staff, venues and events.
    OrgId, "org", "organization");
id_type!(/// An invitation to join an organization with a role.
    InvitationId, "inv", "invitation");

impl OrgId {
    /// The organization that everything made before organizations existed (and
    /// the demo) belongs to; migration 0070 creates it in both stores.
    pub fn default_org() -> Self {
        Self(format!("{}_{}", Self::PREFIX, "0".repeat(26)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn fresh_ids_parse_back() {
        let id = EventId::new();
        assert_eq!(EventId::try_from(id.to_string()).unwrap(), id);
        assert!(id.as_str().starts_with("evt_"));
    }

    #[test]
    fn a_seat_id_is_not_an_event_id() {
        let seat = SeatId::new();
        assert!(EventId::try_from(seat.to_string()).is_err());
    }

    #[test]
    fn the_default_organization_id_parses() {
        let d = OrgId::default_org();
        assert_eq!(OrgId::try_from(d.to_string()).unwrap(), d);
    }

    #[test]
    fn uppercase_is_normalised() {
        let id = HoldId::new();
        let upper = id.to_string().to_uppercase().replacen("HLD", "hld", 1);
        assert_eq!(HoldId::try_from(upper).unwrap(), id);
    }

    proptest! {
        #[test]
        fn arbitrary_strings_never_panic(s in ".{0,64}") {
            let _ = EventId::try_from(s);
        }

        #[test]
        fn wrong_prefix_or_length_is_rejected(tail in "[0-9a-z]{0,40}") {
            prop_assume!(tail.len() != 26);
            let s = format!("evt_{}", tail);
            prop_assert!(EventId::try_from(s).is_err());
        }

        #[test]
        fn serde_round_trip(_x in 0..10u8) {
            let id = SeatId::new();
            let json = serde_json::to_string(&id).unwrap();
            prop_assert_eq!(serde_json::from_str::<SeatId>(&json).unwrap(), id);
        }
    }
}
