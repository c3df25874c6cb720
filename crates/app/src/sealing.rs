//! Secrets the store keeps for us but must not be able to read back: the payment
//! token of an order (a reference to the buyer's card at the gateway), which the
//! payment worker needs until the order is settled. It is sealed with
//! ChaCha20-Poly1305 under a key derived from the node's token key (HMAC-SHA256
//! with a purpose label, so the two keys never coincide) and bound to its order's
//! id (a sealed token moved to another order does not open). A copy of the
//! database holds only `v1:<nonce+ciphertext>`.
//!
//! Rows written before sealing existed hold the token in clear; they are read as
//! they are (no `v1:` prefix), so an upgrade does not fail orders in flight.

use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use base64::Engine;
use hmac::{Hmac, Mac};
use ring::aead::{Aad, LessSafeKey, Nonce, UnboundKey, CHACHA20_POLY1305, NONCE_LEN};
use sha2::Sha256;
use std::fmt;

const PREFIX: &str = "v1:";

pub struct Sealer {
    key: LessSafeKey,
}

impl fmt::Debug for Sealer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Sealer(***)")
    }
}

impl Sealer {
    pub fn new(secret: &[u8]) -> Self {
        let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC takes any key length");
        mac.update(b"boxoffice payment token sealing v1");
        let derived = mac.finalize().into_bytes();
        let key = UnboundKey::new(&CHACHA20_POLY1305, &derived).expect("a 32-byte key");
        Self {
            key: LessSafeKey::new(key),
        }
    }

    /// `plain`, sealed and bound to `context` (the order id).
    pub fn seal(&self, plain: &str, context: &str) -> String {
        let nonce_bytes: [u8; NONCE_LEN] = rand::random();
        let mut data = plain.as_bytes().to_vec();
        self.key
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce_bytes),
                Aad::from(context.as_bytes()),
                &mut data,
            )
            .expect("sealing cannot fail for a short token");
        let mut out = nonce_bytes.to_vec();
        out.extend_from_slice(&data);
        format!("{PREFIX}{}", B64.encode(out))
    }

    /// What [`Sealer::seal`] sealed under the same key and context; a value
    /// without the prefix (written before sealing) as it is. `None`: tampered
    /// with, moved to another context, or sealed under another key.
    pub fn open(&self, stored: &str, context: &str) -> Option<String> {
        let Some(sealed) = stored.strip_prefix(PREFIX) else {
            return Some(stored.to_owned());
        };
        let bytes = B64.decode(sealed).ok()?;
        if bytes.len() < NONCE_LEN {
            return None;
        }
        let (nonce, data) = bytes.split_at(NONCE_LEN);
        let mut data = data.to_vec();
        let plain = self
            .key
            .open_in_place(
                Nonce::try_assume_unique_for_key(nonce).ok()?,
                Aad::from(context.as_bytes()),
                &mut data,
            )
            .ok()?;
        String::from_utf8(plain.to_vec()).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_tokens_open_only_with_their_key_and_order() {
        let s = Sealer::new(b"a key of at least thirty-two bytes!!");
        let sealed = s.seal("tok_visa", "ord_1");
        assert!(sealed.starts_with("v1:") && !sealed.contains("tok_visa"));
        assert_ne!(
            sealed,
            s.seal("tok_visa", "ord_1"),
            "a fresh nonce each time"
        );
        assert_eq!(s.open(&sealed, "ord_1").as_deref(), Some("tok_visa"));
        assert_eq!(s.open(&sealed, "ord_2"), None);
        let other = Sealer::new(b"another key of at least thirty-two bytes");
        assert_eq!(other.open(&sealed, "ord_1"), None);
        let mut tampered = sealed.clone();
        tampered.pop();
        tampered.push('A');
        assert_eq!(s.open(&tampered, "ord_1"), None);
        assert_eq!(s.open("v1:", "ord_1"), None);
        // A row from before sealing is read as it is.
        assert_eq!(s.open("tok_legacy", "ord_1").as_deref(), Some("tok_legacy"));
    }
}
