//! The buyer's web pages: server-rendered HTML (minijinja, auto-escaping every
//! value, never `format!` into HTML) and the few plain JavaScript modules that make
//! the live parts (seat map, countdown, payment follow-up) work against the JSON API.
//!
//! Everything is embedded in the binary (`assets.rs`): no build step, no file read
//! at run time. Pages never hold business rules: what they show comes from the same
//! use cases the API calls, and what the buyer does goes through the API itself.
//! Nothing here may be inline script or style: the pages must run under
//! `Content-Security-Policy: default-src 'self'`.

mod assets;

use axum::extract::{Query, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use boxoffice_app::AppError;
use boxoffice_domain::Money;
use boxoffice_ports::EventSearch;
use minijinja::{context, Environment};
use serde::{Deserialize, Serialize};
use std::sync::LazyLock;
use time::OffsetDateTime;

use crate::HttpState;

pub fn router() -> Router<HttpState> {
    Router::new()
        .route("/", get(home))
        .route("/events/{id}", get(event))
        .route("/events/{id}/queue", get(queue))
        .route("/holds/{id}", get(|p| shell("hold.html", "hold", p)))
        .route(
            "/holds/{id}/checkout",
            get(|p| shell("checkout.html", "checkout", p)),
        )
        .route("/orders/{id}", get(|p| shell("order.html", "order", p)))
        // The gate scanner (check-in staff; the page itself is a shell, the API
        // decides who may scan).
        .route("/events/{id}/scan", get(|p| shell("scan.html", "scan", p)))
        .route(
            "/orders",
            get(|| page("orders.html", "orders", context! {})),
        )
        .route(
            "/login",
            get(|| page("auth.html", "auth", context! { mode => "login" })),
        )
        .route(
            "/register",
            get(|| page("auth.html", "auth", context! { mode => "register" })),
        )
        .route("/assets/{name}", get(assets::serve))
}

/// The templates, compiled once. `.html` names turn on HTML auto-escaping.
static TEMPLATES: LazyLock<Environment<'static>> = LazyLock::new(|| {
    let mut env = Environment::new();
    for (name, src) in [
        ("base.html", include_str!("templates/base.html")),
        ("home.html", include_str!("templates/home.html")),
        ("event.html", include_str!("templates/event.html")),
        ("queue.html", include_str!("templates/queue.html")),
        ("hold.html", include_str!("templates/hold.html")),
        ("checkout.html", include_str!("templates/checkout.html")),
        ("order.html", include_str!("templates/order.html")),
        ("orders.html", include_str!("templates/orders.html")),
        ("auth.html", include_str!("templates/auth.html")),
        ("scan.html", include_str!("templates/scan.html")),
        ("error.html", include_str!("templates/error.html")),
    ] {
        env.add_template(name, src)
            .expect("embedded templates parse");
    }
    // `asset("seatmap.js")` → its content-hashed URL.
    env.add_function("asset", |name: &str| {
        minijinja::Value::from_safe_string(assets::url(name))
    });
    env
});

fn render(status: StatusCode, name: &str, ctx: minijinja::Value) -> Response {
    match TEMPLATES.get_template(name).and_then(|t| t.render(ctx)) {
        Ok(html) => {
            let mut res = (status, html).into_response();
            let h = res.headers_mut();
            h.insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/html; charset=utf-8"),
            );
            // Pages carry live data (and the assets they name change with a
            // release): always revalidate; the assets themselves are immutable.
            h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
            res
        }
        Err(e) => {
            tracing::error!(error = %e, template = name, "a page failed to render");
            crate::ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal_error",
                "internal error",
            )
            .into_response()
        }
    }
}

async fn page(name: &'static str, script: &'static str, ctx: minijinja::Value) -> Response {
    render(StatusCode::OK, name, context! { script => script, ..ctx })
}

/// A page whose content is the buyer's own (a hold, an order): the HTML is a shell
/// with the id, and its script reads the API with the buyer's token.
async fn shell(
    name: &'static str,
    script: &'static str,
    axum::extract::Path(id): axum::extract::Path<String>,
) -> Response {
    page(name, script, context! { id => id }).await
}

fn error_page(status: StatusCode, code: &str, message: &str) -> Response {
    render(
        status,
        "error.html",
        context! { script => "home", code => code, message => message, title => "Something went wrong" },
    )
}

fn app_error_page(e: AppError) -> Response {
    match e {
        AppError::NotFound => error_page(
            StatusCode::NOT_FOUND,
            "not_found",
            "We could not find this page. The event may have been removed, or the link is mistyped.",
        ),
        e => {
            tracing::error!(error = ?e, "a page's use case failed");
            error_page(
                StatusCode::SERVICE_UNAVAILABLE,
                "service_unavailable",
                "We could not load this page just now. Please try again in a moment.",
            )
        }
    }
}

/// "€65.00" (EUR), "65.00 GBP" otherwise.
pub(crate) fn money(m: &Money) -> String {
    let sign = if m.amount < 0 { "-" } else { "" };
    let (units, cents) = (m.amount.unsigned_abs() / 100, m.amount.unsigned_abs() % 100);
    match m.currency.as_str() {
        "EUR" => format!("{sign}€{units}.{cents:02}"),
        c => format!("{sign}{units}.{cents:02} {c}"),
    }
}

/// "Sat 21 Dec 2030, 20:00 UTC": times are UTC, as the API's are.
pub(crate) fn when(t: OffsetDateTime) -> String {
    let fmt = time::macros::format_description!(
        "[weekday repr:short] [day padding:none] [month repr:short] [year], [hour]:[minute] UTC"
    );
    t.to_offset(time::UtcOffset::UTC)
        .format(&fmt)
        .unwrap_or_default()
}

fn rfc3339(t: OffsetDateTime) -> String {
    t.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

#[derive(Deserialize, Default)]
struct HomeQuery {
    #[serde(default)]
    q: Option<String>,
    #[serde(default)]
    city: Option<String>,
    #[serde(default)]
    category: Option<String>,
    #[serde(default)]
    from: Option<String>,
    #[serde(default)]
    to: Option<String>,
    #[serde(default)]
    cursor: Option<String>,
}

#[derive(Serialize)]
struct EventCard {
    id: String,
    name: String,
    when: String,
    starts_at: String,
    city: Option<String>,
    category: Option<String>,
    status: &'static str,
    from_price: Option<String>,
}

const HOME_PAGE: u32 = 20;

fn text(v: &Option<String>) -> Option<String> {
    v.as_deref()
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
}

fn date(v: &Option<String>) -> Result<Option<OffsetDateTime>, ()> {
    let fmt = time::macros::format_description!("[year]-[month]-[day]");
    text(v)
        .map(|d| {
            time::Date::parse(&d, &fmt)
                .map(|d| d.midnight().assume_utc())
                .map_err(|_| ())
        })
        .transpose()
}

/// `/`: upcoming events and the search form (a plain GET form: it works without
/// script). A bad date is said on the page, not answered 422.
async fn home(
    State(s): State<HttpState>,
    q: Result<Query<HomeQuery>, axum::extract::rejection::QueryRejection>,
) -> Response {
    // An unreadable query is an empty search, not an error page.
    let q = q.map(|Query(q)| q).unwrap_or_default();
    let mut problem = None;
    let from = date(&q.from).unwrap_or_else(|_| {
        problem = Some("The “from” date must look like 2030-06-01.");
        None
    });
    let to = date(&q.to).unwrap_or_else(|_| {
        problem = Some("The “to” date must look like 2030-06-01.");
        None
    });
    // "to" is inclusive for a buyer: events on that day are in.
    let to = to.map(|t| t + time::Duration::days(1));
    let after = q
        .cursor
        .as_deref()
        .and_then(|c| crate::routes::catalog::decode_cursor(c).ok());
    let search = EventSearch {
        text: text(&q.q),
        city: text(&q.city),
        category: text(&q.category),
        // Upcoming only, unless the buyer asks from a date.
        from: Some(from.unwrap_or_else(OffsetDateTime::now_utc)),
        to,
        include_drafts: false,
        after,
        limit: HOME_PAGE + 1,
    };
    let mut found = match s.app.search_events(None, search).await {
        Ok(f) => f,
        Err(e) => return app_error_page(e),
    };
    let next = (found.len() > HOME_PAGE as usize).then(|| {
        found.truncate(HOME_PAGE as usize);
        let last = &found[HOME_PAGE as usize - 1].event;
        let cursor = crate::routes::catalog::encode_cursor(last.starts_at, &last.id);
        let params = [
            ("q", text(&q.q)),
            ("city", text(&q.city)),
            ("category", text(&q.category)),
            ("from", text(&q.from)),
            ("to", text(&q.to)),
            ("cursor", Some(cursor)),
        ];
        let kept: Vec<(&str, String)> = params
            .into_iter()
            .filter_map(|(k, v)| v.map(|v| (k, v)))
            .collect();
        format!(
            "/?{}",
            serde_urlencoded::to_string(kept).unwrap_or_default()
        )
    });
    let events: Vec<EventCard> = found
        .iter()
        .map(|r| {
            let e = &r.event;
            let from_price = e
                .tiers
                .iter()
                .map(|t| t.price)
                .chain(e.ga_tiers.iter().map(|t| t.price))
                .min_by_key(|m| m.amount)
                .map(|m| money(&m));
            EventCard {
                id: e.id.to_string(),
                name: e.name.clone(),
                when: when(e.starts_at),
                starts_at: rfc3339(e.starts_at),
                city: e.details.city.clone(),
                category: e.details.category.clone(),
                status: e.status.as_str(),
                from_price,
            }
        })
        .collect();
    let searched = [&q.q, &q.city, &q.category, &q.from, &q.to]
        .iter()
        .any(|v| text(v).is_some());
    render(
        StatusCode::OK,
        "home.html",
        context! {
            script => "home",
            title => "Upcoming events",
            q => text(&q.q), city => text(&q.city), category => text(&q.category),
            from => text(&q.from), to => text(&q.to),
            events => events, next => next, searched => searched, problem => problem,
        },
    )
}

#[derive(Serialize)]
struct TierRow {
    id: String,
    name: String,
    price: String,
    sections: Vec<String>,
    /// Its colour on the map (the palette's index, `tier-0` … in the CSS).
    colour: usize,
}

#[derive(Serialize)]
struct GaRow {
    id: String,
    name: String,
    price: String,
    capacity: u32,
}

/// `/events/{id}`: what, where, when and for how much, server-rendered; the seat
/// map and the standing-ticket picker are `event.js`'s.
async fn event(
    State(s): State<HttpState>,
    axum::extract::Path(id): axum::extract::Path<String>,
) -> Response {
    let ev = match s.app.visible_event(None, &id).await {
        Ok(ev) => ev,
        Err(e) => return app_error_page(e),
    };
    let r = &ev.record;
    let e = &r.event;
    let venue = s.app.venue(e.venue_id.as_str()).await.ok().map(|v| v.name);
    let tiers: Vec<TierRow> = e
        .tiers
        .iter()
        .enumerate()
        .map(|(i, t)| TierRow {
            id: t.id.to_string(),
            name: t.name.clone(),
            price: money(&t.price),
            sections: t.sections.clone(),
            colour: i % 6,
        })
        .collect();
    let ga: Vec<GaRow> = e
        .ga_tiers
        .iter()
        .map(|t| GaRow {
            id: t.id.to_string(),
            name: t.name.clone(),
            price: money(&t.price),
            capacity: t.capacity,
        })
        .collect();
    render(
        StatusCode::OK,
        "event.html",
        context! {
            script => "event",
            title => e.name.clone(),
            id => e.id.to_string(),
            name => e.name.clone(),
            when => when(e.starts_at),
            starts_at => rfc3339(e.starts_at),
            venue => venue,
            city => e.details.city.clone(),
            category => e.details.category.clone(),
            description => e.details.description.clone(),
            status => e.status.as_str(),
            on_sale => e.status == boxoffice_domain::EventStatus::OnSale,
            seat_count => r.seat_count,
            max => e.max_tickets_per_order,
            ttl_minutes => e.hold_ttl_seconds.div_ceil(60),
            tiers => tiers,
            ga => ga,
            quantities => (1..=e.max_tickets_per_order.min(10)).collect::<Vec<_>>(),
            room => e.room().is_some(),
            session_minutes => e.room().map(|r| r.session_seconds.div_ceil(60)),
        },
    )
}

/// `/events/{id}/queue`: the waiting room's page (issue 12). What the room is
/// (when the sale opens, how long a shopping session lasts) is server-rendered;
/// joining (with the proof of work), the live place in line and the admission
/// token are `queue.js`'s, through the queue API. An event without a room says so
/// and links back: there is nothing to wait for.
async fn queue(
    State(s): State<HttpState>,
    axum::extract::Path(id): axum::extract::Path<String>,
) -> Response {
    let ev = match s.app.visible_event(None, &id).await {
        Ok(ev) => ev,
        Err(e) => return app_error_page(e),
    };
    let e = &ev.record.event;
    let room = e.room();
    // Before the sale's start, joiners form the pre-queue, drawn at the start.
    let now = s.app.clock().now();
    let sale_start = e.sale_starts_at.filter(|t| *t > now);
    render(
        StatusCode::OK,
        "queue.html",
        context! {
            script => "queue",
            title => format!("Queue · {}", e.name),
            id => e.id.to_string(),
            name => e.name.clone(),
            when => when(e.starts_at),
            starts_at => rfc3339(e.starts_at),
            room => room.is_some(),
            session_minutes => room.map(|r| r.session_seconds.div_ceil(60)),
            session_seconds => room.map(|r| r.session_seconds),
            sale_opens => sale_start.map(when),
            sale_opens_at => sale_start.map(rfc3339),
            pre_queue_opens => room.and_then(|r| r.pre_queue_opens_at).filter(|t| *t > now).map(when),
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn money_reads_as_a_buyer_expects() {
        assert_eq!(
            money(&Money::new(6500, boxoffice_domain::Currency::EUR)),
            "€65.00"
        );
        assert_eq!(
            money(&Money::new(5, boxoffice_domain::Currency::EUR)),
            "€0.05"
        );
    }

    #[test]
    fn every_template_renders_and_escapes() {
        let evil = "<script>alert(1)</script>";
        let html = TEMPLATES
            .get_template("error.html")
            .and_then(|t| {
                t.render(context! { script => "home", title => evil, code => "x", message => evil })
            })
            .expect("renders");
        assert!(!html.contains(evil), "{html}");
        assert!(html.contains("&lt;script&gt;"));
        for name in [
            "orders.html",
            "auth.html",
            "hold.html",
            "checkout.html",
            "order.html",
            "queue.html",
        ] {
            TEMPLATES
                .get_template(name)
                .and_then(|t| t.render(context! { script => "x", id => "h1", mode => "login" }))
                .unwrap_or_else(|e| panic!("{name}: {e}"));
        }
    }
}
