//! `GET /health` (JSON) and `GET /metrics` (Prometheus text) over HTTP/1.1.

use std::{convert::Infallible, sync::Arc};

use http_body_util::Full;
use hyper::{Request, Response, StatusCode, body::Bytes, service::service_fn};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::state::State;

async fn handle(state: Arc<State>, req: Request<hyper::body::Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    let store = state.storage.totals().await;
    let uptime = state.started.elapsed().as_secs();
    let (status, kind, body) = match (req.method().as_str(), req.uri().path()) {
        ("GET", "/health") => {
            let (groups, messages, bytes) = store;
            let body = serde_json::json!({
                "status": if state.shutting_down() { "shutting-down" } else { "ok" },
                "version": env!("CARGO_PKG_VERSION"),
                "endpoint_id": state.relay_id_hex(),
                "sessions": state.metrics.sessions_active.load(std::sync::atomic::Ordering::Relaxed),
                "groups": groups,
                "messages": messages,
                "storage_bytes": bytes,
                "uptime_seconds": uptime,
            });
            (StatusCode::OK, "application/json", body.to_string())
        }
        ("GET", "/metrics") => (StatusCode::OK, "text/plain; version=0.0.4", state.metrics.render(store, uptime)),
        _ => (StatusCode::NOT_FOUND, "text/plain", "not found\n".to_string()),
    };
    let mut resp = Response::new(Full::new(Bytes::from(body)));
    *resp.status_mut() = status;
    resp.headers_mut().insert(hyper::header::CONTENT_TYPE, hyper::header::HeaderValue::from_static(kind));
    Ok(resp)
}

/// Serves until `stop` is cancelled.
pub async fn serve(listener: TcpListener, state: Arc<State>, stop: CancellationToken) {
    loop {
        let accepted = tokio::select! {
            _ = stop.cancelled() => return,
            a = listener.accept() => a,
        };
        let Ok((sock, _)) = accepted else { continue };
        let state = state.clone();
        let stop = stop.clone();
        tokio::spawn(async move {
            let conn = hyper::server::conn::http1::Builder::new().serve_connection(
                hyper_util::rt::TokioIo::new(sock),
                service_fn(move |req| handle(state.clone(), req)),
            );
            tokio::select! {
                _ = conn => {}
                _ = stop.cancelled() => {}
            }
        });
    }
}
