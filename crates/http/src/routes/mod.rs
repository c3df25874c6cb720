//! One router per feature.

pub mod artefacts;
pub mod audit;
pub mod catalog;
pub mod checkin;
pub mod checkout;
pub mod docs;
pub mod holds;
pub mod identity;
pub mod live;
pub mod ops;
pub mod orgs;
pub mod queue;
pub mod waitlist;
