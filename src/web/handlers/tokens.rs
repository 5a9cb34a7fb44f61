//! An organization's tokens (admins): what sentry-cli uploads source maps
//! with. A new token is shown once, with the commands that use it.

use super::{Reader, error_page, page_or_error, see_other};
use crate::app::{State, tokens};
use crate::error::Error;
use crate::services::GetOrg;
use crate::web::format::RelTime;
use crate::web::pages::{Layout, OrgHeader};
use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use askama::Template;
use chrono::Utc;
use serde::Deserialize;
use uuid::Uuid;

/// `GET /orgs/{org_id}/tokens` (admins).
#[derive(Debug, Template)]
#[template(path = "tokens.html")]
pub struct TokensPage {
    pub layout: Layout,
    pub org: OrgHeader,
    pub tokens: Vec<TokenRow>,
    /// The token just made, shown this once.
    pub created: Option<CreatedToken>,
    /// Why the last form was refused.
    pub error: Option<String>,
}

/// A token in the list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenRow {
    /// For the revoke form's action.
    pub id: String,
    pub label: String,
    /// Its last four characters, to tell tokens apart.
    pub hint: String,
    pub created: RelTime,
    /// A token nobody uses is one to revoke.
    pub last_used: Option<RelTime>,
    pub revoked: Option<RelTime>,
}

/// A new token and the commands that use it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CreatedToken {
    /// In clear, this once.
    pub token: String,
    /// The environment and commands of a build that uploads source maps.
    pub commands: String,
}

impl CreatedToken {
    fn new(token: String, url: &str, org: &str) -> Self {
        let commands = format!(
            "export SENTRY_URL={url}\nexport SENTRY_AUTH_TOKEN={token}\n\
             npx @sentry/cli sourcemaps inject ./dist\n\
             npx @sentry/cli sourcemaps upload --org {org} --project <project> ./dist\n"
        );
        CreatedToken { token, commands }
    }
}

/// The tokens page of an organization, after an action's `created` token
/// or `error`.
async fn tokens_page(
    state: &State,
    reader: &Reader,
    org_id: Uuid,
    created: Option<CreatedToken>,
    error: Option<String>,
) -> Result<TokensPage, Error> {
    let (tokens, role) = tokens::list(state, &reader.caller, org_id).await?;
    let org = state
        .orgs
        .send(GetOrg {
            id: org_id.to_string(),
        })
        .await??;
    let now = Utc::now();
    let tokens = tokens
        .into_iter()
        .map(|t| TokenRow {
            id: t.id.to_string(),
            label: t.label,
            hint: t.hint,
            created: RelTime::new(t.created_at, now),
            last_used: t.last_used_at.map(|at| RelTime::new(at, now)),
            revoked: t.revoked_at.map(|at| RelTime::new(at, now)),
        })
        .collect();
    Ok(TokensPage {
        layout: Layout::new(format!("Tokens · {}", org.name), Some(reader.nav.clone())),
        org: OrgHeader {
            id: org.id.to_string(),
            name: org.name,
            slug: org.slug,
            role: role.as_str(),
            can_admin: true,
        },
        tokens,
        created,
        error,
    })
}

/// `GET /orgs/{org_id}/tokens`.
pub async fn list(
    req: HttpRequest,
    state: web::Data<State>,
    org_id: web::Path<Uuid>,
) -> HttpResponse {
    let reader = reader!(req, state);
    let page = tokens_page(&state, &reader, *org_id, None, None).await;
    page_or_error(page, StatusCode::OK, reader.nav)
}

#[derive(Deserialize)]
pub struct TokenForm {
    #[serde(default)]
    label: String,
}

/// `POST /orgs/{org_id}/tokens`: a new token, shown this once.
pub async fn create(
    req: HttpRequest,
    state: web::Data<State>,
    org_id: web::Path<Uuid>,
    form: web::Form<TokenForm>,
) -> HttpResponse {
    let reader = reader!(req, state);
    let org_id = org_id.into_inner();
    let made = async {
        let made = tokens::create(&state, &reader.caller, org_id, &form.label).await?;
        let org = state
            .orgs
            .send(GetOrg {
                id: org_id.to_string(),
            })
            .await??;
        Ok::<_, Error>((made, org))
    };
    let (created, error, status) = match made.await {
        Ok((made, org)) => {
            // The configured public URL, else the address this browser
            // reaches Mesher at: a build machine usually reaches it there.
            let url = match &state.public_url {
                Some(url) => url.to_string(),
                None => {
                    let info = req.connection_info();
                    format!("{}://{}", info.scheme(), info.host())
                }
            };
            let created = CreatedToken::new(made.token.expose().to_owned(), &url, &org.slug);
            (Some(created), None, StatusCode::CREATED)
        }
        Err(e @ Error::InvalidInput { .. }) => (None, Some(e.to_string()), StatusCode::BAD_REQUEST),
        Err(e) => return error_page(e, Some(reader.nav)),
    };
    let page = tokens_page(&state, &reader, org_id, created, error).await;
    page_or_error(page, status, reader.nav)
}

/// `POST /orgs/{org_id}/tokens/{token_id}/revoke`.
pub async fn revoke(
    req: HttpRequest,
    state: web::Data<State>,
    path: web::Path<(Uuid, Uuid)>,
) -> HttpResponse {
    let reader = reader!(req, state);
    let (org_id, token_id) = path.into_inner();
    match tokens::revoke(&state, &reader.caller, org_id, token_id).await {
        Ok(()) => see_other(&format!("/orgs/{org_id}/tokens")),
        Err(e) => error_page(e, Some(reader.nav)),
    }
}
