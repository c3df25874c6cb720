//! Tickets at the gate: signing ticket codes, verifying them, and admitting each
//! ticket once — online (`POST /v1/checkin`) or from scanners that worked offline
//! and upload later (`…/checkin/sync`), with the bundle such a scanner needs.
//!
//! Signing keys are global, numbered by `kid` (one byte in every code), and kept
//! in the store with their seeds sealed by the server secret, so every node signs
//! with the same key and a copy of the database signs nothing. Global rather than
//! per event: one key to make, rotate and publish, and the code still binds its
//! event (an 8-byte tag of the event id inside the signed bytes — see
//! `boxoffice_domain::ticket_code`). The first key is made on first use (nodes
//! racing to make it agree through the store); a rotation adds the next `kid`,
//! which then signs, while every older public key still verifies.
//!
//! Admission is the store's: the app decides what a code says (forged, another
//! event's, unknown: decided here), and asks the store to admit a real ticket,
//! which it does by a conditional update — never by an in-memory lock, which would
//! not hold across nodes.
//!
//! Rotating codes (an event setting): the holder's app shows the signed code plus
//! six digits that change every 15 s — HMAC-SHA256 over the 15-second step (RFC
//! 6238 with SHA-256) under a per-ticket secret, random, kept sealed, given only to
//! the ticket's owner and to the event's scanners (in the bundle). A screenshot
//! stops working within a step or two.

use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use base64::Engine;
use boxoffice_domain::ticket_code::{self, ScanResult, ScannedCode, TicketItem, TicketPayload};
use boxoffice_domain::{EventId, Order, Role, Ticket, TicketId, ValidationError};
use boxoffice_ports::{FirstScan, NewScan, ScanRecord, TicketKey, TicketRecord};
use hmac::{Hmac, Mac};
use ring::signature::{Ed25519KeyPair, KeyPair, UnparsedPublicKey, ED25519};
use sha2::Sha256;
use std::collections::HashMap;
use std::sync::Arc;
use time::OffsetDateTime;

use crate::{App, AppError, CachedEvent, Principal};

/// Seconds a rotating code's step lasts.
pub const ROTATING_STEP_SECONDS: i64 = 15;
/// Most scans one sync may upload.
pub const MAX_SYNC_SCANS: usize = 5_000;

/// The keys this node signs and verifies with.
pub(crate) struct KeyRing {
    kid: u8,
    signing: Ed25519KeyPair,
    verifying: HashMap<u8, Vec<u8>>,
}

impl std::fmt::Debug for KeyRing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyRing")
            .field("kid", &self.kid)
            .finish_non_exhaustive()
    }
}

/// A public key as the bundle publishes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublicTicketKey {
    pub kid: u8,
    /// Base64url (no padding) of the 32-byte Ed25519 key.
    pub public_key: String,
}

/// A scan asked for online.
#[derive(Debug, Clone)]
pub struct ScanAsk {
    pub code: String,
    pub gate: String,
    pub scan_id: String,
    /// The event this gate admits to (none: the ticket's own, if the caller may scan it).
    pub event_id: Option<String>,
}

/// A scan a scanner made offline and uploads.
#[derive(Debug, Clone)]
pub struct OfflineScan {
    pub code: Option<String>,
    pub ticket_id: Option<String>,
    pub gate: String,
    pub scan_id: String,
    pub scanned_at: OffsetDateTime,
}

/// The answer to a scan.
#[derive(Debug, Clone)]
pub struct ScanView {
    pub scan_id: String,
    pub result: ScanResult,
    pub ticket: Option<TicketRecord>,
    pub first_scan: Option<FirstScan>,
    pub gate: String,
    pub scanned_at: OffsetDateTime,
}

/// The same ticket admitted twice (at two gates, or twice at one).
#[derive(Debug, Clone)]
pub struct Conflict {
    pub ticket_id: TicketId,
    pub first: FirstScan,
    pub second: FirstScan,
    pub second_scan_id: String,
}

#[derive(Debug, Clone)]
pub struct SyncReport {
    pub results: Vec<ScanView>,
    pub conflicts: Vec<Conflict>,
}

/// What an offline scanner needs for one event.
#[derive(Debug, Clone)]
pub struct Bundle {
    pub event_id: EventId,
    /// Hex of the 8-byte tag every code of this event carries.
    pub event_tag: String,
    pub keys: Vec<PublicTicketKey>,
    pub rotating_codes: bool,
    pub tickets: Vec<BundleTicket>,
    pub revoked: Vec<TicketId>,
    pub generated_at: OffsetDateTime,
}

#[derive(Debug, Clone)]
pub struct BundleTicket {
    pub record: TicketRecord,
    /// Base32 of the rotating secret (rotating events only).
    pub rotating_secret: Option<String>,
}

/// The rotating secret of a ticket, for its holder.
#[derive(Debug, Clone)]
pub struct RotatingView {
    pub ticket_id: TicketId,
    pub code: String,
    /// Base32 (RFC 4648, no padding) of the secret.
    pub secret: String,
    pub period: i64,
    pub digits: usize,
    /// The code to show now (the signed code, `-`, the six digits).
    pub current: String,
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn base32(b: &[u8]) -> String {
    const A: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    let (mut out, mut acc, mut bits) = (String::new(), 0u32, 0u32);
    for &x in b {
        acc = (acc << 8) | u32::from(x);
        bits += 8;
        while bits >= 5 {
            bits -= 5;
            out.push(A[((acc >> bits) & 31) as usize] as char);
        }
        acc &= (1 << bits) - 1;
    }
    if bits > 0 {
        out.push(A[((acc << (5 - bits)) & 31) as usize] as char);
    }
    out
}

/// The six digits of a rotating code at `step` (RFC 6238/4226 dynamic truncation,
/// HMAC-SHA256).
pub fn rotating_digits(secret: &[u8], step: i64) -> u32 {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC takes any key length");
    mac.update(&step.to_be_bytes());
    let h = mac.finalize().into_bytes();
    let off = (h[h.len() - 1] & 0x0f) as usize;
    let bin = u32::from_be_bytes([h[off] & 0x7f, h[off + 1], h[off + 2], h[off + 3]]);
    bin % 1_000_000
}

/// The step of instant `t`.
pub fn rotating_step(t: OffsetDateTime) -> i64 {
    t.unix_timestamp().div_euclid(ROTATING_STEP_SECONDS)
}

fn check_text(field: &'static str, v: &str, max: usize) -> Result<(), AppError> {
    if v.trim().is_empty() || v.len() > max {
        return Err(ValidationError::new(field, format!("1 to {max} characters")).into());
    }
    Ok(())
}

fn may_scan_at_all(who: &Principal) -> Result<(), AppError> {
    if matches!(who.role, Role::Admin | Role::Organizer | Role::Checkin) {
        Ok(())
    } else {
        Err(AppError::Forbidden)
    }
}

impl App {
    /// The key ring, loaded from the store once (and the first key made if there
    /// is none); `reload` reads the store again (a kid another node added).
    async fn key_ring(&self, reload: bool) -> Result<Arc<KeyRing>, AppError> {
        if !reload {
            if let Some(ring) = self.ticket_keys.read().clone() {
                return Ok(ring);
            }
        }
        let mut keys = self.store.ticket_keys().await?;
        if keys.is_empty() {
            self.store.add_ticket_key(&self.new_ticket_key(1)).await?;
            keys = self.store.ticket_keys().await?;
        }
        let ring = Arc::new(self.ring_of(&keys)?);
        *self.ticket_keys.write() = Some(ring.clone());
        Ok(ring)
    }

    fn new_ticket_key(&self, kid: u8) -> TicketKey {
        let seed: [u8; 32] = rand::random();
        let pair = Ed25519KeyPair::from_seed_unchecked(&seed).expect("a 32-byte seed");
        TicketKey {
            kid,
            public_key: pair.public_key().as_ref().to_vec(),
            sealed_seed: self.sealer.seal(&hex(&seed), &format!("ticket-key:{kid}")),
            created_at: self.clock.now(),
        }
    }

    fn ring_of(&self, keys: &[TicketKey]) -> Result<KeyRing, AppError> {
        let newest = keys.last().ok_or(AppError::NotFound)?;
        let seed_hex = self
            .sealer
            .open(&newest.sealed_seed, &format!("ticket-key:{}", newest.kid))
            .ok_or_else(|| {
                AppError::Unavailable(anyhow::anyhow!(
                    "the ticket signing key does not open with this server secret"
                ))
            })?;
        let seed: Vec<u8> = (0..seed_hex.len())
            .step_by(2)
            .filter_map(|i| u8::from_str_radix(seed_hex.get(i..i + 2)?, 16).ok())
            .collect();
        let signing = Ed25519KeyPair::from_seed_unchecked(&seed).map_err(|_| {
            AppError::Unavailable(anyhow::anyhow!("a ticket signing key is corrupt"))
        })?;
        Ok(KeyRing {
            kid: newest.kid,
            signing,
            verifying: keys.iter().map(|k| (k.kid, k.public_key.clone())).collect(),
        })
    }

    /// Adds a new signing key (admins): it signs from now on; tickets signed with
    /// the older ones stay valid. Returns the new key's id.
    pub async fn rotate_ticket_key(&self, who: &Principal) -> Result<u8, AppError> {
        if who.role != Role::Admin {
            return Err(AppError::Forbidden);
        }
        let ring = self.key_ring(true).await?;
        let kid = ring
            .verifying
            .keys()
            .max()
            .copied()
            .unwrap_or(0)
            .checked_add(1)
            .ok_or(AppError::Conflict {
                constraint: "ticket_keys_exhausted",
            })?;
        if !self.store.add_ticket_key(&self.new_ticket_key(kid)).await? {
            return Err(AppError::Conflict {
                constraint: "ticket_keys",
            });
        }
        self.key_ring(true).await?;
        tracing::info!(kid, "ticket signing key rotated");
        Ok(kid)
    }

    /// Turns an event's rotating codes on or off (who may change the event).
    pub async fn set_event_rotating_codes(
        &self,
        who: &Principal,
        id: &str,
        on: bool,
    ) -> Result<boxoffice_ports::EventRecord, AppError> {
        who.require_catalogue_writer()?;
        let id = self.managed_event(who, id).await?;
        self.store
            .set_event_rotating_codes(&id, on, self.clock.now())
            .await?;
        self.forget_cached_event(&id);
        tracing::info!(event = %id, on, "event's rotating codes changed");
        self.store.event(&id).await?.ok_or(AppError::NotFound)
    }

    /// The public keys every code may be signed with.
    pub async fn ticket_public_keys(&self) -> Result<Vec<PublicTicketKey>, AppError> {
        let ring = self.key_ring(false).await?;
        let mut keys: Vec<_> = ring
            .verifying
            .iter()
            .map(|(kid, pk)| PublicTicketKey {
                kid: *kid,
                public_key: B64.encode(pk),
            })
            .collect();
        keys.sort_by_key(|k| k.kid);
        Ok(keys)
    }

    /// The signed codes of `order`'s tickets-to-be (made when its payment succeeds).
    pub(crate) async fn issue_tickets(
        &self,
        order: &Order,
        now: OffsetDateTime,
    ) -> Result<Vec<Ticket>, AppError> {
        let ring = self.key_ring(false).await?;
        let ev = self.cached_event(&order.event_id).await?;
        let seats = if order.items.iter().any(|it| it.seat_id.is_some()) {
            Some(self.seat_table(&ev).await?)
        } else {
            None
        };
        let tag = ticket_code::event_tag(&order.event_id);
        let issued_at = u32::try_from(now.unix_timestamp()).unwrap_or(u32::MAX);
        order
            .items
            .iter()
            .map(|it| {
                let item = match (&it.seat_id, &seats) {
                    (Some(seat), Some(table)) => {
                        TicketItem::Seat(table.index.get(seat).copied().unwrap_or(u32::MAX >> 1))
                    }
                    _ => TicketItem::Ga(
                        ev.event()
                            .ga_tier(&it.tier_id)
                            .map_or(u32::MAX >> 1, |(ix, _)| ix as u32),
                    ),
                };
                let id = TicketId::new();
                let payload = TicketPayload {
                    kid: ring.kid,
                    ticket: id.clone(),
                    event_tag: tag,
                    item,
                    issued_at,
                };
                let sig = ring.signing.sign(&payload.to_bytes());
                let sig: [u8; 64] = sig.as_ref().try_into().expect("Ed25519 signs 64 bytes");
                Ok(Ticket {
                    id,
                    seat_id: it.seat_id.clone(),
                    tier_id: it.tier_id.clone(),
                    price: it.price,
                    code: payload.encode(&sig),
                })
            })
            .collect()
    }

    /// Whether `scanned`'s signature is one of ours.
    async fn signature_valid(&self, scanned: &ScannedCode) -> Result<bool, AppError> {
        let mut ring = self.key_ring(false).await?;
        if !ring.verifying.contains_key(&scanned.payload.kid) {
            // Another node may have rotated: read the keys again.
            ring = self.key_ring(true).await?;
        }
        let Some(pk) = ring.verifying.get(&scanned.payload.kid) else {
            return Ok(false);
        };
        Ok(UnparsedPublicKey::new(&ED25519, pk)
            .verify(&scanned.signed, &scanned.signature)
            .is_ok())
    }

    /// The rotating secret of a ticket (made on first ask), raw.
    async fn rotating_secret(&self, ticket: &TicketId) -> Result<Vec<u8>, AppError> {
        let context = format!("rotating:{ticket}");
        let candidate: [u8; 20] = rand::random();
        let sealed = self.sealer.seal(&hex(&candidate), &context);
        let kept = self.store.ticket_secret(ticket, &sealed).await?;
        let hex_secret = self.sealer.open(&kept, &context).ok_or_else(|| {
            AppError::Unavailable(anyhow::anyhow!("a rotating secret does not open"))
        })?;
        Ok((0..hex_secret.len())
            .step_by(2)
            .filter_map(|i| u8::from_str_radix(hex_secret.get(i..i + 2)?, 16).ok())
            .collect())
    }

    /// What a code says before the store is asked: the ticket it names and the
    /// result so far (`Ok`: a real ticket of the right event, to be admitted).
    async fn judge(
        &self,
        code: &str,
        gate_event: Option<&EventId>,
        at: OffsetDateTime,
    ) -> Result<(ScanResult, Option<TicketRecord>), AppError> {
        let (record, rotating) = match ScannedCode::parse(code) {
            Ok(scanned) => {
                if !self.signature_valid(&scanned).await? {
                    return Ok((ScanResult::Invalid, None));
                }
                if let Some(ev) = gate_event {
                    if ticket_code::event_tag(ev) != scanned.payload.event_tag {
                        return Ok((ScanResult::WrongEvent, None));
                    }
                }
                let Some(record) = self.store.ticket(&scanned.payload.ticket).await? else {
                    return Ok((ScanResult::Invalid, None));
                };
                if ticket_code::event_tag(&record.event_id) != scanned.payload.event_tag {
                    return Ok((ScanResult::Invalid, None));
                }
                (record, scanned.rotating)
            }
            // A code from before signing: known by its text, or nothing.
            Err(_) => match self.store.ticket_by_code(code.trim()).await? {
                Some(record) => (record, None),
                None => return Ok((ScanResult::Invalid, None)),
            },
        };
        let result = self.judge_record(&record, gate_event, rotating, at).await?;
        Ok((result, Some(record)))
    }

    async fn judge_record(
        &self,
        record: &TicketRecord,
        gate_event: Option<&EventId>,
        rotating: Option<u32>,
        at: OffsetDateTime,
    ) -> Result<ScanResult, AppError> {
        if gate_event.is_some_and(|ev| *ev != record.event_id) {
            return Ok(ScanResult::WrongEvent);
        }
        let ev = self.cached_event(&record.event_id).await?;
        if ev.event().rotating_codes {
            let Some(digits) = rotating else {
                return Ok(ScanResult::Invalid);
            };
            let secret = self.rotating_secret(&record.ticket.id).await?;
            let step = rotating_step(at);
            if !(step - 1..=step + 1).any(|s| rotating_digits(&secret, s) == digits) {
                return Ok(ScanResult::Invalid);
            }
        }
        Ok(if record.void {
            ScanResult::Voided
        } else {
            ScanResult::Ok
        })
    }

    /// The event a gate scans for, if the caller may scan it.
    async fn gate_event(&self, who: &Principal, event: &str) -> Result<Arc<CachedEvent>, AppError> {
        let ev = self.event(event).await?;
        if self.may_scan(who, &ev.event().id).await? {
            Ok(ev)
        } else if crate::permissions::may_see_event(Some(who), ev.event()) {
            Err(AppError::Forbidden)
        } else {
            Err(AppError::NotFound)
        }
    }

    fn scan_view(record: ScanRecord, ticket: Option<TicketRecord>) -> ScanView {
        ScanView {
            scan_id: record.scan_id,
            result: record.result,
            first_scan: record.first_scan,
            ticket,
            gate: record.gate,
            scanned_at: record.scanned_at,
        }
    }

    /// A scan at a gate (staff who may scan the event): see the module header.
    pub async fn check_in(&self, who: &Principal, ask: ScanAsk) -> Result<ScanView, AppError> {
        may_scan_at_all(who)?;
        check_text("gate", &ask.gate, 100)?;
        check_text("scan_id", &ask.scan_id, 100)?;
        if ask.code.len() > 1_000 {
            return Err(ValidationError::new("code", "at most 1000 characters").into());
        }
        let gate_event = match &ask.event_id {
            Some(ev) => Some(self.gate_event(who, ev).await?.event().id.clone()),
            None => None,
        };
        let now = self.clock.now();
        let (result, record) = self.judge(&ask.code, gate_event.as_ref(), now).await?;
        if let (None, Some(r)) = (&gate_event, &record) {
            // No gate event: the caller must be staff of the ticket's own.
            if !self.may_scan(who, &r.event_id).await? {
                return Err(AppError::Forbidden);
            }
        }
        let scan = NewScan {
            scanned_by: who.user_id.clone(),
            scan_id: ask.scan_id,
            event_id: gate_event.or_else(|| record.as_ref().map(|r| r.event_id.clone())),
            ticket_id: record.as_ref().map(|r| r.ticket.id.clone()),
            gate: ask.gate,
            scanned_at: now,
            recorded_at: now,
            offline: false,
            result,
        };
        self.record(scan, record).await
    }

    async fn record(
        &self,
        scan: NewScan,
        record: Option<TicketRecord>,
    ) -> Result<ScanView, AppError> {
        let kept = self.store.record_scan(&scan).await?;
        metrics::counter!("boxoffice_checkin_scans_total", "result" => kept.result.as_str())
            .increment(1);
        // A repeat of a scan answers about the ticket it named.
        let ticket = match (&kept.ticket_id, record) {
            (Some(id), Some(r)) if r.ticket.id == *id => Some(r),
            (Some(id), _) => self.store.ticket(id).await?,
            (None, _) => None,
        };
        Ok(Self::scan_view(kept, ticket))
    }

    /// Everything a scanner needs to admit `event`'s tickets offline (staff).
    pub async fn checkin_bundle(&self, who: &Principal, event: &str) -> Result<Bundle, AppError> {
        may_scan_at_all(who)?;
        let ev = self.gate_event(who, event).await?;
        let ev = ev.event();
        let records = self.store.event_tickets(&ev.id).await?;
        let mut tickets = Vec::with_capacity(records.len());
        for record in records {
            let rotating_secret = if ev.rotating_codes && !record.void {
                Some(base32(&self.rotating_secret(&record.ticket.id).await?))
            } else {
                None
            };
            tickets.push(BundleTicket {
                record,
                rotating_secret,
            });
        }
        Ok(Bundle {
            event_id: ev.id.clone(),
            event_tag: hex(&ticket_code::event_tag(&ev.id)),
            keys: self.ticket_public_keys().await?,
            rotating_codes: ev.rotating_codes,
            revoked: tickets
                .iter()
                .filter(|t| t.record.void)
                .map(|t| t.record.ticket.id.clone())
                .collect(),
            tickets,
            generated_at: self.clock.now(),
        })
    }

    /// Records scans made offline at `event`'s gates and reports double entries.
    /// Each scan is judged as if online at its own `scanned_at` (a rotating code
    /// against its own step), and kept under its scan id like any other.
    pub async fn checkin_sync(
        &self,
        who: &Principal,
        event: &str,
        scans: Vec<OfflineScan>,
    ) -> Result<SyncReport, AppError> {
        may_scan_at_all(who)?;
        let ev = self.gate_event(who, event).await?;
        let event_id = ev.event().id.clone();
        if scans.len() > MAX_SYNC_SCANS {
            return Err(ValidationError::new("scans", "at most 5000 a sync").into());
        }
        for s in &scans {
            check_text("gate", &s.gate, 100)?;
            check_text("scan_id", &s.scan_id, 100)?;
            if s.code.is_none() == s.ticket_id.is_none() {
                return Err(
                    ValidationError::new("scans", "each scan has a code or a ticket_id").into(),
                );
            }
        }
        let now = self.clock.now();
        let mut results = Vec::with_capacity(scans.len());
        let mut conflicts = Vec::new();
        for s in scans {
            let (result, record) = match (&s.code, &s.ticket_id) {
                (Some(code), _) => self.judge(code, Some(&event_id), s.scanned_at).await?,
                (None, Some(id)) => match TicketId::parse(id) {
                    Some(id) => match self.store.ticket(&id).await? {
                        Some(r) => {
                            // A scanner sends the id only of a code it verified.
                            let res = if r.event_id != event_id {
                                ScanResult::WrongEvent
                            } else if r.void {
                                ScanResult::Voided
                            } else {
                                ScanResult::Ok
                            };
                            (res, Some(r))
                        }
                        None => (ScanResult::Invalid, None),
                    },
                    None => (ScanResult::Invalid, None),
                },
                (None, None) => unreachable!("checked above"),
            };
            let scan = NewScan {
                scanned_by: who.user_id.clone(),
                scan_id: s.scan_id,
                event_id: Some(event_id.clone()),
                ticket_id: record.as_ref().map(|r| r.ticket.id.clone()),
                gate: s.gate,
                scanned_at: s.scanned_at,
                recorded_at: now,
                offline: true,
                result,
            };
            let view = self.record(scan, record).await?;
            if let (ScanResult::AlreadyUsed, Some(first), Some(t)) =
                (view.result, &view.first_scan, &view.ticket)
            {
                conflicts.push(Conflict {
                    ticket_id: t.ticket.id.clone(),
                    first: first.clone(),
                    second: FirstScan {
                        at: view.scanned_at,
                        gate: view.gate.clone(),
                    },
                    second_scan_id: view.scan_id.clone(),
                });
            }
            results.push(view);
        }
        Ok(SyncReport { results, conflicts })
    }

    /// The rotating code of a ticket, for its owner only (anyone else: not found).
    pub async fn ticket_rotating(
        &self,
        who: &Principal,
        ticket: &str,
    ) -> Result<RotatingView, AppError> {
        let id = TicketId::parse(ticket).ok_or(AppError::NotFound)?;
        let record = self.store.ticket(&id).await?.ok_or(AppError::NotFound)?;
        if record.customer_id != who.user_id {
            return Err(AppError::NotFound);
        }
        let ev = self.cached_event(&record.event_id).await?;
        if !ev.event().rotating_codes {
            return Err(ValidationError::new("ticket", "its event does not rotate codes").into());
        }
        let secret = self.rotating_secret(&id).await?;
        let digits = rotating_digits(&secret, rotating_step(self.clock.now()));
        Ok(RotatingView {
            ticket_id: id,
            current: ticket_code::with_rotating(&record.ticket.code, digits),
            code: record.ticket.code,
            secret: base32(&secret),
            period: ROTATING_STEP_SECONDS,
            digits: ticket_code::ROTATING_DIGITS,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rotating_digits_follow_rfc_4226_truncation() {
        // Deterministic, six digits, and changes with the step.
        let s = b"12345678901234567890";
        let a = rotating_digits(s, 1);
        assert_eq!(a, rotating_digits(s, 1));
        assert!(a < 1_000_000);
        assert_ne!(
            (0..10)
                .map(|i| rotating_digits(s, i))
                .collect::<std::collections::HashSet<_>>()
                .len(),
            1
        );
        // RFC 6238's SHA-256 test vector (T = 59 s, 30-second steps → step 1),
        // last six of 46119246.
        let key = b"12345678901234567890123456789012";
        assert_eq!(rotating_digits(key, 1), 119_246);
    }
}
