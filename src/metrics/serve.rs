//! The standalone metrics port: `GET /metrics`, `/healthz` and `/readyz` (`health`) on a small HTTP/1 server
//! (hyper) on the store's tokio runtime.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::{header, Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};

use super::{Exporter, CONTENT_TYPE};
use crate::error::{Result, StoreError};

/// Binds `host:port` now (so a port in use fails the caller at once); `serve` takes it from there. Port 0 picks a
/// free one.
pub fn bind(host: &str, port: u16) -> Result<std::net::TcpListener> {
  let bad = |reason: String| StoreError::InvalidOption { name: "metricsPort", reason };
  let ip: std::net::IpAddr = host.parse().map_err(|_| StoreError::InvalidOption {
    name: "metricsHost",
    reason: format!("{host:?} is not an IP address (e.g. 127.0.0.1, 0.0.0.0, ::)"),
  })?;
  let addr = SocketAddr::new(ip, port);
  let listener = std::net::TcpListener::bind(addr).map_err(|e| bad(format!("cannot listen on {addr}: {e}")))?;
  listener.set_nonblocking(true).map_err(|e| bad(format!("{addr}: {e}")))?;
  Ok(listener)
}

fn text(status: StatusCode, body: String, content_type: &str) -> Response<Full<Bytes>> {
  let mut res = Response::new(Full::new(Bytes::from(body)));
  *res.status_mut() = status;
  res.headers_mut().insert(header::CONTENT_TYPE, header::HeaderValue::from_str(content_type).expect("ascii"));
  res
}

async fn respond(exporter: &Exporter, req: Request<Incoming>) -> Response<Full<Bytes>> {
  let plain = "text/plain; charset=utf-8";
  let path = req.uri().path();
  if !matches!(path, "/metrics" | "/healthz" | "/readyz") {
    return text(StatusCode::NOT_FOUND, "not found: /metrics, /healthz, /readyz\n".into(), plain);
  }
  if !matches!(*req.method(), Method::GET | Method::HEAD) {
    return text(StatusCode::METHOD_NOT_ALLOWED, format!("GET {path}\n"), plain);
  }
  match path {
    // Answered from the runtime that serves everything else: if this answers, the process and its runtime do.
    "/healthz" => return text(StatusCode::OK, "ok\n".into(), plain),
    "/readyz" => {
      return match exporter.readiness(super::READY_TIMEOUT).await {
        Ok(()) => text(StatusCode::OK, "ready\n".into(), plain),
        Err(reason) => text(StatusCode::SERVICE_UNAVAILABLE, format!("not ready: {reason}\n"), plain),
      }
    }
    _ => {}
  }
  // Prometheus says how long it waits; the tiers get that less a margin for the rest of the answer.
  let scraper_waits = req.headers().get("x-prometheus-scrape-timeout-seconds").and_then(|v| v.to_str().ok());
  let budget = scraper_waits.and_then(|s| s.parse::<f64>().ok()).filter(|s| s.is_finite() && *s > 0.0);
  let budget = budget.map_or(super::TIER_TIMEOUT, |s| Duration::from_secs_f64((s * 0.8).min(60.0)));
  match exporter.render_within(budget).await {
    Ok(body) => text(StatusCode::OK, body, CONTENT_TYPE),
    Err(e) => text(StatusCode::INTERNAL_SERVER_ERROR, format!("{}: {e}\n", e.code()), plain),
  }
}

/// Answers on `listener` until `stop` turns true (or its sender is gone); open connections finish their request.
pub async fn serve(
  listener: std::net::TcpListener,
  exporter: Arc<Exporter>,
  mut stop: tokio::sync::watch::Receiver<bool>,
) -> Result<()> {
  let listener = tokio::net::TcpListener::from_std(listener).map_err(StoreError::io("listen for metrics", "socket"))?;
  loop {
    let stream = tokio::select! {
      accepted = listener.accept() => match accepted {
        Ok((stream, _)) => stream,
        // Out of file descriptors and the like: wait, and keep serving.
        Err(_) => { tokio::time::sleep(Duration::from_millis(100)).await; continue }
      },
      changed = stop.changed() => if changed.is_err() || *stop.borrow() { return Ok(()) } else { continue },
    };
    let (exporter, mut stop) = (exporter.clone(), stop.clone());
    tokio::spawn(async move {
      let service = hyper::service::service_fn(move |req| {
        let exporter = exporter.clone();
        async move { Ok::<_, Infallible>(respond(&exporter, req).await) }
      });
      let mut builder = hyper::server::conn::http1::Builder::new();
      // A client that never finishes its headers does not hold a connection for ever.
      builder.timer(TokioTimer::new()).header_read_timeout(Duration::from_secs(10));
      let conn = builder.serve_connection(TokioIo::new(stream), service);
      tokio::pin!(conn);
      tokio::select! {
        _ = conn.as_mut() => {}
        _ = stop.changed() => {
          conn.as_mut().graceful_shutdown();
          let _ = conn.await;
        }
      }
    });
  }
}
