//! A client of Stripe's PaymentIntents API: enough of it to take a payment under an
//! idempotency key (create and confirm in one call), follow it through 3-D Secure
//! and delayed settlement, cancel one its buyer abandoned, refund, and list charges.
//!
//! A repeated create under the same key is answered by Stripe with the first
//! answer (`Idempotent-Replayed: true`); when that answer was not final, the
//! payment is read again (`GET /v1/payment_intents/{id}`), so a repeat always says
//! where the payment stands now. That is how a lost answer, a webhook and the
//! reconciler all learn the truth the same way.

use async_trait::async_trait;
use boxoffice_domain::{Currency, Money};
use boxoffice_ports::{
    ChargeOutcome, ChargeRecord, ChargeRequest, GatewayError, KeyState, NextAction, PaymentGateway,
};
use reqwest::StatusCode;
use serde::Deserialize;
use std::collections::HashMap;
use std::fmt;
use std::time::Duration;

pub struct StripeGateway {
    base: String,
    secret_key: String,
    http: reqwest::Client,
}

impl fmt::Debug for StripeGateway {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StripeGateway")
            .field("base", &self.base)
            .finish_non_exhaustive()
    }
}

#[derive(Deserialize)]
struct ErrorBody {
    error: StripeError,
}

#[derive(Deserialize)]
struct StripeError {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    code: Option<String>,
    #[serde(default)]
    decline_code: Option<String>,
    #[serde(default)]
    message: Option<String>,
    /// Declines and state errors carry the PaymentIntent as it now stands.
    #[serde(default)]
    payment_intent: Option<PaymentIntent>,
}

#[derive(Deserialize)]
struct PaymentIntent {
    id: String,
    status: String,
    #[serde(default)]
    next_action: Option<RawNextAction>,
    #[serde(default)]
    last_payment_error: Option<LastError>,
    #[serde(default)]
    client_secret: Option<String>,
}

#[derive(Deserialize)]
struct LastError {
    #[serde(default)]
    code: Option<String>,
    #[serde(default)]
    decline_code: Option<String>,
}

#[derive(Deserialize)]
struct RawNextAction {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    redirect_to_url: Option<Url>,
    #[serde(default)]
    use_stripe_sdk: Option<StripeSdk>,
}

#[derive(Deserialize)]
struct Url {
    #[serde(default)]
    url: Option<String>,
}

#[derive(Deserialize)]
struct StripeSdk {
    /// The page of a `three_d_secure_redirect`.
    #[serde(default)]
    stripe_js: Option<String>,
}

#[derive(Deserialize)]
struct Charge {
    id: String,
    amount: i64,
    currency: String,
    status: String,
    #[serde(default)]
    refunded: bool,
    #[serde(default)]
    amount_refunded: i64,
    #[serde(default)]
    refunds: Option<RefundList>,
    #[serde(default)]
    metadata: HashMap<String, String>,
}

#[derive(Deserialize)]
struct RefundList {
    #[serde(default)]
    total_count: u64,
}

#[derive(Deserialize)]
struct List<T> {
    data: Vec<T>,
    #[serde(default)]
    has_more: bool,
}

fn transport(e: reqwest::Error) -> GatewayError {
    // Timeouts, refused connections, resets, a body cut short: the request may or
    // may not have done its work, so it is repeated under the same key.
    GatewayError::Transient(e.to_string())
}

/// The issuer's reason when it gives one ("generic_decline" says no more than the
/// code does).
fn decline_code(code: Option<&String>, decline: Option<&String>) -> String {
    match (decline, code) {
        (Some(d), _) if d != "generic_decline" => d.clone(),
        (_, Some(c)) => c.clone(),
        _ => "card_declined".to_owned(),
    }
}

fn outcome_of(pi: PaymentIntent) -> Result<ChargeOutcome, GatewayError> {
    Ok(match pi.status.as_str() {
        "succeeded" => ChargeOutcome::Succeeded { charge_id: pi.id },
        "processing" => ChargeOutcome::Processing { payment_id: pi.id },
        "requires_action" => {
            let raw = pi.next_action.as_ref();
            let url = raw.and_then(|n| {
                n.redirect_to_url
                    .as_ref()
                    .and_then(|r| r.url.clone())
                    .or_else(|| n.use_stripe_sdk.as_ref().and_then(|s| s.stripe_js.clone()))
            });
            ChargeOutcome::RequiresAction {
                next_action: NextAction {
                    kind: raw.map_or_else(|| "use_stripe_sdk".to_owned(), |n| n.kind.clone()),
                    url,
                    client_secret: pi.client_secret.clone(),
                },
                payment_id: pi.id,
            }
        }
        // A confirmation that failed leaves the intent waiting for another payment
        // method; for this order that is a decline.
        "requires_payment_method" | "canceled" => ChargeOutcome::Declined {
            code: match &pi.last_payment_error {
                Some(e) => decline_code(e.code.as_ref(), e.decline_code.as_ref()),
                None if pi.status == "canceled" => "payment_canceled".to_owned(),
                None => "card_declined".to_owned(),
            },
        },
        other => {
            return Err(GatewayError::Rejected(format!(
                "payment intent {} is {other}, which this client never asks for",
                pi.id
            )))
        }
    })
}

impl StripeGateway {
    /// `base` is `https://api.stripe.com` in production.
    pub fn new(base: &str, secret_key: &str, timeout: Duration) -> anyhow::Result<Self> {
        Ok(Self {
            base: base.trim_end_matches('/').to_owned(),
            secret_key: secret_key.to_owned(),
            http: reqwest::Client::builder()
                .timeout(timeout)
                .pool_max_idle_per_host(256)
                .build()?,
        })
    }

    async fn error_of(res: reqwest::Response) -> (StatusCode, Option<StripeError>) {
        let status = res.status();
        let body = res.json::<ErrorBody>().await.ok().map(|b| b.error);
        (status, body)
    }

    fn classify(status: StatusCode, err: Option<&StripeError>) -> GatewayError {
        let what = err
            .and_then(|e| e.message.clone())
            .unwrap_or_else(|| status.to_string());
        if status == StatusCode::CONFLICT
            && err.and_then(|e| e.code.as_deref()) == Some("idempotency_key_in_use")
        {
            GatewayError::Busy(what)
        } else if status == StatusCode::CONFLICT
            || status == StatusCode::TOO_MANY_REQUESTS
            || status.is_server_error()
        {
            GatewayError::Transient(what)
        } else {
            GatewayError::Rejected(what)
        }
    }

    /// A PaymentIntent as it stands now.
    async fn retrieve(&self, id: &str) -> Result<ChargeOutcome, GatewayError> {
        let res = self
            .http
            .get(format!("{}/v1/payment_intents/{id}", self.base))
            .bearer_auth(&self.secret_key)
            .send()
            .await
            .map_err(transport)?;
        if !res.status().is_success() {
            let (status, err) = Self::error_of(res).await;
            return Err(Self::classify(status, err.as_ref()));
        }
        outcome_of(res.json().await.map_err(transport)?)
    }

    /// The answer to a call that returns a PaymentIntent, or a card error carrying one.
    async fn intent_answer(&self, res: reqwest::Response) -> Result<ChargeOutcome, GatewayError> {
        if res.status().is_success() {
            let replayed = res
                .headers()
                .get("idempotent-replayed")
                .is_some_and(|v| v == "true");
            let outcome = outcome_of(res.json().await.map_err(transport)?)?;
            return match outcome {
                // The first answer, replayed: the payment may have moved on since.
                ChargeOutcome::RequiresAction { payment_id, .. }
                | ChargeOutcome::Processing { payment_id }
                    if replayed =>
                {
                    self.retrieve(&payment_id).await
                }
                o => Ok(o),
            };
        }
        let (status, err) = Self::error_of(res).await;
        match err {
            Some(e) if status == StatusCode::PAYMENT_REQUIRED && e.kind == "card_error" => {
                Ok(ChargeOutcome::Declined {
                    code: decline_code(e.code.as_ref(), e.decline_code.as_ref()),
                })
            }
            Some(StripeError {
                payment_intent: Some(pi),
                code: Some(code),
                ..
            }) if code == "payment_intent_unexpected_state" => outcome_of(pi),
            e => Err(Self::classify(status, e.as_ref())),
        }
    }
}

#[async_trait]
impl PaymentGateway for StripeGateway {
    async fn charge(&self, req: &ChargeRequest) -> Result<ChargeOutcome, GatewayError> {
        let amount = req.amount.amount.to_string();
        let currency = req.amount.currency.as_str().to_lowercase();
        let form = [
            ("amount", amount.as_str()),
            ("currency", currency.as_str()),
            ("confirm", "true"),
            ("payment_method_types[]", "card"),
            ("payment_method_data[type]", "card"),
            ("payment_method_data[card][token]", req.token.as_str()),
            ("description", req.description.as_str()),
            ("metadata[order_id]", req.order_id.as_str()),
            ("metadata[idempotency_key]", req.idempotency_key.as_str()),
        ];
        let res = self
            .http
            .post(format!("{}/v1/payment_intents", self.base))
            .bearer_auth(&self.secret_key)
            .header("Idempotency-Key", &req.idempotency_key)
            .form(&form)
            .send()
            .await
            .map_err(transport)?;
        self.intent_answer(res).await
    }

    async fn close_key(&self, req: &ChargeRequest) -> Result<KeyState, GatewayError> {
        let amount = req.amount.amount.to_string();
        let currency = req.amount.currency.as_str().to_lowercase();
        // Not confirmed: at Stripe an intent that waits for a payment method and
        // charges nobody; the key's first use if nothing used it before.
        let form = [
            ("amount", amount.as_str()),
            ("currency", currency.as_str()),
            ("confirm", "false"),
            ("payment_method_types[]", "card"),
            (
                "description",
                "payment deadline passed: no charge under this key",
            ),
            ("metadata[order_id]", req.order_id.as_str()),
            ("metadata[idempotency_key]", req.idempotency_key.as_str()),
            ("metadata[closed]", "true"),
        ];
        let res = self
            .http
            .post(format!("{}/v1/payment_intents", self.base))
            .bearer_auth(&self.secret_key)
            .header("Idempotency-Key", &req.idempotency_key)
            .form(&form)
            .send()
            .await
            .map_err(transport)?;
        if res.status().is_success() {
            return Ok(KeyState::Unused);
        }
        let (status, err) = Self::error_of(res).await;
        match err.as_ref() {
            // Used before with the charge's parameters, or in use right now.
            Some(e) if e.kind == "idempotency_error" => Ok(KeyState::Used),
            // A gateway that refuses unconfirmed intents (the test gateway) still
            // stores that answer as the key's first.
            Some(e) if status == StatusCode::BAD_REQUEST && e.kind == "invalid_request_error" => {
                Ok(KeyState::Unused)
            }
            e => Err(Self::classify(status, e)),
        }
    }

    async fn payment(&self, payment_id: &str) -> Result<ChargeOutcome, GatewayError> {
        self.retrieve(payment_id).await
    }

    async fn cancel(&self, payment_id: &str) -> Result<ChargeOutcome, GatewayError> {
        let res = self
            .http
            .post(format!(
                "{}/v1/payment_intents/{payment_id}/cancel",
                self.base
            ))
            .bearer_auth(&self.secret_key)
            .header("Idempotency-Key", format!("cancel-{payment_id}"))
            .form(&[("cancellation_reason", "abandoned")])
            .send()
            .await
            .map_err(transport)?;
        self.intent_answer(res).await
    }

    async fn next_action(&self, order_id: &str) -> Result<Option<NextAction>, GatewayError> {
        // Search is eventually consistent at Stripe (a second or so): this is for
        // showing the buyer what to do, never for deciding an order.
        let query = format!("metadata['order_id']:'{order_id}'");
        let res = self
            .http
            .get(format!("{}/v1/payment_intents/search", self.base))
            .bearer_auth(&self.secret_key)
            .query(&[("query", query.as_str())])
            .send()
            .await
            .map_err(transport)?;
        if !res.status().is_success() {
            let (status, err) = Self::error_of(res).await;
            return Err(Self::classify(status, err.as_ref()));
        }
        let page: List<PaymentIntent> = res.json().await.map_err(transport)?;
        for pi in page.data {
            if let ChargeOutcome::RequiresAction { next_action, .. } = outcome_of(pi)? {
                return Ok(Some(next_action));
            }
        }
        Ok(None)
    }

    async fn refund(
        &self,
        charge_id: &str,
        amount: Option<i64>,
        idempotency_key: &str,
    ) -> Result<(), GatewayError> {
        let what = if charge_id.starts_with("pi_") {
            "payment_intent"
        } else {
            "charge"
        };
        let mut form = vec![(what, charge_id.to_owned())];
        if let Some(a) = amount {
            form.push(("amount", a.to_string()));
        }
        let res = self
            .http
            .post(format!("{}/v1/refunds", self.base))
            .bearer_auth(&self.secret_key)
            .header("Idempotency-Key", idempotency_key)
            .form(&form)
            .send()
            .await
            .map_err(transport)?;
        if res.status().is_success() {
            return Ok(());
        }
        let (status, err) = Self::error_of(res).await;
        match err {
            Some(e) if e.code.as_deref() == Some("charge_already_refunded") => Ok(()),
            e => Err(Self::classify(status, e.as_ref())),
        }
    }

    async fn charges(&self) -> Result<Vec<ChargeRecord>, GatewayError> {
        let mut out = Vec::new();
        let mut after: Option<String> = None;
        loop {
            let mut url = format!("{}/v1/charges?limit=100", self.base);
            if let Some(a) = &after {
                url.push_str(&format!("&starting_after={a}"));
            }
            let res = self
                .http
                .get(url)
                .bearer_auth(&self.secret_key)
                .send()
                .await
                .map_err(transport)?;
            if !res.status().is_success() {
                let (status, err) = Self::error_of(res).await;
                return Err(Self::classify(status, err.as_ref()));
            }
            let page: List<Charge> = res.json().await.map_err(transport)?;
            after = page.data.last().map(|c| c.id.clone());
            for c in page.data {
                let currency = Currency::try_from(c.currency.to_uppercase().as_str())
                    .map_err(|e| GatewayError::Rejected(e.to_string()))?;
                out.push(ChargeRecord {
                    idempotency_key: c
                        .metadata
                        .get("idempotency_key")
                        .cloned()
                        .unwrap_or_default(),
                    order_id: c.metadata.get("order_id").cloned().unwrap_or_default(),
                    amount: Money::new(c.amount, currency),
                    outcome: if c.status == "succeeded" {
                        "succeeded"
                    } else {
                        "declined"
                    }
                    .to_owned(),
                    refunded: c.refunded,
                    amount_refunded: c.amount_refunded,
                    refunds: c.refunds.map_or(0, |r| r.total_count),
                    charge_id: c.id,
                });
            }
            if !page.has_more || after.is_none() {
                break;
            }
        }
        // Stripe lists newest first.
        out.reverse();
        Ok(out)
    }
}
