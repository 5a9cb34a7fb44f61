//! The actix-web server: its routes, limits and lifecycle.
//!
//! It runs in the same actix System as the actors; its workers send them
//! messages. It installs no signal handlers of its own: the caller stops
//! it (see [`crate::Mesher::shutdown`]), first the server, letting requests
//! in progress finish within the configured bound, then the writers.

use super::error::{ApiError, Problem, SentryError};
use super::{health, ingest};
use crate::app::State;
use crate::config::HttpConfig;
use crate::error::{Error, Result};
use actix_cors::Cors;
use actix_web::dev::{Server, Service};
use actix_web::http::StatusCode;
use actix_web::{App, HttpRequest, HttpResponse, HttpServer, ResponseError, web};
use futures_util::FutureExt;
use std::net::{SocketAddr, TcpListener};

/// Listens on `addr` (port 0 picks a free port; the listener tells which).
pub fn listen(addr: SocketAddr) -> Result<TcpListener> {
    TcpListener::bind(addr).map_err(|e| Error::internal_from(format!("cannot listen on {addr}"), e))
}

/// The server on `listener`: a future that runs until stopped through its
/// handle; the caller spawns it.
pub fn serve(state: State, listener: TcpListener, config: &HttpConfig) -> Result<Server> {
    let data = web::Data::new(state);
    let server = HttpServer::new(move || {
        let metrics = data.metrics.clone();
        App::new()
            .app_data(data.clone())
            .wrap_fn(move |req, srv| {
                let metrics = metrics.clone();
                srv.call(req).map(move |res| {
                    if let Ok(res) = &res {
                        let route = res.request().match_pattern();
                        metrics.http_request(
                            route.as_deref().unwrap_or("unmatched"),
                            res.status().as_u16(),
                        );
                    }
                    res
                })
            })
            .configure(routes)
    })
    .disable_signals()
    .shutdown_timeout(config.shutdown_timeout.as_secs())
    .client_request_timeout(config.client_timeout)
    .listen(listener)
    .map_err(|e| Error::internal_from("cannot serve HTTP", e))?;
    Ok(server.run())
}

/// Browser SDKs post from any origin; they must be able to read the
/// rate-limit headers. As relay allows.
fn sentry_cors() -> Cors {
    Cors::default()
        .allow_any_origin()
        .allowed_methods(["POST"])
        .allowed_headers([
            "x-sentry-auth",
            "content-type",
            "content-encoding",
            "authorization",
            "sentry-trace",
            "baggage",
        ])
        .expose_headers(["x-sentry-rate-limits", "retry-after", "x-sentry-error"])
        .max_age(3600)
}

/// Every route, and what an unknown route or method gets.
fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource("/api/{project_id}/envelope/")
            .wrap(sentry_cors())
            .post(ingest::envelope)
            .default_service(web::to(method_not_allowed)),
    )
    .service(
        web::resource("/api/{project_id}/store/")
            .wrap(sentry_cors())
            .post(ingest::store)
            .default_service(web::to(method_not_allowed)),
    )
    .service(
        web::resource("/api/v1/events")
            .post(ingest::native)
            .default_service(web::to(method_not_allowed)),
    )
    .configure(super::sentry_api::routes)
    .route("/healthz", web::get().to(health::healthz))
    .route("/readyz", web::get().to(health::readyz))
    .route("/metrics", web::get().to(health::metrics))
    .service(
        web::scope("/api/v1")
            .configure(super::api::routes)
            .default_service(web::to(not_found)),
    )
    .configure(crate::web::routes)
    .default_service(web::to(not_found));
}

/// People browse outside `/api`: they get the web UI's 404 page.
async fn not_found(req: HttpRequest) -> HttpResponse {
    if req.path() != "/api" && !req.path().starts_with("/api/") {
        return crate::web::not_found_page();
    }
    answer(
        &req,
        Problem::new(StatusCode::NOT_FOUND, "not_found", "no such route"),
    )
}

/// What a route answers to a method it does not serve: 405, in the shape
/// of the path's clients (see [`answer`]).
pub(super) async fn method_not_allowed(req: HttpRequest) -> HttpResponse {
    let message = format!("{} is not allowed here", req.method());
    let problem = Problem::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        message,
    );
    answer(&req, problem)
}

/// `problem` in the shape the path's clients read: Mesher's own under
/// `/api/v1/`, Sentry's elsewhere.
fn answer(req: &HttpRequest, problem: Problem) -> HttpResponse {
    if req.path().starts_with("/api/v1/") {
        ApiError(problem).error_response()
    } else {
        SentryError(problem).error_response()
    }
}
