//! A client of Stripe's Charges API: enough of it to charge a token under an
//! idempotency key, refund, and list charges.

use async_trait::async_trait;
use boxoffice_domain::{Currency, Money};
use boxoffice_ports::{ChargeOutcome, ChargeRecord, ChargeRequest, GatewayError, PaymentGateway};
use reqwest::StatusCode;
use serde::Deserialize;
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
    metadata: std::collections::HashMap<String, String>,
}

#[derive(Deserialize)]
struct List {
    data: Vec<Charge>,
    has_more: bool,
}

fn transport(e: reqwest::Error) -> GatewayError {
    // Timeouts, refused connections, resets: the request may or may not have
    // arrived, so it is retried under the same key.
    GatewayError::Transient(e.to_string())
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
            || status == StatusCode::TOO_MANY_REQUESTS
            || status.is_server_error()
        {
            GatewayError::Transient(what)
        } else {
            GatewayError::Rejected(what)
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
            ("source", req.token.as_str()),
            ("description", req.description.as_str()),
            ("metadata[order_id]", req.order_id.as_str()),
            ("metadata[idempotency_key]", req.idempotency_key.as_str()),
        ];
        let res = self
            .http
            .post(format!("{}/v1/charges", self.base))
            .bearer_auth(&self.secret_key)
            .header("Idempotency-Key", &req.idempotency_key)
            .form(&form)
            .send()
            .await
            .map_err(transport)?;
        if res.status().is_success() {
            let charge: Charge = res.json().await.map_err(transport)?;
            return match charge.status.as_str() {
                "succeeded" => Ok(ChargeOutcome::Succeeded {
                    charge_id: charge.id,
                }),
                other => Err(GatewayError::Transient(format!("charge is {other}"))),
            };
        }
        let (status, err) = Self::error_of(res).await;
        match &err {
            Some(e) if status == StatusCode::PAYMENT_REQUIRED && e.kind == "card_error" => {
                // Stripe puts the issuer's reason in decline_code; "generic_decline"
                // says no more than the code does.
                let code = match (&e.decline_code, &e.code) {
                    (Some(d), _) if d != "generic_decline" => d.clone(),
                    (_, Some(c)) => c.clone(),
                    _ => "card_declined".to_owned(),
                };
                Ok(ChargeOutcome::Declined { code })
            }
            _ => Err(Self::classify(status, err.as_ref())),
        }
    }

    async fn refund(&self, charge_id: &str, idempotency_key: &str) -> Result<(), GatewayError> {
        let res = self
            .http
            .post(format!("{}/v1/refunds", self.base))
            .bearer_auth(&self.secret_key)
            .header("Idempotency-Key", idempotency_key)
            .form(&[("charge", charge_id)])
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
            let page: List = res.json().await.map_err(transport)?;
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
