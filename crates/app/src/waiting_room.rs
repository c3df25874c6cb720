//! The virtual waiting room's use cases (issue 12): joining (after a proof of work
//! when the room asks for one), reading one's place, leaving, and the admission
//! check of the hold path.
//!
//! Nothing is kept per waiting user but the queue's join number (`WaitingRoom`):
//! the user's queue id carries the event, the customer and the join number, signed
//! with an HMAC of the token key, so reading one's place is arithmetic on the
//! room's counters. The admission token is a compact JWT signed with Ed25519 (a key
//! derived from the token key under its own label, so it never verifies as an
//! access token), bound to the event, the customer and the admitted rank, expiring
//! with the session; a hold also asks the room whether that session is still live
//! (a shopper who left frees the slot and loses the token).
//!
//! The proof of work (hashcash): the server hands out a challenge (event, customer,
//! expiry, random; HMAC-signed, so it cannot be made up, and bound so it cannot be
//! used by another account or after five minutes); the client finds a nonce such
//! that SHA-256(`<challenge>:<nonce>`) starts with `difficulty` zero bits.

use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use base64::Engine;
use boxoffice_domain::{lottery_rank, EventId, Millis, UserId, WaitingRoomSettings};
use boxoffice_ports::{RoomParams, RoomState};
use hmac::{Hmac, Mac};
use ring::signature::{Ed25519KeyPair, KeyPair, UnparsedPublicKey, ED25519};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::fmt;
use std::time::Duration;
use time::OffsetDateTime;

use crate::catalog::CachedEvent;
use crate::{App, AppError, Principal};

/// How long a proof-of-work challenge may be answered.
pub const CHALLENGE_TTL: Duration = Duration::from_secs(300);

/// The room's keys, derived from the token key (every node derives the same).
pub(crate) struct RoomKeys {
    admission: Ed25519KeyPair,
    admission_public: Vec<u8>,
    kid: String,
    mac: Vec<u8>,
}

impl fmt::Debug for RoomKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RoomKeys")
            .field("kid", &self.kid)
            .finish_non_exhaustive()
    }
}

fn derive(secret: &[u8], label: &[u8]) -> [u8; 32] {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC takes any key length");
    mac.update(label);
    let mut out = [0u8; 32];
    out.copy_from_slice(&mac.finalize().into_bytes());
    out
}

impl RoomKeys {
    pub(crate) fn new(secret: &[u8]) -> Self {
        let admission =
            Ed25519KeyPair::from_seed_unchecked(&derive(secret, b"boxoffice admission ed25519 v1"))
                .expect("a 32-byte seed");
        let admission_public = admission.public_key().as_ref().to_vec();
        let kid = B64.encode(&Sha256::digest(&admission_public)[..8]);
        Self {
            admission,
            admission_public,
            kid,
            mac: derive(secret, b"boxoffice waiting room hmac v1").to_vec(),
        }
    }

    fn sign(&self, payload: &str) -> String {
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.mac).expect("any key length");
        mac.update(payload.as_bytes());
        let tag = mac.finalize().into_bytes();
        format!("{}.{}", B64.encode(payload), B64.encode(&tag[..16]))
    }

    /// The payload of a value [`Self::sign`] made; `None` if it was not.
    fn open(&self, signed: &str) -> Option<String> {
        let (payload, tag) = signed.split_once('.')?;
        let payload = String::from_utf8(B64.decode(payload).ok()?).ok()?;
        let tag = B64.decode(tag).ok()?;
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.mac).expect("any key length");
        mac.update(payload.as_bytes());
        mac.verify_truncated_left(&tag).ok()?;
        (tag.len() == 16).then_some(payload)
    }
}

#[derive(Serialize, Deserialize)]
struct AdmissionClaims {
    typ: String,
    ev: String,
    sub: String,
    rank: u64,
    /// Unix milliseconds: the session's end.
    exp: i64,
}

#[derive(Deserialize)]
struct Header {
    alg: String,
    kid: Option<String>,
}

/// Where a queued customer stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QueueState {
    PreQueue,
    Waiting,
    Admitted,
    Expired,
}

impl QueueState {
    pub fn as_str(self) -> &'static str {
        match self {
            QueueState::PreQueue => "pre_queue",
            QueueState::Waiting => "waiting",
            QueueState::Admitted => "admitted",
            QueueState::Expired => "expired",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueView {
    pub queue_id: String,
    pub event_id: EventId,
    pub state: QueueState,
    /// Waiting: how many are ahead, plus one. Pre-queue: the join number (the draw
    /// at the sale's start decides the real place). Admitted or expired: 0.
    pub position: u64,
    /// The place in the admission order (1-based), once the pre-queue is drawn.
    pub rank: Option<u64>,
    pub estimated_wait_seconds: Option<u64>,
    pub admission_token: Option<String>,
    /// When the admission token (the session) expires.
    pub session_expires_at: Option<OffsetDateTime>,
}

#[derive(Debug, Clone)]
pub struct Challenge {
    pub challenge: String,
    pub difficulty: u8,
    pub expires_at: OffsetDateTime,
}

/// A join's proof of work (both absent when the room asks for none).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JoinAsk {
    #[serde(default)]
    pub challenge: Option<String>,
    #[serde(default)]
    pub nonce: Option<String>,
}

/// Leading zero bits of a hash.
fn leading_zero_bits(h: &[u8]) -> u32 {
    let mut n = 0;
    for b in h {
        if *b == 0 {
            n += 8;
        } else {
            return n + b.leading_zeros();
        }
    }
    n
}

/// Whether `nonce` solves `challenge` at `difficulty` (SHA-256 of
/// `<challenge>:<nonce>` with that many leading zero bits).
pub fn pow_ok(challenge: &str, nonce: &str, difficulty: u8) -> bool {
    let h = Sha256::new()
        .chain_update(challenge.as_bytes())
        .chain_update(b":")
        .chain_update(nonce.as_bytes())
        .finalize();
    leading_zero_bits(&h) >= u32::from(difficulty)
}

/// Finds a nonce for `challenge` (what a client does; the load generator and
/// tests use it). Expected work: 2^difficulty hashes.
pub fn solve_pow(challenge: &str, difficulty: u8) -> String {
    let mut hasher = Sha256::new();
    hasher.update(challenge.as_bytes());
    hasher.update(b":");
    (0u64..)
        .find(|n| {
            let h = hasher.clone().chain_update(n.to_string()).finalize();
            leading_zero_bits(&h) >= u32::from(difficulty)
        })
        .expect("some nonce solves it")
        .to_string()
}

fn ms(t: OffsetDateTime) -> i64 {
    Millis::from_datetime(t).0
}

fn params(room: &WaitingRoomSettings, started: bool) -> RoomParams {
    RoomParams {
        admission_interval_ms: room.admission_interval_ms(),
        max_active: room.max_active_shoppers,
        session_ms: u64::from(room.session_seconds) * 1000,
        started,
        seed: rand::random(),
    }
}

impl App {
    fn room_of(ev: &CachedEvent) -> Result<&WaitingRoomSettings, AppError> {
        ev.event().room().ok_or(AppError::NoWaitingRoom)
    }

    /// Whether joining is open: from `pre_queue_opens_at` (or the sale's start)
    /// while the sale has not ended.
    fn joining_open(ev: &CachedEvent, room: &WaitingRoomSettings, now: OffsetDateTime) -> bool {
        let e = ev.event();
        let ended = e.status == boxoffice_domain::EventStatus::Ended
            || e.sale_ends_at.is_some_and(|t| now >= t);
        if ended {
            return false;
        }
        e.sale_open(now)
            || (e.status != boxoffice_domain::EventStatus::Draft
                && room.pre_queue_opens_at.is_some_and(|t| now >= t))
    }

    /// A proof-of-work challenge for `who` to join the event's queue.
    pub async fn queue_challenge(
        &self,
        who: &Principal,
        event_id: &str,
    ) -> Result<Challenge, AppError> {
        let ev = self.visible_event(Some(who), event_id).await?;
        let room = Self::room_of(&ev)?;
        let expires_at = self.clock.now() + CHALLENGE_TTL;
        let random = B64.encode(rand::random::<[u8; 12]>());
        let challenge = self.room_keys.sign(&format!(
            "pow|{}|{}|{}|{random}",
            ev.event().id,
            who.user_id,
            ms(expires_at)
        ));
        Ok(Challenge {
            challenge,
            difficulty: room.challenge_difficulty,
            expires_at,
        })
    }

    fn check_pow(
        &self,
        who: &Principal,
        ev: &CachedEvent,
        difficulty: u8,
        ask: &JoinAsk,
    ) -> Result<(), AppError> {
        if difficulty == 0 {
            return Ok(());
        }
        let (Some(challenge), Some(nonce)) = (&ask.challenge, &ask.nonce) else {
            return Err(AppError::ChallengeRequired { difficulty });
        };
        let fail = |why: &'static str| AppError::ChallengeFailed { why };
        let payload = self
            .room_keys
            .open(challenge)
            .ok_or(fail("this challenge was not issued here"))?;
        let parts: Vec<&str> = payload.split('|').collect();
        let ["pow", ev_id, customer, exp, _] = parts.as_slice() else {
            return Err(fail("this challenge was not issued here"));
        };
        if *ev_id != ev.event().id.as_str() || *customer != who.user_id.as_str() {
            return Err(fail(
                "this challenge was issued for another event or customer",
            ));
        }
        let now = ms(self.clock.now());
        if !exp.parse::<i64>().is_ok_and(|e| e > now) {
            return Err(AppError::ChallengeExpired);
        }
        if nonce.len() > 64 || !pow_ok(challenge, nonce, difficulty) {
            return Err(fail("the nonce does not solve the challenge"));
        }
        Ok(())
    }

    /// Joins `who` to the event's queue (once: joining again returns the same
    /// place). The bool is true for a new join.
    pub async fn join_queue(
        &self,
        who: &Principal,
        event_id: &str,
        ask: JoinAsk,
    ) -> Result<(QueueView, bool), AppError> {
        let ev = self.visible_event(Some(who), event_id).await?;
        let room = Self::room_of(&ev)?.clone();
        let now = self.clock.now();
        if !Self::joining_open(&ev, &room, now) {
            return Err(AppError::QueueNotOpen);
        }
        self.check_pow(who, &ev, room.challenge_difficulty, &ask)?;
        let id = &ev.event().id;
        let joined = self
            .room
            .join(id, &who.user_id, &params(&room, ev.event().sale_open(now)))
            .await?;
        if joined.new {
            metrics::counter!("boxoffice_queue_joins_total").increment(1);
        }
        let queue_id = self
            .room_keys
            .sign(&format!("q|{id}|{}|{}", who.user_id, joined.number));
        let view = self
            .view(
                &ev,
                &room,
                queue_id,
                &who.user_id,
                joined.number,
                joined.state,
            )
            .await?;
        Ok((view, joined.new))
    }

    fn parse_queue_id(&self, queue_id: &str) -> Result<(String, UserId, u64), AppError> {
        let payload = self.room_keys.open(queue_id).ok_or(AppError::NotFound)?;
        let parts: Vec<&str> = payload.split('|').collect();
        let ["q", ev, customer, number] = parts.as_slice() else {
            return Err(AppError::NotFound);
        };
        Ok((
            (*ev).to_owned(),
            UserId::try_from(*customer).map_err(|_| AppError::NotFound)?,
            number.parse().map_err(|_| AppError::NotFound)?,
        ))
    }

    /// Where the holder of `queue_id` stands now (the id is the credential: it is
    /// signed and names its customer, and an admission token works only for them).
    pub async fn queue_status(&self, queue_id: &str) -> Result<QueueView, AppError> {
        let (ev_id, customer, number) = self.parse_queue_id(queue_id)?;
        let ev = self.event(&ev_id).await?;
        let room = Self::room_of(&ev)?.clone();
        let started = ev.event().sale_open(self.clock.now());
        let state = self
            .room
            .state(&ev.event().id, &params(&room, started))
            .await?;
        self.view(&ev, &room, queue_id.to_owned(), &customer, number, state)
            .await
    }

    /// Ends the session of the holder of `queue_id` (they are done shopping): the
    /// slot goes to the next in line, the admission token stops working.
    pub async fn leave_queue(&self, queue_id: &str) -> Result<(), AppError> {
        let view = self.queue_status(queue_id).await?;
        if let (QueueState::Admitted, Some(rank)) = (view.state, view.rank) {
            self.room.leave(&view.event_id, rank - 1).await?;
        }
        Ok(())
    }

    async fn view(
        &self,
        ev: &CachedEvent,
        room: &WaitingRoomSettings,
        queue_id: String,
        customer: &UserId,
        number: u64,
        s: RoomState,
    ) -> Result<QueueView, AppError> {
        let interval = room.admission_interval_ms() as i64;
        let mut v = QueueView {
            queue_id,
            event_id: ev.event().id.clone(),
            state: QueueState::PreQueue,
            position: number + 1,
            rank: None,
            estimated_wait_seconds: None,
            admission_token: None,
            session_expires_at: None,
        };
        let Some(draw) = s.draw else {
            // The sale's start (if known) and this join number's turn at the rate.
            let start = ev.event().sale_starts_at.map(|t| (ms(t) - s.now_ms).max(0));
            v.estimated_wait_seconds =
                start.map(|w| ((w + number as i64 * interval) / 1000) as u64);
            return Ok(v);
        };
        let rank = lottery_rank(number, draw.pre_queue_len, draw.seed);
        v.rank = Some(rank + 1);
        if rank >= s.served {
            let ahead = rank - s.served;
            v.state = QueueState::Waiting;
            v.position = ahead + 1;
            let wait = (s.next_admission_ms - s.now_ms).max(0) + ahead as i64 * interval;
            v.estimated_wait_seconds = Some((wait as u64).div_ceil(1000));
            return Ok(v);
        }
        v.position = 0;
        v.estimated_wait_seconds = Some(0);
        match self.room.session(&v.event_id, rank).await? {
            Some(end) => {
                v.state = QueueState::Admitted;
                v.admission_token = Some(self.admission_token(&v.event_id, customer, rank, end));
                v.session_expires_at = Some(Millis(end).to_datetime());
            }
            None => v.state = QueueState::Expired,
        }
        Ok(v)
    }

    fn admission_token(&self, ev: &EventId, customer: &UserId, rank: u64, exp: i64) -> String {
        let claims = AdmissionClaims {
            typ: "admission".into(),
            ev: ev.to_string(),
            sub: customer.to_string(),
            rank,
            exp,
        };
        let header = format!(
            r#"{{"alg":"EdDSA","typ":"JWT","kid":"{}"}}"#,
            self.room_keys.kid
        );
        let body = format!(
            "{}.{}",
            B64.encode(header),
            B64.encode(serde_json::to_vec(&claims).expect("claims serialize"))
        );
        let sig = self.room_keys.admission.sign(body.as_bytes());
        format!("{body}.{}", B64.encode(sig.as_ref()))
    }

    /// The claims of an admission token this server signed; `None` otherwise.
    fn admission_claims(&self, token: &str) -> Option<AdmissionClaims> {
        let (body, sig) = token.rsplit_once('.')?;
        let (header, payload) = body.split_once('.')?;
        let header: Header = serde_json::from_slice(&B64.decode(header).ok()?).ok()?;
        if header.alg != "EdDSA" || header.kid.as_deref() != Some(&self.room_keys.kid) {
            return None;
        }
        UnparsedPublicKey::new(&ED25519, &self.room_keys.admission_public)
            .verify(body.as_bytes(), &B64.decode(sig).ok()?)
            .ok()?;
        let claims: AdmissionClaims = serde_json::from_slice(&B64.decode(payload).ok()?).ok()?;
        (claims.typ == "admission").then_some(claims)
    }

    /// A checkout ends the shopper's session: with the admission token the hold was
    /// made with (`Boxoffice-Admission` on the checkout), the session it names ends
    /// and, when admission is by capacity, its slot goes to the next in line. True
    /// when a live session ended. A token that is not this customer's for the
    /// hold's event ends nothing; without one, the session runs out on its own.
    pub async fn end_shopping(
        &self,
        who: &Principal,
        hold_id: &str,
        token: &str,
    ) -> Result<bool, AppError> {
        let hold = self.owned_hold_record(who, hold_id).await?;
        let Some(c) = self.admission_claims(token) else {
            return Ok(false);
        };
        if c.ev != hold.event_id.as_str() || c.sub != who.user_id.as_str() {
            return Ok(false);
        }
        let ended = self.room.leave(&hold.event_id, c.rank).await?;
        if ended {
            metrics::counter!("boxoffice_room_sessions_ended_total", "by" => "checkout")
                .increment(1);
        }
        Ok(ended)
    }

    /// With the event's room on, a hold needs `token`: an admission to this event,
    /// for this customer, whose session is live. Else `admission_required`.
    pub async fn check_admission(
        &self,
        who: &Principal,
        event_id: &str,
        token: Option<&str>,
    ) -> Result<(), AppError> {
        let ev = self.visible_event(Some(who), event_id).await?;
        if ev.event().room().is_none() {
            return Ok(());
        }
        let refuse = |why: &'static str| Err(AppError::AdmissionRequired { why });
        let Some(token) = token else {
            return refuse("this event has a waiting room: join its queue and send the admission token in Boxoffice-Admission");
        };
        let Some(c) = self.admission_claims(token) else {
            return refuse("the admission token is not valid");
        };
        if c.ev != ev.event().id.as_str() || c.sub != who.user_id.as_str() {
            return refuse("the admission token is for another event or customer");
        }
        if c.exp <= ms(self.clock.now()) {
            return refuse("the admission token has expired: the shopping session is over");
        }
        match self.room.session(&ev.event().id, c.rank).await? {
            Some(_) => Ok(()),
            None => refuse("the shopping session of this admission token is over"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pow_round_trip() {
        let n = solve_pow("abc", 8);
        assert!(pow_ok("abc", &n, 8));
        assert_eq!(leading_zero_bits(&[0, 0x10]), 11);
    }

    #[test]
    fn signed_values_open_only_unchanged() {
        let k = RoomKeys::new(b"secret secret secret secret 32b!");
        let s = k.sign("q|ev|usr|3");
        assert_eq!(k.open(&s).as_deref(), Some("q|ev|usr|3"));
        let forged = format!(
            "{}.{}",
            B64.encode("q|ev|usr|0"),
            s.split_once('.').unwrap().1
        );
        assert_eq!(k.open(&forged), None);
        let other = RoomKeys::new(b"another secret another secret 32");
        assert_eq!(other.open(&s), None);
    }
}
