//! Workers: one loop per consumer kind takes its jobs from the queue and handles
//! them, at least once each. Handlers are idempotent (the order's status, the
//! message id), so a redelivery changes nothing. Payment jobs run on a bounded pool;
//! the other kinds are cheap and run a few at a time.
//!
//! On shutdown a loop stops claiming and waits for the jobs it holds to finish;
//! anything it could not finish is leased, and another worker takes it when the
//! lease runs out.

use boxoffice_domain::{Consumer, Job, OrderStatus};
use boxoffice_ports::{Ack, Delivery, OutgoingEmail, Write};
use std::fmt::Write as _;
use std::sync::Arc;
use tokio::sync::Semaphore;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::cancellation::CancelAttempt;
use crate::payments::Attempt;
use crate::refunds::RefundAttempt;
use crate::resilience::backoff;
use crate::{App, AppError};

enum Outcome {
    Done,
    RetryAt(time::OffsetDateTime, String),
}

impl App {
    /// Starts one loop per consumer, the payment reconciler, and the backlog gauges.
    pub fn spawn_workers(self: &Arc<Self>, shutdown: CancellationToken) -> Vec<JoinHandle<()>> {
        let mut handles: Vec<JoinHandle<()>> = Consumer::ALL
            .into_iter()
            .map(|c| tokio::spawn(self.clone().run_consumer(c, shutdown.clone())))
            .collect();
        // Orders announced final by other nodes wake this node's long-polls.
        let (app, stop) = (self.clone(), shutdown.clone());
        handles.push(tokio::spawn(async move {
            let local = app.clone();
            let on = Box::new(move |order| {
                local.orders.wake(&order, "announced");
            });
            tokio::select! {
                r = app.queue.listen(on) => if let Err(e) = r {
                    tracing::warn!(error = ?e, "not listening for orders finished elsewhere; long-polls poll");
                },
                _ = stop.cancelled() => {}
            }
        }));
        // A queue fed in process takes back what a stop left unfinished.
        let app = self.clone();
        handles.push(tokio::spawn(async move {
            match app.queue.recover(app.clock.now()).await {
                Ok(0) => {}
                Ok(n) => {
                    tracing::info!(messages = n, "replaying unfinished outbox messages");
                    app.jobs_ready.send_modify(|v| *v += 1);
                }
                Err(e) => tracing::error!(error = ?e, "replaying the outbox failed"),
            }
        }));
        if self.queue.relays() {
            handles.push(tokio::spawn(self.clone().run_relay(shutdown.clone())));
        }
        // The long-polls' safety net: one read for every order waited for here.
        let (app, stop) = (self.clone(), shutdown.clone());
        handles.push(tokio::spawn(async move {
            let mut tick = tokio::time::interval(app.order_safety_poll());
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    _ = stop.cancelled() => break,
                    _ = tick.tick() => if let Err(e) = app.poll_waited_orders().await {
                        tracing::warn!(error = ?e, "polling waited-for orders failed; next tick");
                    },
                }
            }
        }));
        // The payment reconciler, on every node (passes may overlap across nodes:
        // see `App::reconcile`). The first pass runs at once: a restart settles what
        // a crash left pending.
        let (app, stop) = (self.clone(), shutdown.clone());
        handles.push(tokio::spawn(async move {
            let mut tick = tokio::time::interval(app.settings.reconcile_interval);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    _ = stop.cancelled() => break,
                    _ = tick.tick() => if let Err(e) = app.reconcile().await {
                        tracing::warn!(error = ?e, "reconciling payments failed; next pass");
                    },
                }
            }
        }));
        // Signed checkpoints of the audit chain, whenever it moved (every node may
        // sign: the key is the same everywhere, a repeat is ignored).
        let (app, stop) = (self.clone(), shutdown.clone());
        handles.push(tokio::spawn(async move {
            let mut tick = tokio::time::interval(app.settings.audit_checkpoint_interval);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    _ = stop.cancelled() => break,
                    _ = tick.tick() => if let Err(e) = app.checkpoint_audit().await {
                        tracing::warn!(error = ?e, "signing an audit checkpoint failed; next tick");
                    },
                }
            }
        }));
        let app = self.clone();
        handles.push(tokio::spawn(async move {
            let mut tick = tokio::time::interval(std::time::Duration::from_secs(1));
            loop {
                tokio::select! {
                    _ = shutdown.cancelled() => break,
                    _ = tick.tick() => app.record_backlog().await,
                }
            }
        }));
        handles
    }

    /// Hands outbox messages to an external queue. Several nodes may relay the same
    /// row; the broker de-duplicates by message id. A row is marked relayed only
    /// after the broker acknowledged it, so a crash re-relays, never loses.
    async fn run_relay(self: Arc<Self>, shutdown: CancellationToken) {
        let mut jobs = self.jobs_ready.subscribe();
        loop {
            jobs.borrow_and_update();
            if shutdown.is_cancelled() {
                break;
            }
            match self.relay_once().await {
                Ok(n) if n > 0 => continue,
                Ok(_) => {}
                Err(e) => {
                    tracing::warn!(error = ?e, "relaying the outbox failed; retrying");
                    metrics::counter!("boxoffice_relay_errors_total").increment(1);
                }
            }
            tokio::select! {
                _ = jobs.changed() => {}
                _ = tokio::time::sleep(self.settings.job_poll) => {}
                _ = shutdown.cancelled() => break,
            }
        }
    }

    async fn relay_once(&self) -> Result<usize, AppError> {
        let batch = self.store.unrelayed(1024).await?;
        if batch.is_empty() {
            return Ok(0);
        }
        self.queue.publish(&batch).await?;
        let n = batch.len();
        let ids = batch.into_iter().map(|(id, _)| id).collect();
        let now = self.clock.now();
        self.writer.write(Write::Relayed { ids, now }).await?;
        metrics::counter!("boxoffice_relayed_total").increment(n as u64);
        Ok(n)
    }

    async fn record_backlog(&self) {
        for c in Consumer::ALL {
            if let Ok((n, age)) = self.queue.backlog(c, self.clock.now()).await {
                metrics::gauge!("boxoffice_queue_depth", "consumer" => c.as_str()).set(n as f64);
                metrics::gauge!("boxoffice_queue_oldest_seconds", "consumer" => c.as_str())
                    .set(age.as_secs_f64());
            }
        }
    }

    async fn run_consumer(self: Arc<Self>, consumer: Consumer, shutdown: CancellationToken) {
        let width = match consumer {
            Consumer::Payment => self.settings.payment_workers.max(1),
            _ => 4,
        };
        let pool = Arc::new(Semaphore::new(width));
        let mut jobs = self.jobs_ready.subscribe();
        loop {
            if shutdown.is_cancelled() {
                break;
            }
            // Seen before the claim: a commit after it wakes the wait below.
            jobs.borrow_and_update();
            // Claim only what can start now: a claimed job's lease is running.
            let first = tokio::select! {
                p = pool.clone().acquire_owned() => p.expect("never closed"),
                _ = shutdown.cancelled() => break,
            };
            let free = pool.available_permits() + 1;
            let started = std::time::Instant::now();
            let claimed = self
                .queue
                .claim(consumer, free, self.settings.job_lease, self.clock.now())
                .await;
            metrics::histogram!("boxoffice_queue_claim_seconds", "consumer" => consumer.as_str())
                .record(started.elapsed().as_secs_f64());
            if let Ok(b) = &claimed {
                metrics::counter!("boxoffice_jobs_claimed_total", "consumer" => consumer.as_str())
                    .increment(b.len() as u64);
            }
            let batch = match claimed {
                Ok(b) => b,
                Err(e) => {
                    tracing::warn!(consumer = consumer.as_str(), error = ?e, "claiming jobs failed");
                    Vec::new()
                }
            };
            if batch.is_empty() {
                drop(first);
                tokio::select! {
                    _ = jobs.changed() => {}
                    _ = tokio::time::sleep(self.settings.job_poll) => {}
                    _ = shutdown.cancelled() => break,
                }
                continue;
            }
            let mut first = Some(first);
            for d in batch {
                let permit = match first.take() {
                    Some(p) => p,
                    None => pool.clone().acquire_owned().await.expect("never closed"),
                };
                let app = self.clone();
                tokio::spawn(async move {
                    let name = d.consumer.as_str();
                    let started = std::time::Instant::now();
                    metrics::gauge!("boxoffice_jobs_in_flight", "consumer" => name).increment(1.0);
                    app.deliver(d).await;
                    metrics::gauge!("boxoffice_jobs_in_flight", "consumer" => name).decrement(1.0);
                    metrics::histogram!("boxoffice_job_duration_seconds", "consumer" => name)
                        .record(started.elapsed().as_secs_f64());
                    drop(permit);
                });
            }
        }
        // Let the jobs in hand finish.
        let _ = pool.acquire_many(width as u32).await;
    }

    async fn deliver(&self, d: Delivery) {
        // Where the queue lives in the store, the job is acknowledged by the
        // transaction that records its outcome.
        let ack = self.queue.acked_in_store().then(|| Ack {
            message: d.message.clone(),
            consumer: d.consumer,
            dead: None,
        });
        let result = self.handle(&d, ack.clone()).await;
        let now = self.clock.now();
        let (retry_at, error) = match result {
            Ok(Outcome::Done) => {
                if ack.is_none() {
                    if let Err(e) = self.queue.ack(&d, now).await {
                        tracing::warn!(error = ?e, "ack failed; the job will be delivered again");
                    }
                }
                return;
            }
            Ok(Outcome::RetryAt(at, why)) => (at, why),
            Err(e) => (now + backoff(d.attempt), format!("{e:?}")),
        };
        // Payments are bounded by their deadline, not by a count of attempts.
        let r = if d.consumer != Consumer::Payment && d.attempt >= self.settings.max_job_attempts {
            tracing::error!(message = %d.message, consumer = d.consumer.as_str(), %error, "job dead-lettered");
            metrics::counter!("boxoffice_jobs_dead_total", "consumer" => d.consumer.as_str())
                .increment(1);
            match ack {
                Some(ack) => self
                    .ack(Some(Ack {
                        dead: Some(error.clone()),
                        ..ack
                    }))
                    .await
                    .map_err(|e| boxoffice_ports::QueueError::Unavailable(e.into())),
                None => self.queue.bury(&d, &error).await,
            }
        } else {
            self.queue.retry(&d, retry_at, &error).await
        };
        if let Err(e) = r {
            tracing::warn!(error = ?e, "recording a retry failed; the lease will expire");
        }
    }

    async fn handle(&self, d: &Delivery, ack: Option<Ack>) -> Result<Outcome, AppError> {
        match (&d.job, d.consumer) {
            (Job::PaymentRequested { order_id }, Consumer::Payment) => {
                Ok(match self.pay(order_id, d.attempt, ack).await? {
                    Attempt::Done | Attempt::Unknown | Attempt::Waiting => Outcome::Done,
                    Attempt::RetryAt(at) => Outcome::RetryAt(at, "gateway unavailable".into()),
                })
            }
            (Job::OrderRefunded { refund_id, .. }, Consumer::Payment) => {
                Ok(match self.move_refund(refund_id, d.attempt, ack).await? {
                    RefundAttempt::Done => Outcome::Done,
                    RefundAttempt::RetryAt(at) => {
                        Outcome::RetryAt(at, "refund not confirmed by the gateway".into())
                    }
                })
            }
            (Job::EventCancelled { event_id }, Consumer::Payment) => Ok(
                match self
                    .carry_out_cancellation(event_id, d.attempt, ack)
                    .await?
                {
                    CancelAttempt::Done => Outcome::Done,
                    CancelAttempt::RetryAt(at) => {
                        Outcome::RetryAt(at, "the event's payments are not all settled".into())
                    }
                },
            ),
            (_, Consumer::Audit) => {
                self.append_audit(d, ack).await?;
                Ok(Outcome::Done)
            }
            (_, Consumer::Analytics) => {
                self.count_sales(d, ack).await?;
                Ok(Outcome::Done)
            }
            // A paid order with a phone: the email, then the SMS, each once (its
            // own mark by message id); the last mark carries the job's ack.
            (job @ Job::OrderPaid { order_id }, Consumer::Email) => {
                match self.store.order(order_id).await? {
                    Some(order) if order.phone.is_some() && order.status == OrderStatus::Paid => {
                        self.send_order_email(d, job, &order, None).await?;
                        self.send_sms_once(d, &order, ack).await?;
                    }
                    Some(order) => self.send_order_email(d, job, &order, ack).await?,
                    None => self.ack(ack).await?,
                }
                Ok(Outcome::Done)
            }
            (
                job @ (Job::OrderFailed { order_id, .. } | Job::OrderRefunded { order_id, .. }),
                Consumer::Email,
            ) => {
                match self.store.order(order_id).await? {
                    Some(order) => self.send_order_email(d, job, &order, ack).await?,
                    None => self.ack(ack).await?,
                }
                Ok(Outcome::Done)
            }
            (Job::WaitlistOffered { entry_id, hold_id }, Consumer::Email) => {
                self.send_offer_email(d, entry_id, hold_id, ack).await?;
                Ok(Outcome::Done)
            }
            (job, consumer) => {
                tracing::warn!(
                    topic = job.topic(),
                    consumer = consumer.as_str(),
                    "no handler; dropping"
                );
                self.ack(ack).await?;
                Ok(Outcome::Done)
            }
        }
    }

    /// Tells a waitlisted customer that seats are held for them (once per offer:
    /// the message id; nothing if the entry no longer holds this offer).
    async fn send_offer_email(
        &self,
        d: &Delivery,
        entry_id: &boxoffice_domain::WaitlistId,
        hold_id: &boxoffice_domain::HoldId,
        ack: Option<Ack>,
    ) -> Result<(), AppError> {
        let Some(entry) = self.store.waitlist_entry(entry_id).await? else {
            return self.ack(ack).await;
        };
        let Some(hold) = self.store.hold(hold_id).await? else {
            return self.ack(ack).await;
        };
        if entry.hold_id.as_ref() != Some(hold_id)
            || entry.state != boxoffice_domain::WaitlistState::Offered
            || hold.status_at(self.clock.now()) != boxoffice_domain::HoldStatus::Active
        {
            // Taken, lapsed or given up before the email went: nothing to announce.
            return self.ack(ack).await;
        }
        let event = self.cached_event(&entry.event_id).await?;
        let name = &event.event().name;
        let until = hold
            .expires_at
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap_or_default();
        let subject = format!("Tickets for {name} are held for you");
        let text = format!(
            "Good news: {} ticket(s) for {name} came back and are held for you, from the waitlist.\n\n\
             They are yours until {until} (UTC). Check out hold {} before then (the event page: /events/{}).\n\
             If you do not, they go to the next person in line.\n",
            entry.quantity, hold.id, entry.event_id
        );
        let email = OutgoingEmail {
            to: entry.email.clone(),
            subject,
            text,
            ..Default::default()
        };
        self.send_email_once(d, email, ack).await
    }

    /// Sends `email` as message `d.message` unless it was sent already, then marks
    /// it sent (with `ack`). A worker killed between the relay's acceptance and the
    /// mark sends it again on redelivery: that window is the one duplicate the
    /// design allows, and the `Message-ID` (the message id) lets the receiving side
    /// see it for one.
    async fn send_email_once(
        &self,
        d: &Delivery,
        mut email: OutgoingEmail,
        ack: Option<Ack>,
    ) -> Result<(), AppError> {
        if self.store.email_was_sent(&d.message).await? {
            return self.ack(ack).await;
        }
        email.message_id = d.message.to_string();
        match self.mailer.send(&email).await {
            Ok(()) => {
                self.writer
                    .write(Write::EmailSent {
                        message: d.message.clone(),
                        now: self.clock.now(),
                        ack,
                    })
                    .await?;
                metrics::counter!("boxoffice_emails_sent_total").increment(1);
                Ok(())
            }
            Err(boxoffice_ports::MailError::Rejected(why)) => {
                tracing::warn!(message = %d.message, %why, "email rejected");
                self.ack(ack).await
            }
            Err(e) => Err(AppError::Unavailable(e.into())),
        }
    }

    async fn send_order_email(
        &self,
        d: &Delivery,
        job: &Job,
        order: &boxoffice_domain::Order,
        ack: Option<Ack>,
    ) -> Result<(), AppError> {
        let event = self.cached_event(&order.event_id).await?;
        let name = &event.event().name;
        let (subject, text) = match (job, order.status) {
            (Job::OrderPaid { .. }, OrderStatus::Paid) => {
                let email = self.paid_email(order).await?;
                return self.send_email_once(d, email, ack).await;
            }
            // Charged, but the seats could not be had (the payment came after its
            // deadline and they had gone to someone else): the charge was refunded
            // before this order failed.
            (Job::OrderFailed { code, .. }, _) if code == "seats_unavailable" => (
                format!("Your order for {name} could not be completed: payment refunded"),
                format!(
                    "Order {} could not be completed ({code}): its seats went to another buyer before your payment arrived.\nYour payment of {}.{:02} {} was refunded in full.\n",
                    order.id, order.total.amount / 100, order.total.amount % 100, order.total.currency
                ),
            ),
            (Job::OrderRefunded { .. }, _) => {
                let Some(r) = self.refund_of(job).await? else {
                    return self.ack(ack).await;
                };
                let tickets = if order.tickets_void() {
                    "Your tickets for this order are void: they will not be accepted at the door.\n"
                } else {
                    "Your tickets stay valid.\n"
                };
                let why = if event.event().status == boxoffice_domain::EventStatus::Cancelled {
                    format!("{name} has been cancelled.\n")
                } else {
                    String::new()
                };
                (
                    format!("Refund for your order for {name}"),
                    format!(
                        "{why}A refund of {}.{:02} {} for order {} has been issued to the card you paid with.\n{tickets}",
                        r.amount.amount / 100, r.amount.amount % 100, r.amount.currency, order.id
                    ),
                )
            }
            // The event was cancelled before this order's payment could complete:
            // nothing was kept (a charge that landed anyway was refunded first).
            (Job::OrderFailed { code, .. }, _) if code == "event_cancelled" => (
                format!("{name} is cancelled: your order could not be completed"),
                format!(
                    "{name} has been cancelled, so order {} could not be completed ({code}).\nIf your card was charged, the payment of {}.{:02} {} has been refunded in full.\n",
                    order.id, order.total.amount / 100, order.total.amount % 100, order.total.currency
                ),
            ),
            (Job::OrderFailed { code, .. }, _) if code == "payment_expired" => (
                format!("Your payment for {name} did not go through"),
                format!("Order {} could not be paid before its payment deadline ({code}). Nothing was charged.\nYour seats were released.\n", order.id),
            ),
            (Job::OrderFailed { code, .. }, _) => (
                format!("Your payment for {name} did not go through"),
                format!("Order {} could not be paid ({code}). Nothing was charged.\nYour seats stay held until the hold expires; you may try another card.\n", order.id),
            ),
            // The order changed since (a paid job for an order that is no longer
            // paid): nothing true to say.
            _ => return self.ack(ack).await,
        };
        // Redelivered after it was sent (a broker restart, a lost ack): once is enough.
        let email = OutgoingEmail {
            to: order.email.clone(),
            subject,
            text,
            ..Default::default()
        };
        self.send_email_once(d, email, ack).await
    }

    /// The SMS of a paid order with a phone: its ticket link, once per message id.
    /// Nothing personal in it beyond what the link needs (the buyer signs in to
    /// see the tickets). As with email, a kill between Twilio's acceptance and the
    /// mark resends it on redelivery: Twilio has no idempotency key to stop that.
    async fn send_sms_once(
        &self,
        d: &Delivery,
        order: &boxoffice_domain::Order,
        ack: Option<Ack>,
    ) -> Result<(), AppError> {
        let Some(phone) = &order.phone else {
            return self.ack(ack).await;
        };
        if self.store.sms_was_sent(&d.message).await? {
            return self.ack(ack).await;
        }
        let event = self.cached_event(&order.event_id).await?;
        let n = order.tickets.len();
        let sms = boxoffice_ports::OutgoingSms {
            message_id: d.message.to_string(),
            to: phone.clone(),
            body: format!(
                "Your {n} ticket{} for {}: {}/orders/{}",
                if n == 1 { "" } else { "s" },
                event.event().name,
                self.settings.public_url.trim_end_matches('/'),
                order.id
            ),
        };
        match self.sms.send(&sms).await {
            Ok(_) => {
                self.writer
                    .write(Write::SmsSent {
                        message: d.message.clone(),
                        now: self.clock.now(),
                        ack,
                    })
                    .await?;
                metrics::counter!("boxoffice_sms_sent_total").increment(1);
                Ok(())
            }
            Err(boxoffice_ports::SmsError::Rejected(why)) => {
                tracing::warn!(message = %d.message, %why, "sms rejected");
                self.ack(ack).await
            }
            Err(e) => Err(AppError::Unavailable(e.into())),
        }
    }

    /// A paid order's email: the tickets in text and HTML (escaped by the
    /// template), and their PDF attached.
    async fn paid_email(&self, order: &boxoffice_domain::Order) -> Result<OutgoingEmail, AppError> {
        let pages = self.ticket_pages(order).await?;
        let event = pages.first().map(|p| p.event.clone()).unwrap_or_default();
        let total = format!(
            "{}.{:02} {}",
            order.total.amount / 100,
            order.total.amount % 100,
            order.total.currency
        );
        let mut text = format!("Your tickets for {event}.\n\nOrder {}\n", order.id);
        if let Some(p) = pages.first() {
            let _ = writeln!(text, "{}, {}\n", p.venue, p.date);
        }
        for p in &pages {
            let _ = writeln!(text, "  {}  {}", p.code, p.place);
        }
        let _ = write!(
            text,
            "\nTotal paid: {total}\nYour tickets are attached as a PDF: show each page's code at the door.\n"
        );
        let html = paid_html(&pages, order, &total)?;
        Ok(OutgoingEmail {
            to: order.email.clone(),
            subject: format!("Your tickets for {event}"),
            text,
            html: Some(html),
            attachments: vec![boxoffice_ports::Attachment {
                filename: format!("tickets-{}.pdf", order.id),
                content_type: "application/pdf".into(),
                bytes: boxoffice_tickets_render::tickets_pdf(&pages),
            }],
            ..Default::default()
        })
    }
}

/// The HTML part of a paid order's email, through the auto-escaping template (an
/// event name is the organizer's text: never trusted into HTML).
fn paid_html(
    pages: &[boxoffice_tickets_render::TicketPage],
    order: &boxoffice_domain::Order,
    total: &str,
) -> Result<String, AppError> {
    let mut env = minijinja::Environment::new();
    let fail = |e: minijinja::Error| AppError::Unavailable(anyhow::anyhow!("email template: {e}"));
    env.add_template("order_paid.html", include_str!("templates/order_paid.html"))
        .map_err(fail)?;
    let first = pages.first();
    let tickets: Vec<_> = pages
        .iter()
        .map(|p| minijinja::context! { id => p.ticket_id, place => p.place, code => p.code })
        .collect();
    env.get_template("order_paid.html")
        .and_then(|t| {
            t.render(minijinja::context! {
                event => first.map(|p| p.event.as_str()),
                venue => first.map(|p| p.venue.as_str()),
                date => first.map(|p| p.date.as_str()),
                order_id => order.id.as_str(),
                tickets => tickets,
                total => total,
            })
        })
        .map_err(fail)
}
