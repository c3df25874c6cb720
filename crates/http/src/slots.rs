//! Bounds on what one client may keep open at once on this node: event streams
//! (SSE) per IP, order long-polls per customer. Each open one holds a [`Slot`]; the
//! count goes down when it ends, however it ends (the slot is dropped with the
//! response body or the handler's future).
//!
//! Per node, in memory: a client spread over N nodes may hold N times the bound,
//! which is still a bound (these protect each node's memory and tasks).

use parking_lot::Mutex;
use std::collections::HashMap;
use std::sync::Arc;

#[derive(Debug, Default)]
pub(crate) struct Slots {
    held: Mutex<HashMap<String, usize>>,
}

/// One open stream or long-poll of `key`.
#[derive(Debug)]
pub(crate) struct Slot {
    slots: Arc<Slots>,
    key: String,
}

impl Slots {
    /// A slot for `key` if it holds fewer than `max`.
    pub(crate) fn take(self: &Arc<Self>, key: &str, max: usize) -> Option<Slot> {
        let mut held = self.held.lock();
        let n = held.entry(key.to_owned()).or_default();
        if *n >= max {
            return None;
        }
        *n += 1;
        Some(Slot {
            slots: self.clone(),
            key: key.to_owned(),
        })
    }

    #[cfg(test)]
    fn held(&self, key: &str) -> usize {
        self.held.lock().get(key).copied().unwrap_or(0)
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut held = self.slots.held.lock();
        if let Some(n) = held.get_mut(&self.key) {
            *n -= 1;
            if *n == 0 {
                held.remove(&self.key);
            }
        }
    }
}

/// A stream slot for the caller's IP, or 429 `too_many_streams`.
pub(crate) fn stream_slot(
    s: &crate::HttpState,
    peer: &crate::rate_limits::Peer,
) -> Result<Slot, crate::ApiError> {
    s.streams
        .take(&peer.key(), s.max_streams_per_ip)
        .ok_or_else(|| {
            metrics::counter!("boxoffice_streams_refused_total").increment(1);
            crate::ApiError::new(
                axum::http::StatusCode::TOO_MANY_REQUESTS,
                "too_many_streams",
                format!(
                    "at most {} open event streams per client; close one",
                    s.max_streams_per_ip
                ),
            )
            .with("retry_after_seconds", 5)
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_holds_at_most_max_and_gets_them_back_when_they_end() {
        let slots = Arc::new(Slots::default());
        let a: Vec<_> = (0..3).map(|_| slots.take("a", 3).unwrap()).collect();
        assert!(slots.take("a", 3).is_none());
        let b = slots.take("b", 3).expect("another key has its own bound");
        drop(a);
        assert_eq!(slots.held("a"), 0);
        assert!(slots.held.lock().get("a").is_none(), "no entry left behind");
        assert!(slots.take("a", 3).is_some());
        drop(b);
    }
}
