//! Integration tests: the real application on port 0 with its own data directory,
//! driven over HTTP. One test binary for the crate (faster to link, one place for
//! helpers).

mod faulty_engine;
mod helpers;

mod best_available;
mod cancellation;
mod catalog;
mod checkin;
mod checkout;
mod cli;
mod delivery;
mod edge;
mod errors;
mod first_start;
mod holds;
mod identity;
mod kill_mid_batch;
mod late;
mod ledger;
mod limits;
mod live;
mod multinode;
mod nats_restart;
mod orgs;
mod pages;
mod payment_faults;
mod payments;
mod race;
mod refunds;
mod restart;
mod roles;
mod search;
mod security;
mod stripe;
mod waiting_room;
mod waitlist;
