//! The waitlist (issue 12): customers line up for a sold-out event or tier; when
//! seats come back (a hold expired or released, a payment failed, an order
//! refunded), the next in line is offered them: a hold made in their name through
//! the ordinary hold path (engine decides, store records, with the per-order and
//! per-customer caps), valid for `AppSettings::waitlist_offer` and announced by
//! email through the outbox. An offer left unclaimed expires with its hold, and
//! its seats go to the next in line.
//!
//! Offers are made by a pass ([`App::waitlist_pass`]) that every node runs with its
//! sweeper, and at once on the node that freed seats. It keeps nothing in memory:
//! the line is in the store, so a restart or another node carries on. Each offer
//! first claims its entry in the store (a conditional update naming the hold it is
//! about to make), so two nodes never offer one entry twice; the engine's atomic
//! hold means no seat goes to two people. A claim whose hold fails is given back;
//! one left by a dead node is finished (its hold was recorded) or given back (it
//! was not) once its lease has run out.
//!
//! The line is first come, first served per kind of ticket: an entry that does not
//! fit in what is free keeps those behind it from taking the same kind of ticket
//! (a GA tier, a seated tier, or "any seat", which shares with every seated tier).
//!
//! This module must never decide a seat itself: it asks for holds like a buyer.

use boxoffice_domain::{
    inventory::AVAILABLE, HoldItems, HoldSelection, HoldStatus, MessageId, Role, TierId,
    WaitlistEntry, WaitlistId, WaitlistState,
};
use boxoffice_ports::{WaitlistMove, Write, Written};
use serde::Deserialize;
use std::sync::Arc;
use std::time::Duration;
use time::OffsetDateTime;

use crate::catalog::CachedEvent;
use crate::holds::{invalid, BestAvailableAsk, OfferHold};
use crate::{App, AppError, Principal};

/// How long a node owns a claim before another node may finish or undo it: far
/// longer than making one hold takes.
const CLAIM_LEASE: Duration = Duration::from_secs(60);

/// `{"quantity": n, "tier_id"?: "…"}`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WaitlistAsk {
    pub quantity: i64,
    #[serde(default)]
    pub tier_id: Option<String>,
}

/// An entry as its owner sees it.
#[derive(Debug, Clone)]
pub struct WaitlistView {
    pub entry: WaitlistEntry,
    /// 1 for the next in line; `None` once no longer waiting.
    pub position: Option<u64>,
}

/// What kind of ticket an entry waits for: who it competes with in the line.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Scope {
    Ga(TierId),
    Seated(TierId),
    AnySeat,
}

impl Scope {
    fn of(e: &WaitlistEntry, ev: &CachedEvent) -> Self {
        match &e.tier_id {
            None => Scope::AnySeat,
            Some(t) if ev.event().ga_tier(t).is_some() => Scope::Ga(t.clone()),
            Some(t) => Scope::Seated(t.clone()),
        }
    }

    fn overlaps(&self, other: &Scope) -> bool {
        match (self, other) {
            (Scope::AnySeat, Scope::AnySeat | Scope::Seated(_))
            | (Scope::Seated(_), Scope::AnySeat) => true,
            (a, b) => a == b,
        }
    }
}

impl App {
    /// Joins the event's waitlist; `true` if the entry is new (joining again
    /// answers the live entry the customer has).
    pub async fn join_waitlist(
        &self,
        who: &Principal,
        event_id: &str,
        ask: WaitlistAsk,
    ) -> Result<(WaitlistView, bool), AppError> {
        let ev = self.visible_event(Some(who), event_id).await?;
        let event = ev.event();
        let line = self.store.waitlist_line(&event.id).await?;
        if let Some(mine) = line.iter().find(|e| e.customer_id == who.user_id) {
            return Ok((self.view_in(mine.clone(), &line), false));
        }
        let now = self.clock.now();
        if !event.sale_open(now) {
            return Err(AppError::NotOnSale);
        }
        let max = event.max_tickets_per_order;
        if ask.quantity <= 0 || ask.quantity > i64::from(max) {
            return Err(invalid("quantity", format!("must be between 1 and {max}")));
        }
        let quantity = ask.quantity as u32;
        if let Some(limit) = event.max_tickets_per_customer {
            if quantity > limit {
                return Err(AppError::CustomerLimitReached { limit });
            }
        }
        let tier_id = match &ask.tier_id {
            None if event.tiers.is_empty() => {
                return Err(invalid(
                    "tier_id",
                    "this event has general admission only: name its tier",
                ))
            }
            None => None,
            Some(t) => Some(
                TierId::try_from(t.as_str())
                    .ok()
                    .filter(|t| event.tier(t).is_some() || event.ga_tier(t).is_some())
                    .ok_or_else(|| invalid("tier_id", "not a tier of this event"))?,
            ),
        };
        // Seats free and nobody waiting: the customer can buy them now.
        let waiting = line.iter().any(|e| e.state != WaitlistState::Offered);
        if !waiting {
            let free = self.free_in(&ev, tier_id.as_ref()).await?;
            if free >= quantity {
                return Err(AppError::SeatsAvailable { available: free });
            }
        }
        let email = self
            .store
            .user(&who.user_id)
            .await?
            .ok_or(AppError::Unauthenticated)?
            .email
            .as_str()
            .to_owned();
        let entry = WaitlistEntry {
            id: WaitlistId::new(),
            event_id: event.id.clone(),
            customer_id: who.user_id.clone(),
            email,
            tier_id,
            quantity,
            state: WaitlistState::Waiting,
            seq: 0,
            hold_id: None,
            offer_expires_at: None,
            claim_until: None,
            created_at: now,
        };
        let stored = self.store.join_waitlist(&entry).await?;
        let created = stored.id == entry.id;
        metrics::counter!("boxoffice_waitlist_joins_total").increment(u64::from(created));
        // Seats may be free for the line already (freed before anyone waited).
        self.nudge_waitlist();
        let line = self.store.waitlist_line(&event.id).await?;
        Ok((self.view_in(stored, &line), created))
    }

    /// An entry, to its owner (or an admin).
    pub async fn waitlist_entry(
        &self,
        who: &Principal,
        id: &str,
    ) -> Result<WaitlistView, AppError> {
        let entry = self.owned_entry(who, id).await?;
        let line = if matches!(entry.state, WaitlistState::Waiting | WaitlistState::Claimed) {
            self.store.waitlist_line(&entry.event_id).await?
        } else {
            Vec::new()
        };
        Ok(self.view_in(entry, &line))
    }

    /// Leaves the line; an offer not taken yet is given up (its hold released, so
    /// its seats go to the next). Leaving twice, or after the offer ended, is fine.
    pub async fn leave_waitlist(&self, who: &Principal, id: &str) -> Result<(), AppError> {
        let entry = self.owned_entry(who, id).await?;
        let left = self
            .store
            .move_waitlist(&WaitlistMove {
                entry: entry.id.clone(),
                from: vec![
                    WaitlistState::Waiting,
                    WaitlistState::Claimed,
                    WaitlistState::Offered,
                ],
                hold: None,
                to: WaitlistState::Left,
                claim: None,
                now: self.clock.now(),
            })
            .await?;
        if left && entry.state == WaitlistState::Offered {
            if let Some(hold) = &entry.hold_id {
                let owner = Principal {
                    user_id: entry.customer_id.clone(),
                    role: Role::Customer,
                    org: None,
                    origin: Default::default(),
                };
                match self.release_hold(&owner, hold.as_str()).await {
                    Ok(()) | Err(AppError::HoldExpired | AppError::HoldConverted) => {}
                    Err(e) => return Err(e),
                }
            }
        }
        Ok(())
    }

    async fn owned_entry(&self, who: &Principal, id: &str) -> Result<WaitlistEntry, AppError> {
        let id = WaitlistId::try_from(id).map_err(|_| AppError::NotFound)?;
        match self.store.waitlist_entry(&id).await? {
            Some(e) if who.may_see(&e.customer_id) => Ok(e),
            _ => Err(AppError::NotFound),
        }
    }

    fn view_in(&self, entry: WaitlistEntry, line: &[WaitlistEntry]) -> WaitlistView {
        let position =
            matches!(entry.state, WaitlistState::Waiting | WaitlistState::Claimed).then(|| {
                line.iter()
                    .filter(|e| {
                        matches!(e.state, WaitlistState::Waiting | WaitlistState::Claimed)
                            && e.seq <= entry.seq
                    })
                    .count()
                    .max(1) as u64
            });
        WaitlistView { entry, position }
    }

    /// Tickets free now in `tier` (`None`: any seat).
    async fn free_in(&self, ev: &CachedEvent, tier: Option<&TierId>) -> Result<u32, AppError> {
        let map = self.live_seat_map(ev).await?;
        if let Some(t) = tier {
            if let Some((ix, _)) = ev.event().ga_tier(t) {
                return Ok(map.ga.get(ix).map_or(0, |(_, c)| c.remaining()));
            }
        }
        let table = self.seat_table(ev).await?;
        Ok(map
            .status
            .iter()
            .zip(&table.layout)
            .filter(|(s, seat)| **s == AVAILABLE && tier.is_none_or(|t| &seat.tier_id == t))
            .count() as u32)
    }

    /// Asks for a pass soon on this node (seats were freed here).
    pub(crate) fn nudge_waitlist(&self) {
        self.waitlist_nudge.notify_one();
    }

    /// One offering pass over every event with a line: records what became of
    /// offers (taken, lapsed), finishes or undoes claims left by dead nodes, and
    /// offers free seats to the next in line. Returns the offers made.
    pub async fn waitlist_pass(&self) -> Result<u32, AppError> {
        let mut offers = 0;
        for event in self.store.waitlist_events().await? {
            match self.waitlist_pass_event(&event).await {
                Ok(n) => offers += n,
                Err(e) => tracing::warn!(%event, error = ?e, "waitlist pass failed for an event"),
            }
        }
        Ok(offers)
    }

    async fn waitlist_pass_event(
        &self,
        event_id: &boxoffice_domain::EventId,
    ) -> Result<u32, AppError> {
        let ev = self.cached_event(event_id).await?;
        let line = self.store.waitlist_line(event_id).await?;
        let mut blocked: Vec<Scope> = Vec::new();
        let mut offers = 0;
        for entry in line {
            let now = self.clock.now();
            match entry.state {
                WaitlistState::Offered => self.settle_offer(&entry, now).await?,
                WaitlistState::Claimed => {
                    if entry.claim_until.is_some_and(|t| t <= now) {
                        self.recover_claim(&entry, now).await?;
                    }
                    // In another node's hands (or just given back): it keeps its
                    // place; those behind it wait for this pass or the next.
                    blocked.push(Scope::of(&entry, &ev));
                }
                WaitlistState::Waiting => {
                    let scope = Scope::of(&entry, &ev);
                    if blocked.iter().any(|b| b.overlaps(&scope)) {
                        continue;
                    }
                    if !ev.event().sale_open(now) {
                        continue;
                    }
                    match self.offer(&ev, &entry).await? {
                        Offered::Yes => offers += 1,
                        Offered::NotNow => blocked.push(scope),
                        Offered::Skip => {}
                    }
                }
                _ => {}
            }
        }
        Ok(offers)
    }

    /// What became of an offer: taken (converted), or lapsed (expired, released).
    async fn settle_offer(
        &self,
        entry: &WaitlistEntry,
        now: OffsetDateTime,
    ) -> Result<(), AppError> {
        let Some(hold_id) = &entry.hold_id else {
            return Ok(());
        };
        let to = match self.store.hold(hold_id).await?.map(|h| h.status_at(now)) {
            Some(HoldStatus::Active) => return Ok(()),
            Some(HoldStatus::Converted | HoldStatus::Sold) => WaitlistState::Converted,
            Some(HoldStatus::Released | HoldStatus::Expired) | None => WaitlistState::Expired,
        };
        let moved = self
            .store
            .move_waitlist(&WaitlistMove {
                entry: entry.id.clone(),
                from: vec![WaitlistState::Offered],
                hold: Some(hold_id.clone()),
                to,
                claim: None,
                now,
            })
            .await?;
        if moved {
            metrics::counter!("boxoffice_waitlist_offers_ended_total", "state" => to.as_str())
                .increment(1);
        }
        Ok(())
    }

    /// A claim whose lease ran out (its node died or stalled): if its hold was
    /// recorded, the offer stands and is announced; if not, the entry is given
    /// back to the line. Should the stalled node record its hold after this, its
    /// offer write finds the entry no longer claimed and it releases the hold.
    async fn recover_claim(
        &self,
        entry: &WaitlistEntry,
        now: OffsetDateTime,
    ) -> Result<(), AppError> {
        let Some(hold_id) = &entry.hold_id else {
            return Ok(());
        };
        match self.store.hold(hold_id).await? {
            Some(h) => {
                let w = Write::WaitlistOffer {
                    entry: entry.id.clone(),
                    hold: hold_id.clone(),
                    expires_at: h.expires_at,
                    message: MessageId::new(),
                    now,
                };
                self.writer.write(w).await?;
            }
            None => {
                self.give_back(entry, hold_id).await?;
            }
        }
        Ok(())
    }

    async fn give_back(
        &self,
        entry: &WaitlistEntry,
        hold: &boxoffice_domain::HoldId,
    ) -> Result<bool, AppError> {
        Ok(self
            .store
            .move_waitlist(&WaitlistMove {
                entry: entry.id.clone(),
                from: vec![WaitlistState::Claimed],
                hold: Some(hold.clone()),
                to: WaitlistState::Waiting,
                claim: None,
                now: self.clock.now(),
            })
            .await?)
    }

    /// Claims `entry`, holds its seats in its customer's name and records the offer.
    async fn offer(
        &self,
        ev: &Arc<CachedEvent>,
        entry: &WaitlistEntry,
    ) -> Result<Offered, AppError> {
        // Not enough free: no claim (no write) on every pass of a sold-out event.
        if self.free_in(ev, entry.tier_id.as_ref()).await? < entry.quantity {
            return Ok(Offered::NotNow);
        }
        let now = self.clock.now();
        let hold_id = boxoffice_domain::HoldId::new();
        let lease = time::Duration::try_from(CLAIM_LEASE).unwrap_or(time::Duration::MINUTE);
        let claimed = self
            .store
            .move_waitlist(&WaitlistMove {
                entry: entry.id.clone(),
                from: vec![WaitlistState::Waiting],
                hold: None,
                to: WaitlistState::Claimed,
                claim: Some((hold_id.clone(), now + lease)),
                now,
            })
            .await?;
        if !claimed {
            // Another node is offering it (or its customer left): not ours.
            return Ok(Offered::NotNow);
        }
        let owner = Principal {
            user_id: entry.customer_id.clone(),
            role: Role::Customer,
            org: None,
            origin: Default::default(),
        };
        let ttl = u32::try_from(self.settings.waitlist_offer.as_secs()).unwrap_or(u32::MAX);
        let spec = OfferHold {
            id: hold_id.clone(),
            ttl_seconds: ttl.max(1),
        };
        let held = self.offer_hold(&owner, ev, entry, &spec).await;
        let hold = match held {
            Ok(h) => h,
            Err(e) => {
                self.give_back(entry, &hold_id).await?;
                return match e {
                    AppError::SoldOut { .. } | AppError::SeatsUnavailable(_) => Ok(Offered::NotNow),
                    // Over the customer's cap with what they hold or bought since
                    // joining: they stay in line, others are not held up.
                    AppError::CustomerLimitReached { .. } => Ok(Offered::Skip),
                    AppError::NotOnSale => Ok(Offered::NotNow),
                    e => Err(e),
                };
            }
        };
        let written = self
            .writer
            .write(Write::WaitlistOffer {
                entry: entry.id.clone(),
                hold: hold_id.clone(),
                expires_at: hold.hold.expires_at,
                message: MessageId::new(),
                now: self.clock.now(),
            })
            .await?;
        if written == Written::Marked(true) {
            metrics::counter!("boxoffice_waitlist_offers_total").increment(1);
            tracing::info!(entry = %entry.id, hold = %hold_id, "waitlist offer made");
            Ok(Offered::Yes)
        } else {
            // The claim was taken over, or the customer left meanwhile: this hold
            // is nobody's offer, so its seats go back.
            match self.release_hold(&owner, hold_id.as_str()).await {
                Ok(()) | Err(AppError::HoldExpired | AppError::HoldConverted) => {}
                Err(e) => return Err(e),
            }
            Ok(Offered::NotNow)
        }
    }

    async fn offer_hold(
        &self,
        owner: &Principal,
        ev: &Arc<CachedEvent>,
        entry: &WaitlistEntry,
        spec: &OfferHold,
    ) -> Result<crate::HoldView, AppError> {
        let event = ev.event();
        if let Some(t) = &entry.tier_id {
            if let Some((ix, tier)) = event.ga_tier(t) {
                let total = tier
                    .price
                    .times(entry.quantity)
                    .ok_or_else(|| AppError::Internal(anyhow::anyhow!("total overflow")))?;
                let selection = HoldSelection::Ga {
                    tier_id: tier.id.clone(),
                    quantity: entry.quantity,
                };
                let items = HoldItems::Ga {
                    tier: ix as u16,
                    quantity: entry.quantity,
                };
                return self
                    .place_hold(owner, ev, selection, items, total, Some(spec))
                    .await;
            }
        }
        let ask = BestAvailableAsk {
            quantity: i64::from(entry.quantity),
            tier_id: entry.tier_id.as_ref().map(|t| t.to_string()),
        };
        self.best_available_hold(owner, ev, ask, Some(spec)).await
    }

    /// Runs offering passes until `shutdown`: every `interval`, and at once when
    /// this node freed seats.
    pub fn spawn_waitlist(
        self: &Arc<Self>,
        shutdown: tokio_util::sync::CancellationToken,
    ) -> tokio::task::JoinHandle<()> {
        let app = self.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(app.settings.sweep_interval);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    _ = shutdown.cancelled() => break,
                    _ = tick.tick() => {}
                    _ = app.waitlist_nudge.notified() => {}
                }
                if let Err(e) = app.waitlist_pass().await {
                    tracing::warn!(error = ?e, "waitlist pass failed");
                }
            }
        })
    }
}

enum Offered {
    Yes,
    /// Not enough free for it now: those behind it wait too.
    NotNow,
    /// Not this one, for reasons of its own: the next may go.
    Skip,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn any_seat_competes_with_every_seated_tier_but_not_with_ga() {
        let t = TierId::new();
        let g = TierId::new();
        assert!(Scope::AnySeat.overlaps(&Scope::Seated(t.clone())));
        assert!(Scope::Seated(t.clone()).overlaps(&Scope::AnySeat));
        assert!(!Scope::Seated(t.clone()).overlaps(&Scope::Seated(TierId::new())));
        assert!(!Scope::AnySeat.overlaps(&Scope::Ga(g.clone())));
        assert!(Scope::Ga(g.clone()).overlaps(&Scope::Ga(g)));
    }
}
