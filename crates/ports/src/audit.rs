//! The audit log's hash chain, as every store keeps it and every verifier checks
//! it: what a chained record is, how its hash is computed, and what a signed
//! checkpoint says. The stores append ([`crate::Write::Audit`]); the app signs
//! checkpoints and verifies. Nothing here may change for records already stored.

use boxoffice_domain::AuditRecord;
use sha2::{Digest, Sha256};
use time::OffsetDateTime;

/// The `prev_hash` of the first record: 64 zeros.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// `hex(SHA-256(prev_hash (its 64 hex characters) || record.canonical()))`.
pub fn chain_hash(prev_hash: &str, record: &AuditRecord) -> String {
    let mut h = Sha256::new();
    h.update(prev_hash.as_bytes());
    h.update(record.canonical());
    hex(&h.finalize())
}

pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A record as the chain keeps it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Chained {
    /// 1, 2, 3, … with no gap: a gap is a removed record.
    pub seq: i64,
    pub record: AuditRecord,
    pub prev_hash: String,
    pub hash: String,
}

/// A signed statement that the chain's record `seq` has hash `hash`: whoever holds
/// the server secret vouches for everything up to it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checkpoint {
    pub seq: i64,
    pub hash: String,
    pub at: OffsetDateTime,
    /// The Ed25519 public key that signed it (hex), and the signature (hex) over
    /// [`Checkpoint::message`].
    pub public_key: String,
    pub signature: String,
}

impl Checkpoint {
    /// The bytes signed.
    pub fn message(seq: i64, hash: &str) -> Vec<u8> {
        format!("boxoffice audit checkpoint v1;{seq};{hash}").into_bytes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_hash_covers_the_previous_hash_and_the_record() {
        let r = AuditRecord {
            id: boxoffice_domain::MessageId::new(),
            at: OffsetDateTime::UNIX_EPOCH,
            actor: "system".into(),
            role: "system".into(),
            request_id: None,
            ip: None,
            action: "order.paid".into(),
            subject: "ord_x".into(),
            event_id: None,
            before: None,
            after: None,
        };
        let a = chain_hash(GENESIS, &r);
        assert_eq!(a.len(), 64);
        assert_ne!(a, chain_hash(&a, &r));
        let mut r2 = r.clone();
        r2.subject = "ord_y".into();
        assert_ne!(a, chain_hash(GENESIS, &r2));
    }
}
