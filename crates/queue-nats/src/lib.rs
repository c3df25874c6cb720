//! The job queue on NATS JetStream, for the distributed mode.
//!
//! The outbox stays the source: a relay (in the app) publishes each outbox message
//! here once per consumer kind, on `<prefix>.jobs.<consumer>`, with
//! `Nats-Msg-Id: <message id>:<consumer>` so JetStream drops a second publish within
//! its de-duplication window (several nodes relay; a relay may crash before it marks
//! a row relayed). Each consumer kind has a durable pull consumer with explicit
//! acks: a delivery not acked within the lease comes back; `retry` is a NAK with a
//! delay; `bury` copies the message to `<prefix>.dead.<consumer>` and terminates it.
//! One subject per consumer kind keeps this working on nats-server 2.9 (no
//! multi-subject filters).

use async_nats::jetstream::{self, consumer::pull, consumer::AckPolicy, stream, AckKind};
use async_trait::async_trait;
use boxoffice_domain::{Consumer, Job, MessageId, OrderId};
use boxoffice_ports::{Delivery, JobQueue, QueueError};
use futures::StreamExt;
use parking_lot::Mutex;
use std::collections::HashMap;
use std::fmt;
use std::time::Duration;
use time::OffsetDateTime;

pub struct NatsQueue {
    /// Core NATS, for announcements (no persistence needed: a missed one is caught
    /// by the long-poll's slow safety poll).
    client: async_nats::Client,
    js: jetstream::Context,
    stream_name: String,
    prefix: String,
    lease: Duration,
    /// Deliveries handed out and not yet acked, nacked or buried.
    in_hand: Mutex<HashMap<(MessageId, Consumer), jetstream::Message>>,
    /// The durable consumers, looked up once: each lookup is a JetStream API
    /// round trip, which a claim per freed worker would otherwise pay every time.
    consumers: Mutex<HashMap<Consumer, jetstream::consumer::PullConsumer>>,
}

impl fmt::Debug for NatsQueue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NatsQueue")
            .field("stream", &self.stream_name)
            .finish_non_exhaustive()
    }
}

fn down(e: impl fmt::Display) -> QueueError {
    QueueError::Unavailable(anyhow::anyhow!("{e}"))
}

impl NatsQueue {
    /// Connects and makes sure the stream and the durable consumers exist. `prefix`
    /// names the subjects and the stream (tests use one each); `lease` is the ack wait.
    pub async fn connect(url: &str, prefix: &str, lease: Duration) -> anyhow::Result<Self> {
        let client = async_nats::ConnectOptions::new()
            .retry_on_initial_connect()
            .connect(url)
            .await?;
        let js = jetstream::new(client.clone());
        let stream_name: String = prefix
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() {
                    c.to_ascii_uppercase()
                } else {
                    '_'
                }
            })
            .collect::<String>()
            + "_JOBS";
        let q = Self {
            client,
            js,
            stream_name,
            prefix: prefix.to_owned(),
            lease,
            in_hand: Mutex::new(HashMap::new()),
            consumers: Mutex::new(HashMap::new()),
        };
        q.ensure().await?;
        Ok(q)
    }

    async fn ensure(&self) -> anyhow::Result<()> {
        let s = self
            .js
            .get_or_create_stream(stream::Config {
                name: self.stream_name.clone(),
                subjects: vec![
                    format!("{}.jobs.*", self.prefix),
                    format!("{}.dead.*", self.prefix),
                ],
                storage: stream::StorageType::File,
                duplicate_window: Duration::from_secs(600),
                max_age: Duration::from_secs(7 * 24 * 3600),
                ..Default::default()
            })
            .await
            .map_err(|e| anyhow::anyhow!("creating stream {}: {e}", self.stream_name))?;
        for c in Consumer::ALL {
            s.get_or_create_consumer(
                c.as_str(),
                pull::Config {
                    durable_name: Some(c.as_str().to_owned()),
                    filter_subject: self.subject(c),
                    ack_policy: AckPolicy::Explicit,
                    ack_wait: self.lease,
                    max_ack_pending: 20_000,
                    ..Default::default()
                },
            )
            .await
            .map_err(|e| anyhow::anyhow!("creating consumer {}: {e}", c.as_str()))?;
        }
        Ok(())
    }

    fn subject(&self, c: Consumer) -> String {
        format!("{}.jobs.{}", self.prefix, c.as_str())
    }

    async fn consumer(&self, c: Consumer) -> Result<jetstream::consumer::PullConsumer, QueueError> {
        if let Some(known) = self.consumers.lock().get(&c) {
            return Ok(known.clone());
        }
        let found = self
            .js
            .get_consumer_from_stream(c.as_str(), &self.stream_name)
            .await
            .map_err(down)?;
        self.consumers.lock().insert(c, found.clone());
        Ok(found)
    }

    /// Forgets a consumer after a failed fetch: the next claim looks it up again.
    fn forget(&self, c: Consumer) {
        self.consumers.lock().remove(&c);
    }

    fn take(&self, d: &Delivery) -> Option<jetstream::Message> {
        self.in_hand.lock().remove(&(d.message.clone(), d.consumer))
    }
}

#[async_trait]
impl JobQueue for NatsQueue {
    async fn claim(
        &self,
        consumer: Consumer,
        max: usize,
        _lease: Duration,
        _now: OffsetDateTime,
    ) -> Result<Vec<Delivery>, QueueError> {
        let c = self.consumer(consumer).await?;
        let mut batch = c
            .fetch()
            .max_messages(max.max(1))
            .expires(Duration::from_millis(250))
            .messages()
            .await
            .map_err(|e| {
                self.forget(consumer);
                down(e)
            })?;
        let mut out = Vec::new();
        while let Some(m) = batch.next().await {
            let m = m.map_err(down)?;
            let info = m.info().map_err(down)?;
            let (attempt, published) = (info.delivered.max(1) as u32, info.published);
            let id = m
                .headers
                .as_ref()
                .and_then(|h| h.get(async_nats::header::NATS_MESSAGE_ID))
                .and_then(|v| v.as_str().split(':').next().and_then(MessageId::parse));
            let job = serde_json::from_slice::<Job>(&m.payload);
            match (id, job) {
                (Some(message), Ok(job)) => {
                    self.in_hand.lock().insert((message.clone(), consumer), m);
                    out.push(Delivery {
                        message,
                        consumer,
                        job,
                        attempt,
                        enqueued_at: published,
                    });
                }
                _ => {
                    // A message this build cannot read: park it, loudly.
                    tracing::error!(subject = %m.subject, "unreadable job terminated");
                    let _ = m.ack_with(AckKind::Term).await;
                }
            }
        }
        Ok(out)
    }

    async fn ack(&self, d: &Delivery, _now: OffsetDateTime) -> Result<(), QueueError> {
        if let Some(m) = self.take(d) {
            m.double_ack().await.map_err(down)?;
        }
        Ok(())
    }

    async fn retry(
        &self,
        d: &Delivery,
        at: OffsetDateTime,
        _error: &str,
    ) -> Result<(), QueueError> {
        if let Some(m) = self.take(d) {
            let delay = (at - OffsetDateTime::now_utc()).max(time::Duration::ZERO);
            let delay = Duration::try_from(delay).unwrap_or_default();
            m.ack_with(AckKind::Nak(Some(delay))).await.map_err(down)?;
        }
        Ok(())
    }

    async fn bury(&self, d: &Delivery, error: &str) -> Result<(), QueueError> {
        if let Some(m) = self.take(d) {
            let mut headers = async_nats::HeaderMap::new();
            headers.insert(
                "Boxoffice-Error",
                error
                    .chars()
                    .filter(|c| !c.is_control())
                    .collect::<String>()
                    .as_str(),
            );
            self.js
                .publish_with_headers(
                    format!("{}.dead.{}", self.prefix, d.consumer.as_str()),
                    headers,
                    m.payload.clone(),
                )
                .await
                .map_err(down)?
                .await
                .map_err(down)?;
            m.ack_with(AckKind::Term).await.map_err(down)?;
        }
        Ok(())
    }

    async fn backlog(
        &self,
        consumer: Consumer,
        _now: OffsetDateTime,
    ) -> Result<(u64, Duration), QueueError> {
        let mut c = self.consumer(consumer).await?;
        let info = c.info().await.map_err(down)?;
        Ok((
            info.num_pending + info.num_ack_pending as u64,
            Duration::ZERO,
        ))
    }

    fn relays(&self) -> bool {
        true
    }

    fn announces(&self) -> bool {
        true
    }

    async fn announce(&self, order: &OrderId) {
        let subject = format!("{}.orders.final", self.prefix);
        if let Err(e) = self
            .client
            .publish(subject, order.as_str().to_owned().into())
            .await
        {
            tracing::debug!(error = %e, "announcing an order failed; long-polls fall back to polling");
        }
    }

    async fn listen(&self, on: Box<dyn Fn(OrderId) + Send + Sync>) -> Result<(), QueueError> {
        let mut sub = self
            .client
            .subscribe(format!("{}.orders.final", self.prefix))
            .await
            .map_err(down)?;
        while let Some(m) = sub.next().await {
            if let Some(id) = std::str::from_utf8(&m.payload)
                .ok()
                .and_then(OrderId::parse)
            {
                on(id);
            }
        }
        Ok(())
    }

    async fn publish(&self, messages: &[(MessageId, Job)]) -> Result<(), QueueError> {
        // Send everything, then wait for the acks: one round trip for the batch.
        let mut acks = Vec::with_capacity(messages.len() * 3);
        for (message, job) in messages {
            let payload = bytes::Bytes::from(serde_json::to_vec(job).map_err(down)?);
            for c in job.consumers() {
                let mut headers = async_nats::HeaderMap::new();
                headers.insert(
                    async_nats::header::NATS_MESSAGE_ID,
                    format!("{message}:{}", c.as_str()).as_str(),
                );
                acks.push(
                    self.js
                        .publish_with_headers(self.subject(*c), headers, payload.clone())
                        .await
                        .map_err(down)?,
                );
            }
        }
        futures::future::try_join_all(acks.into_iter().map(std::future::IntoFuture::into_future))
            .await
            .map_err(down)?;
        Ok(())
    }
}
