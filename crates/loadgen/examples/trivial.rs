//! The machine's ceiling for docs/benchmarks.md: a trivial axum GET and a small JSON
//! POST, measured with the same generator and connection count as boxoffice.
//! `cargo run --release -p boxoffice-loadgen --example trivial -- 127.0.0.1:18200`

use axum::routing::{get, post};
use axum::{Json, Router};

#[tokio::main]
async fn main() {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:18200".into());
    let app = Router::new().route("/", get(|| async { "ok" })).route(
        "/json",
        post(|Json(v): Json<serde_json::Value>| async move { Json(v) }),
    );
    let listener = tokio::net::TcpListener::bind(&addr).await.unwrap();
    axum::serve(listener, app).await.unwrap();
}
