//! Payment gateways behind the `PaymentGateway` port.
//!
//! - [`StripeGateway`]: a client of Stripe's PaymentIntents API (form-encoded
//!   requests, `Idempotency-Key`, 402 `card_error` declines, 3-D Secure and delayed
//!   settlement). It is the only client we have.
//! - [`FakeStripe`]: a test double of that same API, persisted in its own SQLite
//!   file, so that it behaves as a third party would: its records outlive a crash of
//!   the server, it replays an idempotency key's first answer, and it knows Stripe's
//!   test tokens. The embedded default starts one on loopback and points the client
//!   at it; `boxoffice test-gateway` runs one alone for several nodes to share. It
//!   sends signed webhooks ([`webhook_signature`] is how it signs them).

mod fake;
mod stripe;

pub use fake::{webhook_signature, FakeStripe, FakeStripeConfig, Faults, TEST_SECRET_KEY};
pub use stripe::StripeGateway;
