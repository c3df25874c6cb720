//! Waiting for an order costs nothing while nothing changes: a long-poll registers
//! interest in its order and sleeps until that order is announced final (on this
//! node, or by another node over the queue's bus), with a slow store poll only as
//! the safety net. Only the waiters of that order wake; nobody filters a stream of
//! every order.

use boxoffice_domain::OrderId;
use parking_lot::Mutex;
use std::collections::HashMap;
use std::sync::Arc;
use tokio::sync::Notify;

#[derive(Debug, Default)]
pub(crate) struct OrderWatch {
    waiting: Mutex<HashMap<OrderId, Arc<Notify>>>,
}

/// Interest in one order; dropping it forgets the order once nobody waits for it.
#[derive(Debug)]
pub(crate) struct Interest<'a> {
    watch: &'a OrderWatch,
    order: OrderId,
    pub(crate) notify: Arc<Notify>,
}

impl OrderWatch {
    pub(crate) fn interest(&self, order: &OrderId) -> Interest<'_> {
        let notify = self
            .waiting
            .lock()
            .entry(order.clone())
            .or_default()
            .clone();
        Interest {
            watch: self,
            order: order.clone(),
            notify,
        }
    }

    /// Wakes whoever waits for `order` (nobody: nothing to do); counts it in
    /// `boxoffice_order_waits_total{woken}` by what woke it. Returns 1 if anyone
    /// waited.
    pub(crate) fn wake(&self, order: &OrderId, by: &'static str) -> usize {
        let Some(n) = self.waiting.lock().get(order).cloned() else {
            return 0;
        };
        n.notify_waiters();
        metrics::counter!("boxoffice_order_waits_total", "woken" => by).increment(1);
        1
    }

    /// Every order someone waits for now.
    pub(crate) fn waited(&self) -> Vec<OrderId> {
        self.waiting.lock().keys().cloned().collect()
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.waiting.lock().len()
    }
}

impl Drop for Interest<'_> {
    fn drop(&mut self) {
        let mut waiting = self.watch.waiting.lock();
        // Ours and the map's: the last waiter leaves.
        if Arc::strong_count(&self.notify) == 2 {
            waiting.remove(&self.order);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn only_the_announced_order_wakes_and_interest_is_forgotten() {
        let watch = OrderWatch::default();
        let (a, b) = (OrderId::new(), OrderId::new());
        let ia = watch.interest(&a);
        let ib = watch.interest(&b);
        {
            let wa = ia.notify.notified();
            let wb = ib.notify.notified();
            tokio::pin!(wa, wb);
            wa.as_mut().enable();
            wb.as_mut().enable();
            assert_eq!(watch.wake(&a, "announced"), 1);
            // An enabled `Notified` is woken by `notify_waiters`; b's is not.
            assert!(futures::poll!(wa.as_mut()).is_ready());
            assert!(futures::poll!(wb.as_mut()).is_pending());
        }
        let ia2 = watch.interest(&a);
        drop(ia);
        assert_eq!(watch.len(), 2, "a second waiter keeps a's entry");
        drop(ia2);
        drop(ib);
        assert_eq!(watch.len(), 0);
    }
}
