//! Alerts: a project's rules and channels (members read, admins write), a
//! channel's test notification, and the history of what fired and how
//! each delivery went. The API and the pages both call these.

use super::{Caller, State};
use crate::db;
use crate::domain::access::Action;
use crate::domain::{
    AlertPage, AlertRule, Channel, ChannelKind, ChannelPatch, ChannelSecret, ChannelSpec,
    ChannelTarget, NewChannel, NewChannelReply, NewRule, Project, RulePatch, RuleSpec, page_limit,
    parse_id,
};
use crate::error::{Error, Result};
use crate::services::check_webhook_target;
use uuid::Uuid;

/// The project's rules, for a member.
pub async fn rules(state: &State, caller: &Caller, project_id: &str) -> Result<Vec<AlertRule>> {
    let (project, _) = caller.project(state, project_id, Action::Read).await?;
    db::alerts::list_rules(&state.pool, project.id).await
}

/// A new rule (admins); its channels must be the project's.
pub async fn create_rule(
    state: &State,
    caller: &Caller,
    project_id: &str,
    rule: NewRule,
) -> Result<AlertRule> {
    let (project, _) = caller
        .project(state, project_id, Action::ManageAlerts)
        .await?;
    let spec = RuleSpec::new(rule)?;
    db::alerts::create_rule(&state.pool, project.id, &spec).await
}

/// Changes a rule (admins): what `patch` gives replaces what it had;
/// `enabled` turns it on or off.
pub async fn update_rule(
    state: &State,
    caller: &Caller,
    project_id: &str,
    rule_id: &str,
    patch: RulePatch,
) -> Result<AlertRule> {
    let (project, _) = caller
        .project(state, project_id, Action::ManageAlerts)
        .await?;
    let id = parse_id("rule_id", rule_id)?;
    let rule = db::alerts::get_rule(&state.pool, project.id, id).await?;
    let spec = RuleSpec::patched(&rule, patch)?;
    db::alerts::update_rule(&state.pool, project.id, id, &spec).await
}

/// Deletes a rule (admins), with its history.
pub async fn delete_rule(
    state: &State,
    caller: &Caller,
    project_id: &str,
    rule_id: &str,
) -> Result<()> {
    let (project, _) = caller
        .project(state, project_id, Action::ManageAlerts)
        .await?;
    let id = parse_id("rule_id", rule_id)?;
    db::alerts::delete_rule(&state.pool, project.id, id).await
}

/// The project's channels, for a member: never their secrets, and their
/// URLs whole only to those who may manage them.
pub async fn channels(state: &State, caller: &Caller, project_id: &str) -> Result<Vec<Channel>> {
    let (project, role) = caller.project(state, project_id, Action::Read).await?;
    let channels = db::alerts::list_channels(&state.pool, project.id).await?;
    Ok(if role.may(Action::ManageAlerts) {
        channels
    } else {
        channels.into_iter().map(Channel::redacted).collect()
    })
}

/// Whether this Mesher can send to `spec`: email needs SMTP; a webhook's
/// host must resolve, to public addresses only unless allowed.
async fn check_target(state: &State, spec: &ChannelSpec) -> Result<()> {
    match &spec.target {
        ChannelTarget::Email { .. } if !state.alerts.email => Err(Error::invalid(
            "kind",
            "email needs an SMTP server: set MESHER_SMTP_URL and MESHER_EMAIL_FROM",
        )),
        ChannelTarget::Email { .. } => Ok(()),
        ChannelTarget::Url(url) => {
            check_webhook_target(url, state.alerts.allow_private_webhooks).await
        }
    }
}

/// A new channel (admins). A generic webhook gets its signing secret,
/// shown in the reply this once.
pub async fn create_channel(
    state: &State,
    caller: &Caller,
    project_id: &str,
    channel: NewChannel,
) -> Result<NewChannelReply> {
    let (project, _) = caller
        .project(state, project_id, Action::ManageAlerts)
        .await?;
    let spec = ChannelSpec::new(channel)?;
    check_target(state, &spec).await?;
    let secret = match spec.kind {
        ChannelKind::Webhook => Some(ChannelSecret::generate()?),
        _ => None,
    };
    let made = db::alerts::create_channel(&state.pool, project.id, &spec, secret.as_ref()).await?;
    Ok(NewChannelReply {
        id: made.id,
        kind: made.kind,
        name: made.name,
        secret,
    })
}

/// Changes a channel (admins); its kind and secret stay.
pub async fn update_channel(
    state: &State,
    caller: &Caller,
    project_id: &str,
    channel_id: &str,
    patch: ChannelPatch,
) -> Result<Channel> {
    let (project, _) = caller
        .project(state, project_id, Action::ManageAlerts)
        .await?;
    let id = parse_id("channel_id", channel_id)?;
    let channel = db::alerts::get_channel(&state.pool, project.id, id).await?;
    let spec = ChannelSpec::patched(&channel, patch)?;
    check_target(state, &spec).await?;
    db::alerts::update_channel(&state.pool, project.id, id, &spec).await
}

/// Deletes a channel (admins): its deliveries go, and the rules that
/// named it no longer do.
pub async fn delete_channel(
    state: &State,
    caller: &Caller,
    project_id: &str,
    channel_id: &str,
) -> Result<()> {
    let (project, _) = caller
        .project(state, project_id, Action::ManageAlerts)
        .await?;
    let id = parse_id("channel_id", channel_id)?;
    db::alerts::delete_channel(&state.pool, project.id, id).await
}

/// A test notification to a channel (admins), through the outbox like any
/// alert; the alert's and delivery's ids, to follow in the history.
pub async fn test_channel(
    state: &State,
    caller: &Caller,
    project_id: &str,
    channel_id: &str,
) -> Result<(Uuid, Uuid)> {
    let (project, _) = caller
        .project(state, project_id, Action::ManageAlerts)
        .await?;
    let id = parse_id("channel_id", channel_id)?;
    db::alerts::queue_test(&state.pool, project.id, id).await
}

/// A page of the project's alerts (of one issue, with `issue_id`), newest
/// first, for a member. `cursor` is the previous page's `next`.
pub async fn history(
    state: &State,
    project: &Project,
    issue_id: Option<&str>,
    cursor: Option<&str>,
    limit: Option<u32>,
) -> Result<AlertPage> {
    let issue = issue_id.map(|i| parse_id("issue_id", i)).transpose()?;
    let before = cursor.map(|c| parse_id("cursor", c)).transpose()?;
    let limit = page_limit(limit)?;
    let alerts =
        db::alerts::history(&state.pool, project.id, issue, before, i64::from(limit)).await?;
    let next = (alerts.len() == limit as usize)
        .then(|| alerts.last().map(|a| a.id.to_string()))
        .flatten();
    Ok(AlertPage { alerts, next })
}
