//! The fake Stripe's webhooks: signed as Stripe signs them, retried until answered
//! 2xx; and the client's view of 3-D Secure and of a payment still processing.

use axum::body::Bytes;
use axum::http::{HeaderMap, StatusCode};
use boxoffice_domain::{Currency, Money};
use boxoffice_payments::{webhook_signature, FakeStripe, StripeGateway, TEST_SECRET_KEY};
use boxoffice_ports::{ChargeOutcome, ChargeRequest, PaymentGateway};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;

const SECRET: &str = "whsec_webhook_test";

fn req(key: &str, token: &str) -> ChargeRequest {
    ChargeRequest {
        idempotency_key: key.into(),
        amount: Money::new(1200, Currency::EUR),
        token: token.into(),
        order_id: format!("order-{key}"),
        description: "test".into(),
    }
}

/// An endpoint that refuses the first `refuse` deliveries with a 500 and passes
/// every delivery (signature header, body) to the test.
async fn endpoint(refuse: usize) -> (String, mpsc::UnboundedReceiver<(String, String, bool)>) {
    let (tx, rx) = mpsc::unbounded_channel();
    let seen = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(move |headers: HeaderMap, body: Bytes| {
            let (tx, seen) = (tx.clone(), seen.clone());
            async move {
                let n = seen.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                let sig = headers
                    .get("stripe-signature")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or_default()
                    .to_owned();
                let accepted = n >= refuse;
                let _ = tx.send((sig, String::from_utf8_lossy(&body).into_owned(), accepted));
                if accepted {
                    StatusCode::OK
                } else {
                    StatusCode::INTERNAL_SERVER_ERROR
                }
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (url, rx)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_are_signed_and_retried_until_answered() {
    let dir = tempfile::tempdir().unwrap();
    let f = FakeStripe::start(
        dir.path(),
        "127.0.0.1:0".parse().unwrap(),
        Default::default(),
    )
    .await
    .unwrap();
    let gw = StripeGateway::new(&f.url(), TEST_SECRET_KEY, Duration::from_secs(5)).unwrap();
    let (url, mut deliveries) = endpoint(2).await;
    f.add_webhook_endpoint(&url, SECRET).await.unwrap();

    let out = gw.charge(&req("w1", "tok_visa")).await.unwrap();
    let ChargeOutcome::Succeeded { charge_id } = out else {
        panic!("{out:?}")
    };
    // Refused twice, then accepted: three deliveries of the same event.
    let mut bodies = Vec::new();
    for attempt in 0..3 {
        let (sig, body, accepted) = deliveries.recv().await.unwrap();
        assert_eq!(accepted, attempt == 2);
        // Signed as Stripe signs: t=<unix time>,v1=HMAC-SHA256(secret, "t.body").
        let t: i64 = sig
            .strip_prefix("t=")
            .and_then(|r| r.split(',').next())
            .and_then(|t| t.parse().ok())
            .unwrap_or_else(|| panic!("{sig}"));
        assert_eq!(sig, webhook_signature(SECRET, t, &body));
        let event: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(event["type"], "payment_intent.succeeded");
        assert_eq!(event["data"]["object"]["id"], charge_id.as_str());
        assert_eq!(event["data"]["object"]["metadata"]["order_id"], "order-w1");
        bodies.push(event["id"].clone());
    }
    assert!(
        bodies.iter().all(|id| *id == bodies[0]),
        "the same event each time"
    );
    f.stop().await;
}

#[tokio::test]
async fn three_d_secure_and_processing_as_the_client_sees_them() {
    let dir = tempfile::tempdir().unwrap();
    let f = FakeStripe::start(
        dir.path(),
        "127.0.0.1:0".parse().unwrap(),
        Default::default(),
    )
    .await
    .unwrap();
    let gw = StripeGateway::new(&f.url(), TEST_SECRET_KEY, Duration::from_secs(5)).unwrap();

    let out = gw
        .charge(&req("3ds", "tok_threeDSecure2Required"))
        .await
        .unwrap();
    let ChargeOutcome::RequiresAction {
        payment_id,
        next_action,
    } = out
    else {
        panic!("{out:?}")
    };
    let page = next_action.url.clone().expect("a page");
    assert_eq!(
        gw.next_action("order-3ds").await.unwrap(),
        Some(next_action),
        "found by order"
    );
    // A repeat under the key reads where it stands (still waiting), no new intent.
    let again = gw
        .charge(&req("3ds", "tok_threeDSecure2Required"))
        .await
        .unwrap();
    assert!(
        matches!(&again, ChargeOutcome::RequiresAction { payment_id: p, .. } if *p == payment_id)
    );
    reqwest::get(&page)
        .await
        .unwrap()
        .error_for_status()
        .unwrap();
    let again = gw
        .charge(&req("3ds", "tok_threeDSecure2Required"))
        .await
        .unwrap();
    assert_eq!(
        again,
        ChargeOutcome::Succeeded {
            charge_id: payment_id.clone()
        }
    );
    assert_eq!(gw.next_action("order-3ds").await.unwrap(), None);
    // Too late to cancel: the answer says it succeeded.
    assert_eq!(
        gw.cancel(&payment_id).await.unwrap(),
        ChargeOutcome::Succeeded {
            charge_id: payment_id.clone()
        }
    );

    let out = gw.charge(&req("slow", "tok_processing")).await.unwrap();
    let ChargeOutcome::Processing { payment_id } = out else {
        panic!("{out:?}")
    };
    assert_eq!(
        gw.payment(&payment_id).await.unwrap(),
        ChargeOutcome::Processing {
            payment_id: payment_id.clone()
        }
    );
    // A processing payment cannot be cancelled: it stays processing.
    assert_eq!(
        gw.cancel(&payment_id).await.unwrap(),
        ChargeOutcome::Processing {
            payment_id: payment_id.clone()
        }
    );

    // One the buyer abandons is cancelled.
    let out = gw
        .charge(&req("gone", "tok_threeDSecure2Required"))
        .await
        .unwrap();
    let ChargeOutcome::RequiresAction { payment_id, .. } = out else {
        panic!("{out:?}")
    };
    assert_eq!(
        gw.cancel(&payment_id).await.unwrap(),
        ChargeOutcome::Declined {
            code: "payment_canceled".into()
        }
    );
    f.stop().await;
}
