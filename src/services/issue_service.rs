//! IssueService: reads a project's issues and events, and triages issues
//! (status, assignee). Issues are created and counted by the ingest path.
//!
//! Every message names the project, and nothing of another project is
//! ever found through it (it is `NotFound`, like something that does not
//! exist), so the dashboard layer checks the caller's access to the
//! project once and passes the project on.
//!
//! Ids a caller types or a URL carries come as text and are checked here
//! (`InvalidInput` naming the field); ids that only ever come from another
//! reply (a page's issues, my projects) come typed.

use crate::db::issues;
use crate::db::{self, Pool, triage};
use crate::domain::search::Condition;
use crate::domain::{
    Activity, ArchiveUntil, Cursor, EventNeighbours, EventPage, Issue, IssueActivity, IssueCounts,
    IssueDetail, IssuePage, IssueSort, IssueStatus, MAX_PAGE_LIMIT, ResolveIn, Search,
    StatusChange, StoredEvent, TagBreakdown, filter_text, page_limit, parse_id,
};
use crate::error::{Error, Result};
use crate::metrics::Metrics;
use actix::prelude::*;
use chrono::{DateTime, Utc};
use std::sync::Arc;
use uuid::Uuid;

/// What the service takes as "now": the UTC day of the daily counts.
type Clock = Arc<dyn Fn() -> DateTime<Utc> + Send + Sync>;

/// Serves the dashboard's issue and event pages and triage actions.
pub struct IssueService {
    /// Shared connection pool; each request borrows a connection briefly.
    pool: Pool,
    clock: Clock,
    /// Counts the alerts that issues coming back by themselves fire.
    metrics: Option<Metrics>,
}

impl IssueService {
    pub fn new(pool: Pool) -> Self {
        Self::with_clock(pool, Utc::now)
    }

    /// A service whose "now" is `clock`, so tests can fix the UTC day
    /// instead of racing midnight.
    pub fn with_clock(
        pool: Pool,
        clock: impl Fn() -> DateTime<Utc> + Send + Sync + 'static,
    ) -> Self {
        IssueService {
            pool,
            clock: Arc::new(clock),
            metrics: None,
        }
    }

    /// This service, counting in `metrics` the alerts it fires.
    pub fn counting(self, metrics: Metrics) -> Self {
        IssueService {
            metrics: Some(metrics),
            ..self
        }
    }
}

/// How often archived issues whose time has come are brought back.
const WAKE_INTERVAL: std::time::Duration = std::time::Duration::from_secs(30);

impl Actor for IssueService {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        ctx.run_interval(WAKE_INTERVAL, |_, ctx| {
            ctx.notify(WakeArchivedIssues);
        });
    }
}

/// A page of a project's issues. Every order is descending with the id as
/// tie-breaker; `sort` is `last_seen` (default), `first_seen` or
/// `event_count`. `query` is a search in Sentry's syntax (see
/// [`crate::domain::search`]; free text alone matches the title or the
/// culprit, in any letter case); `status`, `environment` and `release`
/// add `is:`, `environment:` and `release:` filters (`status` only when
/// the query has no `is:` of its own, which wins). `me` is whom
/// `assigned:me` names. `cursor` is the previous page's `next`; `limit`
/// is 1 to 100, 25 by default.
///
/// Pages are keyset-paginated: an issue whose sort key does not change
/// during a walk is returned exactly once and in order; one that gets
/// events meanwhile moves to the front, so it is never repeated but may be
/// missed by the walk under way (it heads a fresh first page).
///
/// Errors: `InvalidInput` (project_id, status, environment, release,
/// sort, cursor, limit), `InvalidSearch` (query), `NotFound { "project" }`.
#[derive(Debug, Clone, Default, Message)]
#[rtype(result = "Result<IssuePage>")]
pub struct ListIssues {
    pub project_id: String,
    pub status: Option<String>,
    pub environment: Option<String>,
    pub release: Option<String>,
    pub query: Option<String>,
    pub sort: Option<String>,
    pub cursor: Option<String>,
    pub limit: Option<u32>,
    pub me: Option<Uuid>,
}

/// One issue with its newest event and its events per UTC day over the
/// last 14 days, today included (every day listed, zeros too). Errors:
/// `InvalidInput` (project_id, issue_id), `NotFound { "issue" }`.
#[derive(Debug, Clone, Message)]
#[rtype(result = "Result<IssueDetail>")]
pub struct GetIssue {
    pub project_id: String,
    pub issue_id: String,
}

/// Sets an issue's status (`resolved`, `unresolved` or `archived`), by
/// `actor` (recorded in the issue's activity). Resolving stamps
/// `resolved_at` (again: keeps the first stamp); `resolved_in` resolves
/// it in the next release or in a release (see [`ResolveIn`]). Archiving
/// takes `archive`, how long ([`ArchiveUntil`]; forever when absent).
/// Errors: `InvalidInput` (project_id, issue_id, status, archive without
/// archiving, resolved_in without resolving), `NotFound { "issue" }`,
/// `Conflict` (the next release of an issue never seen in a release).
#[derive(Debug, Clone, Message)]
#[rtype(result = "Result<Issue>")]
pub struct UpdateIssueStatus {
    pub project_id: String,
    pub issue_id: String,
    pub status: String,
    pub archive: Option<ArchiveUntil>,
    pub resolved_in: Option<ResolveIn>,
    pub actor: Option<Uuid>,
}

impl UpdateIssueStatus {
    /// A plain status change by `actor`.
    pub fn to(project_id: String, issue_id: String, status: &str, actor: Uuid) -> Self {
        UpdateIssueStatus {
            project_id,
            issue_id,
            status: status.to_owned(),
            archive: None,
            resolved_in: None,
            actor: Some(actor),
        }
    }
}

/// Assigns an issue to a user, or to nobody with `None`.
///
/// Only the user's existence is checked here; whether they belong to the
/// project's organization is the dashboard layer's check, made before it
/// sends this. Errors: `InvalidInput` (project_id, issue_id, user_id),
/// `NotFound { "issue" }`, `NotFound { "user" }`.
#[derive(Debug, Clone, Message)]
#[rtype(result = "Result<Issue>")]
pub struct AssignIssue {
    pub project_id: String,
    pub issue_id: String,
    pub user_id: Option<String>,
    /// Who assigns, recorded in the issue's activity.
    pub actor: Option<Uuid>,
}

/// The issue's tag breakdown: for each tag key of its stored events, the
/// events, the distinct values and the most frequent ones (see
/// [`triage::breakdown`]). Errors: `InvalidInput` (project_id, issue_id),
/// `NotFound { "issue" }`.
#[derive(Debug, Clone, Message)]
#[rtype(result = "Result<Vec<TagBreakdown>>")]
pub struct GetIssueTags {
    pub project_id: String,
    pub issue_id: String,
}

/// What happened to the issue (status changes, assignments, regressions,
/// archiving and its end), newest first, at most 100 entries. Errors:
/// `InvalidInput` (project_id, issue_id), `NotFound { "issue" }`.
#[derive(Debug, Clone, Message)]
#[rtype(result = "Result<Vec<Activity>>")]
pub struct GetIssueHistory {
    pub project_id: String,
    pub issue_id: String,
}

/// Brings back the issues archived until a time that has passed; sent to
/// itself every 30 seconds. Replies how many came back.
#[derive(Debug, Clone, Copy, Message)]
#[rtype(result = "Result<u64>")]
pub struct WakeArchivedIssues;

/// A page of an issue's events, newest first (by the time Mesher received
/// them); `cursor` and `limit` as in [`ListIssues`]. Events keep their
/// place once stored, so a walk returns each exactly once; events that
/// arrive during the walk head a fresh first page. Errors: `InvalidInput`
/// (project_id, issue_id, cursor, limit), `NotFound { "issue" }`.
#[derive(Debug, Clone, Message)]
#[rtype(result = "Result<EventPage>")]
pub struct ListIssueEvents {
    pub project_id: String,
    pub issue_id: String,
    pub cursor: Option<String>,
    pub limit: Option<u32>,
}

/// One event, everything stored about it, by the id its SDK gave it.
/// Errors: `InvalidInput` (project_id, event_id), `NotFound { "event" }`.
#[derive(Debug, Clone, Message)]
#[rtype(result = "Result<StoredEvent>")]
pub struct GetEvent {
    pub project_id: String,
    pub event_id: String,
}

/// The issue counts of each of `project_ids` (unresolved, and all of
/// them), in the order given, for the projects page; the ids come from a
/// reply (the caller's projects), hence typed. Errors:
/// `NotFound { "project" }` when one of them does not exist.
#[derive(Debug, Clone, Message)]
#[rtype(result = "Result<Vec<IssueCounts>>")]
pub struct CountIssues {
    pub project_ids: Vec<Uuid>,
}

/// What an issue list shows beside each issue: its events per UTC day over
/// the last 14 days, today included (as [`GetIssue`]'s), and the distinct
/// users among its events. One entry per id, in the order given; the ids
/// are a page of [`ListIssues`], at most 100. Errors: `InvalidInput`
/// (project_id, issue_ids), `NotFound { "issue" }` when one of them is not
/// the project's.
#[derive(Debug, Clone, Message)]
#[rtype(result = "Result<Vec<IssueActivity>>")]
pub struct GetIssueActivity {
    pub project_id: String,
    pub issue_ids: Vec<Uuid>,
}

/// The issue's events just newer and just older than one of its events,
/// by the time Mesher received them (ties by id): the issue page's
/// navigation. Errors: `InvalidInput` (project_id, issue_id, event_id),
/// `NotFound { "issue" }`, `NotFound { "event" }` (not stored, or another
/// issue's).
#[derive(Debug, Clone, Message)]
#[rtype(result = "Result<EventNeighbours>")]
pub struct GetEventNeighbours {
    pub project_id: String,
    pub issue_id: String,
    pub event_id: String,
}

/// An optional filter text, checked.
fn optional_filter(field: &'static str, text: Option<&str>) -> Result<Option<String>> {
    text.map(|t| filter_text(field, t)).transpose()
}

impl Handler<ListIssues> for IssueService {
    type Result = ResponseFuture<Result<IssuePage>>;

    fn handle(&mut self, msg: ListIssues, _: &mut Self::Context) -> Self::Result {
        let pool = self.pool.clone();
        let now = (self.clock)();
        Box::pin(async move {
            let project_id = parse_id("project_id", &msg.project_id)?;
            let mut search = match msg.query.as_deref() {
                Some(query) => Search::parse(query, now)?,
                None => Search::default(),
            };
            // A search's own `is:` wins over the status given beside it
            // (the pages' list, which defaults to unresolved).
            if let Some(status) = msg.status.as_deref() {
                let status = Condition::Status(status.parse()?);
                if !search.has_status() {
                    search.require(status);
                }
            }
            for (key, value) in [("environment", &msg.environment), ("release", &msg.release)] {
                if let Some(value) = optional_filter(key, value.as_deref())? {
                    search.require(Condition::Tag {
                        key: key.to_owned(),
                        value,
                    });
                }
            }
            let sort = msg
                .sort
                .as_deref()
                .map(str::parse)
                .transpose()?
                .unwrap_or(IssueSort::LastSeen);
            let after = msg
                .cursor
                .as_deref()
                .map(|c| sort.parse_cursor(c))
                .transpose()?;
            let limit = page_limit(msg.limit)?;
            issues::list(&pool, project_id, &search, msg.me, sort, after, limit).await
        })
    }
}

impl Handler<GetIssue> for IssueService {
    type Result = ResponseFuture<Result<IssueDetail>>;

    fn handle(&mut self, msg: GetIssue, _: &mut Self::Context) -> Self::Result {
        let pool = self.pool.clone();
        let today = (self.clock)().date_naive();
        Box::pin(async move {
            let project_id = parse_id("project_id", &msg.project_id)?;
            let issue_id = parse_id("issue_id", &msg.issue_id)?;
            issues::detail(&pool, project_id, issue_id, today).await
        })
    }
}

impl Handler<UpdateIssueStatus> for IssueService {
    type Result = ResponseFuture<Result<Issue>>;

    fn handle(&mut self, msg: UpdateIssueStatus, _: &mut Self::Context) -> Self::Result {
        let pool = self.pool.clone();
        let now = (self.clock)();
        Box::pin(async move {
            let project_id = parse_id("project_id", &msg.project_id)?;
            let issue_id = parse_id("issue_id", &msg.issue_id)?;
            let status: IssueStatus = msg.status.parse()?;
            if msg.archive.is_some() && status != IssueStatus::Archived {
                return Err(Error::invalid("archive", "goes only with status archived"));
            }
            if msg.resolved_in.is_some() && status != IssueStatus::Resolved {
                return Err(Error::invalid(
                    "resolved_in",
                    "goes only with status resolved",
                ));
            }
            let change = match status {
                IssueStatus::Unresolved => StatusChange::Unresolve,
                IssueStatus::Resolved => StatusChange::Resolve(msg.resolved_in),
                IssueStatus::Archived => {
                    StatusChange::Archive(msg.archive.unwrap_or(ArchiveUntil::Forever))
                }
            };
            triage::change_status(&pool, project_id, issue_id, &change, msg.actor, now).await
        })
    }
}

impl Handler<AssignIssue> for IssueService {
    type Result = ResponseFuture<Result<Issue>>;

    fn handle(&mut self, msg: AssignIssue, _: &mut Self::Context) -> Self::Result {
        let pool = self.pool.clone();
        let now = (self.clock)();
        Box::pin(async move {
            let project_id = parse_id("project_id", &msg.project_id)?;
            let issue_id = parse_id("issue_id", &msg.issue_id)?;
            let user_id = msg
                .user_id
                .as_deref()
                .map(|u| parse_id("user_id", u))
                .transpose()?;
            triage::assign(&pool, project_id, issue_id, user_id, msg.actor, now).await
        })
    }
}

impl Handler<GetIssueTags> for IssueService {
    type Result = ResponseFuture<Result<Vec<TagBreakdown>>>;

    fn handle(&mut self, msg: GetIssueTags, _: &mut Self::Context) -> Self::Result {
        let pool = self.pool.clone();
        Box::pin(async move {
            let project_id = parse_id("project_id", &msg.project_id)?;
            let issue_id = parse_id("issue_id", &msg.issue_id)?;
            triage::breakdown(&pool, project_id, issue_id).await
        })
    }
}

impl Handler<GetIssueHistory> for IssueService {
    type Result = ResponseFuture<Result<Vec<Activity>>>;

    fn handle(&mut self, msg: GetIssueHistory, _: &mut Self::Context) -> Self::Result {
        let pool = self.pool.clone();
        Box::pin(async move {
            let project_id = parse_id("project_id", &msg.project_id)?;
            let issue_id = parse_id("issue_id", &msg.issue_id)?;
            triage::activity(&pool, project_id, issue_id, 100).await
        })
    }
}

impl Handler<WakeArchivedIssues> for IssueService {
    type Result = ResponseFuture<Result<u64>>;

    fn handle(&mut self, _: WakeArchivedIssues, _: &mut Self::Context) -> Self::Result {
        let pool = self.pool.clone();
        let now = (self.clock)();
        let metrics = self.metrics.clone();
        Box::pin(async move {
            match triage::wake_archived(&pool, now).await {
                Ok((woke, fired)) => {
                    if let Some(metrics) = metrics {
                        metrics.alerts_fired(&fired);
                    }
                    Ok(woke)
                }
                Err(e) => {
                    log::warn!("bringing back archived issues failed: {}", e.report());
                    Err(e)
                }
            }
        })
    }
}

impl Handler<ListIssueEvents> for IssueService {
    type Result = ResponseFuture<Result<EventPage>>;

    fn handle(&mut self, msg: ListIssueEvents, _: &mut Self::Context) -> Self::Result {
        let pool = self.pool.clone();
        Box::pin(async move {
            let project_id = parse_id("project_id", &msg.project_id)?;
            let issue_id = parse_id("issue_id", &msg.issue_id)?;
            let after = msg
                .cursor
                .as_deref()
                .map(Cursor::parse_event_cursor)
                .transpose()?;
            let limit = page_limit(msg.limit)?;
            issues::list_events(&pool, project_id, issue_id, after, limit).await
        })
    }
}

impl Handler<GetEvent> for IssueService {
    type Result = ResponseFuture<Result<StoredEvent>>;

    fn handle(&mut self, msg: GetEvent, _: &mut Self::Context) -> Self::Result {
        let pool = self.pool.clone();
        Box::pin(async move {
            let project_id = parse_id("project_id", &msg.project_id)?;
            let event_id = parse_id("event_id", &msg.event_id)?;
            db::issues::get_event(&pool, project_id, event_id).await
        })
    }
}

impl Handler<CountIssues> for IssueService {
    type Result = ResponseFuture<Result<Vec<IssueCounts>>>;

    fn handle(&mut self, msg: CountIssues, _: &mut Self::Context) -> Self::Result {
        let pool = self.pool.clone();
        Box::pin(async move { issues::count_by_project(&pool, &msg.project_ids).await })
    }
}

impl Handler<GetIssueActivity> for IssueService {
    type Result = ResponseFuture<Result<Vec<IssueActivity>>>;

    fn handle(&mut self, msg: GetIssueActivity, _: &mut Self::Context) -> Self::Result {
        let pool = self.pool.clone();
        let today = (self.clock)().date_naive();
        Box::pin(async move {
            let project_id = parse_id("project_id", &msg.project_id)?;
            if msg.issue_ids.len() > MAX_PAGE_LIMIT as usize {
                return Err(Error::invalid("issue_ids", "must be at most 100"));
            }
            issues::activity(&pool, project_id, &msg.issue_ids, today).await
        })
    }
}

impl Handler<GetEventNeighbours> for IssueService {
    type Result = ResponseFuture<Result<EventNeighbours>>;

    fn handle(&mut self, msg: GetEventNeighbours, _: &mut Self::Context) -> Self::Result {
        let pool = self.pool.clone();
        Box::pin(async move {
            let project_id = parse_id("project_id", &msg.project_id)?;
            let issue_id = parse_id("issue_id", &msg.issue_id)?;
            let event_id = parse_id("event_id", &msg.event_id)?;
            issues::neighbours(&pool, project_id, issue_id, event_id).await
        })
    }
}
