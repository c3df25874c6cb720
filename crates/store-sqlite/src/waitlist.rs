//! The waitlist's line on SQLite: the single writer makes a join's look-up and
//! insert, and each conditional move, one decision.

use async_trait::async_trait;
use boxoffice_domain::{EventId, WaitlistEntry, WaitlistId, WaitlistState};
use boxoffice_ports::{StoreError, WaitlistMove, WaitlistStore};
use rusqlite::{params, Row};

use crate::db::{corrupt, dt, ms, parse, OrStore};
use crate::rows;
use crate::SqliteStore;

const COLUMNS: &str = "seq, id, event_id, customer_id, email, tier_id, quantity, state, hold_id, \
     offer_expires_at, claim_until, created_at";
const LIVE: &str = "state IN ('waiting', 'claimed', 'offered')";

fn entry(r: &Row) -> Result<WaitlistEntry, StoreError> {
    fn id<T: TryFrom<String>>(r: &Row, col: &str) -> Result<T, StoreError> {
        parse(T::try_from(r.get::<_, String>(col).db()?), col)
    }
    fn opt_id<T: TryFrom<String>>(r: &Row, col: &str) -> Result<Option<T>, StoreError> {
        r.get::<_, Option<String>>(col)
            .db()?
            .map(|s| parse(T::try_from(s), col))
            .transpose()
    }
    let at = |col: &str| -> Result<Option<time::OffsetDateTime>, StoreError> {
        Ok(r.get::<_, Option<i64>>(col).db()?.map(dt))
    };
    let state: String = r.get("state").db()?;
    Ok(WaitlistEntry {
        seq: r.get("seq").db()?,
        id: id(r, "id")?,
        event_id: id(r, "event_id")?,
        customer_id: id(r, "customer_id")?,
        email: r.get("email").db()?,
        tier_id: opt_id(r, "tier_id")?,
        quantity: u32::try_from(r.get::<_, i64>("quantity").db()?)
            .map_err(|_| corrupt("waitlist.quantity"))?,
        state: WaitlistState::parse(&state).ok_or_else(|| corrupt("waitlist.state"))?,
        hold_id: opt_id(r, "hold_id")?,
        offer_expires_at: at("offer_expires_at")?,
        claim_until: at("claim_until")?,
        created_at: dt(r.get("created_at").db()?),
    })
}

#[async_trait]
impl WaitlistStore for SqliteStore {
    async fn join_waitlist(&self, e: &WaitlistEntry) -> Result<WaitlistEntry, StoreError> {
        let e = e.clone();
        self.db
            .write(move |conn| {
                let live = format!(
                    "SELECT {COLUMNS} FROM waitlist WHERE event_id = ? AND customer_id = ? AND {LIVE}"
                );
                let ids = params![e.event_id.as_str(), e.customer_id.as_str()];
                if let Some(found) = rows::first(conn, &live, ids, entry)? {
                    return Ok(found);
                }
                conn.prepare_cached(
                    "INSERT INTO waitlist (id, event_id, customer_id, email, tier_id, quantity, state, created_at, updated_at) \
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, 'waiting', ?7, ?7)",
                )
                .db()?
                .execute(params![
                    e.id.as_str(),
                    e.event_id.as_str(),
                    e.customer_id.as_str(),
                    e.email,
                    e.tier_id.as_ref().map(|t| t.as_str()),
                    e.quantity,
                    ms(e.created_at)
                ])
                .db()?;
                rows::first(
                    conn,
                    &format!("SELECT {COLUMNS} FROM waitlist WHERE id = ?"),
                    [e.id.as_str()],
                    entry,
                )?
                .ok_or_else(|| corrupt("waitlist row just written"))
            })
            .await
    }

    async fn waitlist_entry(&self, id: &WaitlistId) -> Result<Option<WaitlistEntry>, StoreError> {
        let id = id.as_str().to_owned();
        self.db
            .read(move |conn| {
                rows::first(
                    conn,
                    &format!("SELECT {COLUMNS} FROM waitlist WHERE id = ?"),
                    [id],
                    entry,
                )
            })
            .await
    }

    async fn waitlist_events(&self) -> Result<Vec<EventId>, StoreError> {
        self.db
            .read(move |conn| {
                rows::all(
                    conn,
                    &format!("SELECT DISTINCT event_id FROM waitlist WHERE {LIVE}"),
                    [],
                    |r| parse(EventId::try_from(r.get::<_, String>(0).db()?), "event_id"),
                )
            })
            .await
    }

    async fn waitlist_line(&self, event: &EventId) -> Result<Vec<WaitlistEntry>, StoreError> {
        let event = event.as_str().to_owned();
        self.db
            .read(move |conn| {
                rows::all(
                    conn,
                    &format!(
                        "SELECT {COLUMNS} FROM waitlist WHERE event_id = ? AND {LIVE} ORDER BY seq"
                    ),
                    [event],
                    entry,
                )
            })
            .await
    }

    async fn move_waitlist(&self, m: &WaitlistMove) -> Result<bool, StoreError> {
        let m = m.clone();
        self.db
            .write(move |conn| {
                let from = m
                    .from
                    .iter()
                    .map(|s| s.as_str())
                    .collect::<Vec<_>>()
                    .join(",");
                let (claim_hold, claim_until) = match &m.claim {
                    Some((h, until)) => (Some(h.as_str().to_owned()), Some(ms(*until))),
                    None => (None, None),
                };
                let n = conn
                    .prepare_cached(
                        "UPDATE waitlist SET state = ?1, \
                             hold_id = CASE WHEN ?1 = 'waiting' THEN NULL ELSE COALESCE(?2, hold_id) END, \
                             claim_until = ?3, updated_at = ?4 \
                         WHERE id = ?5 AND instr(',' || ?6 || ',', ',' || state || ',') > 0 \
                           AND (?7 IS NULL OR hold_id = ?7)",
                    )
                    .db()?
                    .execute(params![
                        m.to.as_str(),
                        claim_hold,
                        claim_until,
                        ms(m.now),
                        m.entry.as_str(),
                        from,
                        m.hold.as_ref().map(|h| h.as_str())
                    ])
                    .db()?;
                Ok(n == 1)
            })
            .await
    }
}
