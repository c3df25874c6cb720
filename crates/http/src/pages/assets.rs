//! The pages' CSS and JavaScript, embedded in the binary and served under
//! content-hashed names (`seatmap.3f2a9c1d.js`) with a year-long, immutable cache
//! life: a release that changes a file changes its name, so no browser keeps a
//! stale copy, and an unchanged file is never fetched twice.
//!
//! The modules import each other by their plain names (`./common.js`); those
//! specifiers are rewritten to the hashed names before hashing the importer, so
//! an importer's name changes when what it imports does.

use axum::extract::Path;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use std::collections::HashMap;
use std::sync::LazyLock;

/// Every asset, the imported before their importers.
const SOURCES: &[(&str, &str)] = &[
    ("app.css", include_str!("assets/app.css")),
    ("common.js", include_str!("assets/common.js")),
    ("seatmap.js", include_str!("assets/seatmap.js")),
    ("home.js", include_str!("assets/home.js")),
    ("event.js", include_str!("assets/event.js")),
    ("pow.js", include_str!("assets/pow.js")),
    ("queue.js", include_str!("assets/queue.js")),
    ("hold.js", include_str!("assets/hold.js")),
    ("checkout.js", include_str!("assets/checkout.js")),
    ("order.js", include_str!("assets/order.js")),
    ("orders.js", include_str!("assets/orders.js")),
    ("auth.js", include_str!("assets/auth.js")),
    // jsQR 1.4.0 (github.com/cozmo/jsQR, Apache-2.0), its `dist/jsQR.js` as
    // published: the scanner's QR decoder where the browser has no BarcodeDetector.
    ("jsqr.js", include_str!("assets/jsqr.js")),
    ("scan.js", include_str!("assets/scan.js")),
];

/// Scripts that run as Web Workers. A worker lives under its own script's
/// Content-Security-Policy, and the policy every non-HTML answer gets (`edge.rs`,
/// with `sandbox`) would give it an opaque origin: not a secure context, so no
/// WebCrypto. These get [`WORKER_CSP`] instead: still allowed to load nothing.
const WORKERS: &[&str] = &["pow.js"];
const WORKER_CSP: &str = "default-src 'none'; frame-ancestors 'none'";

#[derive(Debug)]
struct Asset {
    body: &'static [u8],
    content_type: &'static str,
    worker: bool,
}

#[derive(Debug, Default)]
struct Assets {
    /// Plain name → hashed name.
    names: HashMap<&'static str, String>,
    /// Hashed name → the file.
    files: HashMap<String, Asset>,
}

static ASSETS: LazyLock<Assets> = LazyLock::new(|| {
    use sha2::Digest;
    let mut a = Assets::default();
    for &(name, src) in SOURCES {
        let mut body = src.to_owned();
        for (plain, hashed) in &a.names {
            body = body.replace(&format!("'./{plain}'"), &format!("'./{hashed}'"));
        }
        let digest = sha2::Sha256::digest(body.as_bytes());
        let hash: String = digest[..5].iter().map(|b| format!("{b:02x}")).collect();
        let (stem, ext) = name.rsplit_once('.').expect("assets have an extension");
        let hashed = format!("{stem}.{hash}.{ext}");
        let content_type = match ext {
            "css" => "text/css; charset=utf-8",
            _ => "text/javascript; charset=utf-8",
        };
        // Leaked once at start: the assets live as long as the process.
        let body: &'static [u8] = Box::leak(body.into_boxed_str()).as_bytes();
        a.names.insert(name, hashed.clone());
        a.files.insert(
            hashed,
            Asset {
                body,
                content_type,
                worker: WORKERS.contains(&name),
            },
        );
    }
    a
});

/// The URL of an asset by its plain name (empty for an unknown one, which a
/// template test catches).
pub fn url(name: &str) -> String {
    ASSETS
        .names
        .get(name)
        .map(|h| format!("/assets/{h}"))
        .unwrap_or_default()
}

pub async fn serve(Path(name): Path<String>) -> Response {
    let Some(a) = ASSETS.files.get(&name) else {
        return crate::ApiError::not_found().into_response();
    };
    let mut res = (StatusCode::OK, a.body).into_response();
    let h = res.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(a.content_type),
    );
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=31536000, immutable"),
    );
    if a.worker {
        h.insert(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(WORKER_CSP),
        );
    }
    res
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn importers_name_the_hashed_modules() {
        let event = url("event.js");
        let body = ASSETS.files[event.trim_start_matches("/assets/")].body;
        let body = std::str::from_utf8(body).unwrap();
        let common = url("common.js");
        assert!(
            body.contains(common.trim_start_matches("/assets/")),
            "{body}"
        );
        assert!(!body.contains("'./common.js'"));
    }

    #[tokio::test]
    async fn a_worker_is_served_without_the_sandbox_that_would_take_its_webcrypto() {
        use axum::http::header::CONTENT_SECURITY_POLICY;
        let pow = url("pow.js");
        let res = serve(Path(pow.trim_start_matches("/assets/").to_owned())).await;
        assert_eq!(res.status(), StatusCode::OK);
        let csp = res.headers()[CONTENT_SECURITY_POLICY].to_str().unwrap();
        assert!(
            !csp.contains("sandbox") && csp.contains("default-src 'none'"),
            "{csp}"
        );
        let queue = url("queue.js");
        let res = serve(Path(queue.trim_start_matches("/assets/").to_owned())).await;
        assert!(res.headers().get(CONTENT_SECURITY_POLICY).is_none());
    }
}
