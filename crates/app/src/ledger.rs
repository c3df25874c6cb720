//! The audit ledger and the sales read model (issue 13): building audit records
//! where changes are decided, turning jobs into chained records and sales facts,
//! signing checkpoints, verifying the chain, and reading both back.
//!
//! What this module must never do: write an audit record or a sales count outside
//! the outbox's at-least-once path (a record is appended once per message id, a
//! fact counted once per message id, both by the store in the transaction that
//! acknowledges the job), or read the write tables to answer the sales endpoint.

use crate::payments::hex_decode;
use boxoffice_domain::{AuditRecord, EventId, Job, MessageId, Order};
use boxoffice_ports::analytics::{SalesCounts, SalesFact, ALL_TIERS};
use boxoffice_ports::audit::{chain_hash, hex, Chained, Checkpoint, GENESIS};
use boxoffice_ports::{Ack, Delivery, OutboxStore, Write};
use hmac::{Hmac, Mac};
use ring::signature::{Ed25519KeyPair, KeyPair, UnparsedPublicKey, ED25519};
use serde_json::json;
use sha2::Sha256;
use std::collections::BTreeMap;
use time::OffsetDateTime;

use crate::{App, AppError, Principal};

/// The key that signs checkpoints: Ed25519, its seed derived from the server
/// secret with a purpose label (HMAC-SHA256), so it is the same on every node and
/// in `boxoffice audit verify`, and never the token or sealing key.
pub struct CheckpointKey {
    pair: Ed25519KeyPair,
}

impl std::fmt::Debug for CheckpointKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "CheckpointKey({})", self.public_hex())
    }
}

impl CheckpointKey {
    pub fn new(secret: &[u8]) -> Self {
        let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC takes any key length");
        mac.update(b"boxoffice audit checkpoint key v1");
        let seed = mac.finalize().into_bytes();
        Self {
            pair: Ed25519KeyPair::from_seed_unchecked(&seed).expect("a 32-byte seed"),
        }
    }

    pub fn public_hex(&self) -> String {
        hex(self.pair.public_key().as_ref())
    }

    pub fn sign(&self, seq: i64, hash: &str, at: OffsetDateTime) -> Checkpoint {
        let sig = self.pair.sign(&Checkpoint::message(seq, hash));
        Checkpoint {
            seq,
            hash: hash.to_owned(),
            at,
            public_key: self.public_hex(),
            signature: hex(sig.as_ref()),
        }
    }
}

/// What `boxoffice audit verify` found wrong: the first record that is not as
/// appended, by sequence number and id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Tampered {
    /// The record's content no longer hashes to its stored hash.
    Altered { seq: i64, id: String },
    /// Record `seq` is missing: the chain jumps over it (or ends before the head).
    Removed {
        seq: i64,
        /// Its hash, as the record after it remembers it (if there is one).
        hash: Option<String>,
        /// The record found in its place (the next one), if any.
        next: Option<(i64, String)>,
    },
    /// A record that was never appended by the chain's writer.
    Inserted { seq: i64, id: String },
    /// A record whose own hash holds but does not follow the one before it.
    Relinked { seq: i64, id: String },
    /// A checkpoint whose signature does not verify, or that another key signed.
    BadCheckpoint { seq: i64, why: String },
}

impl std::fmt::Display for Tampered {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Tampered::Altered { seq, id } => {
                write!(
                    f,
                    "record {seq} ({id}) was altered: its content does not hash to its stored hash"
                )
            }
            Tampered::Removed { seq, hash, next } => {
                write!(f, "record {seq} was removed")?;
                if let Some(h) = hash {
                    write!(f, " (its hash was {h})")?;
                }
                match next {
                    Some((s, id)) => write!(f, "; the chain goes on at record {s} ({id})"),
                    None => write!(f, "; the chain ends before the head"),
                }
            }
            Tampered::Inserted { seq, id } => {
                write!(
                    f,
                    "record {seq} ({id}) was inserted: the chain's writer never appended it"
                )
            }
            Tampered::Relinked { seq, id } => write!(
                f,
                "record {seq} ({id}) does not follow record {}: a record before it was replaced",
                seq - 1
            ),
            Tampered::BadCheckpoint { seq, why } => write!(f, "checkpoint at record {seq}: {why}"),
        }
    }
}

/// What an intact chain holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    pub records: i64,
    pub checkpoints: usize,
}

/// Walks the whole chain in the store: every record's hash, every link, the head,
/// and every signed checkpoint (signed by `key` when one is given: the server's).
pub async fn verify_chain(
    store: &dyn OutboxStore,
    key: Option<&str>,
) -> Result<Result<Verified, Tampered>, AppError> {
    let (head_seq, head_hash) = store.audit_head().await?;
    let checkpoints = store.audit_checkpoints().await?;
    let mut at_checkpoint: BTreeMap<i64, &Checkpoint> = BTreeMap::new();
    for c in &checkpoints {
        if let Some(k) = key {
            if c.public_key != k {
                return Ok(Err(Tampered::BadCheckpoint {
                    seq: c.seq,
                    why: "signed by another key than this server's".into(),
                }));
            }
        }
        let ok = match (hex_decode(&c.public_key), hex_decode(&c.signature)) {
            (Some(pk), Some(sig)) => UnparsedPublicKey::new(&ED25519, pk)
                .verify(&Checkpoint::message(c.seq, &c.hash), &sig)
                .is_ok(),
            _ => false,
        };
        if !ok {
            return Ok(Err(Tampered::BadCheckpoint {
                seq: c.seq,
                why: "the signature does not verify".into(),
            }));
        }
        at_checkpoint.insert(c.seq, c);
    }
    let (mut expected, mut prev) = (1i64, GENESIS.to_owned());
    loop {
        let page = store.audit_chain(expected - 1, 1000).await?;
        if page.is_empty() {
            break;
        }
        for Chained {
            seq,
            record,
            prev_hash,
            hash,
        } in page
        {
            let id = record.id.to_string();
            if seq > head_seq {
                return Ok(Err(Tampered::Inserted { seq, id }));
            }
            if seq != expected {
                return Ok(Err(Tampered::Removed {
                    seq: expected,
                    hash: Some(prev_hash),
                    next: Some((seq, id)),
                }));
            }
            if chain_hash(&prev_hash, &record) != hash {
                return Ok(Err(Tampered::Altered { seq, id }));
            }
            if prev_hash != prev {
                return Ok(Err(Tampered::Relinked { seq, id }));
            }
            if let Some(c) = at_checkpoint.get(&seq) {
                if c.hash != hash {
                    return Ok(Err(Tampered::Altered { seq, id }));
                }
            }
            prev = hash;
            expected += 1;
        }
    }
    let last = expected - 1;
    if last < head_seq {
        return Ok(Err(Tampered::Removed {
            seq: last + 1,
            hash: (last + 1 == head_seq).then(|| head_hash.clone()),
            next: None,
        }));
    }
    if prev != head_hash {
        return Ok(Err(Tampered::Relinked {
            seq: last,
            id: "the chain head".into(),
        }));
    }
    if let Some((&seq, _)) = at_checkpoint.range(last + 1..).next() {
        return Ok(Err(Tampered::Removed {
            seq,
            hash: None,
            next: None,
        }));
    }
    Ok(Ok(Verified {
        records: last,
        checkpoints: checkpoints.len(),
    }))
}

/// A page of the audit log, newest first.
#[derive(Debug, Clone)]
pub struct AuditPage {
    pub records: Vec<Chained>,
    /// Pass as `cursor` for the next (older) page; `None`: this was the last.
    pub next: Option<i64>,
}

/// The sales read model of one event, summed for a dashboard.
#[derive(Debug, Clone, Default)]
pub struct SalesReport {
    pub totals: SalesCounts,
    pub tiers: Vec<(String, SalesCounts)>,
    /// The event's totals per minute (Unix seconds), oldest first.
    pub minutes: Vec<(i64, SalesCounts)>,
}

fn minute_of(t: OffsetDateTime) -> i64 {
    t.unix_timestamp().div_euclid(60) * 60
}

/// Counts `items` per tier: (tier, count, amount).
fn per_tier<'a>(items: impl Iterator<Item = (&'a str, i64)>) -> BTreeMap<String, (i64, i64)> {
    let mut out: BTreeMap<String, (i64, i64)> = BTreeMap::new();
    for (tier, amount) in items {
        let e = out.entry(tier.to_owned()).or_default();
        e.0 += 1;
        e.1 += amount;
    }
    out
}

impl App {
    /// An audit record of a change `who` asked for, now.
    pub(crate) fn audit_record(
        &self,
        who: &Principal,
        action: &str,
        subject: &str,
        event: Option<&EventId>,
        before: Option<serde_json::Value>,
        after: Option<serde_json::Value>,
    ) -> AuditRecord {
        AuditRecord {
            id: MessageId::new(),
            at: self.clock.now(),
            actor: who.user_id.to_string(),
            role: who.role.as_str().to_owned(),
            request_id: who.origin.request_id.clone(),
            ip: who.origin.ip.clone(),
            action: action.to_owned(),
            subject: subject.to_owned(),
            event_id: event.cloned(),
            before: before.map(|v| v.to_string()),
            after: after.map(|v| v.to_string()),
        }
        .truncate_time()
    }

    /// `w` with its audit record: queued in `w`'s own transaction if it changes
    /// something.
    pub(crate) fn audited(&self, w: Write, record: AuditRecord) -> Write {
        Write::Audited {
            write: Box::new(w),
            record: Box::new(record),
        }
    }

    /// Records an action made outside the group-committed writes (catalogue and
    /// organization changes), after it committed. Best effort: a crash between the
    /// two loses the record (the change's own transaction is the store's, not the
    /// writer's); a failure is logged, never the caller's.
    pub(crate) async fn audit_action(
        &self,
        who: &Principal,
        action: &str,
        subject: &str,
        event: Option<&EventId>,
        after: serde_json::Value,
    ) {
        let record = self.audit_record(who, action, subject, event, None, Some(after));
        if let Err(e) = self.writer.write(Write::AuditOnly(Box::new(record))).await {
            tracing::error!(error = %e, action, subject, "an audit record was not queued");
        }
    }

    /// The audit consumer: the record a job carries, or one built from a job that
    /// tells of a change the system made; appended to the chain with the job's ack.
    pub(crate) async fn append_audit(
        &self,
        d: &Delivery,
        ack: Option<Ack>,
    ) -> Result<(), AppError> {
        let system = |action: &str, subject: String, event: Option<EventId>, after| AuditRecord {
            id: d.message.clone(),
            at: d.enqueued_at,
            actor: boxoffice_domain::audit::SYSTEM.to_owned(),
            role: boxoffice_domain::audit::SYSTEM.to_owned(),
            request_id: None,
            ip: None,
            action: action.to_owned(),
            subject,
            event_id: event,
            before: None,
            after: Some(serde_json::Value::to_string(&after)),
        };
        let record = match &d.job {
            Job::AuditRecorded { record } => (**record).clone(),
            Job::EventCancelled { event_id } => system(
                "event.cancelled",
                event_id.to_string(),
                Some(event_id.clone()),
                json!({"status": "cancelled"}),
            ),
            Job::WaitlistOffered { entry_id, hold_id } => system(
                "waitlist.offered",
                entry_id.to_string(),
                None,
                json!({"state": "offered", "hold_id": hold_id}),
            ),
            // Not routed to the audit consumer today (the checkout's own record,
            // `order.created`, says the payment was asked for); kept should it be.
            Job::PaymentRequested { order_id } => {
                let event = self.store.order(order_id).await?.map(|o| o.event_id);
                system(
                    "payment.requested",
                    order_id.to_string(),
                    event,
                    json!({"status": "pending_payment"}),
                )
            }
            Job::OrderPaid { order_id } => {
                let o = self.store.order(order_id).await?;
                let tickets: Vec<_> = o
                    .iter()
                    .flat_map(|o| &o.tickets)
                    .map(|t| t.id.to_string())
                    .collect();
                system(
                    "order.paid",
                    order_id.to_string(),
                    o.map(|o| o.event_id),
                    json!({"status": "paid", "tickets_issued": tickets}),
                )
            }
            Job::OrderFailed { order_id, code } => {
                let event = self.store.order(order_id).await?.map(|o| o.event_id);
                system(
                    "order.failed",
                    order_id.to_string(),
                    event,
                    json!({"status": "failed", "code": code}),
                )
            }
            Job::OrderRefunded {
                order_id,
                refund_id,
            } => {
                let o = self.store.order(order_id).await?;
                let r = self.refund_of(&d.job).await?;
                let whole = r.as_ref().is_some_and(|r| r.whole);
                let voided: Vec<_> = o
                    .iter()
                    .filter(|_| whole)
                    .flat_map(|o| &o.tickets)
                    .map(|t| t.id.to_string())
                    .collect();
                system(
                    "order.refunded",
                    order_id.to_string(),
                    o.map(|o| o.event_id),
                    json!({
                        "refund_id": refund_id,
                        "amount": r.as_ref().map(|r| r.amount),
                        "whole": whole,
                        "tickets_voided": voided,
                    }),
                )
            }
        };
        self.writer
            .write(Write::Audit {
                record: Box::new(record),
                ack,
            })
            .await?;
        Ok(())
    }

    /// Signs the chain head if it moved since the last checkpoint (every node may;
    /// a second checkpoint of the same record is ignored by the store).
    pub async fn checkpoint_audit(&self) -> Result<Option<i64>, AppError> {
        let (seq, hash) = self.store.audit_head().await?;
        if seq == 0 {
            return Ok(None);
        }
        let last = self.store.audit_checkpoints().await?.last().map(|c| c.seq);
        if last >= Some(seq) {
            return Ok(None);
        }
        let c = self.checkpoint_key.sign(seq, &hash, self.clock.now());
        self.writer.write(Write::AuditCheckpoint(c)).await?;
        Ok(Some(seq))
    }

    /// The analytics consumer: the facts a job tells, counted once per message.
    pub(crate) async fn count_sales(&self, d: &Delivery, ack: Option<Ack>) -> Result<(), AppError> {
        let facts = match &d.job {
            Job::OrderPaid { order_id } => match self.store.order(order_id).await? {
                Some(o) => paid_facts(&o, minute_of(d.enqueued_at)),
                None => vec![],
            },
            Job::OrderRefunded { order_id, .. } => {
                match (
                    self.store.order(order_id).await?,
                    self.refund_of(&d.job).await?,
                ) {
                    (Some(o), Some(r)) => {
                        refund_facts(&o, r.amount.amount, r.whole, minute_of(d.enqueued_at))
                    }
                    _ => vec![],
                }
            }
            Job::AuditRecorded { record } => hold_facts(record),
            _ => vec![],
        };
        if facts.is_empty() {
            return self.ack(ack).await;
        }
        self.writer
            .write(Write::SalesFacts {
                message: d.message.clone(),
                facts,
                ack,
            })
            .await?;
        Ok(())
    }

    /// The sales read model of an event (its organizers, ops, admins).
    pub async fn event_sales(&self, who: &Principal, event: &str) -> Result<SalesReport, AppError> {
        let ev = self.event(event).await?;
        who.require_sales_view(ev.event())?;
        let rows = self.store.sales_rows(&ev.event().id).await?;
        let mut report = SalesReport::default();
        let mut tiers: BTreeMap<String, SalesCounts> = BTreeMap::new();
        let mut minutes: BTreeMap<i64, SalesCounts> = BTreeMap::new();
        for r in rows {
            if r.tier == ALL_TIERS {
                report.totals.add(&r.counts);
                minutes.entry(r.minute).or_default().add(&r.counts);
            } else {
                tiers.entry(r.tier).or_default().add(&r.counts);
            }
        }
        report.tiers = tiers.into_iter().collect();
        report.minutes = minutes.into_iter().collect();
        Ok(report)
    }

    /// How many messages the analytics worker has counted (tests wait on it).
    pub async fn sales_processed(&self) -> Result<u64, AppError> {
        Ok(self.store.sales_processed().await?)
    }

    /// A page of the audit log, newest first (admins and ops).
    pub async fn audit_log(
        &self,
        who: &Principal,
        event: Option<&str>,
        cursor: Option<i64>,
        limit: usize,
    ) -> Result<AuditPage, AppError> {
        who.require_audit_read()?;
        let event = match event {
            Some(e) => Some(EventId::try_from(e).map_err(|_| {
                AppError::Invalid(boxoffice_domain::ValidationError::new(
                    "event_id",
                    "not an event id",
                ))
            })?),
            None => None,
        };
        let limit = limit.clamp(1, 500);
        let records = self.store.audit_page(event.as_ref(), cursor, limit).await?;
        let next = (records.len() == limit)
            .then(|| records.last().map(|r| r.seq))
            .flatten();
        Ok(AuditPage { records, next })
    }

    /// Verifies the chain in this app's store with this server's key.
    pub async fn verify_audit(&self) -> Result<Result<Verified, Tampered>, AppError> {
        verify_chain(&*self.store, Some(&self.checkpoint_key.public_hex())).await
    }
}

/// A paid order: its tickets and revenue, per tier and in the totals.
fn paid_facts(o: &Order, minute: i64) -> Vec<SalesFact> {
    let tiers = per_tier(
        o.tickets
            .iter()
            .map(|t| (t.tier_id.as_str(), t.price.amount)),
    );
    let mut out: Vec<SalesFact> = tiers
        .into_iter()
        .map(|(tier, (n, amount))| SalesFact {
            event: Some(o.event_id.clone()),
            tier,
            minute,
            counts: SalesCounts {
                tickets: n,
                revenue: amount,
                ..Default::default()
            },
        })
        .collect();
    out.push(SalesFact {
        event: Some(o.event_id.clone()),
        tier: ALL_TIERS.into(),
        minute,
        counts: SalesCounts {
            tickets: o.tickets.len() as i64,
            revenue: o.total.amount,
            ..Default::default()
        },
    });
    out
}

/// A refund: one refund in the totals and in each tier of the order, its amount
/// shared among the tiers in proportion to what each cost (the remainder to the
/// last), and the tickets back if it was whole.
fn refund_facts(o: &Order, amount: i64, whole: bool, minute: i64) -> Vec<SalesFact> {
    let tiers = per_tier(o.items.iter().map(|i| (i.tier_id.as_str(), i.price.amount)));
    let total: i64 = tiers.values().map(|t| t.1).sum();
    let mut left = amount;
    let n = tiers.len();
    let mut out = vec![];
    for (k, (tier, (count, cost))) in tiers.into_iter().enumerate() {
        let share = if k + 1 == n || total == 0 {
            left
        } else {
            (amount as i128 * cost as i128 / total as i128) as i64
        };
        left -= share;
        out.push(SalesFact {
            event: Some(o.event_id.clone()),
            tier,
            minute,
            counts: SalesCounts {
                refunds: 1,
                refunded_amount: share,
                tickets_refunded: if whole { count } else { 0 },
                ..Default::default()
            },
        });
    }
    out.push(SalesFact {
        event: Some(o.event_id.clone()),
        tier: ALL_TIERS.into(),
        minute,
        counts: SalesCounts {
            refunds: 1,
            refunded_amount: amount,
            tickets_refunded: if whole { o.items.len() as i64 } else { 0 },
            ..Default::default()
        },
    });
    out
}

/// Holds made, converted and expired, from the audit records that tell of them
/// (their `after` names the tiers the hold spans).
fn hold_facts(r: &AuditRecord) -> Vec<SalesFact> {
    let field = match r.action.as_str() {
        "hold.made" => |c: &mut SalesCounts| c.holds_made += 1,
        "order.created" => |c: &mut SalesCounts| c.holds_converted += 1,
        "hold.expired" => |c: &mut SalesCounts| c.holds_expired += 1,
        _ => return vec![],
    };
    let tiers: Vec<String> = r
        .after
        .as_deref()
        .and_then(|a| serde_json::from_str::<serde_json::Value>(a).ok())
        .and_then(|v| {
            v.get("tiers")?
                .as_object()
                .map(|o| o.keys().cloned().collect())
        })
        .unwrap_or_default();
    let minute = minute_of(r.at);
    tiers
        .into_iter()
        .chain([ALL_TIERS.to_owned()])
        .map(|tier| {
            let mut counts = SalesCounts::default();
            field(&mut counts);
            SalesFact {
                event: r.event_id.clone(),
                tier,
                minute,
                counts,
            }
        })
        .collect()
}

/// The tiers a set of items spans, with their counts: `{"tier_id": n}` for an
/// audit record's `after` (what analytics reads of a hold).
pub(crate) fn tiers_json<'a>(tiers: impl Iterator<Item = &'a str>) -> serde_json::Value {
    let mut m = serde_json::Map::new();
    for t in tiers {
        let n = m.get(t).and_then(|v| v.as_i64()).unwrap_or(0);
        m.insert(t.to_owned(), json!(n + 1));
    }
    serde_json::Value::Object(m)
}
