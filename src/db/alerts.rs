//! Alerts: rules and channels (`alert_rules`, `notification_channels`),
//! the alerts a stored batch fires (`alerts`, in the batch's transaction:
//! [`record_batch`]), and the outbox of their deliveries
//! (`alert_deliveries`), which the notifier claims, sends and settles.
//!
//! # Exactly when the events are stored
//!
//! A batch's transaction reads `alert_rules_version` beside its first
//! statement ([`VERSION_SQL`], pipelined: no round trip of its own) and,
//! after its events and triage are written, fires its project's rules in
//! one statement (`FIRE_SQL`), only when a project of the batch has
//! enabled rules. Every change to rules or channels bumps the version in
//! its own transaction, and a batch whose version differs from the cached
//! rules' reloads them in its transaction: any process applies a rule to
//! every batch stored after the rule committed.
//!
//! New issues, regressions and returns from archive are decided by the
//! statements before it and handed in; frequencies are counted from the
//! stored events (the `(issue_id, received_at)` index), for the issues the
//! batch touched only. Whatever process stores them, two batches that set
//! off one rule for one issue fire it once per interval: the
//! `alert_rule_issues` row of the pair is claimed by an upsert, which the
//! second waits on and then sees.

use super::Pool;
use crate::domain::notice::{Notice, NoticeEvent, NoticeIssue, NoticeProject, NoticeRule};
use crate::domain::{
    Alert, AlertCondition, AlertFilters, AlertRule, Channel, ChannelKind, ChannelSecret,
    ChannelSpec, ChannelTarget, Delivery, DeliveryState, Event, EventBody, EventPayload,
    IssueStatus, RuleAction, RuleSpec, Severity, new_id,
};
use crate::error::{Error, Result};
use chrono::{DateTime, Utc};
use serde_json::json;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio_postgres::{Error as PgError, Row, Transaction};
use uuid::Uuid;

/// The channel on which a batch that fired alerts wakes every notifier.
pub const WAKE_CHANNEL: &str = "mesher_alerts";

/// Alerts fired, by condition (`new_issue`, ...).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Fired(BTreeMap<&'static str, u64>);

impl Fired {
    pub fn iter(&self) -> impl Iterator<Item = (&&'static str, &u64)> {
        self.0.iter()
    }

    pub fn total(&self) -> u64 {
        self.0.values().sum()
    }

    /// Adds `other`'s counts to these.
    pub fn merge(&mut self, other: &Fired) {
        for (&condition, &n) in &other.0 {
            *self.0.entry(condition).or_default() += n;
        }
    }
}

/// The version of rules and channels a transaction sees.
pub const VERSION_SQL: &str = "SELECT version FROM alert_rules_version";

/// Marks a change to rules or channels (see the module documentation).
const BUMP_SQL: &str = "UPDATE alert_rules_version SET version = version + 1";

/// The enabled rules of every project, as of one version.
#[derive(Debug)]
pub struct Rules {
    version: i64,
    by_project: HashMap<Uuid, Vec<AlertRule>>,
}

/// The rules the batches of one pool fire, reloaded when the version a
/// batch reads has moved (see the module documentation).
#[derive(Debug)]
pub struct RuleCache(Mutex<Arc<Rules>>);

impl Default for RuleCache {
    fn default() -> Self {
        RuleCache(Mutex::new(Arc::new(Rules {
            // Version 0 has no rules (see schema.sql): a database where no
            // rule was ever made costs its batches no loading.
            version: 0,
            by_project: HashMap::new(),
        })))
    }
}

impl RuleCache {
    /// The rules as of `version` (read by the batch's transaction `tx`),
    /// loaded in `tx` when those cached are of another.
    pub async fn current(&self, tx: &Transaction<'_>, version: i64) -> Result<Arc<Rules>, PgError> {
        let cached = Arc::clone(&self.0.lock().unwrap_or_else(|p| p.into_inner()));
        if cached.version == version {
            return Ok(cached);
        }
        let sql = format!("SELECT {RULE_COLUMNS} FROM alert_rules WHERE enabled");
        let mut by_project: HashMap<Uuid, Vec<AlertRule>> = HashMap::new();
        for row in tx.query(&sql, &[]).await? {
            match rule_from_row(&row) {
                Ok(rule) => by_project.entry(rule.project_id).or_default().push(rule),
                Err(e) => log::warn!("skipping an alert rule: {}", e.report()),
            }
        }
        let rules = Arc::new(Rules {
            version,
            by_project,
        });
        *self.0.lock().unwrap_or_else(|p| p.into_inner()) = Arc::clone(&rules);
        Ok(rules)
    }
}

/// Reads the version in a batch's transaction (see [`VERSION_SQL`]).
pub async fn version(tx: &Transaction<'_>) -> Result<i64, PgError> {
    Ok(tx
        .query_opt(VERSION_SQL, &[])
        .await?
        .map_or(0, |row| row.get(0)))
}

/// Fires the candidates (one row per rule and issue the batch may set off:
/// `$1..$14`) whose condition holds and whose rule has not notified about
/// the issue within its action interval, and queues a delivery
/// (`$15..$17`: id, alert, channel) to each of their enabled channels.
///
/// Frequencies are counted from the stored events (this batch's included)
/// in the window ending at the batch's latest event of the issue, at most
/// one past the threshold, and only for an issue with more events than
/// that in all; users from `alert_issue_users`. The rules and
/// channels used are locked against deletion (`FOR KEY SHARE`) so that the
/// alert and delivery rows referencing them always insert; a rule or
/// channel deleted meanwhile simply drops out.
const FIRE_SQL: &str = "
WITH c AS (
    SELECT * FROM unnest($1::uuid[], $2::uuid[], $3::uuid[], $4::text[], $5::text[], $6::bigint[],
        $7::integer[], $8::integer[], $9::timestamptz[], $10::text[], $11::uuid[], $12::uuid[],
        $13::text[], $14::text[])
    AS c(rule_id, project_id, issue_id, reason, message, threshold, window_minutes,
        interval_minutes, until, environments, alert_id, event_id, release, environment)
),
met AS (
    SELECT c.* FROM c
    WHERE NOT EXISTS (SELECT 1 FROM alert_rule_issues s
            WHERE s.rule_id = c.rule_id AND s.issue_id = c.issue_id AND s.quiet_until > now())
      AND CASE c.reason
        -- An issue with no more events than the threshold in all (this
        -- batch's upsert counted them) cannot have more in the window:
        -- most issues, whose events are then not read.
        WHEN 'event_frequency' THEN CASE
            WHEN (SELECT i.event_count FROM issues i
                  WHERE i.project_id = c.project_id AND i.id = c.issue_id) <= c.threshold
            THEN false
            ELSE (
            SELECT count(*) FROM (
                SELECT 1 FROM events e
                WHERE e.issue_id = c.issue_id
                  AND e.received_at > c.until - make_interval(mins => c.window_minutes)
                  AND e.received_at <= c.until
                  AND (c.environments IS NULL
                       OR e.environment = ANY (string_to_array(c.environments, E'\\n')))
                LIMIT c.threshold + 1) n) > c.threshold END
        WHEN 'user_frequency' THEN (
            SELECT count(DISTINCT u.who) FROM alert_issue_users u
            WHERE u.project_id = c.project_id AND u.issue_id = c.issue_id
              AND u.last_seen > c.until - make_interval(mins => c.window_minutes)
              AND (c.environments IS NULL
                   OR u.environment = ANY (string_to_array(c.environments, E'\\n')))) > c.threshold
        ELSE true END
),
rules AS (
    SELECT r.id FROM alert_rules r WHERE r.id IN (SELECT rule_id FROM met) AND r.enabled
    FOR KEY SHARE
),
quiet AS (
    INSERT INTO alert_rule_issues AS s (rule_id, issue_id, quiet_until)
    SELECT m.rule_id, m.issue_id, now() + make_interval(mins => m.interval_minutes)
    FROM met m JOIN rules r ON r.id = m.rule_id
    ORDER BY m.rule_id, m.issue_id
    ON CONFLICT (rule_id, issue_id) DO UPDATE SET quiet_until = excluded.quiet_until
        WHERE s.quiet_until <= now()
    RETURNING s.rule_id, s.issue_id
),
alerted AS (
    INSERT INTO alerts (id, rule_id, project_id, issue_id, reason, message, event_id, release,
        environment, triggered_at)
    SELECT m.alert_id, m.rule_id, m.project_id, m.issue_id, m.reason, m.message, m.event_id,
        m.release, m.environment, now()
    FROM met m JOIN quiet q ON q.rule_id = m.rule_id AND q.issue_id = m.issue_id
    RETURNING id, project_id, reason
),
channels AS (
    SELECT ch.id, ch.project_id FROM notification_channels ch
    WHERE ch.id = ANY ($17::uuid[]) AND ch.enabled
    FOR KEY SHARE
),
queued AS (
    INSERT INTO alert_deliveries (id, alert_id, project_id, channel_id)
    SELECT d.id, a.id, a.project_id, ch.id
    FROM unnest($15::uuid[], $16::uuid[], $17::uuid[]) AS d(id, alert_id, channel_id)
    JOIN alerted a ON a.id = d.alert_id
    JOIN channels ch ON ch.id = d.channel_id AND ch.project_id = a.project_id
)
SELECT reason, count(*) FROM alerted GROUP BY reason";

/// Records who each new event of an issue affected, with when and in
/// which environment ('' for none), for the projects with a
/// `user_frequency` rule (`$1..$5`).
const USERS_SQL: &str = "
INSERT INTO alert_issue_users AS u (project_id, issue_id, who, environment, last_seen)
SELECT project_id, issue_id, who, environment, max(seen)
FROM unnest($1::uuid[], $2::uuid[], $3::text[], $4::text[], $5::timestamptz[])
    AS x(project_id, issue_id, who, environment, seen)
GROUP BY 1, 2, 3, 4 ORDER BY 1, 2, 3, 4
ON CONFLICT (project_id, issue_id, who, environment) DO UPDATE SET last_seen = excluded.last_seen
    WHERE u.last_seen < excluded.last_seen";

/// What the statements before [`record_batch`] decided about an issue of
/// the batch.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct IssueChange {
    /// The batch created it: its first event.
    pub created: bool,
    /// A resolved issue reopened.
    pub regressed: bool,
    /// An archived issue came back by itself.
    pub unarchived: bool,
}

/// One candidate row of [`FIRE_SQL`].
struct Candidate<'a> {
    rule: &'a AlertRule,
    project_id: Uuid,
    issue_id: Uuid,
    until: DateTime<Utc>,
    event: &'a Event,
    alert_id: Uuid,
}

/// Fires the rules the batch's `new` events (each with its issue) set off,
/// in the batch's transaction `tx`, after the events, their issues and
/// triage are written; `changes` says which issues were created, reopened
/// or unarchived. Costs nothing for a batch of projects without enabled
/// rules. Wakes the notifiers (at commit) when something fired.
pub async fn record_batch(
    tx: &Transaction<'_>,
    rules: &Rules,
    new: &[(Uuid, &Event)],
    changes: &HashMap<Uuid, IssueChange>,
) -> Result<Fired, PgError> {
    if rules.by_project.is_empty() {
        return Ok(Fired::default());
    }
    let mut by_issue: BTreeMap<(Uuid, Uuid), Vec<&Event>> = BTreeMap::new();
    for &(issue, event) in new {
        if rules.by_project.contains_key(&event.project_id()) {
            by_issue
                .entry((event.project_id(), issue))
                .or_default()
                .push(event);
        }
    }
    if by_issue.is_empty() {
        return Ok(Fired::default());
    }
    record_users(tx, rules, &by_issue).await?;

    let mut candidates = Vec::new();
    for (&(project_id, issue_id), events) in &by_issue {
        let change = changes.get(&issue_id).copied().unwrap_or_default();
        let until = events
            .iter()
            .map(|e| e.received_at())
            .max()
            .expect("an issue of the batch has events");
        for rule in &rules.by_project[&project_id] {
            let set_off = match rule.condition {
                AlertCondition::NewIssue => change.created,
                AlertCondition::Regression => change.regressed,
                AlertCondition::Unarchived => change.unarchived,
                AlertCondition::EventFrequency { .. } | AlertCondition::UserFrequency { .. } => {
                    true
                }
            };
            if !set_off {
                continue;
            }
            let Some(event) = events
                .iter()
                .filter(|e| rule.filters.admits(e))
                .max_by_key(|e| e.received_at())
            else {
                continue;
            };
            candidates.push(Candidate {
                rule,
                project_id,
                issue_id,
                until,
                event,
                alert_id: new_id(),
            });
        }
    }
    if candidates.is_empty() {
        return Ok(Fired::default());
    }
    fire(tx, &candidates).await
}

/// Fires the `unarchived` rules about issues that came back by themselves
/// with no event (archived for a time that has passed: see
/// [`super::triage::wake_archived`]), in the transaction that brings them
/// back (`woken`: project and issue). Each issue is judged, filters and
/// all, by its latest stored event, as a batch judges an issue by the
/// event that brought it back; an issue whose events are all gone, or
/// only in the columns of a release before bodies were stored whole,
/// fires nothing.
pub async fn record_woken(tx: &Transaction<'_>, woken: &[(Uuid, Uuid)]) -> Result<Fired> {
    let projects: Vec<Uuid> = woken
        .iter()
        .map(|&(project, _)| project)
        .collect::<HashSet<_>>()
        .into_iter()
        .collect();
    let sql = format!(
        "SELECT {RULE_COLUMNS} FROM alert_rules
         WHERE enabled AND project_id = ANY($1) AND condition_json ->> 'type' = 'unarchived'"
    );
    let mut by_project: HashMap<Uuid, Vec<AlertRule>> = HashMap::new();
    for row in tx.query(&sql, &[&projects]).await? {
        match rule_from_row(&row) {
            Ok(rule) => by_project.entry(rule.project_id).or_default().push(rule),
            Err(e) => log::warn!("skipping an alert rule: {}", e.report()),
        }
    }
    if by_project.is_empty() {
        return Ok(Fired::default());
    }
    let (projects, issues): (Vec<Uuid>, Vec<Uuid>) = woken
        .iter()
        .filter(|(project, _)| by_project.contains_key(project))
        .copied()
        .unzip();
    let latest = tx
        .query(
            "SELECT w.project_id, w.issue_id, e.id, e.received_at, e.body
             FROM unnest($1::uuid[], $2::uuid[]) AS w(project_id, issue_id)
             JOIN LATERAL (
                 SELECT id, received_at, body FROM events
                 WHERE project_id = w.project_id AND issue_id = w.issue_id
                 ORDER BY received_at DESC LIMIT 1
             ) e ON e.body IS NOT NULL",
            &[&projects, &issues],
        )
        .await?;
    let mut events: Vec<(Uuid, Event)> = Vec::with_capacity(latest.len());
    for row in &latest {
        let (project_id, issue_id, id): (Uuid, Uuid, Uuid) = (row.get(0), row.get(1), row.get(2));
        let rebuilt = EventBody::from_stored(row.get(4))
            .decompress()
            .and_then(|json| EventPayload::from_json(&json))
            .and_then(|mut payload| {
                payload.event_id = Some(id);
                Event::from_payload_received_at(project_id, payload, row.get(3))
            });
        match rebuilt {
            Ok(event) => events.push((issue_id, event)),
            Err(e) => log::warn!(
                "issue {issue_id} came back, but its latest event {id} is unreadable: {}",
                e.report()
            ),
        }
    }
    let new: Vec<(Uuid, &Event)> = events.iter().map(|(issue, e)| (*issue, e)).collect();
    let changes = events
        .iter()
        .map(|(issue, _)| {
            let change = IssueChange {
                unarchived: true,
                ..IssueChange::default()
            };
            (*issue, change)
        })
        .collect();
    let rules = Rules {
        version: 0,
        by_project,
    };
    Ok(record_batch(tx, &rules, &new, &changes).await?)
}

/// Keeps `alert_issue_users` for the batch's issues of projects with a
/// `user_frequency` rule.
async fn record_users(
    tx: &Transaction<'_>,
    rules: &Rules,
    by_issue: &BTreeMap<(Uuid, Uuid), Vec<&Event>>,
) -> Result<(), PgError> {
    let counts_users = |project: &Uuid| {
        rules.by_project[project]
            .iter()
            .any(|r| matches!(r.condition, AlertCondition::UserFrequency { .. }))
    };
    let (mut projects, mut issues, mut users, mut environments, mut seen) =
        (vec![], vec![], vec![], vec![], vec![]);
    for ((project, issue), events) in by_issue {
        if !counts_users(project) {
            continue;
        }
        for event in events {
            if let Some(who) = event.user_key() {
                projects.push(*project);
                issues.push(*issue);
                users.push(who);
                environments.push(event.environment().unwrap_or(""));
                seen.push(event.received_at());
            }
        }
    }
    if !projects.is_empty() {
        tx.execute(
            USERS_SQL,
            &[&projects, &issues, &users, &environments, &seen],
        )
        .await?;
    }
    Ok(())
}

async fn fire(tx: &Transaction<'_>, candidates: &[Candidate<'_>]) -> Result<Fired, PgError> {
    let n = candidates.len();
    let mut columns = (
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
    );
    let (mut delivery_ids, mut delivery_alerts, mut delivery_channels) = (vec![], vec![], vec![]);
    for c in candidates {
        let (threshold, window) = match c.rule.condition.frequency() {
            Some((count, window)) => (Some(count as i64), Some(window as i32)),
            None => (None, None),
        };
        let environments = Some(c.rule.filters.environments.join("\n")).filter(|e| !e.is_empty());
        columns.0.push(c.rule.id);
        columns.1.push(c.project_id);
        columns.2.push(c.issue_id);
        columns.3.push(c.rule.condition.reason());
        columns.4.push(c.rule.condition.headline());
        columns.5.push(threshold);
        columns.6.push(window);
        columns.7.push(c.rule.action_interval_minutes as i32);
        columns.8.push(c.until);
        columns.9.push(environments);
        columns.10.push(c.alert_id);
        columns.11.push(c.event.id());
        columns.12.push(c.event.release());
        columns.13.push(c.event.environment());
        for &channel in &c.rule.channels {
            delivery_ids.push(new_id());
            delivery_alerts.push(c.alert_id);
            delivery_channels.push(channel);
        }
    }
    let rows = tx
        .query(
            FIRE_SQL,
            &[
                &columns.0,
                &columns.1,
                &columns.2,
                &columns.3,
                &columns.4,
                &columns.5,
                &columns.6,
                &columns.7,
                &columns.8,
                &columns.9,
                &columns.10,
                &columns.11,
                &columns.12,
                &columns.13,
                &delivery_ids,
                &delivery_alerts,
                &delivery_channels,
            ],
        )
        .await?;
    let mut fired = Fired::default();
    for row in rows {
        let reason: &str = row.get(0);
        let condition = candidates
            .iter()
            .map(|c| c.rule.condition.reason())
            .find(|r| *r == reason)
            .unwrap_or("unknown");
        *fired.0.entry(condition).or_default() += row.get::<_, i64>(1) as u64;
    }
    if fired.total() > 0 {
        tx.batch_execute(&format!("NOTIFY {WAKE_CHANNEL}")).await?;
    }
    Ok(fired)
}

// ---------------------------------------------------------------------------
// Rules

const RULE_COLUMNS: &str =
    "id, project_id, name, condition_json, filters, action_json, enabled, created_at, updated_at";

fn rule_from_row(row: &Row) -> Result<AlertRule> {
    let id: Uuid = row.get("id");
    let corrupt = |what: &str, e: serde_json::Error| {
        Error::internal_from(format!("alert rule {id} has an unreadable {what}"), e)
    };
    let condition: AlertCondition =
        serde_json::from_value(row.get("condition_json")).map_err(|e| corrupt("condition", e))?;
    let filters: AlertFilters =
        serde_json::from_value(row.get("filters")).map_err(|e| corrupt("filters", e))?;
    let action: RuleAction =
        serde_json::from_value(row.get("action_json")).map_err(|e| corrupt("action", e))?;
    Ok(AlertRule {
        id,
        project_id: row.get("project_id"),
        name: row.get("name"),
        condition,
        filters,
        channels: action.channels,
        action_interval_minutes: action.action_interval_minutes,
        enabled: row.get("enabled"),
        created_at: row.get("created_at"),
        updated_at: row.get("updated_at"),
    })
}

fn rule_json(spec: &RuleSpec) -> (serde_json::Value, serde_json::Value, serde_json::Value) {
    let action = RuleAction {
        channels: spec.channels.clone(),
        action_interval_minutes: spec.action_interval_minutes,
    };
    (
        serde_json::to_value(spec.condition).expect("a condition serializes"),
        serde_json::to_value(&spec.filters).expect("filters serialize"),
        serde_json::to_value(action).expect("an action serializes"),
    )
}

/// `NotFound { "channel" }` unless every one of `channels` is a channel
/// of the project.
async fn check_channels(tx: &Transaction<'_>, project_id: Uuid, channels: &[Uuid]) -> Result<()> {
    let found: i64 = tx
        .query_one(
            "SELECT count(*) FROM notification_channels WHERE project_id = $1 AND id = ANY ($2)",
            &[&project_id, &channels],
        )
        .await?
        .get(0);
    if found != channels.len() as i64 {
        return Err(Error::NotFound { entity: "channel" });
    }
    Ok(())
}

pub async fn create_rule(pool: &Pool, project_id: Uuid, spec: &RuleSpec) -> Result<AlertRule> {
    let mut client = pool.get().await?;
    let tx = client.transaction().await?;
    check_channels(&tx, project_id, &spec.channels).await?;
    let (condition, filters, action) = rule_json(spec);
    let row = tx
        .query_one(
            &format!(
                "INSERT INTO alert_rules (id, project_id, name, condition_json, filters, action_json,
                     enabled) VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING {RULE_COLUMNS}"
            ),
            &[
                &new_id(),
                &project_id,
                &spec.name.as_str(),
                &condition,
                &filters,
                &action,
                &spec.enabled,
            ],
        )
        .await?;
    tx.execute(BUMP_SQL, &[]).await?;
    tx.commit().await?;
    rule_from_row(&row)
}

pub async fn update_rule(
    pool: &Pool,
    project_id: Uuid,
    id: Uuid,
    spec: &RuleSpec,
) -> Result<AlertRule> {
    let mut client = pool.get().await?;
    let tx = client.transaction().await?;
    check_channels(&tx, project_id, &spec.channels).await?;
    let (condition, filters, action) = rule_json(spec);
    let row = tx
        .query_opt(
            &format!(
                "UPDATE alert_rules SET name = $3, condition_json = $4, filters = $5,
                     action_json = $6, enabled = $7, updated_at = now()
                 WHERE project_id = $1 AND id = $2 RETURNING {RULE_COLUMNS}"
            ),
            &[
                &project_id,
                &id,
                &spec.name.as_str(),
                &condition,
                &filters,
                &action,
                &spec.enabled,
            ],
        )
        .await?
        .ok_or(Error::NotFound {
            entity: "alert rule",
        })?;
    tx.execute(BUMP_SQL, &[]).await?;
    tx.commit().await?;
    rule_from_row(&row)
}

/// Deletes a rule; its alerts (and their deliveries) go with it.
pub async fn delete_rule(pool: &Pool, project_id: Uuid, id: Uuid) -> Result<()> {
    let mut client = pool.get().await?;
    let tx = client.transaction().await?;
    let deleted = tx
        .execute(
            "DELETE FROM alert_rules WHERE project_id = $1 AND id = $2",
            &[&project_id, &id],
        )
        .await?;
    if deleted == 0 {
        return Err(Error::NotFound {
            entity: "alert rule",
        });
    }
    tx.execute(BUMP_SQL, &[]).await?;
    tx.commit().await?;
    Ok(())
}

pub async fn get_rule(pool: &Pool, project_id: Uuid, id: Uuid) -> Result<AlertRule> {
    let row = pool
        .get()
        .await?
        .query_opt(
            &format!("SELECT {RULE_COLUMNS} FROM alert_rules WHERE project_id = $1 AND id = $2"),
            &[&project_id, &id],
        )
        .await?
        .ok_or(Error::NotFound {
            entity: "alert rule",
        })?;
    rule_from_row(&row)
}

/// A project's rules, oldest first.
pub async fn list_rules(pool: &Pool, project_id: Uuid) -> Result<Vec<AlertRule>> {
    pool.get()
        .await?
        .query(
            &format!(
                "SELECT {RULE_COLUMNS} FROM alert_rules WHERE project_id = $1 ORDER BY created_at, id"
            ),
            &[&project_id],
        )
        .await?
        .iter()
        .map(rule_from_row)
        .collect()
}

// ---------------------------------------------------------------------------
// Channels

const CHANNEL_COLUMNS: &str = "id, project_id, kind, name, config, enabled, created_at";

fn channel_from_row(row: &Row) -> Result<Channel> {
    let id: Uuid = row.get("id");
    let kind: &str = row.get("kind");
    let kind = ChannelKind::parse(kind)
        .map_err(|_| Error::internal(format!("channel {id} has an unknown kind {kind:?}")))?;
    let config: serde_json::Value = row.get("config");
    let strings = |key: &str| -> Vec<String> {
        config[key]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|v| v.as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default()
    };
    Ok(Channel {
        id,
        project_id: row.get("project_id"),
        kind,
        name: row.get("name"),
        url: config["url"].as_str().map(str::to_owned),
        addresses: strings("addresses"),
        members: strings("members")
            .iter()
            .filter_map(|m| m.parse().ok())
            .collect(),
        enabled: row.get("enabled"),
        created_at: row.get("created_at"),
    })
}

fn channel_config(target: &ChannelTarget) -> serde_json::Value {
    match target {
        ChannelTarget::Url(url) => json!({"url": url.as_str()}),
        ChannelTarget::Email { addresses, members } => json!({
            "addresses": addresses.iter().map(|a| a.as_str()).collect::<Vec<_>>(),
            "members": members,
        }),
    }
}

/// `InvalidInput { "members" }` unless each of `members` belongs to the
/// project's organization, or is kept from what channel `kept` (being
/// edited) addressed already: someone who has left is no longer emailed,
/// and must not stop the channel from being renamed or turned off.
async fn check_members(
    tx: &Transaction<'_>,
    project_id: Uuid,
    target: &ChannelTarget,
    kept: Option<Uuid>,
) -> Result<()> {
    let ChannelTarget::Email { members, .. } = target else {
        return Ok(());
    };
    let found: i64 = tx
        .query_one(
            "SELECT count(*) FROM unnest($2::uuid[]) AS u(id)
             WHERE EXISTS (
                 SELECT 1 FROM org_memberships m JOIN projects p ON p.org_id = m.org_id
                 WHERE p.id = $1 AND m.user_id = u.id)
             OR EXISTS (
                 SELECT 1 FROM notification_channels c
                 WHERE c.project_id = $1 AND c.id = $3
                   AND coalesce(c.config -> 'members', '[]') ? u.id::text)",
            &[&project_id, &members, &kept],
        )
        .await?
        .get(0);
    if found != members.len() as i64 {
        return Err(Error::invalid(
            "members",
            "must be a member of this organization",
        ));
    }
    Ok(())
}

/// A new channel of the project; `secret` signs a generic webhook's
/// bodies.
pub async fn create_channel(
    pool: &Pool,
    project_id: Uuid,
    spec: &ChannelSpec,
    secret: Option<&ChannelSecret>,
) -> Result<Channel> {
    let mut client = pool.get().await?;
    let tx = client.transaction().await?;
    check_members(&tx, project_id, &spec.target, None).await?;
    let row = tx
        .query_one(
            &format!(
                "INSERT INTO notification_channels (id, project_id, kind, name, config, secret, enabled)
                 VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING {CHANNEL_COLUMNS}"
            ),
            &[
                &new_id(),
                &project_id,
                &spec.kind.as_str(),
                &spec.name.as_str(),
                &channel_config(&spec.target),
                &secret.map(ChannelSecret::expose),
                &spec.enabled,
            ],
        )
        .await?;
    tx.execute(BUMP_SQL, &[]).await?;
    tx.commit().await?;
    channel_from_row(&row)
}

pub async fn update_channel(
    pool: &Pool,
    project_id: Uuid,
    id: Uuid,
    spec: &ChannelSpec,
) -> Result<Channel> {
    let mut client = pool.get().await?;
    let tx = client.transaction().await?;
    check_members(&tx, project_id, &spec.target, Some(id)).await?;
    let row = tx
        .query_opt(
            &format!(
                "UPDATE notification_channels SET name = $3, config = $4, enabled = $5
                 WHERE project_id = $1 AND id = $2 RETURNING {CHANNEL_COLUMNS}"
            ),
            &[
                &project_id,
                &id,
                &spec.name.as_str(),
                &channel_config(&spec.target),
                &spec.enabled,
            ],
        )
        .await?
        .ok_or(Error::NotFound { entity: "channel" })?;
    tx.execute(BUMP_SQL, &[]).await?;
    tx.commit().await?;
    channel_from_row(&row)
}

/// Deletes a channel, its deliveries, and its place in the project's
/// rules.
pub async fn delete_channel(pool: &Pool, project_id: Uuid, id: Uuid) -> Result<()> {
    let mut client = pool.get().await?;
    let tx = client.transaction().await?;
    let deleted = tx
        .execute(
            "DELETE FROM notification_channels WHERE project_id = $1 AND id = $2",
            &[&project_id, &id],
        )
        .await?;
    if deleted == 0 {
        return Err(Error::NotFound { entity: "channel" });
    }
    tx.execute(
        "UPDATE alert_rules SET updated_at = now(), action_json = jsonb_set(action_json,
             '{channels}', coalesce((SELECT jsonb_agg(c) FROM jsonb_array_elements(
                 action_json -> 'channels') c WHERE c <> to_jsonb($2::text)), '[]'))
         WHERE project_id = $1 AND action_json -> 'channels' @> jsonb_build_array($2::text)",
        &[&project_id, &id.to_string()],
    )
    .await?;
    tx.execute(BUMP_SQL, &[]).await?;
    tx.commit().await?;
    Ok(())
}

pub async fn get_channel(pool: &Pool, project_id: Uuid, id: Uuid) -> Result<Channel> {
    let row = pool
        .get()
        .await?
        .query_opt(
            &format!(
                "SELECT {CHANNEL_COLUMNS} FROM notification_channels WHERE project_id = $1 AND id = $2"
            ),
            &[&project_id, &id],
        )
        .await?
        .ok_or(Error::NotFound { entity: "channel" })?;
    channel_from_row(&row)
}

/// A project's channels, oldest first.
pub async fn list_channels(pool: &Pool, project_id: Uuid) -> Result<Vec<Channel>> {
    pool.get()
        .await?
        .query(
            &format!(
                "SELECT {CHANNEL_COLUMNS} FROM notification_channels WHERE project_id = $1
                 ORDER BY created_at, id"
            ),
            &[&project_id],
        )
        .await?
        .iter()
        .map(channel_from_row)
        .collect()
}

/// Queues a test notification to a channel, through the same outbox as
/// any alert: an alert without rule, about the project's latest issue if
/// it has one. Returns the alert's and the delivery's ids.
pub async fn queue_test(pool: &Pool, project_id: Uuid, channel_id: Uuid) -> Result<(Uuid, Uuid)> {
    let mut client = pool.get().await?;
    let tx = client.transaction().await?;
    let exists = tx
        .query_opt(
            "SELECT 1 FROM notification_channels WHERE project_id = $1 AND id = $2 FOR KEY SHARE",
            &[&project_id, &channel_id],
        )
        .await?;
    if exists.is_none() {
        return Err(Error::NotFound { entity: "channel" });
    }
    let (alert_id, delivery_id) = (new_id(), new_id());
    tx.execute(
        "INSERT INTO alerts (id, project_id, issue_id, reason, message, triggered_at)
         VALUES ($1, $2, (SELECT id FROM issues WHERE project_id = $2
                          ORDER BY last_seen DESC LIMIT 1), 'test', 'Test notification', now())",
        &[&alert_id, &project_id],
    )
    .await?;
    tx.execute(
        "INSERT INTO alert_deliveries (id, alert_id, project_id, channel_id) VALUES ($1, $2, $3, $4)",
        &[&delivery_id, &alert_id, &project_id, &channel_id],
    )
    .await?;
    tx.batch_execute(&format!("NOTIFY {WAKE_CHANNEL}")).await?;
    tx.commit().await?;
    Ok((alert_id, delivery_id))
}

// ---------------------------------------------------------------------------
// History

/// A page of the project's alerts (of one issue, with `issue_id`), newest
/// first: those made before the alert `before`, at most `limit`, each with
/// its deliveries.
pub async fn history(
    pool: &Pool,
    project_id: Uuid,
    issue_id: Option<Uuid>,
    before: Option<Uuid>,
    limit: i64,
) -> Result<Vec<Alert>> {
    let client = pool.get().await?;
    let rows = client
        .query(
            "SELECT a.id, a.rule_id, r.name AS rule_name, a.issue_id, i.title AS issue_title,
                 coalesce(a.reason, 'unknown') AS reason, a.message, a.event_id, a.triggered_at
             FROM alerts a
             LEFT JOIN alert_rules r ON r.id = a.rule_id
             LEFT JOIN issues i ON i.project_id = a.project_id AND i.id = a.issue_id
             WHERE a.project_id = $1 AND ($2::uuid IS NULL OR a.issue_id = $2)
               AND ($3::uuid IS NULL OR a.id < $3)
             ORDER BY a.id DESC LIMIT $4",
            &[&project_id, &issue_id, &before, &limit],
        )
        .await?;
    let ids: Vec<Uuid> = rows.iter().map(|r| r.get("id")).collect();
    let mut deliveries: HashMap<Uuid, Vec<Delivery>> = HashMap::new();
    for row in client
        .query(
            "SELECT d.alert_id, d.id, d.channel_id, c.name, c.kind, d.state, d.attempts,
                 d.last_error, d.finished_at
             FROM alert_deliveries d JOIN notification_channels c ON c.id = d.channel_id
             WHERE d.alert_id = ANY ($1) ORDER BY d.id",
            &[&ids],
        )
        .await?
    {
        let kind: &str = row.get(4);
        deliveries.entry(row.get(0)).or_default().push(Delivery {
            id: row.get(1),
            channel_id: row.get(2),
            channel_name: row.get(3),
            channel_kind: ChannelKind::parse(kind)?,
            state: DeliveryState::parse(row.get(5))?,
            attempts: row.get(6),
            last_error: row.get(7),
            finished_at: row.get(8),
        });
    }
    Ok(rows
        .iter()
        .map(|row| {
            let id: Uuid = row.get("id");
            Alert {
                id,
                rule_id: row.get("rule_id"),
                rule_name: row.get("rule_name"),
                issue_id: row.get("issue_id"),
                issue_title: row.get("issue_title"),
                reason: row.get("reason"),
                message: row.get("message"),
                event_id: row.get("event_id"),
                triggered_at: row.get("triggered_at"),
                deliveries: deliveries.remove(&id).unwrap_or_default(),
            }
        })
        .collect())
}

// ---------------------------------------------------------------------------
// The outbox

/// A delivery claimed for sending: where it goes and what it says.
#[derive(Debug, Clone)]
pub struct Outgoing {
    pub delivery_id: Uuid,
    /// Attempts so far, this one included.
    pub attempts: i32,
    pub kind: ChannelKind,
    pub channel_id: Uuid,
    /// The webhooks' target.
    pub url: Option<String>,
    /// The generic webhook's signing secret.
    pub secret: Option<ChannelSecret>,
    /// Email: the addresses, and the current addresses of the members who
    /// still belong to the organization.
    pub recipients: Vec<String>,
    /// What it says; `issue.url` is left empty for the caller, who knows
    /// the public URL.
    pub notice: Notice,
}

/// Claims up to `limit` due deliveries for `claim` (this notifier's pass),
/// leaving each to it for `lease` (see
/// [`crate::config::NotifierConfig::lease`]), and reads what they need.
/// Rows another notifier holds are skipped, not waited for.
pub async fn claim(pool: &Pool, claim: Uuid, limit: i64, lease: Duration) -> Result<Vec<Outgoing>> {
    let client = pool.get().await?;
    let lease_ms = i64::try_from(lease.as_millis()).unwrap_or(i64::MAX);
    let claimed: Vec<Uuid> = client
        .query(
            "WITH due AS (
                 SELECT id FROM alert_deliveries
                 WHERE state = 'pending' AND next_attempt_at <= now()
                 ORDER BY next_attempt_at LIMIT $2
                 FOR UPDATE SKIP LOCKED
             )
             UPDATE alert_deliveries d SET claim = $1, attempts = d.attempts + 1,
                 next_attempt_at = now() + $3::bigint * interval '1 millisecond'
             FROM due WHERE d.id = due.id
             RETURNING d.id",
            &[&claim, &limit, &lease_ms],
        )
        .await?
        .iter()
        .map(|r| r.get(0))
        .collect();
    if claimed.is_empty() {
        return Ok(Vec::new());
    }
    let rows = client
        .query(
            "SELECT d.id, d.attempts, c.id AS channel_id, c.kind, c.config, c.secret,
                 ARRAY(SELECT e FROM jsonb_array_elements_text(coalesce(c.config -> 'addresses',
                     '[]')) e
                   UNION
                   SELECT u.email FROM users u JOIN org_memberships m ON m.user_id = u.id
                   WHERE m.org_id = p.org_id AND u.id::text IN (
                       SELECT jsonb_array_elements_text(coalesce(c.config -> 'members', '[]'))))
                   AS recipients,
                 a.rule_id, r.name AS rule_name, coalesce(a.reason, 'unknown') AS reason,
                 a.message, p.id AS project_id, p.name AS project_name, a.event_id, a.release,
                 a.environment, i.id AS issue_id, i.title, i.culprit, i.level, i.status,
                 i.event_count, i.user_count, i.first_seen, i.last_seen
             FROM alert_deliveries d
             JOIN alerts a ON a.id = d.alert_id
             JOIN notification_channels c ON c.id = d.channel_id
             JOIN projects p ON p.id = a.project_id
             LEFT JOIN alert_rules r ON r.id = a.rule_id
             LEFT JOIN issues i ON i.project_id = a.project_id AND i.id = a.issue_id
             WHERE d.id = ANY ($1) AND d.claim = $2",
            &[&claimed, &claim],
        )
        .await?;
    rows.iter().map(outgoing_from_row).collect()
}

fn outgoing_from_row(row: &Row) -> Result<Outgoing> {
    let kind: &str = row.get("kind");
    let config: serde_json::Value = row.get("config");
    let rule_id: Option<Uuid> = row.get("rule_id");
    let issue_id: Option<Uuid> = row.get("issue_id");
    let issue = match issue_id {
        Some(id) => {
            let level: &str = row.get("level");
            let status: &str = row.get("status");
            Some(NoticeIssue {
                id,
                title: row.get("title"),
                culprit: row.get("culprit"),
                level: level.parse().unwrap_or(Severity::Error),
                status: status.parse().unwrap_or(IssueStatus::Unresolved),
                event_count: row.get("event_count"),
                users: row.get("user_count"),
                first_seen: row.get("first_seen"),
                last_seen: row.get("last_seen"),
                url: String::new(),
            })
        }
        None => None,
    };
    let event_id: Option<Uuid> = row.get("event_id");
    Ok(Outgoing {
        delivery_id: row.get("id"),
        attempts: row.get("attempts"),
        kind: ChannelKind::parse(kind)?,
        channel_id: row.get("channel_id"),
        url: config["url"].as_str().map(str::to_owned),
        secret: row
            .get::<_, Option<String>>("secret")
            .map(ChannelSecret::stored),
        recipients: row.get("recipients"),
        notice: Notice {
            delivery_id: row.get("id"),
            rule: rule_id.map(|id| NoticeRule {
                id,
                name: row
                    .get::<_, Option<String>>("rule_name")
                    .unwrap_or_default(),
            }),
            reason: row.get("reason"),
            headline: row.get("message"),
            project: NoticeProject {
                id: row.get("project_id"),
                name: row.get("project_name"),
            },
            issue,
            event: event_id.map(|id| NoticeEvent {
                id,
                release: row.get("release"),
                environment: row.get("environment"),
            }),
        },
    })
}

/// Settles an attempt at a delivery this notifier claimed with `claim`:
/// delivered with `error` `None`; else pending again after `retry_in`, or
/// failed once it has been retried for `retry_for`. Returns the state it
/// is left in, `None` when the claim was lost (its lease ran out and
/// another notifier took it over: that one settles it).
pub async fn settle(
    pool: &Pool,
    id: Uuid,
    claim: Uuid,
    error: Option<&str>,
    retry_in: Duration,
    retry_for: Duration,
) -> Result<Option<DeliveryState>> {
    let ms = |d: Duration| i64::try_from(d.as_millis()).unwrap_or(i64::MAX);
    let row = pool
        .get()
        .await?
        .query_opt(
            "UPDATE alert_deliveries SET claim = NULL, last_error = $3,
                 state = CASE WHEN $3::text IS NULL THEN 'delivered'
                     WHEN created_at + $5::bigint * interval '1 millisecond' <= now() THEN 'failed'
                     ELSE 'pending' END,
                 finished_at = CASE WHEN $3::text IS NULL
                     OR created_at + $5::bigint * interval '1 millisecond' <= now() THEN now() END,
                 next_attempt_at = now() + $4::bigint * interval '1 millisecond'
             WHERE id = $1 AND claim = $2
             RETURNING state",
            &[&id, &claim, &error, &ms(retry_in), &ms(retry_for)],
        )
        .await?;
    row.map(|r| DeliveryState::parse(r.get(0))).transpose()
}

/// The outbox's state: deliveries pending, how old the oldest is, and how
/// soon the next is due (`None`: none pending).
pub async fn outbox(pool: &Pool) -> Result<(i64, Duration, Option<Duration>)> {
    let row = pool
        .get()
        .await?
        .query_one(
            "SELECT count(*),
                 coalesce(extract(epoch FROM now() - min(created_at)), 0)::float8,
                 extract(epoch FROM min(next_attempt_at) - now())::float8
             FROM alert_deliveries WHERE state = 'pending'",
            &[],
        )
        .await?;
    let secs = |s: f64| Duration::from_secs_f64(s.max(0.0));
    Ok((
        row.get(0),
        secs(row.get(1)),
        row.get::<_, Option<f64>>(2).map(secs),
    ))
}

/// Forgets who affected issues longer ago than the longest frequency
/// window.
pub async fn sweep_users(pool: &Pool) -> Result<u64> {
    Ok(pool
        .get()
        .await?
        .execute(
            "DELETE FROM alert_issue_users WHERE last_seen < now() - interval '8 days'",
            &[],
        )
        .await?)
}

/// The issues of a batch that the statements before [`record_batch`]
/// created or changed, from their returned rows: created issues by
/// [`IssueChange::created`], triage's `(issue, kind)` activity rows.
pub fn changes(created: &HashSet<Uuid>, activity: &[(Uuid, String)]) -> HashMap<Uuid, IssueChange> {
    let mut changes: HashMap<Uuid, IssueChange> = created
        .iter()
        .map(|&id| {
            (
                id,
                IssueChange {
                    created: true,
                    ..Default::default()
                },
            )
        })
        .collect();
    for (issue, kind) in activity {
        let change = changes.entry(*issue).or_default();
        match kind.as_str() {
            "regression" => change.regressed = true,
            "unarchived" => change.unarchived = true,
            _ => {}
        }
    }
    changes
}
