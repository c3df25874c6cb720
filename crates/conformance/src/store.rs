//! The store suite: what every durable store must do, including refusing a double
//! sale on its own, whatever a hold engine decided.

use boxoffice_domain::{
    CheckoutAnswer, Consumer, Job, MessageId, Order, OrderId, OrderItem, OrderStatus, Ticket,
    TicketId,
};
use boxoffice_domain::{
    Currency, Email, Event, EventId, EventStatus, Hold, HoldId, HoldSelection, HoldStatus, Money,
    NewEvent, Role, Seat, SeatId, User, UserId, Venue, VenueSpec,
};
use boxoffice_ports::{
    CheckoutOutcome, CheckoutRecord, Idempotent, JobQueue, PaidOutcome, ReleaseOutcome, Store,
    StoreError, Write, Written,
};
use std::sync::Arc;
use time::{Duration, OffsetDateTime};

fn now() -> OffsetDateTime {
    boxoffice_domain::time::truncate_to_millis(OffsetDateTime::now_utc())
}

fn far_future() -> OffsetDateTime {
    now() + Duration::days(1)
}

fn user(email: &str, role: Role) -> User {
    User {
        id: UserId::new(),
        email: Email::parse(email).unwrap(),
        password_hash: "$argon2id$not-a-real-hash".into(),
        role,
        created_at: now(),
        org_id: None,
    }
}

/// A venue (A: 2×3 seats) and an on-sale-ready event with a seat tier and a GA tier
/// of capacity 5, stored.
async fn event<S: Store>(store: &S) -> (Venue, Vec<Seat>, Event) {
    event_sized(store, 2, 3, 5).await
}

/// Like [`event`], with section A of `rows` × `per_row` seats and GA `capacity`.
async fn event_sized<S: Store>(
    store: &S,
    rows: u32,
    per_row: u32,
    capacity: u32,
) -> (Venue, Vec<Seat>, Event) {
    let spec: VenueSpec = serde_json_like(&format!(
        r#"{{"name":"Hall","sections":[{{"name":"A","rows":{rows},"seats_per_row":{per_row}}},{{"name":"B","rows":1,"seats_per_row":2}}]}}"#,
    ));
    let (venue, seats) = spec.build(now()).unwrap();
    store.create_venue(&venue, &seats).await.unwrap();
    let new: NewEvent = serde_json_like(&format!(
        r#"{{"venue_id":"{}","name":"Gig","starts_at":"2031-01-01T20:00:00Z","hold_ttl_seconds":60,
            "tiers":[{{"name":"Main","price":{{"amount":2500,"currency":"EUR"}},"sections":["A"]}}],
            "ga_tiers":[{{"name":"Floor","price":{{"amount":1000,"currency":"EUR"}},"capacity":{capacity}}}]}}"#,
        venue.id
    ));
    let (event, event_seats) = new.build(&venue, &seats, now()).unwrap();
    store.create_event(&event, &event_seats).await.unwrap();
    (venue, seats, event)
}

fn serde_json_like<T: serde::de::DeserializeOwned>(s: &str) -> T {
    serde_json::from_str(s).unwrap()
}

fn hold(event: &Event, customer: &UserId, selection: HoldSelection, ttl: Duration) -> Hold {
    Hold {
        id: HoldId::new(),
        event_id: event.id.clone(),
        customer_id: customer.clone(),
        status: HoldStatus::Active,
        selection,
        total: Money::new(1000, Currency::EUR),
        expires_at: now() + ttl,
        created_at: now(),
    }
}

pub async fn identity<S: Store>(store: Arc<S>) {
    store.ping().await.unwrap();
    assert!(!store.admin_exists().await.unwrap());
    let ann = user("ann@example.com", Role::Customer);
    store.create_user(&ann).await.unwrap();
    let again = user("ann@example.com", Role::Customer);
    assert!(matches!(
        store.create_user(&again).await,
        Err(StoreError::Conflict {
            constraint: "users_email"
        })
    ));
    let found = store.user_by_email(&ann.email).await.unwrap().unwrap();
    assert_eq!(found.id, ann.id);
    assert_eq!(found.password_hash, ann.password_hash);
    assert!(store.set_password_hash(&ann.id, "new-hash").await.unwrap());
    let found = store.user_by_email(&ann.email).await.unwrap().unwrap();
    assert_eq!(found.password_hash, "new-hash");
    assert!(!store.set_password_hash(&UserId::new(), "x").await.unwrap());
    assert!(store
        .user_by_email(&Email::parse("bob@example.com").unwrap())
        .await
        .unwrap()
        .is_none());
    store
        .create_user(&user("root@example.com", Role::Admin))
        .await
        .unwrap();
    assert!(store.admin_exists().await.unwrap());

    // Exactly one claim of a chore wins, even at once.
    let claims = futures::future::join_all((0..8).map(|_| store.claim_once("demo"))).await;
    assert_eq!(claims.iter().filter(|c| matches!(c, Ok(true))).count(), 1);
    assert!(store.claim_once("other").await.unwrap());

    // The first key stored wins; later candidates get it back.
    let k1 = store.secret_key(b"first").await.unwrap();
    let k2 = store.secret_key(b"second").await.unwrap();
    assert_eq!(k1, b"first");
    assert_eq!(k2, b"first");
}

pub async fn catalogue<S: Store>(store: Arc<S>) {
    let (venue, seats, event) = event(&*store).await;
    assert_eq!(store.venue(&venue.id).await.unwrap().unwrap(), venue);
    assert_eq!(store.venue_seats(&venue.id).await.unwrap(), seats);
    let rec = store.event(&event.id).await.unwrap().unwrap();
    assert_eq!(rec.event, event);
    assert_eq!(rec.seat_count, 6);
    let layout = store.event_layout(&event.id).await.unwrap();
    let ids: Vec<&SeatId> = layout.iter().map(|s| &s.seat.id).collect();
    let expected: Vec<&SeatId> = seats
        .iter()
        .filter(|s| s.section == "A")
        .map(|s| &s.id)
        .collect();
    assert_eq!(ids, expected, "layout order is venue order");
    assert!(layout.iter().all(|s| s.tier_id == event.tiers[0].id));

    assert!(
        store.list_events(false).await.unwrap().is_empty(),
        "drafts are hidden"
    );
    assert_eq!(store.list_events(true).await.unwrap().len(), 1);
    store
        .set_event_status(&event.id, EventStatus::OnSale, now())
        .await
        .unwrap();
    assert_eq!(
        store.list_events(false).await.unwrap()[0].event.status,
        EventStatus::OnSale
    );
    assert!(matches!(
        store
            .set_event_status(&EventId::new(), EventStatus::OnSale, now())
            .await,
        Err(StoreError::NotFound)
    ));

    // Search: the details, full text (stemmed), filters and keyset pages.
    let details = boxoffice_domain::EventDetails {
        city: Some("Lyon".into()),
        category: Some("Music".into()),
        description: Some("Two jazz concerts".into()),
    };
    store
        .set_event_details(&event.id, &details, now())
        .await
        .unwrap();
    assert_eq!(
        store.event(&event.id).await.unwrap().unwrap().event.details,
        details
    );
    let q = |text: Option<&str>, city: Option<&str>| boxoffice_ports::EventSearch {
        text: text.map(Into::into),
        city: city.map(Into::into),
        limit: 10,
        ..Default::default()
    };
    let found = store
        .search_events(&q(Some("concert"), None))
        .await
        .unwrap();
    assert_eq!(found.len(), 1, "stemmed: concert finds concerts");
    assert_eq!(found[0].event.id, event.id);
    assert!(store
        .search_events(&q(Some("jazz opera"), None))
        .await
        .unwrap()
        .is_empty());
    assert_eq!(
        store
            .search_events(&q(None, Some("LYON")))
            .await
            .unwrap()
            .len(),
        1
    );
    let after_it = boxoffice_ports::EventSearch {
        after: Some((event.starts_at, event.id.clone())),
        limit: 10,
        ..Default::default()
    };
    assert!(store.search_events(&after_it).await.unwrap().is_empty());
    assert!(matches!(
        store
            .set_event_details(&EventId::new(), &details, now())
            .await,
        Err(StoreError::NotFound)
    ));
}

pub async fn holds_and_releases<S: Store>(store: Arc<S>) {
    let (_, _, event) = event(&*store).await;
    let ann = user("ann@example.com", Role::Customer);
    store.create_user(&ann).await.unwrap();
    let layout = store.event_layout(&event.id).await.unwrap();
    let seat = |i: usize| layout[i].seat.id.clone();

    let live = hold(
        &event,
        &ann.id,
        HoldSelection::Seats(vec![seat(2), seat(0)]),
        Duration::minutes(5),
    );
    let ga = hold(
        &event,
        &ann.id,
        HoldSelection::Ga {
            tier_id: event.ga_tiers[0].id.clone(),
            quantity: 2,
        },
        Duration::minutes(5),
    );
    let lapsed = hold(
        &event,
        &ann.id,
        HoldSelection::Seats(vec![seat(1)]),
        Duration::milliseconds(-1),
    );
    for h in [&live, &ga, &lapsed] {
        store.record_hold(h).await.unwrap();
    }
    assert_eq!(
        store.hold(&live.id).await.unwrap().unwrap(),
        live,
        "seats keep their order"
    );
    assert_eq!(store.hold(&ga.id).await.unwrap().unwrap(), ga);
    assert!(store.hold(&HoldId::new()).await.unwrap().is_none());

    let inv = store.inventory(&event.id, now()).await.unwrap();
    let mut live_ids: Vec<_> = inv.live_holds.iter().map(|h| h.id.clone()).collect();
    live_ids.sort();
    let mut expected = vec![live.id.clone(), ga.id.clone()];
    expected.sort();
    assert_eq!(live_ids, expected, "only unexpired active holds are live");
    assert_eq!(inv.ga_sold, vec![0]);

    assert_eq!(
        store.release_hold(&lapsed.id, now()).await.unwrap(),
        ReleaseOutcome::Expired
    );
    assert_eq!(
        store.release_hold(&live.id, now()).await.unwrap(),
        ReleaseOutcome::Released
    );
    assert_eq!(
        store.release_hold(&live.id, now()).await.unwrap(),
        ReleaseOutcome::AlreadyReleased
    );
    assert_eq!(
        store.release_hold(&HoldId::new(), now()).await.unwrap(),
        ReleaseOutcome::NotFound
    );
    assert_eq!(
        store.hold(&live.id).await.unwrap().unwrap().status,
        HoldStatus::Released
    );

    assert_eq!(store.expire_holds(now()).await.unwrap(), 1);
    assert_eq!(
        store.hold(&lapsed.id).await.unwrap().unwrap().status,
        HoldStatus::Expired
    );
    assert_eq!(
        store
            .expire_holds(now() + Duration::minutes(10))
            .await
            .unwrap(),
        1,
        "the GA hold"
    );
}

/// A hold checked out (order pending) and ready to be paid for: what the store
/// sells. The store does not check seats at checkout; the engine did.
async fn checked_out<S: Store>(
    store: &S,
    event: &Event,
    customer: &UserId,
    sel: HoldSelection,
) -> OrderId {
    let h = hold(event, customer, sel, Duration::minutes(5));
    store.record_hold(&h).await.unwrap();
    let rec = checkout_record(event, customer, &h, h.id.as_str());
    assert_eq!(
        store.checkout(&rec, now()).await.unwrap(),
        CheckoutOutcome::Created
    );
    rec.order.id
}

/// `n` paid orders of one seat each on a fresh event, for a store's own tests.
pub async fn paid_orders<S: Store>(store: &S, n: u32) -> Vec<OrderId> {
    let (_, seats, event) = event_sized(store, 1, n, 1).await;
    let buyer = user("paid@example.com", Role::Customer);
    store.create_user(&buyer).await.unwrap();
    let mut orders = vec![];
    for seat in seats.iter().filter(|s| s.section == "A") {
        let sel = HoldSelection::Seats(vec![seat.id.clone()]);
        let order = checked_out(store, &event, &buyer.id, sel).await;
        let tickets = tickets_for(&event, std::slice::from_ref(&seat.id));
        pay(store, &order, &tickets).await.unwrap();
        orders.push(order);
    }
    orders
}

/// The tickets a paid order gets: one per seat (or one GA unit).
fn tickets_for(event: &Event, seats: &[SeatId]) -> Vec<Ticket> {
    seats
        .iter()
        .map(|s| Ticket {
            id: TicketId::new(),
            seat_id: Some(s.clone()),
            tier_id: event.tiers[0].id.clone(),
            price: Money::new(2500, Currency::EUR),
            code: format!("CODE-{}", TicketId::new()),
        })
        .collect()
}

async fn pay<S: Store>(
    store: &S,
    order: &OrderId,
    tickets: &[Ticket],
) -> Result<PaidOutcome, StoreError> {
    store
        .complete_payment(
            order,
            &format!("ch_{order}"),
            tickets,
            &MessageId::new(),
            now(),
        )
        .await
}

/// Two orders over one seat — as a wrong engine might let happen — race to be paid:
/// the store lets exactly one through and leaves the other pending. GA sales past
/// capacity are refused likewise, whatever the engine said.
pub async fn double_sale_is_impossible<S: Store>(store: Arc<S>) {
    let (_, _, event) = event(&*store).await;
    let ann = user("ann@example.com", Role::Customer);
    store.create_user(&ann).await.unwrap();
    let layout = store.event_layout(&event.id).await.unwrap();
    let seat = |i: usize| layout[i].seat.id.clone();

    for round in 0..10 {
        let a_seats = vec![seat(round % 6)];
        let b_seats = vec![seat(5 - round % 6), seat(round % 6)];
        let a = checked_out(
            &*store,
            &event,
            &ann.id,
            HoldSelection::Seats(a_seats.clone()),
        )
        .await;
        let b = checked_out(
            &*store,
            &event,
            &ann.id,
            HoldSelection::Seats(b_seats.clone()),
        )
        .await;
        let (ta, tb) = (tickets_for(&event, &a_seats), tickets_for(&event, &b_seats));
        let (ra, rb) = tokio::join!(pay(&*store, &a, &ta), pay(&*store, &b, &tb));
        let sold = [&ra, &rb]
            .iter()
            .filter(|r| matches!(r, Ok(PaidOutcome::Paid)))
            .count();
        if round == 0 {
            assert_eq!(sold, 1, "{ra:?} {rb:?}");
            for r in [&ra, &rb] {
                if let Err(e) = r {
                    assert!(
                        matches!(
                            e,
                            StoreError::Conflict {
                                constraint: "sold_seats"
                            }
                        ),
                        "{e:?}"
                    );
                }
            }
        } else {
            // Later rounds find seats sold earlier: never more than one sale per seat.
            assert!(sold <= 1);
        }
        // The refused order is still pending: nothing of it was written.
        for (order, r) in [(&a, &ra), (&b, &rb)] {
            if r.is_err() {
                let o = store.order(order).await.unwrap().unwrap();
                assert_eq!(o.status, OrderStatus::PendingPayment);
                assert!(o.tickets.is_empty());
            }
        }
        // What a node's long-polls are told: the paid ones, not the pending ones.
        let settled = store
            .settled_among(&[a.clone(), b.clone(), OrderId::new()])
            .await
            .unwrap();
        let paid: Vec<&OrderId> = [(&a, &ra), (&b, &rb)]
            .into_iter()
            .filter(|(_, r)| matches!(r, Ok(PaidOutcome::Paid)))
            .map(|(o, _)| o)
            .collect();
        assert_eq!(settled.iter().collect::<Vec<_>>().len(), paid.len());
        assert!(paid.iter().all(|o| settled.contains(o)), "{settled:?}");
        // A long-poll's cheap look: the owner and the status, as the full read has them.
        for order in [&a, &b] {
            let full = store.order(order).await.unwrap().unwrap();
            assert_eq!(
                store.order_state(order).await.unwrap(),
                Some((full.customer_id.clone(), full.status))
            );
        }
        assert_eq!(store.order_state(&OrderId::new()).await.unwrap(), None);
    }
    let inv = store.inventory(&event.id, now()).await.unwrap();
    let mut sold = inv.sold_seats.clone();
    sold.sort();
    sold.dedup();
    assert_eq!(
        sold.len(),
        inv.sold_seats.len(),
        "a seat appears once in sales"
    );

    let tier = event.ga_tiers[0].id.clone();
    let big = checked_out(
        &*store,
        &event,
        &ann.id,
        HoldSelection::Ga {
            tier_id: tier.clone(),
            quantity: 4,
        },
    )
    .await;
    let more = checked_out(
        &*store,
        &event,
        &ann.id,
        HoldSelection::Ga {
            tier_id: tier,
            quantity: 2,
        },
    )
    .await;
    assert_eq!(pay(&*store, &big, &[]).await.unwrap(), PaidOutcome::Paid);
    assert!(matches!(
        pay(&*store, &more, &[]).await,
        Err(StoreError::Conflict {
            constraint: "ga_capacity"
        })
    ));
    assert_eq!(
        store.inventory(&event.id, now()).await.unwrap().ga_sold,
        vec![4]
    );
    // A paid order cannot be paid again, nor its hold released.
    assert_eq!(
        pay(&*store, &big, &[]).await.unwrap(),
        PaidOutcome::AlreadyFinal(OrderStatus::Paid)
    );
    let hold = store.order(&big).await.unwrap().unwrap().hold_id;
    assert_eq!(
        store.release_hold(&hold, now()).await.unwrap(),
        ReleaseOutcome::Converted
    );
    assert_eq!(
        store.hold(&hold).await.unwrap().unwrap().status,
        HoldStatus::Sold
    );
}

fn checkout_record(event: &Event, customer: &UserId, h: &Hold, key: &str) -> CheckoutRecord {
    let order = Order {
        id: OrderId::new(),
        customer_id: customer.clone(),
        event_id: event.id.clone(),
        hold_id: h.id.clone(),
        email: "a@b.c".into(),
        phone: Some("+4915112345678".into()),
        status: OrderStatus::PendingPayment,
        failure_code: None,
        items: vec![OrderItem {
            seat_id: None,
            tier_id: event.ga_tiers[0].id.clone(),
            price: Money::new(1000, Currency::EUR),
        }],
        total: Money::new(1000, Currency::EUR),
        payment_token: "tok_visa".into(),
        tickets: vec![],
        refunded: Money::zero(Currency::EUR),
        created_at: now(),
        updated_at: now(),
    };
    CheckoutRecord {
        idempotency: Idempotent {
            user_id: customer.clone(),
            route: "checkout".into(),
            key: key.into(),
            fingerprint: format!("fp-{}", h.id),
            answer: CheckoutAnswer::Accepted {
                order_id: order.id.clone(),
            },
        },
        order,
        payment_deadline: now() + Duration::minutes(15),
        message: MessageId::new(),
    }
}

/// Concurrent checkouts of one hold under one key: one order; the rest replay it.
/// Under different keys: one order; the rest find the hold converted.
pub async fn checkout_is_idempotent<S: Store>(store: Arc<S>) {
    let (_, _, event) = event(&*store).await;
    let ann = user("ann@example.com", Role::Customer);
    store.create_user(&ann).await.unwrap();
    let ga = HoldSelection::Ga {
        tier_id: event.ga_tiers[0].id.clone(),
        quantity: 1,
    };
    let h = hold(&event, &ann.id, ga.clone(), Duration::minutes(5));
    store.record_hold(&h).await.unwrap();
    let recs: Vec<CheckoutRecord> = (0..10)
        .map(|_| checkout_record(&event, &ann.id, &h, "same"))
        .collect();
    let outs = futures::future::join_all(recs.iter().map(|r| store.checkout(r, now()))).await;
    let created = outs
        .iter()
        .filter(|o| matches!(o, Ok(CheckoutOutcome::Created)))
        .count();
    assert_eq!(created, 1, "{outs:?}");
    assert!(outs
        .iter()
        .all(|o| matches!(o, Ok(CheckoutOutcome::Created | CheckoutOutcome::Replay(_)))));
    // Every replay is the winner's answer (its order), as stored, and so is a read.
    let winner = outs
        .iter()
        .position(|o| matches!(o, Ok(CheckoutOutcome::Created)))
        .unwrap();
    let answer = &recs[winner].idempotency;
    for o in &outs {
        if let Ok(CheckoutOutcome::Replay(prev)) = o {
            assert_eq!(prev, answer);
        }
    }
    assert_eq!(
        store
            .idempotent(&ann.id, "checkout", "same")
            .await
            .unwrap()
            .as_ref(),
        Some(answer)
    );
    assert_eq!(
        store.hold(&h.id).await.unwrap().unwrap().status,
        HoldStatus::Converted
    );
    assert_eq!(store.pending_orders(far_future()).await.unwrap().len(), 1);
    // Fresh pending orders are their payment's business, not a reconciler's.
    assert!(store
        .pending_orders(now() - Duration::hours(1))
        .await
        .unwrap()
        .is_empty());

    let h2 = hold(&event, &ann.id, ga, Duration::minutes(5));
    store.record_hold(&h2).await.unwrap();
    let recs: Vec<CheckoutRecord> = (0..10)
        .map(|i| checkout_record(&event, &ann.id, &h2, &format!("k{i}")))
        .collect();
    let outs = futures::future::join_all(recs.iter().map(|r| store.checkout(r, now()))).await;
    let created = outs
        .iter()
        .filter(|o| matches!(o, Ok(CheckoutOutcome::Created)))
        .count();
    assert_eq!(created, 1, "{outs:?}");
    assert!(outs.iter().all(|o| matches!(
        o,
        Ok(CheckoutOutcome::Created
            | CheckoutOutcome::HoldNotActive {
                status: HoldStatus::Converted,
                ..
            })
    )));
}

/// Leases: a claimed job is not claimed again until its lease runs out, then it is
/// (attempt 2); acked jobs never come back; retried ones wait; buried ones are gone;
/// concurrent claimers never share a job.
pub async fn queue_leases<S: Store + JobQueue>(store: Arc<S>) {
    let (_, _, event) = event(&*store).await;
    let ann = user("ann@example.com", Role::Customer);
    store.create_user(&ann).await.unwrap();
    for i in 0..12 {
        let ga = HoldSelection::Ga {
            tier_id: event.ga_tiers[0].id.clone(),
            quantity: 1,
        };
        let h = hold(&event, &ann.id, ga, Duration::minutes(5));
        // Capacity is 5: record holds straight in the store (the engine is not under test).
        store.record_hold(&h).await.unwrap();
        let rec = checkout_record(&event, &ann.id, &h, &format!("q{i}"));
        assert_eq!(
            store.checkout(&rec, now()).await.unwrap(),
            CheckoutOutcome::Created
        );
    }
    let lease = std::time::Duration::from_secs(30);
    let t0 = now();
    let first = store.claim(Consumer::Payment, 2, lease, t0).await.unwrap();
    assert_eq!(first.len(), 2);
    assert!(first
        .iter()
        .all(|d| d.attempt == 1 && d.consumer == Consumer::Payment));
    assert!(matches!(first[0].job, Job::PaymentRequested { .. }));

    // Concurrent claimers share out the other ten, each exactly once.
    let claims =
        futures::future::join_all((0..5).map(|_| store.claim(Consumer::Payment, 4, lease, t0)))
            .await;
    let mut seen: Vec<MessageId> = claims
        .into_iter()
        .flat_map(|c| c.unwrap())
        .map(|d| d.message)
        .collect();
    seen.extend(first.iter().map(|d| d.message.clone()));
    let n = seen.len();
    seen.sort();
    seen.dedup();
    assert_eq!((n, seen.len()), (12, 12), "each job to one claimer");
    assert!(
        store
            .claim(Consumer::Payment, 10, lease, t0)
            .await
            .unwrap()
            .is_empty(),
        "all leased"
    );
    assert!(
        store
            .claim(Consumer::Email, 10, lease, t0)
            .await
            .unwrap()
            .is_empty(),
        "other consumers have none"
    );

    store.ack(&first[0], t0).await.unwrap();
    store
        .retry(&first[1], t0 + Duration::minutes(5), "busy")
        .await
        .unwrap();
    let (backlog, _) = store.backlog(Consumer::Payment, t0).await.unwrap();
    assert_eq!(backlog, 11);

    // The lease runs out: the ten unacked jobs come back, as attempt 2.
    let later = t0 + Duration::seconds(31);
    let again = store
        .claim(Consumer::Payment, 20, lease, later)
        .await
        .unwrap();
    assert_eq!(again.len(), 10);
    assert!(again.iter().all(|d| d.attempt == 2));
    assert!(!again
        .iter()
        .any(|d| d.message == first[0].message || d.message == first[1].message));
    for d in &again {
        store.bury(d, "gave up").await.unwrap();
    }
    // The retried one is due at +5 min, and then it is the only one left.
    let due = store
        .claim(Consumer::Payment, 20, lease, t0 + Duration::minutes(6))
        .await
        .unwrap();
    assert_eq!(due.len(), 1);
    assert_eq!(due[0].message, first[1].message);
    store.ack(&due[0], t0).await.unwrap();
    assert_eq!(store.backlog(Consumer::Payment, t0).await.unwrap().0, 0);
}

/// A group commit commits every write of the batch but the refused ones, each of
/// which fails alone and leaves nothing of itself: a hold whose id exists already,
/// and the second of two payments over one seat (`sold_seats`), in one batch with
/// writes that must go through.
pub async fn a_refused_write_fails_alone<S: Store>(store: Arc<S>) {
    let (_, _, event) = event(&*store).await;
    let ann = user("ann@example.com", Role::Customer);
    store.create_user(&ann).await.unwrap();
    let layout = store.event_layout(&event.id).await.unwrap();
    let seat = |i: usize| layout[i].seat.id.clone();
    let seats = |i: usize| HoldSelection::Seats(vec![seat(2 * i), seat(2 * i + 1)]);
    let held: Vec<Hold> = (0..3)
        .map(|i| hold(&event, &ann.id, seats(i), Duration::minutes(5)))
        .collect();
    store.record_hold(&held[0]).await.unwrap();
    // Two orders over seat 5 (as a wrong engine might allow), one over seat 4.
    let over = |s: usize| HoldSelection::Seats(vec![seat(s)]);
    let a = checked_out(&*store, &event, &ann.id, over(5)).await;
    let b = checked_out(&*store, &event, &ann.id, over(5)).await;
    let c = checked_out(&*store, &event, &ann.id, over(4)).await;
    let paid = |order: &OrderId, s: usize| Write::Paid {
        order: order.clone(),
        charge_id: format!("ch_{order}"),
        tickets: tickets_for(&event, &[seat(s)]),
        message: MessageId::new(),
        now: now(),
        ack: None,
    };
    let batch = vec![
        Write::Hold(held[1].clone()),
        Write::Hold(held[0].clone()), // recorded already
        Write::Hold(held[2].clone()),
        Write::Release {
            hold: held[0].id.clone(),
            now: now(),
        },
        paid(&a, 5),
        paid(&b, 5), // seat 5 is a's now
        paid(&c, 4),
    ];
    let out = store.write(&batch).await.unwrap();
    assert_eq!(out.len(), batch.len());
    assert!(matches!(out[0], Ok(Written::Done)), "{:?}", out[0]);
    assert!(
        matches!(
            out[1],
            Err(StoreError::Conflict {
                constraint: "holds_pkey"
            })
        ),
        "{:?}",
        out[1]
    );
    assert!(matches!(out[2], Ok(Written::Done)), "{:?}", out[2]);
    assert_eq!(
        out[3].as_ref().unwrap(),
        &Written::Released(ReleaseOutcome::Released)
    );
    assert_eq!(out[4].as_ref().unwrap(), &Written::Paid(PaidOutcome::Paid));
    assert!(
        matches!(
            out[5],
            Err(StoreError::Conflict {
                constraint: "sold_seats"
            })
        ),
        "{:?}",
        out[5]
    );
    assert_eq!(out[6].as_ref().unwrap(), &Written::Paid(PaidOutcome::Paid));
    for h in &held[1..] {
        assert_eq!(&store.hold(&h.id).await.unwrap().unwrap(), h);
    }
    let released = store.hold(&held[0].id).await.unwrap().unwrap();
    assert_eq!(released.status, HoldStatus::Released);
    let status = |o: Option<Order>| o.unwrap().status;
    // A ticket names its order (the QR and PDF routes find it so).
    let paid_a = store.order(&a).await.unwrap().unwrap();
    assert_eq!(
        store.ticket_order(&paid_a.tickets[0].id).await.unwrap(),
        Some(a.clone())
    );
    assert_eq!(
        store
            .ticket_order(&boxoffice_domain::TicketId::new())
            .await
            .unwrap(),
        None
    );
    assert_eq!(status(store.order(&a).await.unwrap()), OrderStatus::Paid);
    assert_eq!(status(store.order(&c).await.unwrap()), OrderStatus::Paid);
    let refused = store.order(&b).await.unwrap().unwrap();
    assert_eq!(refused.status, OrderStatus::PendingPayment);
    assert!(refused.tickets.is_empty(), "nothing of the refused write");
    // The refused payment is still payable once its seat is free: nothing half-written.
    let inv = store.inventory(&event.id, now()).await.unwrap();
    assert_eq!(inv.sold_seats.len(), 2);
}

/// A queue fed in process by the store's commits: it delivers what it was handed
/// (and nothing the store merely holds), delays retries until they are due, and
/// after a restart (`reopened`: the same data, a fresh process's queue) replays
/// exactly the messages some consumer has not acknowledged in the store.
pub async fn in_process_queue_replays_what_is_unfinished<S: Store + JobQueue>(
    store: Arc<S>,
    reopen: impl Fn() -> futures::future::BoxFuture<'static, Arc<S>>,
) {
    let (_, _, event) = event(&*store).await;
    let ann = user("ann@example.com", Role::Customer);
    store.create_user(&ann).await.unwrap();
    let mut messages = vec![];
    for i in 0..3 {
        let ga = HoldSelection::Ga {
            tier_id: event.ga_tiers[0].id.clone(),
            quantity: 1,
        };
        let h = hold(&event, &ann.id, ga, Duration::minutes(5));
        store.record_hold(&h).await.unwrap();
        let rec = checkout_record(&event, &ann.id, &h, &format!("q{i}"));
        assert_eq!(
            store.checkout(&rec, now()).await.unwrap(),
            CheckoutOutcome::Created
        );
        messages.push((
            rec.message.clone(),
            Job::PaymentRequested {
                order_id: rec.order.id.clone(),
            },
        ));
    }
    let lease = std::time::Duration::from_secs(30);
    let t0 = now();
    assert!(store.acked_in_store());
    assert!(
        store
            .claim(Consumer::Payment, 10, lease, t0)
            .await
            .unwrap()
            .is_empty(),
        "only what was handed over is delivered"
    );
    store.committed(&messages[..1], t0);
    let first = store.claim(Consumer::Payment, 10, lease, t0).await.unwrap();
    assert_eq!(first.len(), 1);
    assert_eq!((first[0].attempt, &first[0].message), (1, &messages[0].0));
    store
        .retry(&first[0], t0 + Duration::minutes(5), "busy")
        .await
        .unwrap();
    assert!(store
        .claim(Consumer::Payment, 10, lease, t0)
        .await
        .unwrap()
        .is_empty());
    assert_eq!(store.backlog(Consumer::Payment, t0).await.unwrap().0, 1);
    let again = store
        .claim(Consumer::Payment, 10, lease, t0 + Duration::minutes(6))
        .await
        .unwrap();
    assert_eq!((again.len(), again[0].attempt), (1, 2));
    let ack = |m: &MessageId, dead: Option<&str>| {
        Write::Ack(boxoffice_ports::Ack {
            message: m.clone(),
            consumer: Consumer::Payment,
            dead: dead.map(str::to_owned),
        })
    };
    store.write_one(ack(&messages[0].0, None)).await.unwrap();

    // A restart: the two unacknowledged payments come back, the acked one does not.
    let store = reopen().await;
    assert_eq!(store.recover(now()).await.unwrap(), 2);
    let mut back: Vec<MessageId> = store
        .claim(Consumer::Payment, 10, lease, now())
        .await
        .unwrap()
        .into_iter()
        .map(|d| d.message)
        .collect();
    back.sort();
    let mut want = vec![messages[1].0.clone(), messages[2].0.clone()];
    want.sort();
    assert_eq!(back, want);
    // Given up is done too: it is not replayed again.
    store
        .write_one(ack(&messages[1].0, Some("gave up")))
        .await
        .unwrap();
    let store = reopen().await;
    assert_eq!(store.recover(now()).await.unwrap(), 1);
    let last = store
        .claim(Consumer::Payment, 10, lease, now())
        .await
        .unwrap();
    assert_eq!(last.len(), 1);
    assert_eq!(last[0].message, messages[2].0);
}

/// The inventory an engine is rebuilt from is one instant of the store, even while
/// sales commit: a hold being paid for is either a live hold or a sale in every
/// snapshot, never both (then a rebuilt engine would count it twice and refuse
/// seats that are free) and never neither. Payments commit one by one while
/// snapshots are read in a loop; every snapshot must satisfy the capacity
/// identity: GA sold + GA held = the held capacity, and the held seats and the sold
/// seats are disjoint and together the seats held at the start.
pub async fn inventory_is_one_snapshot<S: Store>(store: Arc<S>) {
    const GA: u32 = 40;
    const SEATS: usize = 20;
    let (_, _, event) = event_sized(&*store, 2, 10, GA).await;
    let ann = user("ann@example.com", Role::Customer);
    store.create_user(&ann).await.unwrap();
    let layout = store.event_layout(&event.id).await.unwrap();
    assert_eq!(layout.len(), SEATS);
    let mut orders = vec![];
    for i in 0..GA as usize {
        let ga = HoldSelection::Ga {
            tier_id: event.ga_tiers[0].id.clone(),
            quantity: 1,
        };
        orders.push((checked_out(&*store, &event, &ann.id, ga).await, None));
        if let Some(s) = layout.get(i) {
            let seat = s.seat.id.clone();
            let sel = HoldSelection::Seats(vec![seat.clone()]);
            orders.push((checked_out(&*store, &event, &ann.id, sel).await, Some(seat)));
        }
    }
    let check = |inv: &boxoffice_ports::StoredInventory| {
        let held_ga: u32 = inv
            .live_holds
            .iter()
            .map(|h| match &h.selection {
                HoldSelection::Ga { quantity, .. } => *quantity,
                HoldSelection::Seats(_) => 0,
            })
            .sum();
        let mut seats: Vec<&SeatId> = inv
            .live_holds
            .iter()
            .flat_map(|h| match &h.selection {
                HoldSelection::Seats(s) => s.as_slice(),
                HoldSelection::Ga { .. } => &[],
            })
            .chain(&inv.sold_seats)
            .collect();
        let n = seats.len();
        seats.sort();
        seats.dedup();
        assert_eq!(
            (inv.ga_sold[0] + held_ga, n, seats.len()),
            (GA, SEATS, SEATS),
            "GA sold {} + held {held_ga} must be {GA}; seats held or sold {n} \
             ({} distinct) must be {SEATS}",
            inv.ga_sold[0],
            seats.len(),
        );
    };
    check(&store.inventory(&event.id, now()).await.unwrap());
    let done = std::sync::atomic::AtomicBool::new(false);
    let pay_all = async {
        for (order, seat) in &orders {
            let tickets = match seat {
                Some(s) => tickets_for(&event, std::slice::from_ref(s)),
                None => vec![],
            };
            assert_eq!(
                pay(&*store, order, &tickets).await.unwrap(),
                PaidOutcome::Paid
            );
        }
        done.store(true, std::sync::atomic::Ordering::SeqCst);
    };
    let read_all = async {
        let mut snapshots = 0;
        while !done.load(std::sync::atomic::Ordering::SeqCst) {
            check(&store.inventory(&event.id, now()).await.unwrap());
            snapshots += 1;
            tokio::task::yield_now().await;
        }
        snapshots
    };
    let ((), snapshots) = tokio::join!(pay_all, read_all);
    assert!(snapshots > 0);
    let inv = store.inventory(&event.id, now()).await.unwrap();
    check(&inv);
    assert!(inv.live_holds.is_empty(), "everything is sold");
    assert_eq!(inv.ga_sold, vec![GA]);
}

/// One group commit mixing every kind of write the workers and buyers send, with a
/// refused hold in the middle: everything else commits, each with its own answer,
/// and each job acknowledged with its outcome is done (or dead) exactly once. The
/// acks are read back through the queue's backlog, so this is for stores whose
/// queue is their own tables (claimed from the store, not fed in process).
pub async fn a_mixed_batch_commits_all_but_the_refused<S: Store + JobQueue>(store: Arc<S>) {
    let (_, _, event) = event(&*store).await;
    let ann = user("ann@example.com", Role::Customer);
    store.create_user(&ann).await.unwrap();
    let layout = store.event_layout(&event.id).await.unwrap();
    let pair = |i: usize| {
        HoldSelection::Seats(vec![
            layout[2 * i].seat.id.clone(),
            layout[2 * i + 1].seat.id.clone(),
        ])
    };
    let held: Vec<Hold> = (0..3)
        .map(|i| hold(&event, &ann.id, pair(i), Duration::minutes(5)))
        .collect();
    store.record_hold(&held[0]).await.unwrap();
    // Four GA orders, each with its payment job ready.
    let mut jobs = vec![];
    let mut orders = vec![];
    for i in 0..4 {
        let ga = HoldSelection::Ga {
            tier_id: event.ga_tiers[0].id.clone(),
            quantity: 1,
        };
        let h = hold(&event, &ann.id, ga, Duration::minutes(5));
        store.record_hold(&h).await.unwrap();
        let rec = checkout_record(&event, &ann.id, &h, &format!("m{i}"));
        assert_eq!(
            store.checkout(&rec, now()).await.unwrap(),
            CheckoutOutcome::Created
        );
        jobs.push(rec.message.clone());
        orders.push(rec.order.id.clone());
    }
    let t0 = now();
    assert_eq!(store.backlog(Consumer::Payment, t0).await.unwrap().0, 4);
    let ack = |i: usize, dead: Option<&str>| boxoffice_ports::Ack {
        message: jobs[i].clone(),
        consumer: Consumer::Payment,
        dead: dead.map(str::to_owned),
    };
    let (audit1, audit2) = (MessageId::new(), MessageId::new());
    let (stats1, stats2, mail) = (MessageId::new(), MessageId::new(), MessageId::new());
    let paid_message = MessageId::new();
    let audit = |m: &MessageId, a: Option<boxoffice_ports::Ack>| Write::Audit {
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
            after: Some("{}".into()),
        }),
        ack: a,
    };
    let stats = |m: &MessageId, tickets: i64, revenue: i64| Write::SalesFacts {
        message: m.clone(),
        facts: vec![boxoffice_ports::analytics::SalesFact {
            event: Some(event.id.clone()),
            tier: boxoffice_ports::analytics::ALL_TIERS.into(),
            minute: 60,
            counts: boxoffice_ports::analytics::SalesCounts {
                tickets,
                revenue,
                ..Default::default()
            },
        }],
        ack: None,
    };
    let batch = vec![
        Write::Hold(held[1].clone()),
        audit(&audit1, Some(ack(0, None))),
        Write::Hold(held[0].clone()), // recorded already: refused
        Write::Hold(held[2].clone()),
        audit(&audit2, Some(ack(1, None))),
        audit(&audit1, None), // the same message again: harmless
        stats(&stats1, 2, 5000),
        stats(&stats2, 1, 2500),
        stats(&stats1, 2, 5000), // counted once
        Write::EmailSent {
            message: mail.clone(),
            now: t0,
            ack: None,
        },
        Write::EmailSent {
            message: mail.clone(),
            now: t0,
            ack: None,
        },
        // The SMS of the same message: its own mark, apart from the email's.
        Write::SmsSent {
            message: mail.clone(),
            now: t0,
            ack: None,
        },
        Write::SmsSent {
            message: mail.clone(),
            now: t0,
            ack: None,
        },
        Write::Ack(ack(2, Some("gave up"))),
        Write::Paid {
            order: orders[3].clone(),
            charge_id: format!("ch_{}", orders[3]),
            tickets: vec![],
            message: paid_message.clone(),
            now: t0,
            ack: Some(ack(3, None)),
        },
        Write::Release {
            hold: held[0].id.clone(),
            now: t0,
        },
        Write::Release {
            hold: held[0].id.clone(),
            now: t0,
        },
    ];
    let out = store.write(&batch).await.unwrap();
    let answers: Vec<String> = out.iter().map(|o| format!("{o:?}")).collect();
    assert!(
        matches!(
            out[2],
            Err(StoreError::Conflict {
                constraint: "holds_pkey"
            })
        ),
        "{answers:#?}"
    );
    let ok: Vec<Written> = out
        .into_iter()
        .enumerate()
        .filter(|(i, _)| *i != 2)
        .map(|(_, o)| o.unwrap())
        .collect();
    use Written::*;
    assert_eq!(
        ok,
        vec![
            Done,
            Done,
            Done,
            Done,
            Done,
            Done,
            Done,
            Done,
            Marked(true),
            Marked(false),
            Marked(true),
            Marked(false),
            Done,
            Paid(PaidOutcome::Paid),
            Released(ReleaseOutcome::Released),
            Released(ReleaseOutcome::AlreadyReleased),
        ],
        "{answers:#?}"
    );
    for h in &held[1..] {
        assert_eq!(&store.hold(&h.id).await.unwrap().unwrap(), h);
    }
    assert_eq!(
        store.hold(&held[0].id).await.unwrap().unwrap().status,
        HoldStatus::Released
    );
    let rows = store.sales_rows(&event.id).await.unwrap();
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!((rows[0].counts.tickets, rows[0].counts.revenue), (3, 7500));
    assert_eq!((rows[0].minute, rows[0].tier.as_str()), (60, "*"));
    assert_eq!(store.sales_processed().await.unwrap(), 2);
    // Two records appended, the repeat not: a chain of two from the genesis hash.
    let chain = store.audit_chain(0, 10).await.unwrap();
    assert_eq!(chain.len(), 2, "{chain:?}");
    assert_eq!(chain[0].prev_hash, boxoffice_ports::audit::GENESIS);
    assert_eq!(chain[1].prev_hash, chain[0].hash);
    for c in &chain {
        assert_eq!(
            c.hash,
            boxoffice_ports::audit::chain_hash(&c.prev_hash, &c.record)
        );
    }
    assert_eq!(
        store.audit_head().await.unwrap(),
        (2, chain[1].hash.clone())
    );
    assert!(store.email_was_sent(&mail).await.unwrap());
    assert!(store.sms_was_sent(&mail).await.unwrap());
    assert!(!store.sms_was_sent(&stats1).await.unwrap());
    // The paid order's phone (given at checkout) is kept.
    assert_eq!(
        store
            .order(&orders[3])
            .await
            .unwrap()
            .unwrap()
            .phone
            .as_deref(),
        Some("+4915112345678")
    );
    assert_eq!(
        store.order(&orders[3]).await.unwrap().unwrap().status,
        OrderStatus::Paid
    );
    // Every payment job was acknowledged by its write (one given up), and the paid
    // order's own message waits for its consumers.
    assert_eq!(store.backlog(Consumer::Payment, t0).await.unwrap().0, 0);
    assert!(store
        .claim(
            Consumer::Payment,
            10,
            std::time::Duration::from_secs(30),
            t0
        )
        .await
        .unwrap()
        .is_empty());
    for c in [Consumer::Email, Consumer::Audit, Consumer::Analytics] {
        assert_eq!(store.backlog(c, t0).await.unwrap().0, 1, "{c:?}");
    }
}

/// Two nodes' group commits race over the same seats (as two wrong engines might
/// let happen): every seat is sold once, every refused payment fails alone with
/// `sold_seats` and leaves its order pending without tickets, and every other write
/// of both batches commits.
pub async fn racing_batches_sell_each_seat_once<S: Store>(store: Arc<S>) {
    let (_, _, event) = event_sized(&*store, 2, 10, 5).await;
    let ann = user("ann@example.com", Role::Customer);
    store.create_user(&ann).await.unwrap();
    let layout = store.event_layout(&event.id).await.unwrap();
    let seat = |i: usize| layout[i % layout.len()].seat.id.clone();
    // Batch a sells seats 0..20 one an order; batch b sells pairs (19 - i, i + 8)
    // (never one seat twice: the two differ in parity), so every b order collides
    // with a and the two batches take the seats in other orders.
    let mut a = vec![];
    let mut b = vec![];
    for i in 0..20 {
        let sa = vec![seat(i)];
        let sb = vec![seat(19 - i), seat(i + 8)];
        a.push((
            checked_out(&*store, &event, &ann.id, HoldSelection::Seats(sa.clone())).await,
            sa,
        ));
        b.push((
            checked_out(&*store, &event, &ann.id, HoldSelection::Seats(sb.clone())).await,
            sb,
        ));
    }
    let batch = |orders: &[(OrderId, Vec<SeatId>)]| -> Vec<Write> {
        orders
            .iter()
            .flat_map(|(o, seats)| {
                [
                    Write::Paid {
                        order: o.clone(),
                        charge_id: format!("ch_{o}"),
                        tickets: tickets_for(&event, seats),
                        message: MessageId::new(),
                        now: now(),
                        ack: None,
                    },
                    Write::Hold(hold(
                        &event,
                        &ann.id,
                        HoldSelection::Ga {
                            tier_id: event.ga_tiers[0].id.clone(),
                            quantity: 1,
                        },
                        Duration::minutes(5),
                    )),
                ]
            })
            .collect()
    };
    let (wa, wb) = (batch(&a), batch(&b));
    let (ra, rb) = tokio::join!(store.write(&wa), store.write(&wb));
    let (ra, rb) = (ra.unwrap(), rb.unwrap());
    let mut sold: Vec<SeatId> = vec![];
    for (orders, writes, out) in [(&a, &wa, &ra), (&b, &wb, &rb)] {
        for (i, (w, r)) in writes.iter().zip(out).enumerate() {
            match (w, r) {
                (Write::Hold(_), r) => assert!(matches!(r, Ok(Written::Done)), "{r:?}"),
                (Write::Paid { .. }, Ok(Written::Paid(PaidOutcome::Paid))) => {
                    sold.extend(orders[i / 2].1.iter().cloned());
                    let o = store.order(&orders[i / 2].0).await.unwrap().unwrap();
                    assert_eq!(o.status, OrderStatus::Paid);
                    assert_eq!(o.tickets.len(), orders[i / 2].1.len());
                }
                (Write::Paid { .. }, Err(StoreError::Conflict { constraint })) => {
                    assert_eq!(*constraint, "sold_seats");
                    let o = store.order(&orders[i / 2].0).await.unwrap().unwrap();
                    assert_eq!(o.status, OrderStatus::PendingPayment);
                    assert!(o.tickets.is_empty());
                }
                (w, r) => panic!("{w:?} answered {r:?}"),
            }
        }
    }
    let n = sold.len();
    sold.sort();
    sold.dedup();
    assert_eq!(n, sold.len(), "no seat sold twice");
    let mut stored = store.inventory(&event.id, now()).await.unwrap().sold_seats;
    stored.sort();
    assert_eq!(stored, sold, "the store sold exactly what it answered");
}

/// Writes on one hold or order keep their batch order whatever a store groups
/// together: a checkout sees the hold a failed payment just gave back, a checkout
/// after a release finds the hold released, a payment finds the order a checkout
/// earlier in the batch created, a release after a checkout finds it converted.
pub async fn a_batch_keeps_the_order_of_writes_on_one_hold<S: Store>(store: Arc<S>) {
    let (_, _, event) = event(&*store).await;
    let ann = user("ann@example.com", Role::Customer);
    store.create_user(&ann).await.unwrap();
    let layout = store.event_layout(&event.id).await.unwrap();
    let one = |i: usize| HoldSelection::Seats(vec![layout[i].seat.id.clone()]);
    let h1 = hold(&event, &ann.id, one(0), Duration::minutes(5));
    store.record_hold(&h1).await.unwrap();
    let first = checkout_record(&event, &ann.id, &h1, "first");
    assert_eq!(
        store.checkout(&first, now()).await.unwrap(),
        CheckoutOutcome::Created
    );
    let h2 = hold(&event, &ann.id, one(1), Duration::minutes(5));
    store.record_hold(&h2).await.unwrap();
    let h3 = hold(&event, &ann.id, one(2), Duration::minutes(5));
    let again = checkout_record(&event, &ann.id, &h1, "again");
    let late = checkout_record(&event, &ann.id, &h2, "late");
    let third = checkout_record(&event, &ann.id, &h3, "third");
    let t = now();
    let paid = |rec: &CheckoutRecord, seat: usize| Write::Paid {
        order: rec.order.id.clone(),
        charge_id: format!("ch_{}", rec.order.id),
        tickets: tickets_for(&event, &[layout[seat].seat.id.clone()]),
        message: MessageId::new(),
        now: t,
        ack: None,
    };
    let checkout = |rec: &CheckoutRecord| Write::Checkout {
        rec: Box::new(rec.clone()),
        now: t,
    };
    let batch = vec![
        Write::Failed {
            order: first.order.id.clone(),
            code: "card_declined".into(),
            restore_hold: true,
            message: MessageId::new(),
            now: t,
            ack: None,
        },
        checkout(&again),
        Write::Release {
            hold: h2.id.clone(),
            now: t,
        },
        checkout(&late),
        Write::Hold(h3.clone()),
        checkout(&third),
        paid(&third, 2),
        Write::Release {
            hold: h3.id.clone(),
            now: t,
        },
        paid(&again, 0),
    ];
    let out: Vec<Written> = store
        .write(&batch)
        .await
        .unwrap()
        .into_iter()
        .map(Result::unwrap)
        .collect();
    assert_eq!(
        out,
        vec![
            Written::Failed(boxoffice_ports::FailOutcome::Failed {
                hold_until: Some(h1.expires_at)
            }),
            Written::Checkout(CheckoutOutcome::Created),
            Written::Released(ReleaseOutcome::Released),
            Written::Checkout(CheckoutOutcome::HoldNotActive {
                status: HoldStatus::Released,
                expired: false
            }),
            Written::Done,
            Written::Checkout(CheckoutOutcome::Created),
            Written::Paid(PaidOutcome::Paid),
            Written::Released(ReleaseOutcome::Converted),
            Written::Paid(PaidOutcome::Paid),
        ]
    );
    let status = |o: Option<Order>| o.unwrap().status;
    assert_eq!(
        status(store.order(&first.order.id).await.unwrap()),
        OrderStatus::Failed
    );
    assert_eq!(
        status(store.order(&again.order.id).await.unwrap()),
        OrderStatus::Paid
    );
    assert!(store.order(&late.order.id).await.unwrap().is_none());
    assert!(
        store
            .idempotent(&ann.id, "checkout", "late")
            .await
            .unwrap()
            .is_none(),
        "a refused checkout's key is not kept"
    );
    for h in [&h1, &h3] {
        assert_eq!(
            store.hold(&h.id).await.unwrap().unwrap().status,
            HoldStatus::Sold
        );
    }
}

/// Two nodes' group commits race over the same holds, one checking them out and the
/// other releasing them (each batch one statement's worth of writes): every hold
/// has exactly one winner, and the answers agree with what is stored — a created
/// order and `Converted` for the release, or `Released` and a checkout refused
/// with the hold released (its idempotency key not kept).
pub async fn checkouts_racing_releases_in_batches<S: Store>(store: Arc<S>) {
    let (_, _, event) = event_sized(&*store, 2, 10, 5).await;
    let ann = user("ann@example.com", Role::Customer);
    store.create_user(&ann).await.unwrap();
    let layout = store.event_layout(&event.id).await.unwrap();
    let mut holds = vec![];
    for s in &layout {
        let h = hold(
            &event,
            &ann.id,
            HoldSelection::Seats(vec![s.seat.id.clone()]),
            Duration::minutes(5),
        );
        store.record_hold(&h).await.unwrap();
        holds.push(h);
    }
    let recs: Vec<CheckoutRecord> = holds
        .iter()
        .map(|h| checkout_record(&event, &ann.id, h, h.id.as_str()))
        .collect();
    let t = now();
    let checkouts: Vec<Write> = recs
        .iter()
        .map(|r| Write::Checkout {
            rec: Box::new(r.clone()),
            now: t,
        })
        .collect();
    // Released in the opposite order, so the two batches cross.
    let releases: Vec<Write> = holds
        .iter()
        .rev()
        .map(|h| Write::Release {
            hold: h.id.clone(),
            now: t,
        })
        .collect();
    let (c, r) = tokio::join!(store.write(&checkouts), store.write(&releases));
    let (c, mut r) = (c.unwrap(), r.unwrap());
    r.reverse();
    let mut sold = 0;
    for ((h, rec), (c, r)) in holds.iter().zip(&recs).zip(c.iter().zip(&r)) {
        let stored = store.hold(&h.id).await.unwrap().unwrap().status;
        let order = store.order(&rec.order.id).await.unwrap();
        let key = store
            .idempotent(&ann.id, "checkout", h.id.as_str())
            .await
            .unwrap();
        match (c, r) {
            (
                Ok(Written::Checkout(CheckoutOutcome::Created)),
                Ok(Written::Released(ReleaseOutcome::Converted)),
            ) => {
                sold += 1;
                assert_eq!(stored, HoldStatus::Converted);
                assert_eq!(order.unwrap().status, OrderStatus::PendingPayment);
                assert!(key.is_some());
            }
            (
                Ok(Written::Checkout(CheckoutOutcome::HoldNotActive {
                    status: HoldStatus::Released,
                    expired: false,
                })),
                Ok(Written::Released(ReleaseOutcome::Released)),
            ) => {
                assert_eq!(stored, HoldStatus::Released);
                assert!(order.is_none());
                assert!(key.is_none(), "a refused checkout's key is not kept");
            }
            other => panic!("hold {}: {other:?}", h.id),
        }
    }
    assert_eq!(
        store.pending_orders(far_future()).await.unwrap().len(),
        sold,
        "one order per hold checked out"
    );
}

/// Refunds race and repeat safely, and a whole one sells its seats no more: eight
/// whole refunds of one order at once decide one refund (the rest find nothing
/// left); four partial refunds of 300 out of 1000 at once decide three and refuse
/// the fourth (100 left); an order that is not paid is refused; the refunded seat
/// can be sold again (the void ticket does not block the new one); a refund's
/// settlement is marked once.
pub async fn refunds_race_and_free_what_they_sold<S: Store>(store: Arc<S>) {
    use boxoffice_domain::RefundId;
    use boxoffice_ports::RefundOutcome;
    let (_, _, event) = event(&*store).await;
    let ann = user("refunds@example.com", Role::Customer);
    store.create_user(&ann).await.unwrap();
    let layout = store.event_layout(&event.id).await.unwrap();
    let seat = |i: usize| layout[i].seat.id.clone();
    let refund = |order: &OrderId, amount: Option<i64>, id: RefundId| {
        let store = store.clone();
        let order = order.clone();
        async move {
            store
                .write_one(Write::Refund {
                    refund: id,
                    order,
                    amount,
                    idempotency: None,
                    message: MessageId::new(),
                    now: now(),
                })
                .await
        }
    };

    // Whole, eight at once.
    let whole = checked_out(
        &*store,
        &event,
        &ann.id,
        HoldSelection::Seats(vec![seat(0)]),
    )
    .await;
    assert_eq!(
        pay(&*store, &whole, &tickets_for(&event, &[seat(0)]))
            .await
            .unwrap(),
        PaidOutcome::Paid
    );
    let ids: Vec<RefundId> = (0..8).map(|_| RefundId::new()).collect();
    let answers = futures::future::join_all(ids.iter().map(|id| {
        let f = refund(&whole, None, id.clone());
        tokio::spawn(f)
    }))
    .await;
    let mut decided = vec![];
    for (id, a) in ids.iter().zip(answers) {
        match a.unwrap().unwrap() {
            Written::Refund(RefundOutcome::Refunded { amount, whole }) => {
                assert_eq!((amount, whole), (Money::new(1000, Currency::EUR), true));
                decided.push(id.clone());
            }
            Written::Refund(RefundOutcome::NothingLeft) => {}
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(decided.len(), 1, "one whole refund decided");
    let o = store.order(&whole).await.unwrap().unwrap();
    assert_eq!(o.status, OrderStatus::Refunded);
    assert_eq!(o.refunded, Money::new(1000, Currency::EUR));
    let inv = store.inventory(&event.id, now()).await.unwrap();
    assert!(
        !inv.sold_seats.contains(&seat(0)),
        "the seat is sold no more"
    );
    let r = store.refund(&decided[0]).await.unwrap().unwrap();
    assert_eq!(
        (
            r.order_id.clone(),
            r.charge_id.as_str(),
            r.amount,
            r.whole,
            r.settled
        ),
        (
            whole.clone(),
            format!("ch_{whole}").as_str(),
            Money::new(1000, Currency::EUR),
            true,
            false
        )
    );
    // A refund that lost the race left nothing behind.
    assert!(store
        .refund(&ids.iter().find(|i| **i != decided[0]).unwrap().clone())
        .await
        .unwrap()
        .is_none());
    let settle = |id: &RefundId| Write::RefundSettled {
        refund: id.clone(),
        now: now(),
        ack: None,
    };
    assert_eq!(
        store.write_one(settle(&decided[0])).await.unwrap(),
        Written::Marked(true)
    );
    assert_eq!(
        store.write_one(settle(&decided[0])).await.unwrap(),
        Written::Marked(false)
    );
    assert!(store.refund(&decided[0]).await.unwrap().unwrap().settled);

    // The seat sells again, with a valid ticket beside the void one.
    let again = checked_out(
        &*store,
        &event,
        &ann.id,
        HoldSelection::Seats(vec![seat(0)]),
    )
    .await;
    assert_eq!(
        pay(&*store, &again, &tickets_for(&event, &[seat(0)]))
            .await
            .unwrap(),
        PaidOutcome::Paid
    );

    // Partial, four at once: 3 × 300 fit in 1000, the fourth does not.
    let part = checked_out(
        &*store,
        &event,
        &ann.id,
        HoldSelection::Seats(vec![seat(1)]),
    )
    .await;
    pay(&*store, &part, &tickets_for(&event, &[seat(1)]))
        .await
        .unwrap();
    let answers = futures::future::join_all(
        (0..4).map(|_| tokio::spawn(refund(&part, Some(300), RefundId::new()))),
    )
    .await;
    let (mut ok, mut too_much) = (0, 0);
    for a in answers {
        match a.unwrap().unwrap() {
            Written::Refund(RefundOutcome::Refunded { whole: false, .. }) => ok += 1,
            Written::Refund(RefundOutcome::TooMuch { remaining }) => {
                assert_eq!(remaining, Money::new(100, Currency::EUR));
                too_much += 1
            }
            other => panic!("{other:?}"),
        }
    }
    assert_eq!((ok, too_much), (3, 1));
    let o = store.order(&part).await.unwrap().unwrap();
    assert_eq!((o.status, o.refunded.amount), (OrderStatus::Paid, 900));
    let inv = store.inventory(&event.id, now()).await.unwrap();
    assert!(
        inv.sold_seats.contains(&seat(1)),
        "a partial refund keeps the sale"
    );
    // The rest makes it whole.
    assert_eq!(
        refund(&part, None, RefundId::new()).await.unwrap(),
        Written::Refund(RefundOutcome::Refunded {
            amount: Money::new(100, Currency::EUR),
            whole: true
        })
    );

    // Not paid: refused, nothing written.
    let pending = checked_out(
        &*store,
        &event,
        &ann.id,
        HoldSelection::Seats(vec![seat(2)]),
    )
    .await;
    assert_eq!(
        refund(&pending, None, RefundId::new()).await.unwrap(),
        Written::Refund(RefundOutcome::NotPaid(OrderStatus::PendingPayment))
    );
    assert!(matches!(
        refund(&OrderId::new(), None, RefundId::new()).await,
        Err(StoreError::NotFound)
    ));
}

/// Cancelling an event (issue 8): final and once (a repeat queues nothing), and from
/// its commit on the store refuses a new hold, a checkout's order and a payment of
/// the event, while everything committed before it is what the cancellation job
/// finds (`cancel_work`). Holds recorded while the cancellation commits are either
/// found by it or refused: never both, never neither.
pub async fn a_cancelled_event_sells_nothing_more<S: Store>(store: Arc<S>) {
    let (_, _, other) = event(&*store).await;
    let (_, _, event) = event_sized(&*store, 6, 10, 5).await;
    let ann = user("cancel@example.com", Role::Customer);
    store.create_user(&ann).await.unwrap();
    let layout = store.event_layout(&event.id).await.unwrap();
    let seat = |i: usize| layout[i].seat.id.clone();

    // Before: a paid order, a pending one, a live hold.
    let paid = checked_out(
        &*store,
        &event,
        &ann.id,
        HoldSelection::Seats(vec![seat(0)]),
    )
    .await;
    pay(&*store, &paid, &tickets_for(&event, &[seat(0)]))
        .await
        .unwrap();
    let pending = checked_out(
        &*store,
        &event,
        &ann.id,
        HoldSelection::Seats(vec![seat(1)]),
    )
    .await;
    let live = hold(
        &event,
        &ann.id,
        HoldSelection::Seats(vec![seat(2)]),
        Duration::minutes(5),
    );
    store.record_hold(&live).await.unwrap();
    // A hold with no checkout yet, to be checked out after the cancellation.
    let late = hold(
        &event,
        &ann.id,
        HoldSelection::Seats(vec![seat(3)]),
        Duration::minutes(5),
    );
    store.record_hold(&late).await.unwrap();

    // Holds race the cancellation: each is recorded before it or refused.
    let racing: Vec<Hold> = (10..50)
        .map(|i| {
            hold(
                &event,
                &ann.id,
                HoldSelection::Seats(vec![seat(i)]),
                Duration::minutes(5),
            )
        })
        .collect();
    let recorders: Vec<_> = racing
        .iter()
        .map(|h| {
            let (store, h) = (store.clone(), h.clone());
            tokio::spawn(async move { store.record_hold(&h).await })
        })
        .collect();
    let cancel = |store: Arc<S>, id: EventId| async move {
        store
            .write_one(Write::CancelEvent {
                event: id,
                message: MessageId::new(),
                now: now(),
            })
            .await
    };
    let first = tokio::spawn(cancel(store.clone(), event.id.clone()));
    let mut recorded = std::collections::HashSet::new();
    for (h, r) in racing.iter().zip(recorders) {
        match r.await.unwrap() {
            Ok(()) => {
                recorded.insert(h.id.clone());
            }
            Err(StoreError::Conflict {
                constraint: "event_cancelled",
            }) => {}
            Err(e) => panic!("{e:?}"),
        }
    }
    assert_eq!(first.await.unwrap().unwrap(), Written::Marked(true));
    // Once: a repeat is harmless and queues nothing.
    let repeat = Write::CancelEvent {
        event: event.id.clone(),
        message: MessageId::new(),
        now: now(),
    };
    let again = store.write_one(repeat.clone()).await.unwrap();
    assert_eq!(again, Written::Marked(false));
    assert_eq!(repeat.queued(&again), None);
    assert!(matches!(
        cancel(store.clone(), EventId::new()).await,
        Err(StoreError::NotFound)
    ));
    let e = store.event(&event.id).await.unwrap().unwrap();
    assert_eq!(e.event.status, EventStatus::Cancelled);
    assert!(matches!(
        store
            .set_event_status(&event.id, EventStatus::OnSale, now())
            .await,
        Err(StoreError::Conflict {
            constraint: "event_cancelled"
        })
    ));
    assert_eq!(
        store.event(&event.id).await.unwrap().unwrap().event.status,
        EventStatus::Cancelled
    );

    // After: nothing new sells.
    let refused = hold(
        &event,
        &ann.id,
        HoldSelection::Seats(vec![seat(4)]),
        Duration::minutes(5),
    );
    assert!(matches!(
        store.record_hold(&refused).await,
        Err(StoreError::Conflict {
            constraint: "event_cancelled"
        })
    ));
    let rec = checkout_record(&event, &ann.id, &late, late.id.as_str());
    assert!(matches!(
        store.checkout(&rec, now()).await,
        Err(StoreError::Conflict {
            constraint: "event_cancelled"
        })
    ));
    assert!(matches!(
        pay(&*store, &pending, &tickets_for(&event, &[seat(1)])).await,
        Err(StoreError::Conflict {
            constraint: "event_cancelled"
        })
    ));
    let o = store.order(&pending).await.unwrap().unwrap();
    assert_eq!(o.status, OrderStatus::PendingPayment, "left as it was");
    let inv = store.inventory(&event.id, now()).await.unwrap();
    assert_eq!(
        inv.sold_seats,
        vec![seat(0)],
        "the refused payment sold nothing"
    );

    // The job's work: every live hold recorded before the cancellation, the paid
    // order, and the pending one still to settle.
    let work = store.cancel_work(&event.id, 1000, now()).await.unwrap();
    let mut expected: std::collections::HashSet<HoldId> = recorded;
    expected.insert(live.id.clone());
    expected.insert(late.id.clone());
    let found: std::collections::HashSet<HoldId> = work.active_holds.iter().cloned().collect();
    assert_eq!(found, expected);
    assert_eq!(work.paid_orders, vec![paid.clone()]);
    assert_eq!(work.unsettled_orders, 1);
    // Pages.
    let page = store.cancel_work(&event.id, 2, now()).await.unwrap();
    assert_eq!(page.active_holds.len(), 2);
    // Refunded and released, the work is gone; a failed payment settles the last.
    store
        .write_one(Write::Refund {
            refund: boxoffice_domain::RefundId::new(),
            order: paid.clone(),
            amount: None,
            idempotency: None,
            message: MessageId::new(),
            now: now(),
        })
        .await
        .unwrap();
    for h in &work.active_holds {
        store.release_hold(h, now()).await.unwrap();
    }
    store
        .fail_payment(&pending, "event_cancelled", false, &MessageId::new(), now())
        .await
        .unwrap();
    let work = store.cancel_work(&event.id, 1000, now()).await.unwrap();
    assert_eq!(work, boxoffice_ports::CancelWork::default());
    let inv = store.inventory(&event.id, now()).await.unwrap();
    assert!(inv.sold_seats.is_empty() && inv.live_holds.is_empty());

    // Another event is untouched.
    let h = hold(
        &other,
        &ann.id,
        HoldSelection::Seats(vec![store.event_layout(&other.id).await.unwrap()[0]
            .seat
            .id
            .clone()]),
        Duration::minutes(5),
    );
    store.record_hold(&h).await.unwrap();
}

/// The waitlist's line (issue 12): one live entry per customer and event (joins at
/// once answer the same entry), line order, and claims that only one of many
/// racing callers wins; the offer is recorded (and its email queued) only for the
/// claim that names its hold.
pub async fn waitlist_claims_are_exclusive<S: Store>(store: Arc<S>) {
    use boxoffice_domain::{WaitlistEntry, WaitlistId, WaitlistState};
    use boxoffice_ports::WaitlistMove;
    let (_, _, event) = event(&*store).await;
    let mut customers = Vec::new();
    for i in 0..3 {
        let u = user(&format!("wait{i}@example.com"), Role::Customer);
        store.create_user(&u).await.unwrap();
        customers.push(u);
    }
    let entry = |u: &User| WaitlistEntry {
        id: WaitlistId::new(),
        event_id: event.id.clone(),
        customer_id: u.id.clone(),
        email: u.email.as_str().to_owned(),
        tier_id: None,
        quantity: 2,
        state: WaitlistState::Waiting,
        seq: 0,
        hold_id: None,
        offer_expires_at: None,
        claim_until: None,
        created_at: now(),
    };
    // Eight joins of one customer at once: one entry.
    let joins: Vec<_> = (0..8)
        .map(|_| {
            let (s, e) = (store.clone(), entry(&customers[0]));
            tokio::spawn(async move { s.join_waitlist(&e).await.unwrap() })
        })
        .collect();
    let mut ids = std::collections::HashSet::new();
    for j in joins {
        ids.insert(j.await.unwrap().id);
    }
    assert_eq!(ids.len(), 1, "one live entry per customer");
    let first = store
        .waitlist_entry(ids.iter().next().unwrap())
        .await
        .unwrap()
        .unwrap();
    let second = store.join_waitlist(&entry(&customers[1])).await.unwrap();
    let line = store.waitlist_line(&event.id).await.unwrap();
    assert_eq!(
        line.iter().map(|e| e.id.clone()).collect::<Vec<_>>(),
        vec![first.id.clone(), second.id.clone()]
    );
    assert!(first.seq < second.seq);
    assert_eq!(
        store.waitlist_events().await.unwrap(),
        vec![event.id.clone()]
    );

    // Eight claims at once, each with its own hold: one wins.
    let claims: Vec<_> = (0..8)
        .map(|_| {
            let s = store.clone();
            let hold = HoldId::new();
            let m = WaitlistMove {
                entry: first.id.clone(),
                from: vec![WaitlistState::Waiting],
                hold: None,
                to: WaitlistState::Claimed,
                claim: Some((hold.clone(), now() + Duration::minutes(1))),
                now: now(),
            };
            tokio::spawn(async move { (s.move_waitlist(&m).await.unwrap(), hold) })
        })
        .collect();
    let mut winners = Vec::new();
    for c in claims {
        let (won, hold) = c.await.unwrap();
        if won {
            winners.push(hold);
        }
    }
    assert_eq!(winners.len(), 1, "one claim wins");
    let winner = winners.pop().unwrap();
    let claimed = store.waitlist_entry(&first.id).await.unwrap().unwrap();
    assert_eq!(claimed.state, WaitlistState::Claimed);
    assert_eq!(claimed.hold_id.as_ref(), Some(&winner));

    let until = far_future();
    let offer = |hold: &HoldId| Write::WaitlistOffer {
        entry: first.id.clone(),
        hold: hold.clone(),
        expires_at: until,
        message: MessageId::new(),
        now: now(),
    };
    // Another hold's offer is refused, the claimant's is recorded once.
    assert_eq!(
        store.write_one(offer(&HoldId::new())).await.unwrap(),
        Written::Marked(false)
    );
    assert_eq!(
        store.write_one(offer(&winner)).await.unwrap(),
        Written::Marked(true)
    );
    assert_eq!(
        store.write_one(offer(&winner)).await.unwrap(),
        Written::Marked(false)
    );
    let offered = store.waitlist_entry(&first.id).await.unwrap().unwrap();
    assert_eq!(offered.state, WaitlistState::Offered);
    assert_eq!(offered.offer_expires_at, Some(until));
    // A claim given back forgets its hold; leaving ends the entry, and the customer
    // may join again.
    let back = WaitlistMove {
        entry: second.id.clone(),
        from: vec![WaitlistState::Waiting],
        hold: None,
        to: WaitlistState::Claimed,
        claim: Some((HoldId::new(), now())),
        now: now(),
    };
    assert!(store.move_waitlist(&back).await.unwrap());
    let hold = store
        .waitlist_entry(&second.id)
        .await
        .unwrap()
        .unwrap()
        .hold_id
        .unwrap();
    let give_back = WaitlistMove {
        from: vec![WaitlistState::Claimed],
        hold: Some(hold),
        to: WaitlistState::Waiting,
        claim: None,
        ..back.clone()
    };
    assert!(store.move_waitlist(&give_back).await.unwrap());
    assert!(!store.move_waitlist(&give_back).await.unwrap());
    assert_eq!(
        store
            .waitlist_entry(&second.id)
            .await
            .unwrap()
            .unwrap()
            .hold_id,
        None
    );
    let leave = WaitlistMove {
        from: vec![
            WaitlistState::Waiting,
            WaitlistState::Claimed,
            WaitlistState::Offered,
        ],
        hold: None,
        to: WaitlistState::Left,
        claim: None,
        ..back
    };
    assert!(store.move_waitlist(&leave).await.unwrap());
    let again = store.join_waitlist(&entry(&customers[1])).await.unwrap();
    assert_ne!(again.id, second.id);
    assert_eq!(again.state, WaitlistState::Waiting);
}

/// Organizations, roles, invitations (claimed once, even at once), password
/// resets (used once, expiring, revoking sessions) and staff assignments.
pub async fn access<S: Store>(store: Arc<S>) {
    use boxoffice_domain::{InvitationId, OrgId, Organization};
    use boxoffice_ports::{Invitation, Joining, PasswordReset, Session};

    // The default organization exists from the migrations; a new one round-trips.
    assert!(store.org(&OrgId::default_org()).await.unwrap().is_some());
    let org = Organization {
        id: OrgId::new(),
        name: "Promoters".into(),
        created_at: now(),
    };
    store.create_org(&org).await.unwrap();
    assert_eq!(store.org(&org.id).await.unwrap().unwrap(), org);
    assert!(store.org(&OrgId::new()).await.unwrap().is_none());

    // Every role, and an organizer's organization, round-trips; none is an admin.
    for role in [Role::Customer, Role::Organizer, Role::Checkin, Role::Ops] {
        let mut u = user(&format!("{}@example.com", role.as_str()), role);
        u.org_id = role.has_org().then(|| org.id.clone());
        store.create_user(&u).await.unwrap();
        let back = store.user(&u.id).await.unwrap().unwrap();
        assert_eq!((back.role, back.org_id), (role, u.org_id.clone()));
    }
    assert!(!store.admin_exists().await.unwrap());

    // A venue and its events keep their organization.
    let spec: VenueSpec =
        serde_json_like(r#"{"name":"Hall","sections":[{"name":"A","rows":1,"seats_per_row":2}]}"#);
    let (mut venue, seats) = spec.build(now()).unwrap();
    venue.org_id = org.id.clone();
    store.create_venue(&venue, &seats).await.unwrap();
    assert_eq!(
        store.venue(&venue.id).await.unwrap().unwrap().org_id,
        org.id
    );
    let new: NewEvent = serde_json_like(&format!(
        r#"{{"venue_id":"{}","name":"Gig","starts_at":"2031-01-01T20:00:00Z","hold_ttl_seconds":60,
            "tiers":[{{"name":"Main","price":{{"amount":2500,"currency":"EUR"}},"sections":["A"]}}]}}"#,
        venue.id
    ));
    let (event, event_seats) = new.build(&venue, &seats, now()).unwrap();
    store.create_event(&event, &event_seats).await.unwrap();
    assert_eq!(
        store.event(&event.id).await.unwrap().unwrap().event.org_id,
        org.id
    );

    // An invitation: eight accepts at once, one account.
    let admin = user("root@example.com", Role::Admin);
    store.create_user(&admin).await.unwrap();
    let invitation = |email: &str, hash: &str, expires_at| Invitation {
        id: InvitationId::new(),
        org_id: org.id.clone(),
        email: Email::parse(email).unwrap(),
        role: Role::Checkin,
        token_hash: hash.into(),
        invited_by: admin.id.clone(),
        created_at: now(),
        expires_at,
        accepted_at: None,
        revoked_at: None,
    };
    let inv = invitation("scan@example.com", "h1", far_future());
    store.create_invitation(&inv).await.unwrap();
    assert_eq!(store.invitation_by_token("h1").await.unwrap().unwrap(), inv);
    let joiners: Vec<Joining> = (0..8)
        .map(|_| {
            let mut u = user("scan@example.com", Role::Checkin);
            u.org_id = Some(org.id.clone());
            Joining::New(u)
        })
        .collect();
    let accepted = futures::future::join_all(
        joiners
            .iter()
            .map(|j| store.accept_invitation(&inv.id, now(), j)),
    )
    .await;
    assert_eq!(
        accepted.iter().filter(|a| matches!(a, Ok(true))).count(),
        1,
        "{accepted:?}"
    );
    assert!(accepted.iter().all(|a| a.is_ok()), "{accepted:?}");
    let joined = store
        .user_by_email(&Email::parse("scan@example.com").unwrap())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (joined.role, joined.org_id.as_ref()),
        (Role::Checkin, Some(&org.id))
    );
    assert!(store
        .invitation_by_token("h1")
        .await
        .unwrap()
        .unwrap()
        .accepted_at
        .is_some());

    // A revoke racing accepts: exactly one of them wins; a revoked one is never
    // accepted, an accepted one never revoked, another organization's untouched.
    let contested = invitation("contested@example.com", "h-contested", far_future());
    store.create_invitation(&contested).await.unwrap();
    let other_org = boxoffice_domain::OrgId::new();
    assert!(!store
        .revoke_invitation(&other_org, &contested.id, now())
        .await
        .unwrap());
    let contender = |_| {
        let mut u = user("contested@example.com", Role::Checkin);
        u.org_id = Some(org.id.clone());
        Joining::New(u)
    };
    let joiners: Vec<Joining> = (0..4).map(contender).collect();
    let (revoked, accepts) = tokio::join!(
        store.revoke_invitation(&org.id, &contested.id, now()),
        futures::future::join_all(joiners.iter().map(|j| store.accept_invitation(
            &contested.id,
            now(),
            j
        )))
    );
    let revoked = revoked.unwrap();
    let accepted = accepts.iter().filter(|a| matches!(a, Ok(true))).count();
    assert_eq!(
        usize::from(revoked) + accepted,
        1,
        "revoked {revoked}, accepted {accepted}: {accepts:?}"
    );
    let after = store.invitation(&contested.id).await.unwrap().unwrap();
    assert_eq!(after.revoked_at.is_some(), revoked);
    assert_eq!(after.accepted_at.is_some(), !revoked);
    let listed = store.invitations(&org.id, 100).await.unwrap();
    assert!(listed.iter().any(|i| i.id == contested.id));
    assert!(listed
        .windows(2)
        .all(|w| w[0].created_at >= w[1].created_at));
    assert!(store.invitations(&other_org, 100).await.unwrap().is_empty());

    // An expired one is not accepted; an existing customer is promoted, an
    // account of another role never.
    let old = invitation("late@example.com", "h2", now() - Duration::seconds(1));
    store.create_invitation(&old).await.unwrap();
    let late = user("late@example.com", Role::Checkin);
    assert!(!store
        .accept_invitation(&old.id, now(), &Joining::New(late))
        .await
        .unwrap());
    let cust = store
        .user_by_email(&Email::parse("customer@example.com").unwrap())
        .await
        .unwrap()
        .unwrap();
    let promote = invitation("customer@example.com", "h3", far_future());
    store.create_invitation(&promote).await.unwrap();
    assert!(store
        .accept_invitation(&promote.id, now(), &Joining::Existing(cust.id.clone()))
        .await
        .unwrap());
    assert_eq!(
        store.user(&cust.id).await.unwrap().unwrap().role,
        Role::Checkin
    );
    let demote = invitation("root@example.com", "h4", far_future());
    store.create_invitation(&demote).await.unwrap();
    assert!(matches!(
        store
            .accept_invitation(&demote.id, now(), &Joining::Existing(admin.id.clone()))
            .await,
        Err(StoreError::Conflict {
            constraint: "users_role"
        })
    ));
    assert_eq!(
        store.user(&admin.id).await.unwrap().unwrap().role,
        Role::Admin
    );
    // Refused, so still open.
    assert!(store
        .invitation_by_token("h4")
        .await
        .unwrap()
        .unwrap()
        .accepted_at
        .is_none());

    // A password reset: used once, revokes the sessions; an expired one is not.
    let session = Session {
        id: "s-reset".into(),
        user_id: joined.id.clone(),
        generation: 0,
        token_hash: "t".into(),
        created_at: now(),
        expires_at: far_future(),
        revoked_at: None,
    };
    store.create_session(&session).await.unwrap();
    let reset = |hash: &str, expires_at| PasswordReset {
        token_hash: hash.into(),
        user_id: joined.id.clone(),
        created_at: now(),
        expires_at,
    };
    store
        .create_password_reset(&reset("r1", far_future()))
        .await
        .unwrap();
    store
        .create_password_reset(&reset("r2", now() - Duration::seconds(1)))
        .await
        .unwrap();
    let uses = futures::future::join_all(
        (0..4).map(|i| store.use_password_reset("r1", now(), if i == 0 { "p0" } else { "px" })),
    )
    .await;
    assert_eq!(
        uses.iter().filter(|u| matches!(u, Ok(Some(_)))).count(),
        1,
        "{uses:?}"
    );
    assert!(store
        .session("s-reset")
        .await
        .unwrap()
        .unwrap()
        .revoked_at
        .is_some());
    assert_eq!(
        store.use_password_reset("r2", now(), "late").await.unwrap(),
        None
    );
    assert_eq!(
        store.use_password_reset("nope", now(), "x").await.unwrap(),
        None
    );
    assert_ne!(
        store.user(&joined.id).await.unwrap().unwrap().password_hash,
        "late"
    );

    // Staff: assigned once however often, per event.
    assert!(!store.is_staff(&event.id, &joined.id).await.unwrap());
    store
        .assign_staff(&event.id, &joined.id, now())
        .await
        .unwrap();
    store
        .assign_staff(&event.id, &joined.id, now())
        .await
        .unwrap();
    assert!(store.is_staff(&event.id, &joined.id).await.unwrap());
    assert_eq!(
        store.event_staff(&event.id).await.unwrap(),
        vec![joined.id.clone()]
    );
}

/// Check-in: four scans of each ticket at once admit it exactly once; a repeated
/// scan id answers its first answer; the first signing key and a rotating secret
/// are kept once however many ask at the same time.
pub async fn checkin_admits_each_ticket_once<S: Store>(store: Arc<S>) {
    use boxoffice_domain::ticket_code::ScanResult;
    use boxoffice_ports::{NewScan, TicketKey};
    let orders = paid_orders(&*store, 20).await;
    let mut tickets = vec![];
    for o in &orders {
        tickets.extend(store.order(o).await.unwrap().unwrap().tickets);
    }
    let scanner = user("door@example.com", Role::Admin);
    store.create_user(&scanner).await.unwrap();
    let scan = |t: &Ticket, id: String, gate: &str| NewScan {
        scanned_by: scanner.id.clone(),
        scan_id: id,
        event_id: None,
        ticket_id: Some(t.id.clone()),
        gate: gate.into(),
        scanned_at: now(),
        recorded_at: now(),
        offline: false,
        result: ScanResult::Ok,
    };
    let racing = tickets.iter().flat_map(|t| {
        (0..4).map(|i| {
            let (store, s) = (
                store.clone(),
                scan(t, format!("{}-{i}", t.id), ["n", "s"][i % 2]),
            );
            tokio::spawn(async move { store.record_scan(&s).await.unwrap() })
        })
    });
    let records: Vec<_> = futures::future::join_all(racing.collect::<Vec<_>>())
        .await
        .into_iter()
        .map(Result::unwrap)
        .collect();
    for t in &tickets {
        let mine: Vec<_> = records
            .iter()
            .filter(|r| r.ticket_id.as_ref() == Some(&t.id))
            .collect();
        assert_eq!(mine.len(), 4);
        assert_eq!(
            mine.iter().filter(|r| r.result == ScanResult::Ok).count(),
            1,
            "ticket {} admitted once",
            t.id
        );
        for r in mine.iter().filter(|r| r.result != ScanResult::Ok) {
            assert_eq!(r.result, ScanResult::AlreadyUsed);
            assert!(r.first_scan.is_some());
        }
        let rec = store.ticket(&t.id).await.unwrap().unwrap();
        assert!(rec.first_scan.is_some() && !rec.void);
    }
    // A repeat of a scan: its first answer, even though the ticket is in now.
    let first = records.iter().find(|r| r.result == ScanResult::Ok).unwrap();
    let t = tickets
        .iter()
        .find(|t| Some(&t.id) == first.ticket_id.as_ref())
        .unwrap();
    let again = store
        .record_scan(&scan(t, first.scan_id.clone(), "elsewhere"))
        .await
        .unwrap();
    assert_eq!(&again, first);
    assert_eq!(
        store
            .event_tickets(&store.ticket(&t.id).await.unwrap().unwrap().event_id)
            .await
            .unwrap()
            .len(),
        tickets.len()
    );
    // The first key: two nodes make one at once, one is kept.
    let key = |seed: &str| TicketKey {
        kid: 1,
        public_key: vec![seed.len() as u8; 32],
        sealed_seed: seed.into(),
        created_at: now(),
    };
    if store.ticket_keys().await.unwrap().is_empty() {
        let (ka, kb) = (key("a"), key("bb"));
        let (a, b) = tokio::join!(store.add_ticket_key(&ka), store.add_ticket_key(&kb));
        assert!(a.unwrap() ^ b.unwrap(), "exactly one first key");
        assert_eq!(store.ticket_keys().await.unwrap().len(), 1);
    }
    // A rotating secret: the first kept, every ask answers it.
    let (x, y) = tokio::join!(
        store.ticket_secret(&t.id, "secret-x"),
        store.ticket_secret(&t.id, "secret-y")
    );
    let (x, y) = (x.unwrap(), y.unwrap());
    assert_eq!(x, y);
    assert_eq!(store.ticket_secret(&t.id, "secret-z").await.unwrap(), x);
}
