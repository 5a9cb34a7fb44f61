//! The web UI: server-rendered HTML pages for the people who fix errors,
//! served by the same binary at `/` (the API stays under `/api`).
//!
//! - [`pages`]: one askama template per page (in `templates/`, checked at
//!   compile time and HTML-escaped by default) and its view model.
//! - [`event`]: a stored event as the issue page shows it (exception
//!   chain, frames, breadcrumbs, context tables).
//! - [`format`](mod@format): the pure renderings pages share (relative times, the
//!   sparkline, JSON as text, setup snippets).
//! - [`assets`]: the stylesheet and script, embedded, served under a
//!   versioned prefix.
//! - `handlers`: the pages' handlers, one file per area, over the
//!   application layer ([`crate::app`]) the API shares.
//!
//! Every page is plain HTML and CSS; the script only adds copy buttons.
//! Pages carry a strict Content-Security-Policy (no inline script or
//! style, nothing from other origins), so even text that escaped escaping
//! could not run.
//!
//! # URLs
//!
//! | Path | Page |
//! |------|------|
//! | `GET /login`, `GET /register` | [`pages::LoginPage`], [`pages::RegisterPage`] |
//! | `GET /projects`, `GET /projects/new` | [`pages::ProjectsPage`], [`pages::NewProjectPage`] |
//! | `GET /projects/{id}/issues` | [`pages::IssuesPage`] (query: [`pages::IssueFilters`]) |
//! | `GET /projects/{id}/issues/{issue_id}` | [`pages::IssuePage`] (query: `event=<id>`, else the latest) |
//! | `GET /projects/{id}/keys` | [`pages::KeysPage`] |
//! | `GET /projects/{id}/alerts` | [`alerts::AlertsPage`] |
//! | `GET /projects/{id}/alerts/rules/{rule_id}/edit` | [`alerts::RuleEditPage`] |
//! | `GET /projects/{id}/alerts/channels/{channel_id}/edit` | [`alerts::ChannelEditPage`] |
//! | `GET /projects/{id}/alerts/history` | [`alerts::AlertHistoryPage`] (query: `cursor`) |
//! | `GET /orgs/new` | [`pages::NewOrgPage`] |
//! | `GET /orgs/{org_id}/members` | [`pages::MembersPage`] |
//! | `GET /orgs/{org_id}/tokens` | organization tokens for sentry-cli |
//! | `GET /static/{version}/{file}` | [`assets`] |
//!
//! The forms post to: `/login`, `/register`, `/logout`, `/orgs/new`
//! (`name`, `slug`), `/projects/new`,
//! `/projects/{id}/issues/resolve` (bulk, `issue=<id>` repeated),
//! `/projects/{id}/issues/{issue_id}/status` (`status`, with `until` and
//! `amount` to archive until a condition, `resolve_in` and `release` to
//! resolve in a release),
//! `/projects/{id}/issues/{issue_id}/assignee` (`user_id`, empty for
//! nobody), `/projects/{id}/keys` (`label`),
//! `/projects/{id}/keys/{key_id}/limit` (`rate_limit_per_minute`),
//! `/projects/{id}/keys/{key_id}/revoke`, `/projects/{id}/alerts/channels`
//! (`kind`, `name`, `target`), `/projects/{id}/alerts/channels/{channel_id}`
//! (`name`, `target`: empty keeps a webhook's URL),
//! `/projects/{id}/alerts/channels/{channel_id}/` `enabled|delete|test`, `/projects/{id}/alerts/rules` and
//! `/projects/{id}/alerts/rules/{rule_id}` (the rule form, see
//! [`alerts::rule_from_form`]), `/projects/{id}/alerts/rules/{rule_id}/`
//! `enabled|delete`, `/orgs/{org_id}/members`
//! (`email`, `role`), `/orgs/{org_id}/members/{user_id}/role` (`role`),
//! `/orgs/{org_id}/tokens` (`label`) and
//! `/orgs/{org_id}/tokens/{token_id}/revoke`.
//! Every page but log in and register needs a session; an outsider gets
//! the 404 page for anything in an organization.

pub mod alerts;
pub mod assets;
pub mod event;
pub mod format;
mod handlers;
pub mod pages;
pub mod triage;

use actix_web::http::StatusCode;
use actix_web::http::header::{self, ContentType};
use actix_web::{HttpResponse, web};
use askama::Template;
use pages::ErrorPage;

/// The web UI's routes, to mount at `/`.
pub fn routes(cfg: &mut web::ServiceConfig) {
    use handlers::{alerts, auth, issues, keys, orgs, projects, settings, tokens};
    cfg.route("/", web::get().to(handlers::home))
        .route("/login", web::get().to(auth::login_page))
        .route("/login", web::post().to(auth::login))
        .route("/register", web::get().to(auth::register_page))
        .route("/register", web::post().to(auth::register))
        .route("/logout", web::post().to(auth::logout))
        .route("/projects", web::get().to(projects::list))
        .route("/projects/new", web::get().to(projects::new))
        .route("/projects/new", web::post().to(projects::create))
        .route("/projects/{id}/issues", web::get().to(issues::list))
        .route(
            "/projects/{id}/issues/resolve",
            web::post().to(issues::resolve_selected),
        )
        .route(
            "/projects/{id}/issues/{issue_id}",
            web::get().to(issues::issue),
        )
        .route(
            "/projects/{id}/issues/{issue_id}/status",
            web::post().to(issues::set_status),
        )
        .route(
            "/projects/{id}/issues/{issue_id}/assignee",
            web::post().to(issues::set_assignee),
        )
        .route("/projects/{id}/settings", web::get().to(settings::show))
        .route("/projects/{id}/settings", web::post().to(settings::update))
        .route("/projects/{id}/keys", web::get().to(keys::list))
        .route("/projects/{id}/keys", web::post().to(keys::create))
        .route(
            "/projects/{id}/keys/{key_id}/limit",
            web::post().to(keys::limit),
        )
        .route(
            "/projects/{id}/keys/{key_id}/revoke",
            web::post().to(keys::revoke),
        )
        .route("/projects/{id}/alerts", web::get().to(alerts::list))
        .route(
            "/projects/{id}/alerts/history",
            web::get().to(alerts::history),
        )
        .route(
            "/projects/{id}/alerts/channels",
            web::post().to(alerts::create_channel),
        )
        .route(
            "/projects/{id}/alerts/channels/{channel_id}",
            web::post().to(alerts::update_channel),
        )
        .route(
            "/projects/{id}/alerts/channels/{channel_id}/edit",
            web::get().to(alerts::edit_channel),
        )
        .route(
            "/projects/{id}/alerts/channels/{channel_id}/enabled",
            web::post().to(alerts::channel_enabled),
        )
        .route(
            "/projects/{id}/alerts/channels/{channel_id}/delete",
            web::post().to(alerts::delete_channel),
        )
        .route(
            "/projects/{id}/alerts/channels/{channel_id}/test",
            web::post().to(alerts::test_channel),
        )
        .route(
            "/projects/{id}/alerts/rules",
            web::post().to(alerts::create_rule),
        )
        .route(
            "/projects/{id}/alerts/rules/{rule_id}",
            web::post().to(alerts::update_rule),
        )
        .route(
            "/projects/{id}/alerts/rules/{rule_id}/edit",
            web::get().to(alerts::edit_rule),
        )
        .route(
            "/projects/{id}/alerts/rules/{rule_id}/enabled",
            web::post().to(alerts::rule_enabled),
        )
        .route(
            "/projects/{id}/alerts/rules/{rule_id}/delete",
            web::post().to(alerts::delete_rule),
        )
        .route("/orgs/new", web::get().to(orgs::new))
        .route("/orgs/new", web::post().to(orgs::create))
        .route("/orgs/{org_id}/members", web::get().to(orgs::members))
        .route("/orgs/{org_id}/members", web::post().to(orgs::add_member))
        .route(
            "/orgs/{org_id}/members/{user_id}/role",
            web::post().to(orgs::change_role),
        )
        .route("/orgs/{org_id}/tokens", web::get().to(tokens::list))
        .route("/orgs/{org_id}/tokens", web::post().to(tokens::create))
        .route(
            "/orgs/{org_id}/tokens/{token_id}/revoke",
            web::post().to(tokens::revoke),
        )
        .route("/static/{version}/{name}", web::get().to(assets::serve));
}

/// What pages may load and where forms may post: this origin only, no
/// inline script or style, no framing.
const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; style-src 'self'; script-src 'self'; \
     img-src 'self' data:; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/// `page` as an HTML response with `status`. Pages hold private data:
/// never cached. A template that fails to render (only a formatting
/// error can make it) is logged and answered 500.
pub fn render(status: StatusCode, page: &impl Template) -> HttpResponse {
    match page.render() {
        Ok(html) => HttpResponse::build(status)
            .insert_header(ContentType::html())
            .insert_header((header::CACHE_CONTROL, "no-store"))
            .insert_header((header::CONTENT_SECURITY_POLICY, CONTENT_SECURITY_POLICY))
            .insert_header((header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
            .insert_header((header::REFERRER_POLICY, "same-origin"))
            .body(html),
        Err(e) => {
            log::error!("cannot render a page: {e}");
            HttpResponse::InternalServerError()
                .insert_header(ContentType::plaintext())
                .body("internal error")
        }
    }
}

/// The 404 page, for an unknown path outside `/api` and for what the
/// caller may not see.
pub fn not_found_page() -> HttpResponse {
    render(StatusCode::NOT_FOUND, &ErrorPage::not_found(None))
}

#[cfg(test)]
mod tests;
