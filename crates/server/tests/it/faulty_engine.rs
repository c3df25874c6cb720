//! A hold engine that wraps the real one (in-process or Redis) and misbehaves on
//! cue: an operation fails once (as a Redis call that timed out would), or a hold
//! stops between the engine's grant and the answer to the app, until the test lets
//! it go. Everything else is the real engine's doing.

use async_trait::async_trait;
use boxoffice_domain::{EventId, HoldId, HoldItems, HoldRejection, Millis};
use boxoffice_ports::{EngineError, HoldEngine, HoldRequest, InventorySnapshot, SeatMap};
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::Mutex;
use tokio::sync::oneshot;

#[derive(Debug, Default)]
pub struct FaultyEngine {
    inner: Mutex<Option<Arc<dyn HoldEngine>>>,
    /// Operation name → how many more calls pass before one fails.
    armed: Mutex<HashMap<&'static str, u32>>,
    /// Operation name → failures injected so far.
    failed: Mutex<HashMap<&'static str, u32>>,
    pause: Mutex<Option<(oneshot::Sender<()>, oneshot::Receiver<()>)>>,
    /// Operation name → (every how many calls one fails, calls so far).
    flaky: Mutex<HashMap<&'static str, (u32, u32)>>,
}

/// A hold held between the engine's grant and the app hearing of it.
pub struct Paused {
    /// Resolves once the engine granted the hold.
    pub granted: oneshot::Receiver<()>,
    /// Send to let the hold go on.
    pub resume: oneshot::Sender<()>,
}

impl FaultyEngine {
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }

    /// What the app's wrap hook calls with the engine the config chose.
    pub fn wrap(self: &Arc<Self>, inner: Arc<dyn HoldEngine>) -> Arc<dyn HoldEngine> {
        *self.inner.lock().unwrap() = Some(inner);
        self.clone()
    }

    /// The real engine underneath.
    pub fn inner(&self) -> Arc<dyn HoldEngine> {
        self.inner.lock().unwrap().clone().expect("wrapped")
    }

    /// The `nth` call of `op` from now on (1: the next) fails, once.
    pub fn fail(&self, op: &'static str, nth: u32) {
        assert!(nth >= 1);
        self.armed.lock().unwrap().insert(op, nth - 1);
    }

    /// From now on every `every`th call of `op` fails.
    pub fn flaky(&self, op: &'static str, every: u32) {
        assert!(every >= 2);
        self.flaky.lock().unwrap().insert(op, (every, 0));
    }

    /// How many calls of `op` were made to fail.
    pub fn failures(&self, op: &'static str) -> u32 {
        self.failed.lock().unwrap().get(op).copied().unwrap_or(0)
    }

    /// The next hold the engine grants waits, granted, until `resume` is sent.
    pub fn pause_next_hold(&self) -> Paused {
        let (granted_tx, granted) = oneshot::channel();
        let (resume, resume_rx) = oneshot::channel();
        *self.pause.lock().unwrap() = Some((granted_tx, resume_rx));
        Paused { granted, resume }
    }

    fn trip(&self, op: &'static str) -> Result<(), EngineError> {
        if let Some((every, calls)) = self.flaky.lock().unwrap().get_mut(op) {
            *calls += 1;
            if *calls % *every == 0 {
                *self.failed.lock().unwrap().entry(op).or_default() += 1;
                return Err(EngineError::Unavailable(anyhow::anyhow!(
                    "injected: {op} failed (flaky)"
                )));
            }
        }
        let mut armed = self.armed.lock().unwrap();
        match armed.get_mut(op) {
            Some(0) => {
                armed.remove(op);
                *self.failed.lock().unwrap().entry(op).or_default() += 1;
                Err(EngineError::Unavailable(anyhow::anyhow!(
                    "injected: {op} failed"
                )))
            }
            Some(n) => {
                *n -= 1;
                Ok(())
            }
            None => Ok(()),
        }
    }
}

#[async_trait]
impl HoldEngine for FaultyEngine {
    async fn prepare_load(&self, event: &EventId) -> Result<Option<String>, EngineError> {
        self.inner().prepare_load(event).await
    }

    async fn load_event(&self, s: InventorySnapshot, now: Millis) -> Result<(), EngineError> {
        self.inner().load_event(s, now).await
    }

    async fn hold(&self, req: HoldRequest) -> Result<Result<(), HoldRejection>, EngineError> {
        self.trip("hold")?;
        let out = self.inner().hold(req).await;
        if matches!(out, Ok(Ok(()))) {
            let pause = self.pause.lock().unwrap().take();
            if let Some((granted, resume)) = pause {
                let _ = granted.send(());
                let _ = resume.await;
            }
        }
        out
    }

    async fn release(
        &self,
        event: &EventId,
        hold: &HoldId,
        now: Millis,
    ) -> Result<Option<HoldItems>, EngineError> {
        self.trip("release")?;
        self.inner().release(event, hold, now).await
    }

    async fn confirm(
        &self,
        event: &EventId,
        hold: &HoldId,
        now: Millis,
    ) -> Result<Option<HoldItems>, EngineError> {
        self.trip("confirm")?;
        self.inner().confirm(event, hold, now).await
    }

    async fn extend(
        &self,
        event: &EventId,
        hold: &HoldId,
        expires_at: Millis,
        now: Millis,
    ) -> Result<bool, EngineError> {
        self.trip("extend")?;
        self.inner().extend(event, hold, expires_at, now).await
    }

    async fn seat_map(&self, event: &EventId, now: Millis) -> Result<SeatMap, EngineError> {
        self.inner().seat_map(event, now).await
    }

    async fn seat_map_version(&self, event: &EventId, now: Millis) -> Result<u64, EngineError> {
        self.inner().seat_map_version(event, now).await
    }

    async fn evict(&self, event: &EventId) -> Result<(), EngineError> {
        self.inner().evict(event).await
    }

    async fn expire_due(&self, now: Millis) -> Result<Vec<(EventId, HoldId)>, EngineError> {
        self.inner().expire_due(now).await
    }

    async fn ping(&self) -> Result<(), EngineError> {
        self.inner().ping().await
    }

    fn volatile(&self) -> bool {
        self.inner().volatile()
    }
}
