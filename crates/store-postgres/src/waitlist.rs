//! The waitlist's line on PostgreSQL. A join is one insert that the partial unique
//! index `waitlist_live_customer` turns into "the entry already there" when two
//! joins race; each move is one conditional UPDATE, so of two nodes claiming an
//! entry one wins.

use async_trait::async_trait;
use boxoffice_domain::{EventId, WaitlistEntry, WaitlistId, WaitlistState};
use boxoffice_ports::{StoreError, WaitlistMove, WaitlistStore};
use time::OffsetDateTime;

use crate::{corrupt, map_err, ts, PgStore};

const COLUMNS: &str = "seq, id, event_id, customer_id, email, tier_id, quantity, state, hold_id, \
     offer_expires_at, claim_until, created_at";
const LIVE: &str = "state IN ('waiting', 'claimed', 'offered')";

#[derive(sqlx::FromRow)]
struct Row {
    seq: i64,
    id: String,
    event_id: String,
    customer_id: String,
    email: String,
    tier_id: Option<String>,
    quantity: i32,
    state: String,
    hold_id: Option<String>,
    offer_expires_at: Option<OffsetDateTime>,
    claim_until: Option<OffsetDateTime>,
    created_at: OffsetDateTime,
}

fn parsed<T: TryFrom<String>>(s: String, what: &str) -> Result<T, StoreError> {
    T::try_from(s).map_err(|_| corrupt(what))
}

impl TryFrom<Row> for WaitlistEntry {
    type Error = StoreError;
    fn try_from(r: Row) -> Result<Self, StoreError> {
        Ok(WaitlistEntry {
            seq: r.seq,
            id: parsed(r.id, "waitlist.id")?,
            event_id: parsed(r.event_id, "waitlist.event_id")?,
            customer_id: parsed(r.customer_id, "waitlist.customer_id")?,
            email: r.email,
            tier_id: r
                .tier_id
                .map(|t| parsed(t, "waitlist.tier_id"))
                .transpose()?,
            quantity: u32::try_from(r.quantity).map_err(|_| corrupt("waitlist.quantity"))?,
            state: WaitlistState::parse(&r.state).ok_or_else(|| corrupt("waitlist.state"))?,
            hold_id: r
                .hold_id
                .map(|h| parsed(h, "waitlist.hold_id"))
                .transpose()?,
            offer_expires_at: r.offer_expires_at,
            claim_until: r.claim_until,
            created_at: r.created_at,
        })
    }
}

#[async_trait]
impl WaitlistStore for PgStore {
    async fn join_waitlist(&self, e: &WaitlistEntry) -> Result<WaitlistEntry, StoreError> {
        // The entry already there may leave between the insert and the read: try again.
        for _ in 0..3 {
            let inserted: Option<Row> = sqlx::query_as(&format!(
                "INSERT INTO waitlist (id, event_id, customer_id, email, tier_id, quantity, state, created_at, updated_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, 'waiting', $7, $7) \
                 ON CONFLICT (event_id, customer_id) WHERE {LIVE} DO NOTHING \
                 RETURNING {COLUMNS}"
            ))
            .bind(e.id.as_str())
            .bind(e.event_id.as_str())
            .bind(e.customer_id.as_str())
            .bind(&e.email)
            .bind(e.tier_id.as_ref().map(|t| t.as_str()))
            .bind(e.quantity as i32)
            .bind(ts(e.created_at))
            .fetch_optional(&self.pool)
            .await
            .map_err(map_err)?;
            if let Some(r) = inserted {
                return r.try_into();
            }
            let found: Option<Row> = sqlx::query_as(&format!(
                "SELECT {COLUMNS} FROM waitlist WHERE event_id = $1 AND customer_id = $2 AND {LIVE}"
            ))
            .bind(e.event_id.as_str())
            .bind(e.customer_id.as_str())
            .fetch_optional(&self.pool)
            .await
            .map_err(map_err)?;
            if let Some(r) = found {
                return r.try_into();
            }
        }
        Err(StoreError::Unavailable(anyhow::anyhow!(
            "the waitlist entry kept changing while joining"
        )))
    }

    async fn waitlist_entry(&self, id: &WaitlistId) -> Result<Option<WaitlistEntry>, StoreError> {
        let row: Option<Row> =
            sqlx::query_as(&format!("SELECT {COLUMNS} FROM waitlist WHERE id = $1"))
                .bind(id.as_str())
                .fetch_optional(&self.pool)
                .await
                .map_err(map_err)?;
        row.map(TryInto::try_into).transpose()
    }

    async fn waitlist_events(&self) -> Result<Vec<EventId>, StoreError> {
        let ids: Vec<String> = sqlx::query_scalar(&format!(
            "SELECT DISTINCT event_id FROM waitlist WHERE {LIVE}"
        ))
        .fetch_all(&self.pool)
        .await
        .map_err(map_err)?;
        ids.into_iter()
            .map(|i| parsed(i, "waitlist.event_id"))
            .collect()
    }

    async fn waitlist_line(&self, event: &EventId) -> Result<Vec<WaitlistEntry>, StoreError> {
        let rows: Vec<Row> = sqlx::query_as(&format!(
            "SELECT {COLUMNS} FROM waitlist WHERE event_id = $1 AND {LIVE} ORDER BY seq"
        ))
        .bind(event.as_str())
        .fetch_all(&self.pool)
        .await
        .map_err(map_err)?;
        rows.into_iter().map(TryInto::try_into).collect()
    }

    async fn move_waitlist(&self, m: &WaitlistMove) -> Result<bool, StoreError> {
        let from: Vec<&str> = m.from.iter().map(|s| s.as_str()).collect();
        let (claim_hold, claim_until) = match &m.claim {
            Some((h, until)) => (Some(h.as_str()), Some(ts(*until))),
            None => (None, None),
        };
        let n = sqlx::query(
            "UPDATE waitlist SET state = $1, \
                 hold_id = CASE WHEN $1 = 'waiting' THEN NULL ELSE COALESCE($2, hold_id) END, \
                 claim_until = $3, updated_at = $4 \
             WHERE id = $5 AND state = ANY($6::text[]) AND ($7::text IS NULL OR hold_id = $7)",
        )
        .bind(m.to.as_str())
        .bind(claim_hold)
        .bind(claim_until)
        .bind(ts(m.now))
        .bind(m.entry.as_str())
        .bind(from)
        .bind(m.hold.as_ref().map(|h| h.as_str()))
        .execute(&self.pool)
        .await
        .map_err(map_err)?
        .rows_affected();
        Ok(n == 1)
    }
}
