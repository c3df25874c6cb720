//! Conformance suites: one per port, each a set of plain async functions an
//! adapter's own tests call with a fresh instance. Every adapter of a port passes the
//! same suite, so "embedded" and "distributed" cannot drift apart.

pub mod engine;
pub mod room;
pub mod store;
