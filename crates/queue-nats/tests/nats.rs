//! The NATS JetStream queue against a real nats-server (BOXOFFICE_TEST_NATS_URL,
//! default local), each test on its own stream and subjects.

use boxoffice_domain::{Consumer, Job, MessageId, OrderId};
use boxoffice_ports::JobQueue;
use boxoffice_queue_nats::NatsQueue;
use std::time::Duration;
use time::OffsetDateTime;

async fn queue(lease: Duration) -> NatsQueue {
    let url =
        std::env::var("BOXOFFICE_TEST_NATS_URL").unwrap_or_else(|_| "nats://127.0.0.1:4222".into());
    let prefix = format!("test{}", ulid::Ulid::new().to_string().to_lowercase());
    NatsQueue::connect(&url, &prefix, lease)
        .await
        .expect("NATS answers (scripts/services starts it)")
}

fn paid() -> Job {
    Job::OrderPaid {
        order_id: OrderId::new(),
    }
}

#[tokio::test]
async fn publish_fans_out_once_per_consumer_and_deduplicates() {
    let q = queue(Duration::from_secs(30)).await;
    let (id, job) = (MessageId::new(), paid());
    q.publish(&[(id.clone(), job.clone())]).await.unwrap();
    q.publish(&[(id.clone(), job.clone())]).await.unwrap(); // a second relay of the same row
    let now = OffsetDateTime::now_utc();
    for c in [Consumer::Email, Consumer::Audit, Consumer::Analytics] {
        let got = q.claim(c, 10, Duration::from_secs(30), now).await.unwrap();
        assert_eq!(got.len(), 1, "{c:?}");
        assert_eq!(got[0].message, id);
        assert_eq!(got[0].job, job);
        assert_eq!(got[0].attempt, 1);
        q.ack(&got[0], now).await.unwrap();
    }
    assert!(q
        .claim(Consumer::Payment, 10, Duration::from_secs(30), now)
        .await
        .unwrap()
        .is_empty());
    assert!(
        q.claim(Consumer::Email, 10, Duration::from_secs(30), now)
            .await
            .unwrap()
            .is_empty(),
        "acked is gone"
    );
}

#[tokio::test]
async fn unacked_deliveries_return_after_the_lease_and_retries_wait() {
    let q = queue(Duration::from_secs(1)).await;
    let (id, job) = (
        MessageId::new(),
        Job::PaymentRequested {
            order_id: OrderId::new(),
        },
    );
    q.publish(&[(id.clone(), job.clone())]).await.unwrap();
    let now = OffsetDateTime::now_utc();
    let first = q
        .claim(Consumer::Payment, 10, Duration::from_secs(1), now)
        .await
        .unwrap();
    assert_eq!(first.len(), 1);
    // Not acked: it comes back once the 1 s lease runs out, as attempt 2.
    let mut again = Vec::new();
    for _ in 0..20 {
        again = q
            .claim(Consumer::Payment, 10, Duration::from_secs(1), now)
            .await
            .unwrap();
        if !again.is_empty() {
            break;
        }
    }
    assert_eq!(again.len(), 1);
    assert_eq!(again[0].attempt, 2);
    // A retry with a delay is not redelivered before it.
    q.retry(
        &again[0],
        OffsetDateTime::now_utc() + time::Duration::seconds(30),
        "busy",
    )
    .await
    .unwrap();
    assert!(q
        .claim(Consumer::Payment, 10, Duration::from_secs(1), now)
        .await
        .unwrap()
        .is_empty());
    let (pending, _) = q.backlog(Consumer::Payment, now).await.unwrap();
    assert_eq!(pending, 1);
}

#[tokio::test]
async fn buried_jobs_leave_the_queue() {
    let q = queue(Duration::from_secs(30)).await;
    let (id, job) = (
        MessageId::new(),
        Job::PaymentRequested {
            order_id: OrderId::new(),
        },
    );
    q.publish(&[(id.clone(), job.clone())]).await.unwrap();
    let now = OffsetDateTime::now_utc();
    let d = q
        .claim(Consumer::Payment, 10, Duration::from_secs(30), now)
        .await
        .unwrap();
    q.bury(&d[0], "gave up").await.unwrap();
    assert!(q
        .claim(Consumer::Payment, 10, Duration::from_secs(30), now)
        .await
        .unwrap()
        .is_empty());
    assert_eq!(q.backlog(Consumer::Payment, now).await.unwrap().0, 0);
}
