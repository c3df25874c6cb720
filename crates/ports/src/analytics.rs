//! The sales read model's unit: counts of one event × tier × minute. The
//! analytics worker turns jobs into facts; the store adds them up, once per
//! message, in tables the write path never reads.

use boxoffice_domain::EventId;

/// The tier key of an event's own totals (every fact is counted in its tier's row
/// and in this one, so totals need no second sum and a refund of a two-tier order
/// counts once in the totals).
pub const ALL_TIERS: &str = "*";

/// Deltas for one (event, tier, minute).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SalesFact {
    pub event: Option<EventId>,
    pub tier: String,
    /// The minute's start, Unix seconds (a multiple of 60).
    pub minute: i64,
    pub counts: SalesCounts,
}

/// What the read model counts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SalesCounts {
    pub tickets: i64,
    /// Minor units of the event's currency.
    pub revenue: i64,
    pub holds_made: i64,
    pub holds_converted: i64,
    pub holds_expired: i64,
    pub refunds: i64,
    pub refunded_amount: i64,
    pub tickets_refunded: i64,
}

impl SalesCounts {
    /// The column names of [`SalesCounts::values`], in its order.
    pub const COLUMNS: [&'static str; 8] = [
        "tickets",
        "revenue",
        "holds_made",
        "holds_converted",
        "holds_expired",
        "refunds",
        "refunded_amount",
        "tickets_refunded",
    ];

    /// Every count, in the order of [`SalesCounts::COLUMNS`] (the stores' columns
    /// and the CSV's).
    pub fn values(&self) -> [i64; 8] {
        [
            self.tickets,
            self.revenue,
            self.holds_made,
            self.holds_converted,
            self.holds_expired,
            self.refunds,
            self.refunded_amount,
            self.tickets_refunded,
        ]
    }

    pub fn add(&mut self, o: &SalesCounts) {
        self.tickets += o.tickets;
        self.revenue += o.revenue;
        self.holds_made += o.holds_made;
        self.holds_converted += o.holds_converted;
        self.holds_expired += o.holds_expired;
        self.refunds += o.refunds;
        self.refunded_amount += o.refunded_amount;
        self.tickets_refunded += o.tickets_refunded;
    }
}

/// A stored row of the read model.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SalesRow {
    pub tier: String,
    pub minute: i64,
    pub counts: SalesCounts,
}
