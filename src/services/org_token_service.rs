//! OrgTokenService: organization tokens, what sentry-cli authenticates its
//! uploads with. A token is shown once when created; only its SHA-256 is
//! stored.

use crate::db::{self, Pool};
use crate::domain::{Name, NewOrgToken, OrgToken, OrgTokenInfo, Organization};
use crate::error::{Error, Result};
use actix::prelude::*;
use uuid::Uuid;

/// Issues, lists, revokes and checks organization tokens.
pub struct OrgTokenService {
    /// Shared connection pool; each request borrows a connection briefly.
    pool: Pool,
}

impl OrgTokenService {
    pub fn new(pool: Pool) -> Self {
        OrgTokenService { pool }
    }
}

impl Actor for OrgTokenService {
    type Context = Context<Self>;
}

/// Issues a token for `org_id`; the reply holds it in clear, the only
/// time it exists outside the client. `label` defaults to "sentry-cli".
/// Errors: `InvalidInput` (label), `NotFound { "organization" }`.
#[derive(Debug, Message)]
#[rtype(result = "Result<NewOrgToken>")]
pub struct CreateOrgToken {
    pub org_id: Uuid,
    pub label: Option<String>,
    /// Who asked, from the web UI.
    pub created_by: Option<Uuid>,
}

/// An organization's tokens (never the tokens themselves). Errors:
/// `NotFound { "organization" }`.
#[derive(Debug, Message)]
#[rtype(result = "Result<Vec<OrgTokenInfo>>")]
pub struct ListOrgTokens {
    pub org_id: Uuid,
}

/// Revokes one of `org_id`'s tokens at once. Errors: `NotFound { "token" }`.
#[derive(Debug, Message)]
#[rtype(result = "Result<OrgTokenInfo>")]
pub struct RevokeOrgToken {
    pub org_id: Uuid,
    pub token_id: Uuid,
}

/// The organization a token presented by a client belongs to. Errors:
/// `InvalidCredentials` for a malformed, unknown or revoked token.
#[derive(Message)]
#[rtype(result = "Result<Organization>")]
pub struct AuthenticateOrgToken {
    pub token: String,
}

impl Handler<CreateOrgToken> for OrgTokenService {
    type Result = ResponseFuture<Result<NewOrgToken>>;

    fn handle(&mut self, msg: CreateOrgToken, _: &mut Self::Context) -> Self::Result {
        let pool = self.pool.clone();
        Box::pin(async move {
            let label = Name::parse("label", msg.label.as_deref().unwrap_or("sentry-cli"))?;
            let org = db::orgs::get(&pool, msg.org_id).await?;
            let token = OrgToken::generate(&org.slug)?;
            let info =
                db::org_tokens::insert(&pool, org.id, &token, &label, msg.created_by).await?;
            Ok(NewOrgToken { token, info })
        })
    }
}

impl Handler<ListOrgTokens> for OrgTokenService {
    type Result = ResponseFuture<Result<Vec<OrgTokenInfo>>>;

    fn handle(&mut self, msg: ListOrgTokens, _: &mut Self::Context) -> Self::Result {
        let pool = self.pool.clone();
        Box::pin(async move { db::org_tokens::list_by_org(&pool, msg.org_id).await })
    }
}

impl Handler<RevokeOrgToken> for OrgTokenService {
    type Result = ResponseFuture<Result<OrgTokenInfo>>;

    fn handle(&mut self, msg: RevokeOrgToken, _: &mut Self::Context) -> Self::Result {
        let pool = self.pool.clone();
        Box::pin(async move { db::org_tokens::revoke(&pool, msg.org_id, msg.token_id).await })
    }
}

impl Handler<AuthenticateOrgToken> for OrgTokenService {
    type Result = ResponseFuture<Result<Organization>>;

    fn handle(&mut self, msg: AuthenticateOrgToken, _: &mut Self::Context) -> Self::Result {
        let pool = self.pool.clone();
        Box::pin(async move {
            // A token not even shaped like one is just as unknown.
            let token = OrgToken::parse(msg.token.trim()).map_err(|_| Error::InvalidCredentials)?;
            db::org_tokens::authenticate(&pool, &token).await
        })
    }
}
