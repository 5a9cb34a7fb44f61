//! Organization tokens, what sentry-cli uploads source maps with: listed,
//! made (shown once) and revoked by the organization's admins.

use super::orgs::ORG;
use super::{Caller, State};
use crate::domain::access::Action;
use crate::domain::{NewOrgToken, OrgTokenInfo, Role};
use crate::error::Error;
use crate::services::{CreateOrgToken, ListOrgTokens, RevokeOrgToken};
use uuid::Uuid;

/// Managing tokens is managing keys: a token uploads for every project of
/// the organization, as a key sends events for one.
const MANAGE: Action = Action::ManageKeys;

/// The organization's tokens (never the tokens themselves), with the
/// caller's role there.
pub async fn list(
    state: &State,
    caller: &Caller,
    org_id: Uuid,
) -> Result<(Vec<OrgTokenInfo>, Role), Error> {
    let role = caller.require(state, org_id, MANAGE, ORG).await?;
    let tokens = state.tokens.send(ListOrgTokens { org_id }).await??;
    Ok((tokens, role))
}

/// A new token for `org_id`, labelled `label` ("sentry-cli" when blank),
/// in clear this once.
pub async fn create(
    state: &State,
    caller: &Caller,
    org_id: Uuid,
    label: &str,
) -> Result<NewOrgToken, Error> {
    caller.require(state, org_id, MANAGE, ORG).await?;
    let label = Some(label.trim().to_owned()).filter(|l| !l.is_empty());
    state
        .tokens
        .send(CreateOrgToken {
            org_id,
            label,
            created_by: Some(caller.user_id),
        })
        .await?
}

/// Revokes one of `org_id`'s tokens, refused from then on;
/// `NotFound { "token" }` for a token of another organization.
pub async fn revoke(
    state: &State,
    caller: &Caller,
    org_id: Uuid,
    token_id: Uuid,
) -> Result<(), Error> {
    caller.require(state, org_id, MANAGE, ORG).await?;
    state
        .tokens
        .send(RevokeOrgToken { org_id, token_id })
        .await??;
    Ok(())
}
