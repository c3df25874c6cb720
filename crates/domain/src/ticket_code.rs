//! The text a ticket's QR code carries: a compact payload signed with Ed25519, so a
//! scanner holding only the public keys can tell a real ticket from a forged one
//! offline. This module owns the byte layout and its text form, and nothing else:
//! it never signs or verifies (the app does, with `ring`), and parsing is pure —
//! any string gives `Ok` or `Err`, never a panic (property-tested below).
//!
//! Layout (98 bytes, under the 100-byte budget before text encoding):
//!
//! | bytes  | field                                                            |
//! |--------|------------------------------------------------------------------|
//! | 0      | version (1)                                                      |
//! | 1      | `kid`: which signing key (keys are global, numbered 1, 2, …)     |
//! | 2..18  | ticket id (its ULID's 16 bytes)                                  |
//! | 18..26 | event tag: the last 8 bytes of the event id's ULID (its random part) |
//! | 26..30 | item, u32 big-endian: a seat's layout index, or `GA_BIT | GA tier ordinal` |
//! | 30..34 | issue time, Unix seconds, u32 big-endian (good until 2106)        |
//! | 34..98 | Ed25519 signature of bytes 0..34                                 |
//!
//! Why an 8-byte tag and not the 16-byte event id: 16 more bytes would cross the
//! budget (114). The tag is 64 random bits of the event's ULID, inside the signed
//! bytes, so a code cannot be moved to another event without the private key, and
//! two events share a tag with negligible odds; a scanner compares it with the tag
//! of the event it scans for (`wrong_event`).
//!
//! Text form: RFC 4648 base32, upper case, no padding (157 characters). Every base32
//! character is in the QR code's alphanumeric mode (5.5 bits a character), so the QR
//! is smaller than base64url's (which needs byte mode, 8 bits a character) and it
//! survives being read aloud or typed at a gate; base45 is ~6% denser but its space
//! and `%` break in URLs and forms. A rotating code (see `rotating`) appends `-` and
//! six digits: `-` is alphanumeric-mode too, and never a base32 character.
//!
//! Codes issued before signing existed are 26 characters of another alphabet: they
//! fail to parse here, and the app looks them up by their text instead.

use crate::{EventId, TicketId};

pub const VERSION: u8 = 1;
/// Bytes of the signed part.
pub const PAYLOAD_LEN: usize = 34;
pub const SIGNATURE_LEN: usize = 64;
/// The whole code before text encoding.
pub const CODE_LEN: usize = PAYLOAD_LEN + SIGNATURE_LEN;
/// The item field's high bit: a GA tier ordinal rather than a seat's layout index.
pub const GA_BIT: u32 = 0x8000_0000;
/// Digits of a rotating code's suffix.
pub const ROTATING_DIGITS: usize = 6;

const B32: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";

/// What a ticket is for: a seat (by its layout index) or a place in a GA tier (by the
/// tier's ordinal in the event's `ga_tiers`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TicketItem {
    Seat(u32),
    Ga(u32),
}

/// The signed fields.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TicketPayload {
    pub kid: u8,
    pub ticket: TicketId,
    pub event_tag: [u8; 8],
    pub item: TicketItem,
    /// Unix seconds.
    pub issued_at: u32,
}

/// A parsed code: its fields, the exact bytes the signature covers, the signature,
/// and the rotating suffix if it had one. Nothing here is verified yet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScannedCode {
    pub payload: TicketPayload,
    pub signed: [u8; PAYLOAD_LEN],
    pub signature: [u8; SIGNATURE_LEN],
    pub rotating: Option<u32>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum CodeError {
    #[error("not base32")]
    Encoding,
    #[error("wrong length")]
    Length,
    #[error("unknown version")]
    Version,
    #[error("malformed field")]
    Field,
}

/// The tag of an event's id (the random part of its ULID): what the payload binds.
pub fn event_tag(event: &EventId) -> [u8; 8] {
    let ulid = event
        .as_str()
        .split_once('_')
        .and_then(|(_, u)| ulid::Ulid::from_string(u).ok())
        .expect("an EventId always holds a ULID");
    let bytes = ulid.0.to_be_bytes();
    bytes[8..16].try_into().expect("8 bytes")
}

fn ticket_bytes(id: &TicketId) -> [u8; 16] {
    let ulid = id
        .as_str()
        .split_once('_')
        .and_then(|(_, u)| ulid::Ulid::from_string(u).ok())
        .expect("a TicketId always holds a ULID");
    ulid.0.to_be_bytes()
}

fn ticket_from(bytes: [u8; 16]) -> TicketId {
    let ulid = ulid::Ulid(u128::from_be_bytes(bytes));
    TicketId::parse(&format!("tkt_{}", ulid.to_string().to_lowercase()))
        .expect("any 128 bits are a ULID")
}

impl TicketPayload {
    /// The bytes to sign.
    pub fn to_bytes(&self) -> [u8; PAYLOAD_LEN] {
        let mut out = [0u8; PAYLOAD_LEN];
        out[0] = VERSION;
        out[1] = self.kid;
        out[2..18].copy_from_slice(&ticket_bytes(&self.ticket));
        out[18..26].copy_from_slice(&self.event_tag);
        let item = match self.item {
            TicketItem::Seat(i) => i & !GA_BIT,
            TicketItem::Ga(i) => GA_BIT | (i & !GA_BIT),
        };
        out[26..30].copy_from_slice(&item.to_be_bytes());
        out[30..34].copy_from_slice(&self.issued_at.to_be_bytes());
        out
    }

    fn from_bytes(b: &[u8; PAYLOAD_LEN]) -> Result<Self, CodeError> {
        if b[0] != VERSION {
            return Err(CodeError::Version);
        }
        let mut ticket = [0u8; 16];
        ticket.copy_from_slice(&b[2..18]);
        // ULIDs' text form holds 128 bits, but a ULID's first character may be at
        // most 7: every 16 bytes are a valid one.
        let item = u32::from_be_bytes(b[26..30].try_into().map_err(|_| CodeError::Field)?);
        Ok(Self {
            kid: b[1],
            ticket: ticket_from(ticket),
            event_tag: b[18..26].try_into().map_err(|_| CodeError::Field)?,
            item: if item & GA_BIT != 0 {
                TicketItem::Ga(item & !GA_BIT)
            } else {
                TicketItem::Seat(item)
            },
            issued_at: u32::from_be_bytes(b[30..34].try_into().map_err(|_| CodeError::Field)?),
        })
    }

    /// The code's text: payload and `signature`, base32.
    pub fn encode(&self, signature: &[u8; SIGNATURE_LEN]) -> String {
        let mut all = self.to_bytes().to_vec();
        all.extend_from_slice(signature);
        base32_encode(&all)
    }
}

/// `code` with a rotating suffix (the six digits of the current step).
pub fn with_rotating(code: &str, digits: u32) -> String {
    format!("{code}-{digits:06}")
}

impl ScannedCode {
    /// Parses a scanned text (surrounding spaces ignored, any letter case).
    pub fn parse(text: &str) -> Result<Self, CodeError> {
        let text = text.trim();
        let (body, rotating) = match text.split_once('-') {
            Some((body, digits)) => {
                if digits.len() != ROTATING_DIGITS || !digits.bytes().all(|c| c.is_ascii_digit()) {
                    return Err(CodeError::Field);
                }
                (
                    body,
                    Some(digits.parse::<u32>().map_err(|_| CodeError::Field)?),
                )
            }
            None => (text, None),
        };
        let bytes = base32_decode(body).ok_or(CodeError::Encoding)?;
        if bytes.len() != CODE_LEN {
            return Err(CodeError::Length);
        }
        let signed: [u8; PAYLOAD_LEN] = bytes[..PAYLOAD_LEN]
            .try_into()
            .map_err(|_| CodeError::Length)?;
        let signature: [u8; SIGNATURE_LEN] = bytes[PAYLOAD_LEN..]
            .try_into()
            .map_err(|_| CodeError::Length)?;
        Ok(Self {
            payload: TicketPayload::from_bytes(&signed)?,
            signed,
            signature,
            rotating,
        })
    }
}

/// What a scan at a gate decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ScanResult {
    /// Admitted: the ticket's first scan.
    Ok,
    /// Admitted before (the first scan says where and when).
    AlreadyUsed,
    /// Its order was refunded.
    Voided,
    /// A real ticket of another event.
    WrongEvent,
    /// Not a ticket: forged, altered, unknown, or a rotating code out of its window.
    Invalid,
}

impl ScanResult {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Ok => "ok",
            Self::AlreadyUsed => "already_used",
            Self::Voided => "voided",
            Self::WrongEvent => "wrong_event",
            Self::Invalid => "invalid",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "ok" => Self::Ok,
            "already_used" => Self::AlreadyUsed,
            "voided" => Self::Voided,
            "wrong_event" => Self::WrongEvent,
            "invalid" => Self::Invalid,
            _ => return None,
        })
    }
}

fn base32_encode(data: &[u8]) -> String {
    let mut out = String::with_capacity(data.len().div_ceil(5) * 8);
    let (mut acc, mut bits) = (0u32, 0u32);
    for &b in data {
        acc = (acc << 8) | u32::from(b);
        bits += 8;
        while bits >= 5 {
            bits -= 5;
            out.push(B32[((acc >> bits) & 31) as usize] as char);
        }
        acc &= (1 << bits) - 1;
    }
    if bits > 0 {
        out.push(B32[((acc << (5 - bits)) & 31) as usize] as char);
    }
    out
}

/// Strict: only the alphabet (either case), no padding, and the unused low bits of
/// the last character zero — so each byte string has exactly one text form and an
/// altered character never decodes to the same bytes.
fn base32_decode(text: &str) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(text.len() * 5 / 8);
    let (mut acc, mut bits) = (0u32, 0u32);
    for c in text.bytes() {
        let v = match c.to_ascii_uppercase() {
            c @ b'A'..=b'Z' => c - b'A',
            c @ b'2'..=b'7' => c - b'2' + 26,
            _ => return None,
        };
        acc = (acc << 5) | u32::from(v);
        bits += 5;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    (bits < 5 && acc == 0).then_some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn payload() -> TicketPayload {
        TicketPayload {
            kid: 3,
            ticket: TicketId::new(),
            event_tag: event_tag(&EventId::new()),
            item: TicketItem::Ga(2),
            issued_at: 1_800_000_000,
        }
    }

    #[test]
    fn a_code_is_under_100_bytes_and_round_trips() {
        let p = payload();
        let sig = [7u8; SIGNATURE_LEN];
        let text = p.encode(&sig);
        const { assert!(CODE_LEN < 100) };
        let bytes = base32_decode(&text).unwrap();
        assert!(bytes.len() < 100, "{} bytes", bytes.len());
        assert_eq!(text.len(), 157);
        assert!(text
            .bytes()
            .all(|c| c.is_ascii_uppercase() || (b'2'..=b'7').contains(&c)));
        let scanned = ScannedCode::parse(&text).unwrap();
        assert_eq!(scanned.payload, p);
        assert_eq!(scanned.signature, sig);
        assert_eq!(scanned.signed, p.to_bytes());
        assert_eq!(scanned.rotating, None);
        let rotating = ScannedCode::parse(&with_rotating(&text, 42)).unwrap();
        assert_eq!(rotating.rotating, Some(42));
        assert_eq!(ScannedCode::parse(&text.to_lowercase()).unwrap().payload, p);
    }

    #[test]
    fn seats_and_ga_places_are_told_apart() {
        let mut p = payload();
        p.item = TicketItem::Seat(99_999);
        let s = ScannedCode::parse(&p.encode(&[0; 64])).unwrap();
        assert_eq!(s.payload.item, TicketItem::Seat(99_999));
    }

    #[test]
    fn malformed_texts_are_errors() {
        let text = payload().encode(&[1; 64]);
        assert_eq!(ScannedCode::parse(""), Err(CodeError::Length));
        // A code issued before signing (26 characters) is not a signed code.
        assert!(ScannedCode::parse("ABCDEFGHJKLMNPQRSTUVWXYZ23").is_err());
        assert_eq!(ScannedCode::parse(&text[1..]), Err(CodeError::Encoding));
        assert_eq!(
            ScannedCode::parse(&format!("{text}-12345")),
            Err(CodeError::Field)
        );
        assert_eq!(
            ScannedCode::parse(&text.replacen('A', "0", 1)),
            Err(CodeError::Encoding)
        );
        let mut bytes = base32_decode(&text).unwrap();
        bytes[0] = 9;
        assert_eq!(
            ScannedCode::parse(&base32_encode(&bytes)),
            Err(CodeError::Version)
        );
    }

    proptest! {
        #[test]
        fn any_text_parses_or_errs(s in ".{0,200}") {
            let _ = ScannedCode::parse(&s);
        }

        #[test]
        fn any_bytes_parse_or_err(b in proptest::collection::vec(any::<u8>(), 0..120)) {
            let _ = ScannedCode::parse(&base32_encode(&b));
        }

        #[test]
        fn base32_round_trips(b in proptest::collection::vec(any::<u8>(), 0..120)) {
            prop_assert_eq!(base32_decode(&base32_encode(&b)), Some(b));
        }

        /// Changing any byte of a code changes what is parsed: the signed bytes or the
        /// signature differ (so verification, in the app, fails), or it does not parse.
        #[test]
        fn a_changed_byte_never_parses_to_the_same_code(ix in 0usize..CODE_LEN, flip in 1u8..=255) {
            let p = payload();
            let text = p.encode(&[5; 64]);
            let original = ScannedCode::parse(&text).unwrap();
            let mut bytes = base32_decode(&text).unwrap();
            bytes[ix] ^= flip;
            if let Ok(changed) = ScannedCode::parse(&base32_encode(&bytes)) {
                prop_assert!(changed.signed != original.signed || changed.signature != original.signature);
            }
        }
    }
}
