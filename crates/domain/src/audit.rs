//! Audit records: who changed what, when, from where, and the state before and
//! after. A record is built where the change is decided (the request's actor, or
//! "system" for a worker) and travels through the outbox (`audit.recorded.v1`) to
//! the audit worker, which appends it to the hash chain.
//!
//! This module owns the record's *canonical form*: the exact bytes the chain hashes.
//! It must never change for a stored record (a verifier would call every old record
//! altered), so it is length-prefixed fields in a fixed order, not a serializer's
//! output that a library upgrade could reorder.

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::{EventId, MessageId};

/// The actor of work no person asked for (payments settling, holds expiring).
pub const SYSTEM: &str = "system";

/// One audited state change.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditRecord {
    /// The record's id: the outbox message that carried it (once per message).
    pub id: MessageId,
    /// When the change was decided, to the millisecond (what the chain hashes).
    #[serde(with = "time::serde::rfc3339")]
    pub at: OffsetDateTime,
    /// A user id, or [`SYSTEM`].
    pub actor: String,
    /// The actor's role (`customer`, `organizer`, `admin`, …, `system`).
    pub role: String,
    /// The edge's `x-request-id` of the request that made the change, if any.
    pub request_id: Option<String>,
    /// The client's address as the server saw the connection, if any.
    pub ip: Option<String>,
    /// What happened: `hold.made`, `hold.released`, `order.created`, `order.paid`, …
    pub action: String,
    /// What it happened to (a hold, order, event, user id…).
    pub subject: String,
    /// The event concerned, for `GET /v1/audit?event_id=`.
    pub event_id: Option<EventId>,
    /// Compact JSON of the state before and after (`None`: nothing before / after).
    pub before: Option<String>,
    pub after: Option<String>,
}

impl AuditRecord {
    /// The bytes the hash chain covers: every field, each as `<len>:<bytes>;`
    /// (absent as `-;`), the time as Unix milliseconds.
    pub fn canonical(&self) -> Vec<u8> {
        fn field(out: &mut Vec<u8>, v: Option<&str>) {
            match v {
                Some(v) => {
                    out.extend_from_slice(v.len().to_string().as_bytes());
                    out.push(b':');
                    out.extend_from_slice(v.as_bytes());
                }
                None => out.push(b'-'),
            }
            out.push(b';');
        }
        let mut out = Vec::with_capacity(256);
        out.extend_from_slice(b"audit.v1;");
        let at = (self.at.unix_timestamp_nanos() / 1_000_000).to_string();
        field(&mut out, Some(self.id.as_str()));
        field(&mut out, Some(&at));
        field(&mut out, Some(&self.actor));
        field(&mut out, Some(&self.role));
        field(&mut out, self.request_id.as_deref());
        field(&mut out, self.ip.as_deref());
        field(&mut out, Some(&self.action));
        field(&mut out, Some(&self.subject));
        field(&mut out, self.event_id.as_ref().map(|e| e.as_str()));
        field(&mut out, self.before.as_deref());
        field(&mut out, self.after.as_deref());
        out
    }

    /// `at` cut to the millisecond the store keeps (so a record read back hashes
    /// as the one appended).
    pub fn truncate_time(mut self) -> Self {
        let ms = self.at.unix_timestamp_nanos() / 1_000_000;
        self.at = OffsetDateTime::from_unix_timestamp_nanos(ms * 1_000_000).unwrap_or(self.at);
        self
    }
}

/// Who made a change and from where: what the edge knows of a request.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Origin {
    pub request_id: Option<String>,
    pub ip: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec() -> AuditRecord {
        AuditRecord {
            id: MessageId::new(),
            at: OffsetDateTime::from_unix_timestamp(1_700_000_000).unwrap(),
            actor: "usr_x".into(),
            role: "customer".into(),
            request_id: Some("r1".into()),
            ip: None,
            action: "hold.made".into(),
            subject: "hld_x".into(),
            event_id: None,
            before: None,
            after: Some(r#"{"a":1}"#.into()),
        }
    }

    #[test]
    fn the_canonical_form_separates_fields_and_absence() {
        let a = rec();
        let mut b = a.clone();
        b.actor = "usr_".into();
        b.role = "xcustomer".into();
        assert_ne!(
            a.canonical(),
            b.canonical(),
            "field boundaries are not ambiguous"
        );
        let mut c = a.clone();
        c.ip = Some(String::new());
        assert_ne!(a.canonical(), c.canonical(), "absent is not empty");
        assert_eq!(a.canonical(), a.clone().canonical());
    }

    #[test]
    fn records_round_trip_through_json() {
        let a = rec();
        let s = serde_json::to_string(&a).unwrap();
        assert_eq!(serde_json::from_str::<AuditRecord>(&s).unwrap(), a);
    }
}
