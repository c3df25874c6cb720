//! The OpenAPI 3.1 document served at `GET /v1/openapi.json` (and read by `/docs`
//! and by schemathesis in CI). It is derived with `utoipa` from the items below:
//! one `#[utoipa::path]` per route, next to the schema of every body it takes and
//! answers. The handlers stay as they are (their bodies are domain types that must
//! not depend on utoipa); the types here are their documented shape.
//!
//! What keeps the document honest:
//! - the test at the bottom reads every `.route(...)` of `routes/*.rs` and fails
//!   when a route (path and method) is missing here, or documented but not routed;
//! - every operation gets a `default` response in the error shape, so any status
//!   not listed must still be `{"error":{"code","message"}}`;
//! - schemathesis (scripts/schemathesis) sends thousands of requests generated from
//!   it to a running server in both modes and checks every answer against it.
//!
//! Must never: describe a field the server does not send, or mark required a field
//! the server may leave out.
#![allow(dead_code)] // The schema types are read by the derive, never built.

use serde::Serialize;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{RefOr, ResponseBuilder};
use utoipa::{Modify, OpenApi, ToSchema};

/// The document, rendered once.
pub fn document() -> &'static bytes::Bytes {
    static DOC: std::sync::OnceLock<bytes::Bytes> = std::sync::OnceLock::new();
    DOC.get_or_init(|| {
        bytes::Bytes::from(
            ApiDoc::openapi()
                .to_pretty_json()
                .expect("the OpenAPI document serializes"),
        )
    })
}

#[derive(OpenApi, Debug)]
#[openapi(
    info(
        title = "boxoffice",
        description = "Ticket sales: venues, events, holds, checkout, orders, waiting rooms. \
                       Ids are opaque strings, times RFC 3339 UTC, money \
                       `{\"amount\": <minor units>, \"currency\"}`. Every error is \
                       `{\"error\": {\"code\", \"message\", ...}}`.",
        license(name = "Apache-2.0")
    ),
    modifiers(&Common),
    paths(
        register, login, refresh, logout, revoke,
        list_venues, create_venue, get_venue,
        list_events, create_event, get_event, patch_event, layout, seats, event_stream,
        create_hold, get_hold, release_hold, engine_audit,
        checkout, get_order, refund, my_orders, stripe_webhook, sales, test_gateway_charges, audit_log,
        ticket_qr, order_tickets_pdf,
        join_queue, queue_challenge, get_queue, leave_queue, queue_stream,
        join_waitlist, get_waitlist, leave_waitlist,
        create_org, get_org, invite, list_invitations, revoke_invitation, accept_invitation, password_reset, password_reset_confirm,
        event_staff, assign_staff, me,
        check_in, checkin_bundle, checkin_sync, ticket_keys, rotate_ticket_key, ticket_rotating,
        health, ready, metrics, openapi_json, docs_page, docs_script, docs_style,
    ),
    tags(
        (name = "identity", description = "Accounts and tokens"),
        (name = "catalogue", description = "Venues and events: admin writes, public reads"),
        (name = "holds", description = "Seats held for a customer for a while"),
        (name = "orders", description = "Checkout, orders, refunds, payments"),
        (name = "waiting room", description = "The queue in front of a busy sale"),
        (name = "waitlist", description = "A place in line for tickets that come back"),
        (name = "organizations", description = "Organizations, staff roles, invitations, password reset"),
        (name = "check-in", description = "Signed ticket codes, scans at the gates, offline scanners"),
        (name = "operations", description = "Health, readiness, metrics, this document"),
    )
)]
pub struct ApiDoc;

/// Adds the bearer scheme and, to every operation, a `default` answer in the error
/// shape (429 `rate_limited`, 503 `timeout`, 413, 415, …, whatever is not listed).
struct Common;

impl Modify for Common {
    fn modify(&self, doc: &mut utoipa::openapi::OpenApi) {
        let components = doc.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some(
                        "The `token` of `POST /v1/auth/login` or `/v1/auth/register`",
                    ))
                    .build(),
            ),
        );
        let default = ResponseBuilder::new()
            .description("Any other answer: the error shape, with a machine code")
            .content(
                "application/json",
                utoipa::openapi::ContentBuilder::new()
                    .schema(Some(RefOr::Ref(utoipa::openapi::Ref::from_schema_name(
                        "Error",
                    ))))
                    .build(),
            )
            .build();
        for item in doc.paths.paths.values_mut() {
            for op in operations_mut(item) {
                op.responses
                    .responses
                    .entry("default".into())
                    .or_insert_with(|| RefOr::T(default.clone()));
            }
        }
    }
}

fn operations_mut(
    item: &mut utoipa::openapi::PathItem,
) -> impl Iterator<Item = &mut utoipa::openapi::path::Operation> {
    [
        item.get.as_mut(),
        item.put.as_mut(),
        item.post.as_mut(),
        item.delete.as_mut(),
        item.patch.as_mut(),
        item.head.as_mut(),
        item.options.as_mut(),
        item.trace.as_mut(),
    ]
    .into_iter()
    .flatten()
}

// ---------------------------------------------------------------------------
// Schemas

/// Every error answer.
#[derive(ToSchema)]
#[schema(as = Error)]
struct ErrorBody {
    error: ErrorDetail,
}

#[derive(ToSchema)]
struct ErrorDetail {
    /// A machine code in snake_case: `not_found`, `invalid_request`,
    /// `seats_unavailable`, `rate_limited`, …
    code: String,
    /// For people; may change.
    message: String,
    /// `invalid_request`: the field at fault.
    #[schema(nullable = false)]
    field: Option<String>,
    /// `seats_unavailable`: the seats already taken.
    #[schema(nullable = false)]
    seats: Option<Vec<String>>,
}

/// An amount of money in minor units (cents).
#[derive(ToSchema)]
struct Money {
    amount: i64,
    /// ISO 4217, `EUR`.
    currency: String,
}

#[derive(ToSchema)]
struct Credentials {
    #[schema(format = "email")]
    email: String,
    /// 8 characters at least.
    password: String,
}

#[derive(ToSchema)]
struct RefreshRequest {
    refresh_token: String,
}

#[derive(ToSchema)]
struct Tokens {
    /// The access token: send it as `Authorization: Bearer <token>`.
    token: String,
    refresh_token: String,
    /// `Bearer`.
    token_type: String,
    /// Seconds the access token lives.
    expires_in: u64,
}

#[derive(ToSchema)]
struct Revoked {
    user_id: String,
    revoked_sessions: u64,
}

#[derive(ToSchema)]
struct VenueSpec {
    /// 1 to 200 printable characters.
    name: String,
    sections: Vec<SectionSpec>,
}

#[derive(ToSchema)]
struct SectionSpec {
    name: String,
    rows: RowsSpec,
    /// With `rows` a count: the seats of every row.
    #[schema(nullable = false)]
    seats_per_row: Option<u32>,
}

/// A row count (with `seats_per_row`), or the rows and their seat labels.
#[derive(ToSchema, Serialize)]
#[serde(untagged)]
enum RowsSpec {
    Count(u32),
    Explicit(Vec<RowSpec>),
}

#[derive(ToSchema, Serialize)]
struct RowSpec {
    label: String,
    seats: Vec<String>,
}

#[derive(ToSchema)]
struct Venue {
    id: String,
    name: String,
    sections: Vec<String>,
    seat_count: u32,
    #[schema(format = DateTime)]
    created_at: String,
}

#[derive(ToSchema)]
struct VenueList {
    venues: Vec<Venue>,
}

#[derive(ToSchema)]
struct WaitingRoomSettings {
    enabled: bool,
    admission_per_minute: u32,
    max_active_shoppers: Option<u32>,
    session_seconds: u32,
    #[schema(format = DateTime)]
    pre_queue_opens_at: Option<String>,
    /// Leading zero bits of the proof of work (0: no challenge).
    #[schema(nullable = false)]
    challenge_difficulty: Option<u8>,
}

#[derive(ToSchema)]
struct NewEvent {
    venue_id: String,
    name: String,
    #[schema(format = DateTime)]
    starts_at: String,
    #[schema(format = DateTime, nullable = false)]
    sale_starts_at: Option<String>,
    #[schema(format = DateTime, nullable = false)]
    sale_ends_at: Option<String>,
    #[schema(nullable = false)]
    hold_ttl_seconds: Option<u32>,
    #[schema(nullable = false)]
    max_tickets_per_order: Option<u32>,
    #[schema(nullable = false)]
    max_tickets_per_customer: Option<u32>,
    #[schema(nullable = false)]
    waiting_room: Option<WaitingRoomSettings>,
    /// Tickets show a code that changes every 15 s (default false).
    #[schema(nullable = false)]
    rotating_codes: Option<bool>,
    #[schema(nullable = false)]
    tiers: Option<Vec<NewTier>>,
    #[schema(nullable = false)]
    ga_tiers: Option<Vec<NewGaTier>>,
    #[schema(nullable = false)]
    city: Option<String>,
    #[schema(nullable = false)]
    category: Option<String>,
    #[schema(nullable = false)]
    description: Option<String>,
}

#[derive(ToSchema)]
struct NewTier {
    name: String,
    price: Money,
    /// Names of the venue's sections this tier prices.
    sections: Vec<String>,
}

#[derive(ToSchema)]
struct NewGaTier {
    name: String,
    price: Money,
    capacity: u32,
}

/// Send at least one field. `null` clears the optional ones.
#[derive(ToSchema)]
struct EventPatch {
    #[schema(nullable = false)]
    status: Option<EventStatus>,
    max_tickets_per_customer: Option<u32>,
    waiting_room: Option<WaitingRoomSettings>,
    #[schema(nullable = false)]
    rotating_codes: Option<bool>,
    city: Option<String>,
    category: Option<String>,
    description: Option<String>,
}

#[derive(ToSchema, Serialize)]
#[serde(rename_all = "snake_case")]
enum EventStatus {
    Draft,
    OnSale,
    Paused,
    Ended,
    Cancelled,
}

#[derive(ToSchema)]
struct Tier {
    id: String,
    name: String,
    price: Money,
    sections: Vec<String>,
}

#[derive(ToSchema)]
struct GaTier {
    id: String,
    name: String,
    price: Money,
    capacity: u32,
}

#[derive(ToSchema)]
struct Event {
    id: String,
    venue_id: String,
    name: String,
    #[schema(format = DateTime)]
    starts_at: String,
    #[schema(format = DateTime)]
    sale_starts_at: Option<String>,
    #[schema(format = DateTime)]
    sale_ends_at: Option<String>,
    status: EventStatus,
    hold_ttl_seconds: u32,
    max_tickets_per_order: u32,
    max_tickets_per_customer: Option<u32>,
    waiting_room: Option<WaitingRoomSettings>,
    rotating_codes: bool,
    currency: String,
    seat_count: u32,
    tiers: Vec<Tier>,
    ga_tiers: Vec<GaTier>,
    #[schema(format = DateTime)]
    created_at: String,
    city: Option<String>,
    category: Option<String>,
    description: Option<String>,
}

#[derive(ToSchema)]
struct EventList {
    events: Vec<Event>,
    /// Present when there are more: pass it as `cursor`.
    #[schema(nullable = false)]
    next_cursor: Option<String>,
}

#[derive(ToSchema)]
struct LayoutSeat {
    id: String,
    section: String,
    row: String,
    label: String,
    x: i32,
    y: i32,
    tier_id: String,
}

/// Static and cacheable (ETag). `seats` are in the event's layout order.
#[derive(ToSchema)]
struct Layout {
    event_id: String,
    seats: Vec<LayoutSeat>,
    tiers: Vec<Tier>,
    ga_tiers: Vec<GaTier>,
}

#[derive(ToSchema)]
struct GaRemaining {
    tier_id: String,
    remaining: u32,
}

/// The live seat map.
#[derive(ToSchema)]
struct SeatMap {
    /// Grows with every change.
    version: u64,
    /// One character per seat in layout order: `A` available, `H` held, `S` sold.
    #[schema(pattern = "^[AHS]*$")]
    status: String,
    ga: Vec<GaRemaining>,
}

/// One of `seats`, `tier_id` + `quantity` (general admission), or `best_available`.
#[derive(ToSchema)]
struct HoldRequest {
    #[schema(nullable = false)]
    seats: Option<Vec<String>>,
    #[schema(nullable = false)]
    tier_id: Option<String>,
    #[schema(nullable = false)]
    quantity: Option<i64>,
    #[schema(nullable = false)]
    best_available: Option<BestAvailable>,
}

#[derive(ToSchema)]
struct BestAvailable {
    quantity: i64,
    #[schema(nullable = false)]
    tier_id: Option<String>,
}

#[derive(ToSchema, Serialize)]
#[serde(rename_all = "snake_case")]
enum HoldStatus {
    Active,
    Released,
    Expired,
    Converted,
}

#[derive(ToSchema)]
struct Hold {
    hold_id: String,
    event_id: String,
    status: HoldStatus,
    seats: Vec<String>,
    /// General admission holds only.
    #[schema(nullable = false)]
    tier_id: Option<String>,
    quantity: u32,
    #[schema(format = DateTime)]
    expires_at: String,
    total: Money,
}

#[derive(ToSchema)]
struct EngineAudit {
    /// Nothing differs.
    agrees: bool,
    seats: Vec<SeatDisagreement>,
    ga: Vec<GaDisagreement>,
}

#[derive(ToSchema)]
struct SeatDisagreement {
    seat_id: String,
    engine: String,
    store: String,
}

#[derive(ToSchema)]
struct GaDisagreement {
    tier_id: String,
    engine_remaining: u32,
    store_remaining: u32,
}

#[derive(ToSchema)]
struct CheckoutRequest {
    #[schema(format = "email")]
    email: String,
    payment: PaymentRequest,
    /// E.164 (`+4915112345678`): the paid order's ticket link also goes by SMS.
    /// Not E.164: 422 `invalid_request` with `field` `phone`.
    phone: Option<String>,
}

#[derive(ToSchema)]
struct PaymentRequest {
    /// A gateway token; with the test gateway `tok_visa`, `tok_chargeDeclined`, …
    token: String,
}

#[derive(ToSchema)]
struct CheckoutAccepted {
    order_id: String,
    /// `pending_payment`.
    status: String,
}

#[derive(ToSchema)]
struct RefundRequest {
    /// Unset: the whole remaining amount.
    #[schema(nullable = false)]
    amount: Option<Money>,
}

#[derive(ToSchema, Serialize)]
#[serde(rename_all = "snake_case")]
enum OrderStatus {
    PendingPayment,
    PaymentUnknown,
    Paid,
    Failed,
    Refunded,
    Cancelled,
}

#[derive(ToSchema)]
struct OrderItem {
    #[schema(nullable = false)]
    seat_id: Option<String>,
    tier_id: String,
    price: Money,
}

#[derive(ToSchema)]
struct Ticket {
    id: String,
    #[schema(nullable = false)]
    seat_id: Option<String>,
    tier_id: String,
    price: Money,
    code: String,
    /// `valid`, or `voided` once its order is refunded in full.
    status: String,
}

#[derive(ToSchema)]
struct NextAction {
    #[schema(rename = "type")]
    kind: String,
    #[schema(nullable = false)]
    url: Option<String>,
    #[schema(nullable = false)]
    client_secret: Option<String>,
}

#[derive(ToSchema)]
struct Order {
    id: String,
    status: OrderStatus,
    #[schema(nullable = false)]
    failure_code: Option<String>,
    event_id: String,
    hold_id: String,
    email: String,
    items: Vec<OrderItem>,
    total: Money,
    refunded: Money,
    tickets: Vec<Ticket>,
    #[schema(format = DateTime)]
    created_at: String,
    #[schema(format = DateTime)]
    updated_at: String,
    #[schema(nullable = false)]
    next_action: Option<NextAction>,
}

#[derive(ToSchema)]
struct OrderList {
    orders: Vec<Order>,
}

#[derive(ToSchema)]
struct Received {
    received: bool,
}

#[derive(ToSchema)]
struct Sales {
    event_id: String,
    /// Net: tickets sold less tickets refunded.
    tickets_sold: i64,
    /// Net, in minor units of the event's currency: revenue less refunds.
    revenue: i64,
    totals: SalesCounts,
    tiers: Vec<SalesCounts>,
    /// One entry per minute with activity, oldest first (each with `minute`, RFC 3339).
    minute: Vec<SalesCounts>,
}

/// Counts of the sales read model (per tier entries add `tier_id`; per minute, `minute`).
#[derive(ToSchema)]
struct SalesCounts {
    tickets: i64,
    revenue: i64,
    holds_made: i64,
    holds_converted: i64,
    holds_expired: i64,
    refunds: i64,
    refunded_amount: i64,
    tickets_refunded: i64,
}

#[derive(ToSchema)]
struct AuditPage {
    /// `newest_first`.
    order: String,
    records: Vec<AuditEntry>,
    next_cursor: Option<i64>,
}

#[derive(ToSchema)]
struct AuditEntry {
    seq: i64,
    id: String,
    at: String,
    actor: String,
    role: String,
    request_id: Option<String>,
    ip: Option<String>,
    action: String,
    subject: String,
    event_id: Option<String>,
    before: Option<serde_json::Value>,
    after: Option<serde_json::Value>,
    prev_hash: String,
    hash: String,
}

#[derive(ToSchema)]
struct Charge {
    idempotency_key: String,
    order_id: String,
    amount: Money,
    outcome: String,
    refunded: bool,
    amount_refunded: Money,
}

#[derive(ToSchema)]
struct Charges {
    charges: Vec<Charge>,
}

#[derive(ToSchema)]
struct JoinRequest {
    /// From `GET /v1/events/{id}/queue/challenge`, when the room asks for one.
    #[schema(nullable = false)]
    challenge: Option<String>,
    #[schema(nullable = false)]
    nonce: Option<String>,
}

#[derive(ToSchema, Serialize)]
#[serde(rename_all = "snake_case")]
enum QueueState {
    PreQueue,
    Waiting,
    Admitted,
    Expired,
}

#[derive(ToSchema)]
struct QueueEntry {
    queue_id: String,
    event_id: String,
    state: QueueState,
    position: Option<u64>,
    rank: Option<u64>,
    estimated_wait_seconds: Option<u64>,
    /// Once admitted: send it as `Boxoffice-Admission` with holds.
    #[schema(nullable = false)]
    admission_token: Option<String>,
    #[schema(format = DateTime, nullable = false)]
    session_expires_at: Option<String>,
}

#[derive(ToSchema)]
struct Challenge {
    challenge: String,
    difficulty: u32,
    /// `sha256`.
    algorithm: String,
    #[schema(format = DateTime)]
    expires_at: String,
}

#[derive(ToSchema)]
struct Status {
    /// `ok`, `ready`, `degraded` or `unavailable`.
    status: String,
}

#[derive(ToSchema)]
struct Index {
    name: String,
    version: String,
}

// ---------------------------------------------------------------------------
// Operations. Each stub stands for the handler of the same route in `routes/`.

const ID: &str = "an opaque id";

#[utoipa::path(post, path = "/v1/auth/register", tag = "identity",
    request_body = Credentials,
    responses(
        (status = 201, description = "Registered and signed in", body = Tokens),
        (status = 409, description = "`email_taken`", body = ErrorBody),
        (status = 422, description = "`invalid_request`: a bad email, a password under 8 characters", body = ErrorBody),
    ))]
fn register() {}

#[utoipa::path(post, path = "/v1/auth/login", tag = "identity",
    request_body = Credentials,
    responses(
        (status = 200, description = "Signed in", body = Tokens),
        (status = 401, description = "`invalid_credentials`", body = ErrorBody),
        (status = 429, description = "`rate_limited` (per IP)", body = ErrorBody),
    ))]
fn login() {}

#[utoipa::path(post, path = "/v1/auth/refresh", tag = "identity",
    request_body = RefreshRequest,
    responses(
        (status = 200, description = "A new access token and a new refresh token (the old one is spent)", body = Tokens),
        (status = 401, description = "`invalid_refresh_token`, `refresh_token_reused` (the whole session is revoked)", body = ErrorBody),
    ))]
fn refresh() {}

#[utoipa::path(post, path = "/v1/auth/logout", tag = "identity",
    request_body = RefreshRequest,
    responses((status = 204, description = "The session is revoked")))]
fn logout() {}

#[utoipa::path(post, path = "/v1/admin/users/{id}/revoke", tag = "identity",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "a user id")),
    responses(
        (status = 200, description = "Every session of the user is revoked", body = Revoked),
        (status = 403, description = "`forbidden`: admins only", body = ErrorBody),
    ))]
fn revoke() {}

#[utoipa::path(get, path = "/v1/venues", tag = "catalogue",
    security(("bearer" = [])),
    responses(
        (status = 200, body = VenueList),
        (status = 403, description = "`forbidden`: admins only", body = ErrorBody),
    ))]
fn list_venues() {}

#[utoipa::path(post, path = "/v1/venues", tag = "catalogue",
    security(("bearer" = [])),
    request_body = VenueSpec,
    responses(
        (status = 201, description = "Created", body = Venue),
        (status = 403, description = "`forbidden`: admins only (checked before the body is read)", body = ErrorBody),
        (status = 422, description = "`invalid_request`", body = ErrorBody),
    ))]
fn create_venue() {}

#[utoipa::path(get, path = "/v1/venues/{id}", tag = "catalogue",
    params(("id" = String, Path, description = ID)),
    responses(
        (status = 200, body = Venue),
        (status = 404, description = "`not_found`", body = ErrorBody),
    ))]
fn get_venue() {}

#[utoipa::path(get, path = "/v1/events", tag = "catalogue",
    security((), ("bearer" = [])),
    params(
        ("q" = Option<String>, Query, description = "words of the name or description"),
        ("city" = Option<String>, Query),
        ("category" = Option<String>, Query),
        ("from" = Option<String>, Query, description = "RFC 3339 time or YYYY-MM-DD: starting at or after"),
        ("to" = Option<String>, Query, description = "RFC 3339 time or YYYY-MM-DD: starting before"),
        ("cursor" = Option<String>, Query, description = "`next_cursor` of the previous page"),
        ("limit" = Option<u32>, Query, description = "1 to 100 (default 50)"),
        ("If-None-Match" = Option<String>, Header),
    ),
    responses(
        (status = 200, description = "Events on sale (and, for admins, drafts), by start time", body = EventList),
        (status = 304, description = "Not modified (ETag)"),
        (status = 422, description = "`invalid_request` with the parameter as `field`", body = ErrorBody),
    ))]
fn list_events() {}

#[utoipa::path(post, path = "/v1/events", tag = "catalogue",
    security(("bearer" = [])),
    request_body = NewEvent,
    responses(
        (status = 201, description = "Created, as a draft", body = Event),
        (status = 403, description = "`forbidden`: admins only", body = ErrorBody),
        (status = 422, description = "`invalid_request`", body = ErrorBody),
    ))]
fn create_event() {}

#[utoipa::path(get, path = "/v1/events/{id}", tag = "catalogue",
    security((), ("bearer" = [])),
    params(("id" = String, Path, description = ID)),
    responses(
        (status = 200, body = Event),
        (status = 404, description = "`not_found` (drafts too, unless admin)", body = ErrorBody),
    ))]
fn get_event() {}

#[utoipa::path(patch, path = "/v1/events/{id}", tag = "catalogue",
    security(("bearer" = [])),
    params(("id" = String, Path, description = ID)),
    request_body = EventPatch,
    responses(
        (status = 200, body = Event),
        (status = 403, description = "`forbidden`: admins only", body = ErrorBody),
        (status = 404, description = "`not_found`", body = ErrorBody),
        (status = 409, description = "`invalid_status_transition`", body = ErrorBody),
        (status = 422, description = "`invalid_request`", body = ErrorBody),
    ))]
fn patch_event() {}

#[utoipa::path(get, path = "/v1/events/{id}/layout", tag = "catalogue",
    security((), ("bearer" = [])),
    params(("id" = String, Path, description = ID), ("If-None-Match" = Option<String>, Header)),
    responses(
        (status = 200, description = "The seats, in layout order (ETag, cacheable)", body = Layout),
        (status = 304, description = "Not modified"),
        (status = 404, description = "`not_found`", body = ErrorBody),
    ))]
fn layout() {}

#[utoipa::path(get, path = "/v1/events/{id}/seats", tag = "catalogue",
    security((), ("bearer" = [])),
    params(("id" = String, Path, description = ID), ("If-None-Match" = Option<String>, Header)),
    responses(
        (status = 200, description = "The live seat map (ETag from `version`)", body = SeatMap),
        (status = 304, description = "Not modified"),
        (status = 404, description = "`not_found`", body = ErrorBody),
    ))]
fn seats() {}

#[utoipa::path(get, path = "/v1/events/{id}/stream", tag = "catalogue",
    security((), ("bearer" = [])),
    params(("id" = String, Path, description = ID),
        ("Last-Event-ID" = Option<String>, Header, description = "resume after this version")),
    responses(
        (status = 200, description = "Server-Sent Events: `snapshot` (the body of `/seats`), then `change` \
            `{\"version\", \"changes\": [[<layout index>, \"A\"|\"H\"|\"S\"]], \"ga\"}`",
            content_type = "text/event-stream", body = String),
        (status = 404, description = "`not_found`", body = ErrorBody),
    ))]
fn event_stream() {}

#[utoipa::path(post, path = "/v1/events/{id}/holds", tag = "holds",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "an event id"),
        ("Boxoffice-Admission" = Option<String>, Header, description = "the waiting room's admission token")),
    request_body = HoldRequest,
    responses(
        (status = 201, description = "Held until `expires_at`", body = Hold),
        (status = 403, description = "`admission_required`", body = ErrorBody),
        (status = 404, description = "`not_found`", body = ErrorBody),
        (status = 409, description = "`seats_unavailable` (with `seats`), `sold_out`, `not_on_sale`, `customer_limit_reached`", body = ErrorBody),
        (status = 422, description = "`invalid_request`", body = ErrorBody),
        (status = 429, description = "`rate_limited`", body = ErrorBody),
    ))]
fn create_hold() {}

#[utoipa::path(get, path = "/v1/holds/{id}", tag = "holds",
    security(("bearer" = [])),
    params(("id" = String, Path, description = ID)),
    responses(
        (status = 200, body = Hold),
        (status = 404, description = "`not_found` (another customer's too)", body = ErrorBody),
    ))]
fn get_hold() {}

#[utoipa::path(delete, path = "/v1/holds/{id}", tag = "holds",
    security(("bearer" = [])),
    params(("id" = String, Path, description = ID)),
    responses(
        (status = 204, description = "Released: its seats are available at once"),
        (status = 404, description = "`not_found`", body = ErrorBody),
        (status = 409, description = "`hold_converted`", body = ErrorBody),
        (status = 410, description = "`hold_expired`", body = ErrorBody),
    ))]
fn release_hold() {}

#[utoipa::path(get, path = "/v1/admin/events/{id}/engine-audit", tag = "holds",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "an event id")),
    responses(
        (status = 200, description = "Where the hold engine and the store disagree", body = EngineAudit),
        (status = 403, description = "`forbidden`: admins only", body = ErrorBody),
    ))]
fn engine_audit() {}

#[utoipa::path(post, path = "/v1/holds/{id}/checkout", tag = "orders",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "a hold id"),
        ("Idempotency-Key" = String, Header, description = "1 to 255 visible ASCII characters")),
    request_body = CheckoutRequest,
    responses(
        (status = 202, description = "Payment under way; see `Location`", body = CheckoutAccepted,
            headers(("Location" = String, description = "/v1/orders/{order_id}"))),
        (status = 400, description = "`idempotency_key_missing`", body = ErrorBody),
        (status = 404, description = "`not_found`", body = ErrorBody),
        (status = 409, description = "`hold_converted`", body = ErrorBody),
        (status = 410, description = "`hold_expired`", body = ErrorBody),
        (status = 422, description = "`idempotency_key_reused`, `invalid_request`", body = ErrorBody),
    ))]
fn checkout() {}

#[utoipa::path(get, path = "/v1/orders/{id}", tag = "orders",
    security(("bearer" = [])),
    params(("id" = String, Path, description = ID),
        ("wait" = Option<f64>, Query, description = "long-poll up to this many seconds (max 30) while `pending_payment`")),
    responses(
        (status = 200, body = Order),
        (status = 404, description = "`not_found`", body = ErrorBody),
        (status = 422, description = "`invalid_request`: a bad `wait`", body = ErrorBody),
    ))]
fn get_order() {}

#[utoipa::path(post, path = "/v1/orders/{id}/refund", tag = "orders",
    security(("bearer" = [])),
    params(("id" = String, Path, description = ID),
        ("Idempotency-Key" = Option<String>, Header, description = "a retried refund with it is the same refund")),
    request_body(content = Option<RefundRequest>, description = "empty or `{}`: the whole order"),
    responses(
        (status = 200, description = "The order after the refund", body = Order),
        (status = 403, description = "`forbidden`", body = ErrorBody),
        (status = 404, description = "`not_found`", body = ErrorBody),
        (status = 409, description = "`order_not_paid`", body = ErrorBody),
        (status = 422, description = "`refund_exceeds_remaining`, `invalid_request`", body = ErrorBody),
    ))]
fn refund() {}

#[utoipa::path(get, path = "/v1/tickets/{id}/qr.svg", tag = "orders",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "a ticket id")),
    responses(
        (status = 200, description = "The ticket's code as a QR symbol", content_type = "image/svg+xml", body = String),
        (status = 404, description = "`not_found`: no such ticket, or not the caller's (buyer, admins, the event's scanning staff)", body = ErrorBody),
        (status = 409, description = "`tickets_not_issued`: the order is not paid", body = ErrorBody),
    ))]
fn ticket_qr() {}

#[utoipa::path(get, path = "/v1/orders/{id}/tickets.pdf", tag = "orders",
    security(("bearer" = [])),
    params(("id" = String, Path, description = ID)),
    responses(
        (status = 200, description = "One page per ticket: event, venue, date, seat or tier, buyer, QR code; `VOID` on a refunded order's", content_type = "application/pdf", body = Vec<u8>),
        (status = 404, description = "`not_found`: no such order, or not the caller's (buyer, admins, the event's scanning staff)", body = ErrorBody),
        (status = 409, description = "`tickets_not_issued`: the order is not paid", body = ErrorBody),
    ))]
fn order_tickets_pdf() {}

#[utoipa::path(get, path = "/v1/me/orders", tag = "orders",
    security(("bearer" = [])),
    responses((status = 200, body = OrderList)))]
fn my_orders() {}

#[utoipa::path(post, path = "/v1/payments/stripe/webhook", tag = "orders",
    params(("Stripe-Signature" = Option<String>, Header)),
    request_body(content = String, content_type = "application/json", description = "Stripe's event, verified by signature"),
    responses(
        (status = 200, body = Received),
        (status = 400, description = "a signature that does not verify", body = ErrorBody),
        (status = 404, description = "no webhook secret configured", body = ErrorBody),
    ))]
fn stripe_webhook() {}

#[utoipa::path(get, path = "/v1/admin/events/{id}/sales", tag = "orders",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "an event id"),
        ("format" = Option<String>, Query, description = "`json` (the default) or `csv`")),
    responses(
        (status = 200, description = "The sales read model: net tickets sold and revenue, totals, per tier, and a per-minute series (`?format=csv`: text/csv)", body = Sales),
        (status = 422, description = "`invalid_request`: an unknown format", body = ErrorBody),
        (status = 403, description = "`forbidden`", body = ErrorBody),
        (status = 404, description = "`not_found`", body = ErrorBody),
    ))]
fn sales() {}

#[utoipa::path(get, path = "/v1/audit", tag = "operations",
    security(("bearer" = [])),
    params(("event_id" = Option<String>, Query, description = "only this event's records"),
        ("cursor" = Option<i64>, Query, description = "the `next_cursor` of the previous page"),
        ("limit" = Option<usize>, Query, description = "1 to 500, default 100")),
    responses(
        (status = 200, description = "Audit records, newest first, each with its place in the hash chain", body = AuditPage),
        (status = 400, description = "`invalid_query`", body = ErrorBody),
        (status = 401, description = "`unauthorized`", body = ErrorBody),
        (status = 403, description = "`forbidden`: admins and ops only", body = ErrorBody),
        (status = 422, description = "`invalid_request`: a malformed event id", body = ErrorBody),
    ))]
fn audit_log() {}

#[utoipa::path(get, path = "/v1/admin/test-gateway/charges", tag = "orders",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Every charge the built-in test gateway accepted (routed only while it is active)", body = Charges),
        (status = 403, description = "`forbidden`", body = ErrorBody),
    ))]
fn test_gateway_charges() {}

#[utoipa::path(post, path = "/v1/events/{id}/queue", tag = "waiting room",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "an event id")),
    request_body(content = Option<JoinRequest>, description = "the solved challenge, when the room asks for one"),
    responses(
        (status = 201, description = "In the queue", body = QueueEntry),
        (status = 403, description = "`challenge_required`, `challenge_failed`, `challenge_expired`", body = ErrorBody),
        (status = 404, description = "`not_found`", body = ErrorBody),
        (status = 409, description = "`no_waiting_room`, `queue_not_open`", body = ErrorBody),
    ))]
fn join_queue() {}

#[utoipa::path(get, path = "/v1/events/{id}/queue/challenge", tag = "waiting room",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "an event id")),
    responses(
        (status = 200, description = "A proof-of-work challenge: find `nonce` so that sha256(challenge + nonce) has `difficulty` leading zero bits", body = Challenge),
        (status = 404, description = "`not_found`", body = ErrorBody),
        (status = 409, description = "`no_waiting_room`", body = ErrorBody),
    ))]
fn queue_challenge() {}

#[utoipa::path(get, path = "/v1/queue/{queue_id}", tag = "waiting room",
    params(("queue_id" = String, Path)),
    responses(
        (status = 200, body = QueueEntry),
        (status = 404, description = "`not_found`", body = ErrorBody),
    ))]
fn get_queue() {}

#[utoipa::path(delete, path = "/v1/queue/{queue_id}", tag = "waiting room",
    params(("queue_id" = String, Path)),
    responses(
        (status = 204, description = "Left the queue"),
        (status = 404, description = "`not_found`", body = ErrorBody),
    ))]
fn leave_queue() {}

#[utoipa::path(get, path = "/v1/queue/{queue_id}/stream", tag = "waiting room",
    params(("queue_id" = String, Path)),
    responses(
        (status = 200, description = "Server-Sent Events `state` (the body of `GET /v1/queue/{queue_id}`) at every change",
            content_type = "text/event-stream", body = String),
        (status = 404, description = "`not_found`", body = ErrorBody),
    ))]
fn queue_stream() {}

#[derive(ToSchema)]
struct WaitlistRequest {
    quantity: u32,
    /// A GA tier or a seat tier; none: any seat.
    #[schema(nullable = false)]
    tier_id: Option<String>,
}

#[derive(ToSchema, Serialize)]
#[serde(rename_all = "snake_case")]
enum WaitlistState {
    Waiting,
    Offered,
    Converted,
    Expired,
    Left,
}

#[derive(ToSchema)]
struct WaitlistEntry {
    waitlist_id: String,
    event_id: String,
    tier_id: Option<String>,
    quantity: u32,
    state: WaitlistState,
    /// Place in line while waiting.
    position: Option<u64>,
    #[schema(format = DateTime)]
    created_at: String,
    /// The offer: a hold in the customer's name, until `expires_at`.
    #[schema(nullable = false)]
    hold_id: Option<String>,
    #[schema(format = DateTime, nullable = false)]
    expires_at: Option<String>,
}

#[derive(ToSchema)]
struct NewOrg {
    name: String,
}

#[derive(ToSchema)]
struct Org {
    id: String,
    name: String,
    #[schema(format = DateTime)]
    created_at: String,
}

#[derive(ToSchema)]
struct NewInvitation {
    #[schema(format = "email")]
    email: String,
    /// `organizer`, `checkin`, `ops` or `admin`.
    role: String,
}

#[derive(ToSchema)]
struct Invitation {
    id: String,
    org_id: String,
    email: String,
    role: String,
    #[schema(format = DateTime)]
    expires_at: String,
}

#[derive(ToSchema)]
struct InvitationListed {
    id: String,
    org_id: String,
    email: String,
    role: String,
    /// `open`, `accepted`, `revoked` or `expired`.
    state: String,
    invited_by: String,
    #[schema(format = DateTime)]
    created_at: String,
    #[schema(format = DateTime)]
    expires_at: String,
}

#[derive(ToSchema)]
struct InvitationList {
    invitations: Vec<InvitationListed>,
}

#[derive(ToSchema)]
struct TokenAndPassword {
    /// From the email.
    token: String,
    password: String,
}

#[derive(ToSchema)]
struct ResetRequest {
    #[schema(format = "email")]
    email: String,
}

#[derive(ToSchema)]
struct Assign {
    user_id: String,
}

#[derive(ToSchema)]
struct Staff {
    event_id: String,
    staff: Vec<String>,
}

#[derive(ToSchema)]
struct Me {
    user_id: String,
    /// `customer`, `organizer`, `checkin`, `ops` or `admin`.
    role: String,
    org_id: Option<String>,
}

#[utoipa::path(post, path = "/v1/events/{id}/waitlist", tag = "waitlist",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "an event id")),
    request_body = WaitlistRequest,
    responses(
        (status = 201, description = "In line", body = WaitlistEntry),
        (status = 200, description = "Already in line: the same entry", body = WaitlistEntry),
        (status = 404, description = "`not_found`", body = ErrorBody),
        (status = 409, description = "`seats_available` (buy instead), `not_on_sale`, `customer_limit_reached`", body = ErrorBody),
        (status = 422, description = "`invalid_request`", body = ErrorBody),
    ))]
fn join_waitlist() {}

#[utoipa::path(get, path = "/v1/waitlist/{id}", tag = "waitlist",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "a waitlist id")),
    responses(
        (status = 200, body = WaitlistEntry),
        (status = 404, description = "`not_found` (someone else's too)", body = ErrorBody),
    ))]
fn get_waitlist() {}

#[utoipa::path(delete, path = "/v1/waitlist/{id}", tag = "waitlist",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "a waitlist id")),
    responses(
        (status = 204, description = "Left the line (an offer not taken is released)"),
        (status = 404, description = "`not_found`", body = ErrorBody),
    ))]
fn leave_waitlist() {}

#[utoipa::path(post, path = "/v1/orgs", tag = "organizations",
    security(("bearer" = [])),
    request_body = NewOrg,
    responses(
        (status = 201, body = Org),
        (status = 403, description = "`forbidden`: admins only", body = ErrorBody),
        (status = 422, description = "`invalid_request`", body = ErrorBody),
    ))]
fn create_org() {}

#[utoipa::path(get, path = "/v1/orgs/{id}", tag = "organizations",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "an organization id")),
    responses(
        (status = 200, body = Org),
        (status = 404, description = "`not_found`", body = ErrorBody),
    ))]
fn get_org() {}

#[utoipa::path(post, path = "/v1/orgs/{id}/invitations", tag = "organizations",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "an organization id")),
    request_body = NewInvitation,
    responses(
        (status = 201, description = "Sent by email (single use, 7 days)", body = Invitation),
        (status = 403, description = "`forbidden`", body = ErrorBody),
        (status = 404, description = "`not_found`", body = ErrorBody),
        (status = 422, description = "`invalid_request`", body = ErrorBody),
    ))]
fn invite() {}

#[utoipa::path(get, path = "/v1/orgs/{id}/invitations", tag = "organizations",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "an organization id")),
    responses(
        (status = 200, description = "The newest 500, newest first, with their state (never a token)", body = InvitationList),
        (status = 403, description = "`forbidden`", body = ErrorBody),
        (status = 404, description = "`not_found`", body = ErrorBody),
    ))]
fn list_invitations() {}

#[utoipa::path(delete, path = "/v1/orgs/{id}/invitations/{invitation_id}", tag = "organizations",
    security(("bearer" = [])),
    params(
        ("id" = String, Path, description = "an organization id"),
        ("invitation_id" = String, Path, description = "an invitation id"),
    ),
    responses(
        (status = 204, description = "Revoked: its token no longer works"),
        (status = 403, description = "`forbidden`: not allowed to invite its role", body = ErrorBody),
        (status = 404, description = "`not_found`", body = ErrorBody),
        (status = 409, description = "`invitation_closed`: already accepted or revoked", body = ErrorBody),
    ))]
fn revoke_invitation() {}

#[utoipa::path(post, path = "/v1/invitations/accept", tag = "organizations",
    request_body = TokenAndPassword,
    responses(
        (status = 200, description = "The account, signed in", body = Tokens),
        (status = 400, description = "`invalid_token`: unknown, used or expired", body = ErrorBody),
        (status = 409, description = "`account_has_role`", body = ErrorBody),
    ))]
fn accept_invitation() {}

#[utoipa::path(post, path = "/v1/auth/password-reset", tag = "organizations",
    request_body = ResetRequest,
    responses((status = 202, description = "An email goes to the account, if there is one")))]
fn password_reset() {}

#[utoipa::path(post, path = "/v1/auth/password-reset/confirm", tag = "organizations",
    request_body = TokenAndPassword,
    responses(
        (status = 204, description = "The password is set; every session of the account is revoked"),
        (status = 400, description = "`invalid_token`: unknown, used or expired", body = ErrorBody),
        (status = 422, description = "`invalid_request`: a password under 8 characters", body = ErrorBody),
    ))]
fn password_reset_confirm() {}

#[utoipa::path(get, path = "/v1/events/{id}/staff", tag = "organizations",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "an event id")),
    responses(
        (status = 200, description = "Check-in staff assigned to the event", body = Staff),
        (status = 403, description = "`forbidden`", body = ErrorBody),
        (status = 404, description = "`not_found`", body = ErrorBody),
    ))]
fn event_staff() {}

#[utoipa::path(post, path = "/v1/events/{id}/staff", tag = "organizations",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "an event id")),
    request_body = Assign,
    responses(
        (status = 200, description = "Assigned; the event's staff", body = Staff),
        (status = 403, description = "`forbidden`", body = ErrorBody),
        (status = 404, description = "`not_found`", body = ErrorBody),
        (status = 422, description = "`invalid_request`", body = ErrorBody),
    ))]
fn assign_staff() {}

#[utoipa::path(get, path = "/v1/me", tag = "organizations",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Who the token says the caller is", body = Me),
        (status = 401, description = "`unauthorized`", body = ErrorBody),
    ))]
fn me() {}

#[utoipa::path(get, path = "/health", tag = "operations",
    responses((status = 200, description = "The process runs", body = Status)))]
fn health() {}

#[utoipa::path(get, path = "/ready", tag = "operations",
    responses(
        (status = 200, description = "`ready`, or `degraded` while the payment gateway's circuit is open", body = Status),
        (status = 503, description = "`unavailable`: a backend does not answer", body = Status),
    ))]
fn ready() {}

#[utoipa::path(get, path = "/metrics", tag = "operations",
    responses(
        (status = 200, description = "Prometheus text format (404 here when `BOXOFFICE_METRICS_LISTEN` serves it elsewhere)",
            content_type = "text/plain", body = String),
        (status = 404, description = "`not_found`: served on its own listener", body = ErrorBody),
    ))]
fn metrics() {}

#[utoipa::path(get, path = "/v1/openapi.json", tag = "operations",
    responses((status = 200, description = "This document (OpenAPI 3.1)", content_type = "application/json", body = Object)))]
fn openapi_json() {}

#[utoipa::path(get, path = "/docs", tag = "operations",
    responses((status = 200, description = "This document for people (HTML)", content_type = "text/html", body = String)))]
fn docs_page() {}

#[utoipa::path(get, path = "/docs/docs.js", tag = "operations",
    responses((status = 200, description = "The docs page's script", content_type = "text/javascript", body = String)))]
fn docs_script() {}

#[utoipa::path(get, path = "/docs/docs.css", tag = "operations",
    responses((status = 200, description = "The docs page's style", content_type = "text/css", body = String)))]
fn docs_style() {}

// ---- check-in ----

#[derive(ToSchema)]
struct ScanRequest {
    /// The text of the ticket's QR code (a rotating code included).
    code: String,
    gate: String,
    /// The scanner's id for this scan: the same id answers the same.
    scan_id: String,
    /// The event this gate admits to; a ticket of another is `wrong_event`.
    #[schema(nullable = false)]
    event_id: Option<String>,
}

#[derive(ToSchema, Serialize)]
#[serde(rename_all = "snake_case")]
enum ScanResultKind {
    Ok,
    AlreadyUsed,
    Voided,
    WrongEvent,
    Invalid,
}

#[derive(ToSchema)]
struct ScannedTicket {
    id: String,
    event_id: String,
    seat_id: Option<String>,
    tier_id: String,
}

#[derive(ToSchema)]
struct ScanAt {
    #[schema(format = DateTime)]
    at: String,
    gate: String,
}

#[derive(ToSchema)]
struct ScanResponse {
    result: ScanResultKind,
    scan_id: String,
    #[schema(nullable = false)]
    ticket: Option<ScannedTicket>,
    /// The ticket's first admission (with `already_used`).
    #[schema(nullable = false)]
    first_scan: Option<ScanAt>,
}

#[derive(ToSchema)]
struct TicketKeyView {
    kid: u8,
    /// `Ed25519`.
    alg: String,
    /// Base64url (no padding) of the 32-byte public key.
    public_key: String,
}

#[derive(ToSchema)]
struct TicketKeys {
    keys: Vec<TicketKeyView>,
}

#[derive(ToSchema)]
struct RotatedKey {
    kid: u8,
    keys: Vec<TicketKeyView>,
}

#[derive(ToSchema)]
struct BundleTicket {
    id: String,
    seat_id: Option<String>,
    tier_id: String,
    checked_in: bool,
    void: bool,
    /// Base32 of the ticket's rotating secret (rotating events only).
    #[schema(nullable = false)]
    rotating_secret: Option<String>,
}

#[derive(ToSchema)]
struct CheckinBundle {
    event_id: String,
    /// Hex of the 8-byte event tag inside every code of this event.
    event_tag: String,
    keys: Vec<TicketKeyView>,
    rotating_codes: bool,
    rotating_period_seconds: u32,
    /// Ids of void (refunded) tickets.
    revoked: Vec<String>,
    tickets: Vec<BundleTicket>,
    #[schema(format = DateTime)]
    generated_at: String,
}

#[derive(ToSchema)]
struct OfflineScanItem {
    /// The scanned code, or …
    #[schema(nullable = false)]
    code: Option<String>,
    /// … the ticket id of a code the scanner verified.
    #[schema(nullable = false)]
    ticket_id: Option<String>,
    gate: String,
    scan_id: String,
    #[schema(format = DateTime)]
    scanned_at: String,
}

#[derive(ToSchema)]
struct SyncRequest {
    scans: Vec<OfflineScanItem>,
}

#[derive(ToSchema)]
struct SecondScan {
    #[schema(format = DateTime)]
    at: String,
    gate: String,
    scan_id: String,
}

#[derive(ToSchema)]
struct DoubleEntry {
    ticket_id: String,
    first: ScanAt,
    second: SecondScan,
}

#[derive(ToSchema)]
struct SyncResponse {
    results: Vec<ScanResponse>,
    conflicts: Vec<DoubleEntry>,
}

#[derive(ToSchema)]
struct RotatingCode {
    ticket_id: String,
    code: String,
    /// Base32 of the secret.
    secret: String,
    /// `HMAC-SHA256`.
    algorithm: String,
    period: u32,
    digits: u32,
    /// What to show now: `code`, `-`, six digits.
    current: String,
}

#[utoipa::path(post, path = "/v1/checkin", tag = "check-in",
    security(("bearer" = [])),
    request_body = ScanRequest,
    responses(
        (status = 200, description = "What the scan decided", body = ScanResponse),
        (status = 403, description = "`forbidden`: not staff of the event", body = ErrorBody),
        (status = 404, description = "`not_found`: no such event", body = ErrorBody),
        (status = 422, description = "`invalid_request`", body = ErrorBody),
    ))]
fn check_in() {}

#[utoipa::path(get, path = "/v1/events/{id}/checkin/bundle", tag = "check-in",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "an event id")),
    responses(
        (status = 200, description = "What an offline scanner needs", body = CheckinBundle),
        (status = 403, description = "`forbidden`", body = ErrorBody),
        (status = 404, description = "`not_found`", body = ErrorBody),
    ))]
fn checkin_bundle() {}

#[utoipa::path(post, path = "/v1/events/{id}/checkin/sync", tag = "check-in",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "an event id")),
    request_body = SyncRequest,
    responses(
        (status = 200, description = "Each scan's result, and the double entries", body = SyncResponse),
        (status = 403, description = "`forbidden`", body = ErrorBody),
        (status = 404, description = "`not_found`", body = ErrorBody),
        (status = 422, description = "`invalid_request`", body = ErrorBody),
    ))]
fn checkin_sync() {}

#[utoipa::path(get, path = "/v1/ticket-keys", tag = "check-in",
    responses((status = 200, description = "Every public key a ticket may be signed with", body = TicketKeys)))]
fn ticket_keys() {}

#[utoipa::path(post, path = "/v1/admin/ticket-keys", tag = "check-in",
    security(("bearer" = [])),
    responses(
        (status = 201, description = "A new signing key; older ones still verify", body = RotatedKey),
        (status = 403, description = "`forbidden`", body = ErrorBody),
    ))]
fn rotate_ticket_key() {}

#[utoipa::path(get, path = "/v1/tickets/{id}/rotating", tag = "check-in",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "a ticket id")),
    responses(
        (status = 200, description = "The holder's rotating code and its secret", body = RotatingCode),
        (status = 404, description = "`not_found`: no such ticket of yours", body = ErrorBody),
        (status = 422, description = "`invalid_request`: its event does not rotate codes", body = ErrorBody),
    ))]
fn ticket_rotating() {}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    /// Every `.route("<path>", <methods>)` in `routes/*.rs`, as (METHOD, path).
    /// Read from the source because an axum `Router` cannot list its routes; the
    /// parser follows the call to its closing parenthesis, so formatting and
    /// `.layer(...)` inside it do not matter.
    fn routed() -> BTreeSet<(String, String)> {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/src/routes");
        let mut out = BTreeSet::new();
        for entry in std::fs::read_dir(dir).expect("routes dir") {
            let path = entry.expect("entry").path();
            if path.extension().is_none_or(|e| e != "rs") {
                continue;
            }
            let src = std::fs::read_to_string(&path).expect("read route file");
            let mut rest = src.as_str();
            while let Some(at) = rest.find(".route(") {
                rest = &rest[at + ".route(".len()..];
                let mut depth = 1;
                let end = rest
                    .char_indices()
                    .find(|&(_, c)| {
                        match c {
                            '(' => depth += 1,
                            ')' => depth -= 1,
                            _ => {}
                        }
                        depth == 0
                    })
                    .map(|(i, _)| i)
                    .expect("a closed .route( call");
                let call = &rest[..end];
                let open = call.find('"').expect("a route path literal");
                let close = open + 1 + call[open + 1..].find('"').expect("closing quote");
                let route = &call[open + 1..close];
                let methods = &call[close..];
                let mut found = false;
                for m in ["get", "post", "put", "patch", "delete"] {
                    let needle = format!("{m}(");
                    for (i, _) in methods.match_indices(&needle) {
                        let before = methods[..i].chars().next_back();
                        if before.is_none_or(|c| !(c.is_alphanumeric() || c == '_')) {
                            out.insert((m.to_uppercase(), route.to_owned()));
                            found = true;
                        }
                    }
                }
                assert!(found, "no method found for route {route} in {path:?}");
                rest = &rest[end..];
            }
        }
        out
    }

    fn documented() -> BTreeSet<(String, String)> {
        let doc: serde_json::Value =
            serde_json::from_slice(super::document()).expect("the document is JSON");
        let mut out = BTreeSet::new();
        for (path, item) in doc["paths"].as_object().expect("paths") {
            for m in ["get", "post", "put", "patch", "delete"] {
                if item.get(m).is_some() {
                    out.insert((m.to_uppercase(), path.clone()));
                }
            }
        }
        out
    }

    #[test]
    fn every_route_is_documented_and_every_documented_route_exists() {
        let routed = routed();
        let documented = documented();
        assert!(
            routed.len() > 30,
            "the route scan found too few: {routed:?}"
        );
        let missing: Vec<_> = routed.difference(&documented).collect();
        let extra: Vec<_> = documented.difference(&routed).collect();
        assert!(
            missing.is_empty(),
            "routes without an OpenAPI operation (add one in openapi.rs): {missing:?}"
        );
        assert!(
            extra.is_empty(),
            "documented operations that no router has: {extra:?}"
        );
    }

    #[test]
    fn the_document_is_openapi_3_1_and_every_operation_answers_errors_in_shape() {
        let doc: serde_json::Value = serde_json::from_slice(super::document()).unwrap();
        assert!(doc["openapi"].as_str().unwrap().starts_with("3.1"));
        let error = &doc["components"]["schemas"]["Error"];
        assert_eq!(error["required"], serde_json::json!(["error"]));
        for (path, item) in doc["paths"].as_object().unwrap() {
            for (method, op) in item.as_object().unwrap() {
                assert_eq!(
                    op["responses"]["default"]["content"]["application/json"]["schema"]["$ref"],
                    "#/components/schemas/Error",
                    "{method} {path} lacks the error default"
                );
            }
        }
    }
}
