//! The store suite: what every durable store must do, including refusing a double
//! sale on its own, whatever a hold engine decided.

use boxoffice_domain::{
    Currency, Email, Event, EventId, EventStatus, Hold, HoldId, HoldSelection, HoldStatus, Money,
    NewEvent, Role, Seat, SeatId, User, UserId, Venue, VenueSpec,
};
use boxoffice_ports::{ReleaseOutcome, Store, StoreError};
use std::sync::Arc;
use time::{Duration, OffsetDateTime};

fn now() -> OffsetDateTime {
    boxoffice_domain::time::truncate_to_millis(OffsetDateTime::now_utc())
}

fn user(email: &str, role: Role) -> User {
    User {
        id: UserId::new(),
        email: Email::parse(email).unwrap(),
        password_hash: "$argon2id$not-a-real-hash".into(),
        role,
        created_at: now(),
    }
}

/// A venue (A: 2×3 seats) and an on-sale-ready event with a seat tier and a GA tier
/// of capacity 5, stored.
async fn event<S: Store>(store: &S) -> (Venue, Vec<Seat>, Event) {
    let spec: VenueSpec = serde_json_like(
        r#"{"name":"Hall","sections":[{"name":"A","rows":2,"seats_per_row":3},{"name":"B","rows":1,"seats_per_row":2}]}"#,
    );
    let (venue, seats) = spec.build(now()).unwrap();
    store.create_venue(&venue, &seats).await.unwrap();
    let new: NewEvent = serde_json_like(&format!(
        r#"{{"venue_id":"{}","name":"Gig","starts_at":"2031-01-01T20:00:00Z","hold_ttl_seconds":60,
            "tiers":[{{"name":"Main","price":{{"amount":2500,"currency":"EUR"}},"sections":["A"]}}],
            "ga_tiers":[{{"name":"Floor","price":{{"amount":1000,"currency":"EUR"}},"capacity":5}}]}}"#,
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

/// Two holds over one seat — as a wrong engine might grant — race to be sold: the
/// store lets exactly one through. GA sales past capacity are refused likewise.
pub async fn double_sale_is_impossible<S: Store>(store: Arc<S>) {
    let (_, _, event) = event(&*store).await;
    let ann = user("ann@example.com", Role::Customer);
    store.create_user(&ann).await.unwrap();
    let layout = store.event_layout(&event.id).await.unwrap();
    let seat = |i: usize| layout[i].seat.id.clone();

    for round in 0..10 {
        let a = hold(
            &event,
            &ann.id,
            HoldSelection::Seats(vec![seat(round % 6)]),
            Duration::minutes(5),
        );
        let b = hold(
            &event,
            &ann.id,
            HoldSelection::Seats(vec![seat(5 - round % 6), seat(round % 6)]),
            Duration::minutes(5),
        );
        store.record_hold(&a).await.unwrap();
        store.record_hold(&b).await.unwrap();
        let (ra, rb) = tokio::join!(store.sell_hold(&a.id, now()), store.sell_hold(&b.id, now()));
        let sold = [&ra, &rb].iter().filter(|r| r.is_ok()).count();
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
    let big = hold(
        &event,
        &ann.id,
        HoldSelection::Ga {
            tier_id: tier.clone(),
            quantity: 4,
        },
        Duration::minutes(5),
    );
    let more = hold(
        &event,
        &ann.id,
        HoldSelection::Ga {
            tier_id: tier,
            quantity: 2,
        },
        Duration::minutes(5),
    );
    store.record_hold(&big).await.unwrap();
    store.record_hold(&more).await.unwrap();
    store.sell_hold(&big.id, now()).await.unwrap();
    assert!(matches!(
        store.sell_hold(&more.id, now()).await,
        Err(StoreError::Conflict {
            constraint: "ga_capacity"
        })
    ));
    assert_eq!(
        store.inventory(&event.id, now()).await.unwrap().ga_sold,
        vec![4]
    );
    // A sold hold cannot be sold again, nor released.
    assert!(store.sell_hold(&big.id, now()).await.is_err());
    assert_eq!(
        store.release_hold(&big.id, now()).await.unwrap(),
        ReleaseOutcome::Converted
    );
}
