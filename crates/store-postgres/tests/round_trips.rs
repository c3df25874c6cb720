//! The round trips a group commit costs on PostgreSQL, counted from sqlx's own
//! statement events: a handful of statements a batch however many orders it
//! carries. A test binary of its own, so its subscriber is the process's only one
//! (a thread-local subscriber misses events whose callsites another test thread
//! registered first).

use boxoffice_domain::{
    CheckoutAnswer, Consumer, Currency, Email, HoldId, HoldSelection, HoldStatus, MessageId, Money,
    NewEvent, Order, OrderId, OrderItem, OrderStatus, Ticket, TicketId, UserId, VenueSpec,
};
use boxoffice_ports::{
    Ack, CatalogueStore, CheckoutOutcome, CheckoutRecord, Idempotent, IdentityStore, JobQueue,
    OutboxStore, PaidOutcome, SalesStore, Write, Written,
};
use boxoffice_store_postgres::{testing, PgStore};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use time::{Duration, OffsetDateTime};

async fn store() -> Arc<PgStore> {
    let url = testing::fresh_database().await.unwrap();
    let s = PgStore::connect(&url, 2).await.unwrap();
    s.migrate().await.unwrap();
    Arc::new(s)
}

/// Counts the statements sqlx sends on this thread (its `sqlx::query` events: one
/// per statement, BEGIN, COMMIT and savepoints included).
#[derive(Clone, Default)]
struct Statements(Arc<AtomicU64>);

impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for Statements {
    fn on_event(&self, e: &tracing::Event<'_>, _: tracing_subscriber::layer::Context<'_, S>) {
        if e.metadata().target() == "sqlx::query" {
            self.0.fetch_add(1, Ordering::Relaxed);
        }
    }
}

impl Statements {
    fn take(&self) -> u64 {
        self.0.swap(0, Ordering::Relaxed)
    }
}

/// The life of 1,000 orders as a node's group commits carry them: one batch of
/// 1,000 holds, one of their checkouts, one of their payments (tickets, job acks),
/// and one of the downstream workers' records (audit, analytics, email mark, each
/// acking its job); then 1,000 more buyers whose hold, checkout and payment arrive
/// interleaved in one batch. Each batch costs a few statements, not a few per order.
#[tokio::test]
async fn a_thousand_orders_cost_a_few_statements_a_batch() {
    use tracing_subscriber::layer::SubscriberExt;
    const N: usize = 1000;
    let counter = Statements::default();
    tracing::subscriber::set_global_default(
        tracing_subscriber::registry()
            .with(counter.clone())
            .with(tracing_subscriber::filter::LevelFilter::TRACE),
    )
    .unwrap();
    let store = store().await;
    let t0 = boxoffice_domain::time::truncate_to_millis(OffsetDateTime::now_utc());
    let spec: VenueSpec = serde_json::from_str(
        r#"{"name":"Arena","sections":[{"name":"A","rows":40,"seats_per_row":50}]}"#,
    )
    .unwrap();
    let (venue, seats) = spec.build(t0).unwrap();
    store.create_venue(&venue, &seats).await.unwrap();
    let new: NewEvent = serde_json::from_str(&format!(
        r#"{{"venue_id":"{}","name":"Gig","starts_at":"2031-01-01T20:00:00Z",
            "tiers":[{{"name":"Main","price":{{"amount":2500,"currency":"EUR"}},"sections":["A"]}}]}}"#,
        venue.id
    ))
    .unwrap();
    let (event, event_seats) = new.build(&venue, &seats, t0).unwrap();
    store.create_event(&event, &event_seats).await.unwrap();
    let buyer = boxoffice_domain::User {
        id: UserId::new(),
        email: Email::parse("ann@example.com").unwrap(),
        password_hash: "x".into(),
        role: boxoffice_domain::Role::Customer,
        created_at: t0,
        org_id: None,
    };
    store.create_user(&buyer).await.unwrap();
    let price = Money::new(2500, Currency::EUR);
    let layout = store.event_layout(&event.id).await.unwrap();
    let hold_for = |s: &boxoffice_ports::LayoutSeat| boxoffice_domain::Hold {
        id: HoldId::new(),
        event_id: event.id.clone(),
        customer_id: buyer.id.clone(),
        status: HoldStatus::Active,
        selection: HoldSelection::Seats(vec![s.seat.id.clone()]),
        total: price,
        expires_at: t0 + Duration::minutes(5),
        created_at: t0,
    };
    let holds: Vec<boxoffice_domain::Hold> = layout[..N].iter().map(hold_for).collect();
    counter.take();
    let mut costs = vec![];
    let run = |name: &'static str, batch: Vec<Write>| {
        let store = store.clone();
        let counter = counter.clone();
        async move {
            let out = store.write(&batch).await.unwrap();
            assert!(
                out.iter().all(|o| o.is_ok()),
                "{name}: {:?}",
                out.iter().find(|o| o.is_err())
            );
            (name, counter.take(), out)
        }
    };

    let (name, n, _) = run("holds", holds.iter().cloned().map(Write::Hold).collect()).await;
    costs.push((name, n));
    let checkout_for = |h: &boxoffice_domain::Hold, s: &boxoffice_ports::LayoutSeat| {
        let order = Order {
            id: OrderId::new(),
            customer_id: buyer.id.clone(),
            event_id: event.id.clone(),
            hold_id: h.id.clone(),
            email: "ann@example.com".into(),
            phone: None,
            status: OrderStatus::PendingPayment,
            failure_code: None,
            items: vec![OrderItem {
                seat_id: Some(s.seat.id.clone()),
                tier_id: s.tier_id.clone(),
                price,
            }],
            total: price,
            payment_token: "tok_visa".into(),
            tickets: vec![],
            refunded: boxoffice_domain::Money::zero(price.currency),
            created_at: t0,
            updated_at: t0,
        };
        CheckoutRecord {
            idempotency: Idempotent {
                user_id: buyer.id.clone(),
                route: "checkout".into(),
                key: h.id.to_string(),
                fingerprint: "fp".into(),
                answer: CheckoutAnswer::Accepted {
                    order_id: order.id.clone(),
                },
            },
            order,
            payment_deadline: t0 + Duration::minutes(15),
            message: MessageId::new(),
        }
    };
    let recs: Vec<CheckoutRecord> = holds
        .iter()
        .zip(&layout)
        .map(|(h, s)| checkout_for(h, s))
        .collect();
    let (name, n, out) = run(
        "checkouts",
        recs.iter()
            .map(|r| Write::Checkout {
                rec: Box::new(r.clone()),
                now: t0,
            })
            .collect(),
    )
    .await;
    costs.push((name, n));
    assert!(out
        .iter()
        .all(|o| matches!(o, Ok(Written::Checkout(CheckoutOutcome::Created)))));
    let paid_for =
        |r: &CheckoutRecord, s: &boxoffice_ports::LayoutSeat, m: &MessageId| Write::Paid {
            order: r.order.id.clone(),
            charge_id: format!("ch_{}", r.order.id),
            tickets: vec![Ticket {
                id: TicketId::new(),
                seat_id: Some(s.seat.id.clone()),
                tier_id: s.tier_id.clone(),
                price,
                code: format!("CODE-{}", r.order.id),
            }],
            message: m.clone(),
            now: t0,
            ack: Some(Ack {
                message: r.message.clone(),
                consumer: Consumer::Payment,
                dead: None,
            }),
        };
    let paid: Vec<MessageId> = (0..N).map(|_| MessageId::new()).collect();
    let (name, n, out) = run(
        "payments",
        recs.iter()
            .zip(&layout)
            .zip(&paid)
            .map(|((r, s), m)| paid_for(r, s, m))
            .collect(),
    )
    .await;
    costs.push((name, n));
    assert!(out
        .iter()
        .all(|o| matches!(o, Ok(Written::Paid(PaidOutcome::Paid)))));
    let ack = |m: &MessageId, consumer| {
        Some(Ack {
            message: m.clone(),
            consumer,
            dead: None,
        })
    };
    // As the workers' records arrive: interleaved.
    let downstream = paid
        .iter()
        .flat_map(|m| {
            [
                Write::EmailSent {
                    message: m.clone(),
                    now: t0,
                    ack: ack(m, Consumer::Email),
                },
                Write::Audit {
                    record: Box::new(boxoffice_domain::AuditRecord {
                        id: m.clone(),
                        at: t0,
                        actor: "system".into(),
                        role: "system".into(),
                        request_id: None,
                        ip: None,
                        action: "order.paid".into(),
                        subject: m.to_string(),
                        event_id: Some(event.id.clone()),
                        before: None,
                        after: None,
                    }),
                    ack: ack(m, Consumer::Audit),
                },
                Write::SalesFacts {
                    message: m.clone(),
                    facts: vec![boxoffice_ports::analytics::SalesFact {
                        event: Some(event.id.clone()),
                        tier: boxoffice_ports::analytics::ALL_TIERS.into(),
                        minute: 0,
                        counts: boxoffice_ports::analytics::SalesCounts {
                            tickets: 1,
                            revenue: price.amount,
                            ..Default::default()
                        },
                    }],
                    ack: ack(m, Consumer::Analytics),
                },
            ]
        })
        .collect();
    let (name, n, _) = run("downstream", downstream).await;
    costs.push((name, n));

    // A sale in full swing: each buyer's hold, checkout and payment in one batch,
    // interleaved as they arrive.
    let mixed: Vec<Write> = layout[N..2 * N]
        .iter()
        .flat_map(|s| {
            let h = hold_for(s);
            let rec = checkout_for(&h, s);
            let paid = paid_for(&rec, s, &MessageId::new());
            [
                Write::Hold(h),
                Write::Checkout {
                    rec: Box::new(rec),
                    now: t0,
                },
                paid,
            ]
        })
        .collect();
    let (name, n, out) = run("interleaved", mixed).await;
    costs.push((name, n));
    assert!(out
        .iter()
        .skip(2)
        .step_by(3)
        .all(|o| matches!(o, Ok(Written::Paid(PaidOutcome::Paid)))));

    // Everything landed.
    assert_eq!(
        store
            .inventory(&event.id, t0)
            .await
            .unwrap()
            .sold_seats
            .len(),
        2 * N
    );
    let sales = store.sales_rows(&event.id).await.unwrap();
    assert_eq!(
        (sales[0].counts.tickets, sales[0].counts.revenue),
        (N as i64, 2500 * N as i64)
    );
    assert_eq!(store.audit_head().await.unwrap().0, N as i64);
    assert_eq!(store.backlog(Consumer::Payment, t0).await.unwrap().0, 0);
    for c in [Consumer::Email, Consumer::Audit, Consumer::Analytics] {
        // The first thousand's were acked; the interleaved thousand's wait.
        assert_eq!(store.backlog(c, t0).await.unwrap().0, N as u64, "{c:?}");
    }
    let total: u64 = costs.iter().map(|(_, n)| n).sum();
    eprintln!("statements per batch of {N} orders: {costs:?}, {total} in all");
    for (name, n) in &costs {
        // At least one statement and COMMIT: the counter sees them.
        assert!(
            (2..=8).contains(n),
            "{name}: {n} statements for {N} writes ({costs:?})"
        );
    }
}
