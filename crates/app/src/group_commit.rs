//! Group commit of every state transition: holds, releases, checkouts, payment
//! outcomes, expiries and what the workers record all reach the store through one
//! writer task per node, which commits in one transaction every write that arrived
//! while its previous commit ran. Under load batches grow and commits per second
//! stay few; a lone write waits for one commit only (no timer, no added latency).
//! Each caller learns its own write's fate, and only once it is committed.
//!
//! One refused write (a constraint) fails alone: the store retries the batch behind
//! a savepoint per write. After a commit the writer hands the outbox messages it
//! just wrote to the queue (an in-process queue delivers them from there) and wakes
//! the workers.
//!
//! The writer task owns the commit, not the caller: a caller that goes away (a
//! client disconnect) does not stop its write, so the compensation that follows a
//! failed write must not depend on the caller either (see `holds.rs`).

use boxoffice_domain::{Job, MessageId};
use boxoffice_ports::{
    CheckoutOutcome, Clock, FailOutcome, JobQueue, PaidOutcome, ReleaseOutcome, SalesStore,
    StoreError, Write, Written,
};
use std::sync::Arc;
use tokio::sync::{mpsc, oneshot, watch};

const MAX_BATCH: usize = 1024;

type Pending = (Write, oneshot::Sender<Result<Written, StoreError>>);

#[derive(Debug, Clone)]
pub(crate) struct Writer {
    tx: mpsc::Sender<Pending>,
}

fn stopped() -> StoreError {
    StoreError::Unavailable(anyhow::anyhow!("the store writer stopped"))
}

impl Writer {
    /// Starts the writer task; it ends when the writer is dropped. `jobs` counts
    /// commits that queued jobs (workers wait for it to move).
    pub(crate) fn spawn(
        store: Arc<dyn SalesStore>,
        queue: Arc<dyn JobQueue>,
        clock: Arc<dyn Clock>,
        jobs: watch::Sender<u64>,
    ) -> Self {
        let (tx, mut rx) = mpsc::channel::<Pending>(16 * MAX_BATCH);
        tokio::spawn(async move {
            let mut ops = Vec::with_capacity(MAX_BATCH);
            let mut answers = Vec::with_capacity(MAX_BATCH);
            while let Some((op, answer)) = rx.recv().await {
                ops.push(op);
                answers.push(answer);
                while ops.len() < MAX_BATCH {
                    match rx.try_recv() {
                        Ok((op, answer)) => {
                            ops.push(op);
                            answers.push(answer);
                        }
                        Err(_) => break,
                    }
                }
                metrics::histogram!("boxoffice_store_batch_size").record(ops.len() as f64);
                let started = std::time::Instant::now();
                let written = store.write(&ops).await;
                metrics::histogram!("boxoffice_store_batch_duration_seconds")
                    .record(started.elapsed().as_secs_f64());
                match written {
                    Ok(results) => {
                        let queued: Vec<(MessageId, Job)> = ops
                            .iter()
                            .zip(&results)
                            .filter_map(|(op, r)| Some(op.queued_all(r.as_ref().ok()?)))
                            .flatten()
                            .collect();
                        if !queued.is_empty() {
                            queue.committed(&queued, clock.now());
                            jobs.send_modify(|n| *n += 1);
                        }
                        for (answer, r) in answers.drain(..).zip(results) {
                            let _ = answer.send(r);
                        }
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, writes = ops.len(), "a group commit failed");
                        let why = e.to_string();
                        for answer in answers.drain(..) {
                            let _ =
                                answer.send(Err(StoreError::Unavailable(anyhow::anyhow!("{why}"))));
                        }
                    }
                }
                ops.clear();
            }
        });
        Self { tx }
    }

    /// Commits `w` with whatever else is waiting; returns once it is committed.
    pub(crate) async fn write(&self, w: Write) -> Result<Written, StoreError> {
        let (done, wait) = oneshot::channel();
        self.tx.send((w, done)).await.map_err(|_| stopped())?;
        wait.await.map_err(|_| stopped())?
    }

    /// Releases `hold`; with `record`, its audit record goes in the same
    /// transaction (when the release changed something).
    pub(crate) async fn release(
        &self,
        hold: &boxoffice_domain::HoldId,
        now: time::OffsetDateTime,
        record: Option<boxoffice_domain::AuditRecord>,
    ) -> Result<ReleaseOutcome, StoreError> {
        let w = Write::Release {
            hold: hold.clone(),
            now,
        };
        let w = match record {
            Some(r) => Write::Audited {
                write: Box::new(w),
                record: Box::new(r),
            },
            None => w,
        };
        match self.write(w).await? {
            Written::Released(r) => Ok(r),
            w => Err(unexpected(w)),
        }
    }

    pub(crate) async fn checkout(
        &self,
        rec: boxoffice_ports::CheckoutRecord,
        now: time::OffsetDateTime,
        record: boxoffice_domain::AuditRecord,
    ) -> Result<CheckoutOutcome, StoreError> {
        let rec = Box::new(rec);
        let w = Write::Audited {
            write: Box::new(Write::Checkout { rec, now }),
            record: Box::new(record),
        };
        match self.write(w).await? {
            Written::Checkout(c) => Ok(c),
            w => Err(unexpected(w)),
        }
    }

    pub(crate) async fn paid(&self, w: Write) -> Result<PaidOutcome, StoreError> {
        match self.write(w).await? {
            Written::Paid(p) => Ok(p),
            w => Err(unexpected(w)),
        }
    }

    pub(crate) async fn failed(&self, w: Write) -> Result<FailOutcome, StoreError> {
        match self.write(w).await? {
            Written::Failed(f) => Ok(f),
            w => Err(unexpected(w)),
        }
    }
}

fn unexpected(w: Written) -> StoreError {
    StoreError::Unavailable(anyhow::anyhow!("the store answered {w:?}"))
}
