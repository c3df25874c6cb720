//! Group commit of holds: the hot path records each hold in the store, but not in a
//! transaction of its own. One writer task commits, in one transaction, every hold
//! that arrived while its previous commit ran, so under load batches grow and
//! commits per second stay few, while a lone hold waits for one commit only (no
//! timer, no added latency). Each caller still learns its own hold's fate before it
//! answers: a hold is acknowledged only once the store has it.
//!
//! A batch that fails is retried hold by hold, so one bad hold (a conflict) cannot
//! fail the others.

use boxoffice_domain::Hold;
use boxoffice_ports::{Store, StoreError};
use std::sync::Arc;
use tokio::sync::{mpsc, oneshot};

const MAX_BATCH: usize = 512;

type Pending = (Hold, oneshot::Sender<Result<(), StoreError>>);

#[derive(Debug)]
pub(crate) struct HoldWriter {
    tx: mpsc::Sender<Pending>,
}

fn stopped() -> StoreError {
    StoreError::Unavailable(anyhow::anyhow!("the hold writer stopped"))
}

impl HoldWriter {
    /// Starts the writer task; it ends when the writer is dropped.
    pub(crate) fn spawn(store: Arc<dyn Store>) -> Self {
        let (tx, mut rx) = mpsc::channel::<Pending>(16 * MAX_BATCH);
        tokio::spawn(async move {
            let mut batch: Vec<Pending> = Vec::with_capacity(MAX_BATCH);
            while let Some(first) = rx.recv().await {
                batch.push(first);
                while batch.len() < MAX_BATCH {
                    match rx.try_recv() {
                        Ok(p) => batch.push(p),
                        Err(_) => break,
                    }
                }
                let holds: Vec<Hold> = batch.iter().map(|(h, _)| h.clone()).collect();
                metrics::histogram!("boxoffice_hold_commit_batch_size").record(holds.len() as f64);
                match store.record_holds(&holds).await {
                    Ok(()) => {
                        for (_, done) in batch.drain(..) {
                            let _ = done.send(Ok(()));
                        }
                    }
                    Err(_) if batch.len() > 1 => {
                        for (hold, done) in batch.drain(..) {
                            let _ = done.send(store.record_hold(&hold).await);
                        }
                    }
                    Err(e) => {
                        for (_, done) in batch.drain(..) {
                            let _ = done.send(Err(StoreError::Unavailable(anyhow::anyhow!("{e}"))));
                        }
                    }
                }
            }
        });
        Self { tx }
    }

    /// Records one hold, with whatever else is waiting; returns once it is committed.
    pub(crate) async fn record(&self, hold: Hold) -> Result<(), StoreError> {
        let (done, wait) = oneshot::channel();
        self.tx.send((hold, done)).await.map_err(|_| stopped())?;
        wait.await.map_err(|_| stopped())?
    }
}
