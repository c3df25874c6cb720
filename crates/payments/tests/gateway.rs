//! The Stripe client against the fake Stripe: Stripe's semantics, end to end over HTTP.

use boxoffice_domain::{Currency, Money};
use boxoffice_payments::{FakeStripe, FakeStripeConfig, StripeGateway, TEST_SECRET_KEY};
use boxoffice_ports::{ChargeOutcome, ChargeRequest, GatewayError, PaymentGateway};
use std::sync::Arc;
use std::time::Duration;

async fn fake(dir: &std::path::Path) -> (FakeStripe, StripeGateway) {
    let f = FakeStripe::start(
        dir,
        "127.0.0.1:0".parse().unwrap(),
        FakeStripeConfig::default(),
    )
    .await
    .unwrap();
    let client = StripeGateway::new(&f.url(), TEST_SECRET_KEY, Duration::from_secs(5)).unwrap();
    (f, client)
}

fn req(key: &str, token: &str, amount: i64) -> ChargeRequest {
    ChargeRequest {
        idempotency_key: key.into(),
        amount: Money::new(amount, Currency::EUR),
        token: token.into(),
        order_id: format!("order-{key}"),
        description: "test".into(),
    }
}

#[tokio::test]
async fn charges_declines_and_idempotency() {
    let dir = tempfile::tempdir().unwrap();
    let (f, gw) = fake(dir.path()).await;

    let ok = gw.charge(&req("k1", "tok_visa", 1500)).await.unwrap();
    let ChargeOutcome::Succeeded { charge_id } = ok.clone() else {
        panic!("{ok:?}")
    };
    // The same key and request: the same charge, not a second one.
    assert_eq!(gw.charge(&req("k1", "tok_visa", 1500)).await.unwrap(), ok);
    // The same key, another request: refused.
    assert!(matches!(
        gw.charge(&req("k1", "tok_visa", 999)).await,
        Err(GatewayError::Rejected(_))
    ));

    assert_eq!(
        gw.charge(&req("k2", "tok_chargeDeclined", 100))
            .await
            .unwrap(),
        ChargeOutcome::Declined {
            code: "card_declined".into()
        }
    );
    assert_eq!(
        gw.charge(&req("k3", "tok_chargeDeclinedInsufficientFunds", 100))
            .await
            .unwrap(),
        ChargeOutcome::Declined {
            code: "insufficient_funds".into()
        }
    );
    // Transient the first time, fine when the same key retries.
    assert!(matches!(
        gw.charge(&req("k4", "tok_processingError", 100)).await,
        Err(GatewayError::Transient(_))
    ));
    assert!(matches!(
        gw.charge(&req("k4", "tok_processingError", 100)).await,
        Ok(ChargeOutcome::Succeeded { .. })
    ));
    assert!(matches!(
        gw.charge(&req("k5", "tok_nonsense", 100)).await,
        Err(GatewayError::Rejected(_))
    ));

    gw.refund(&charge_id, None, "r1").await.unwrap();
    gw.refund(&charge_id, None, "r2").await.unwrap(); // already refunded: still fine

    let charges = gw.charges().await.unwrap();
    let keys: Vec<(&str, &str)> = charges
        .iter()
        .map(|c| (c.idempotency_key.as_str(), c.outcome.as_str()))
        .collect();
    assert_eq!(
        keys,
        [
            ("k1", "succeeded"),
            ("k2", "declined"),
            ("k3", "declined"),
            ("k4", "succeeded")
        ]
    );
    assert!(charges[0].refunded && !charges[3].refunded);
    assert_eq!(charges[0].amount, Money::new(1500, Currency::EUR));

    // A crash of everyone around it loses nothing: the records are on disk.
    f.stop().await;
    let (f, gw) = fake(dir.path()).await;
    assert_eq!(gw.charges().await.unwrap().len(), 4);
    assert_eq!(gw.charge(&req("k1", "tok_visa", 1500)).await.unwrap(), ok);
    f.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_requests_under_one_key_charge_once() {
    let dir = tempfile::tempdir().unwrap();
    let (f, gw) = fake(dir.path()).await;
    let gw = Arc::new(gw);
    let tasks: Vec<_> = (0..20)
        .map(|_| {
            let gw = gw.clone();
            tokio::spawn(async move {
                // Retry while another request holds the key (Busy), as the workers do.
                loop {
                    match gw.charge(&req("same", "tok_visa", 700)).await {
                        Err(GatewayError::Busy(_)) => tokio::task::yield_now().await,
                        other => return other,
                    }
                }
            })
        })
        .collect();
    let mut ids = std::collections::BTreeSet::new();
    for t in tasks {
        match t.await.unwrap().unwrap() {
            ChargeOutcome::Succeeded { charge_id } => ids.insert(charge_id),
            other => panic!("{other:?}"),
        };
    }
    assert_eq!(ids.len(), 1);
    assert_eq!(gw.charges().await.unwrap().len(), 1);
    f.stop().await;
}

#[tokio::test]
async fn wrong_key_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (f, _) = fake(dir.path()).await;
    let bad = StripeGateway::new(&f.url(), "sk_live_nope", Duration::from_secs(5)).unwrap();
    assert!(matches!(
        bad.charge(&req("x", "tok_visa", 1)).await,
        Err(GatewayError::Rejected(_))
    ));
    f.stop().await;
}

async fn refunded(gw: &StripeGateway) -> (i64, bool) {
    let c = gw.charges().await.unwrap().pop().unwrap();
    (c.amount_refunded, c.refunded)
}

/// Partial refunds add up to at most the charge, and a refund repeated under its
/// key is one refund: what the refund worker relies on when it retries.
#[tokio::test]
async fn partial_refunds_add_up_and_keys_make_repeats_one_refund() {
    let dir = tempfile::tempdir().unwrap();
    let (f, gw) = fake(dir.path()).await;
    let ChargeOutcome::Succeeded { charge_id } =
        gw.charge(&req("p1", "tok_visa", 1000)).await.unwrap()
    else {
        panic!("not charged")
    };
    gw.refund(&charge_id, Some(300), "rfd-a").await.unwrap();
    // The same key again (a retry whose answer was lost): no second refund.
    gw.refund(&charge_id, Some(300), "rfd-a").await.unwrap();
    assert_eq!(refunded(&gw).await, (300, false));
    // More than is left: refused, nothing moves.
    assert!(matches!(
        gw.refund(&charge_id, Some(701), "rfd-b").await,
        Err(GatewayError::Rejected(_))
    ));
    assert_eq!(refunded(&gw).await, (300, false));
    // The rest: refunded in full.
    gw.refund(&charge_id, None, "rfd-c").await.unwrap();
    assert_eq!(refunded(&gw).await, (1000, true));
    f.stop().await;
}

/// A refund whose caller hangs up while the gateway works on it (a node killed
/// mid-call, a timeout) still finishes at the gateway, as at Stripe, so its key
/// gets its answer: the caller's retry under the key is that refund, not
/// `idempotency_key_in_use` for ever. (The fake ran refunds on the caller's
/// connection: a hang-up left the key "in progress" and the money was never given
/// back — a cancellation test whose node was SIGKILLed mid-job kept charges.)
#[tokio::test]
async fn a_refund_whose_caller_hangs_up_still_finishes_under_its_key() {
    let dir = tempfile::tempdir().unwrap();
    let (f, gw) = fake(dir.path()).await;
    let ChargeOutcome::Succeeded { charge_id } =
        gw.charge(&req("k-hang", "tok_visa", 1500)).await.unwrap()
    else {
        panic!("charge failed")
    };
    f.set_config(FakeStripeConfig {
        latency: Duration::from_millis(500),
        ..FakeStripeConfig::default()
    });
    let impatient =
        StripeGateway::new(&f.url(), TEST_SECRET_KEY, Duration::from_millis(100)).unwrap();
    assert!(impatient.refund(&charge_id, None, "r-hang").await.is_err());
    f.set_config(FakeStripeConfig::default());
    // The retry under the key: answered once the first call's work is done.
    let mut answer = Err(GatewayError::Transient("not tried".into()));
    for _ in 0..100 {
        answer = gw.refund(&charge_id, None, "r-hang").await;
        if answer.is_ok() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    answer.expect("the refund under its key, once its first call finished");
    let charges = gw.charges().await.unwrap();
    let c = charges
        .iter()
        .find(|c| c.idempotency_key == "k-hang")
        .unwrap();
    assert!(c.refunded, "{c:?}");
}
