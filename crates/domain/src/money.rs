//! Money: integer minor units and an ISO 4217 currency code. Never floats.

use serde::{Deserialize, Serialize};
use std::fmt;

use crate::ValidationError;

/// Three uppercase ASCII letters (ISO 4217 shape).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Currency([u8; 3]);

impl Currency {
    pub const EUR: Currency = Currency(*b"EUR");

    pub fn as_str(&self) -> &str {
        // Only ASCII uppercase letters are ever stored.
        std::str::from_utf8(&self.0).unwrap_or("XXX")
    }
}

impl TryFrom<String> for Currency {
    type Error = ValidationError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        Currency::try_from(s.as_str())
    }
}

impl TryFrom<&str> for Currency {
    type Error = ValidationError;
    fn try_from(s: &str) -> Result<Self, Self::Error> {
        let b = s.as_bytes();
        if b.len() == 3 && b.iter().all(u8::is_ascii_uppercase) {
            Ok(Currency([b[0], b[1], b[2]]))
        } else {
            Err(ValidationError::new(
                "currency",
                "must be an ISO 4217 code such as EUR",
            ))
        }
    }
}

impl From<Currency> for String {
    fn from(c: Currency) -> String {
        c.as_str().to_owned()
    }
}

impl fmt::Debug for Currency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Display for Currency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An amount in minor units (cents). Prices are never negative.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Money {
    pub amount: i64,
    pub currency: Currency,
}

impl Money {
    pub fn new(amount: i64, currency: Currency) -> Self {
        Self { amount, currency }
    }

    pub fn zero(currency: Currency) -> Self {
        Self::new(0, currency)
    }

    pub fn validate_price(&self, field: &str) -> Result<(), ValidationError> {
        if self.amount < 0 {
            return Err(ValidationError::new(field, "price must not be negative"));
        }
        if self.amount > 10_000_000_000 {
            return Err(ValidationError::new(field, "price is unreasonably large"));
        }
        Ok(())
    }

    /// `self * n`, or `None` on overflow.
    pub fn times(&self, n: u32) -> Option<Money> {
        self.amount
            .checked_mul(i64::from(n))
            .map(|amount| Money::new(amount, self.currency))
    }

    /// `self + other`; `None` on overflow or a currency mismatch.
    pub fn plus(&self, other: Money) -> Option<Money> {
        if self.currency != other.currency {
            return None;
        }
        self.amount
            .checked_add(other.amount)
            .map(|amount| Money::new(amount, self.currency))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn currency_shape() {
        assert!(Currency::try_from("EUR").is_ok());
        assert!(Currency::try_from("eur").is_err());
        assert!(Currency::try_from("EURO").is_err());
        assert!(Currency::try_from("").is_err());
    }

    #[test]
    fn money_json_shape() {
        let m = Money::new(4500, Currency::EUR);
        assert_eq!(
            serde_json::to_string(&m).unwrap(),
            r#"{"amount":4500,"currency":"EUR"}"#
        );
    }

    #[test]
    fn arithmetic_refuses_mixed_currencies_and_overflow() {
        let eur = Money::new(1, Currency::EUR);
        let usd = Money::new(1, Currency::try_from("USD").unwrap());
        assert_eq!(eur.plus(usd), None);
        assert_eq!(Money::new(i64::MAX, Currency::EUR).times(2), None);
        assert_eq!(eur.times(3).unwrap().amount, 3);
    }
}
