//! The waiting room's conformance suite (`WaitingRoom`): every adapter is built on
//! the suite's manual clock and must number joins once and densely under
//! concurrency, draw the pre-queue once, admit at the rate and within the capacity,
//! and end sessions by time or on leave.

use boxoffice_domain::{EventId, UserId};
use boxoffice_ports::{ManualClock, RoomParams, WaitingRoom};
use std::collections::HashSet;
use std::sync::Arc;
use time::Duration;

fn params(started: bool, max_active: Option<u32>) -> RoomParams {
    RoomParams {
        admission_interval_ms: 1000,
        max_active,
        session_ms: 10_000,
        started,
        seed: 7,
    }
}

/// 200 customers join at once, each twice: one number each, 0..200 exactly.
pub async fn joins_are_numbered_once_and_densely(room: Arc<dyn WaitingRoom>) {
    let event = EventId::new();
    let customers: Vec<UserId> = (0..200).map(|_| UserId::new()).collect();
    let tasks: Vec<_> = customers
        .iter()
        .chain(customers.iter())
        .map(|c| {
            let (room, event, c) = (room.clone(), event.clone(), c.clone());
            tokio::spawn(async move { room.join(&event, &c, &params(false, None)).await.unwrap() })
        })
        .collect();
    let joined: Vec<_> = futures::future::join_all(tasks)
        .await
        .into_iter()
        .map(Result::unwrap)
        .collect();
    let (first, second) = joined.split_at(200);
    for (a, b) in first.iter().zip(second) {
        assert_eq!(a.number, b.number, "one place per customer");
        assert!(a.new != b.new, "exactly one of the two joins is new");
    }
    let numbers: HashSet<u64> = first.iter().map(|j| j.number).collect();
    assert_eq!(numbers, (0..200).collect::<HashSet<_>>());
    let s = room.state(&event, &params(false, None)).await.unwrap();
    assert_eq!(s.joined, 200);
    assert_eq!(s.draw, None, "no draw before the start");
    assert_eq!(s.served, 0, "no admission before the start");
}

/// The first call that says the sale runs draws the pre-queue (its length, the
/// seed it brought); later calls keep that draw.
pub async fn the_pre_queue_is_drawn_once(room: Arc<dyn WaitingRoom>) {
    let event = EventId::new();
    for _ in 0..5 {
        room.join(&event, &UserId::new(), &params(false, None))
            .await
            .unwrap();
    }
    let s = room.state(&event, &params(true, None)).await.unwrap();
    let draw = s.draw.expect("drawn at the start");
    assert_eq!((draw.pre_queue_len, draw.seed), (5, 7));
    let later = RoomParams {
        seed: 99,
        ..params(true, None)
    };
    room.join(&event, &UserId::new(), &later).await.unwrap();
    let s = room.state(&event, &later).await.unwrap();
    assert_eq!(s.draw, Some(draw));
    assert_eq!(s.joined, 6);
}

/// One admitted at the start and one a second after; at most two sessions at
/// once; a leave frees a slot at once, a session's end when it is over.
pub async fn admits_at_the_rate_within_the_capacity(
    room: Arc<dyn WaitingRoom>,
    clock: Arc<ManualClock>,
) {
    let event = EventId::new();
    let p = params(true, Some(2));
    for _ in 0..5 {
        room.join(&event, &UserId::new(), &p).await.unwrap();
    }
    assert_eq!(room.state(&event, &p).await.unwrap().served, 1);
    clock.advance(Duration::milliseconds(999));
    assert_eq!(room.state(&event, &p).await.unwrap().served, 1);
    clock.advance(Duration::milliseconds(1));
    assert_eq!(room.state(&event, &p).await.unwrap().served, 2);
    clock.advance(Duration::seconds(5));
    assert_eq!(room.state(&event, &p).await.unwrap().served, 2, "capacity");
    let end = room
        .session(&event, 0)
        .await
        .unwrap()
        .expect("rank 0 is in");
    assert!(room.leave(&event, 0).await.unwrap());
    assert!(!room.leave(&event, 0).await.unwrap(), "left once");
    assert_eq!(room.session(&event, 0).await.unwrap(), None);
    assert_eq!(room.state(&event, &p).await.unwrap().served, 3);
    // Rank 1's session ends 10 s after its admission; rank 2's later.
    let now = end - 10_000 + 1000 + 5000;
    let s1 = room
        .session(&event, 1)
        .await
        .unwrap()
        .expect("rank 1 is in");
    assert_eq!(s1, end + 1000);
    clock.advance(Duration::milliseconds(s1 - now));
    assert_eq!(room.session(&event, 1).await.unwrap(), None, "over");
    let s = room.state(&event, &p).await.unwrap();
    assert_eq!(s.served, 4, "its slot went to the next");
    assert_eq!(s.joined, 5);
}
