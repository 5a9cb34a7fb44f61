//! The pages: one askama template each (in `templates/`, checked at
//! compile time), and the view model it renders. View models hold text
//! ready to show and ids for links; they are built by the handlers from
//! what the services answer, and escaped by askama when rendered.

use super::assets;
use super::event::EventView;
use super::format::{RelTime, Setup, Sparkline};
use crate::db::retention::Usage;
use crate::domain::{
    EventNeighbours, Issue, IssueActivity, IssueCounts, IssueDetail, IssueSort, IssueStatus,
    Project,
};
use askama::Template;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// What every page's frame needs: its title, who is logged in (for the
/// header), and where the assets are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layout {
    pub title: String,
    /// `None` on pages seen logged out (log in, register, errors).
    pub nav: Option<Nav>,
    /// The versioned prefix of the stylesheet and script URLs.
    pub assets: &'static str,
}

impl Layout {
    pub fn new(title: impl Into<String>, nav: Option<Nav>) -> Self {
        Layout {
            title: title.into(),
            nav,
            assets: assets::prefix(),
        }
    }
}

/// The logged-in user, as the header shows them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Nav {
    pub display_name: String,
    pub email: String,
}

/// `GET /login`, and the form again after a failed attempt.
#[derive(Debug, Template)]
#[template(path = "login.html")]
pub struct LoginPage {
    pub layout: Layout,
    /// What was typed, so a failed attempt need not retype it.
    pub email: String,
    pub error: Option<String>,
    /// Offer the registration link (`MESHER_ALLOW_REGISTRATION`).
    pub registration_open: bool,
}

/// `GET /register`, and the form again after a refusal.
#[derive(Debug, Template)]
#[template(path = "register.html")]
pub struct RegisterPage {
    pub layout: Layout,
    pub email: String,
    pub display_name: String,
    pub error: Option<String>,
    /// When registration is switched off the page says so, without a form.
    pub registration_open: bool,
}

/// `GET /projects`: the projects of each of my organizations.
#[derive(Debug, Template)]
#[template(path = "projects.html")]
pub struct ProjectsPage {
    pub layout: Layout,
    pub orgs: Vec<OrgProjects>,
}

impl ProjectsPage {
    /// Whether I may create a project in any of my organizations.
    pub fn can_create(&self) -> bool {
        self.orgs.iter().any(|o| o.org.can_admin)
    }
}

/// An organization and its projects.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrgProjects {
    pub org: OrgHeader,
    pub projects: Vec<ProjectRow>,
}

/// An organization as a page heading.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrgHeader {
    pub id: String,
    pub name: String,
    pub slug: String,
    /// My role there: `owner`, `admin` or `member`.
    pub role: &'static str,
    /// Admin or owner: may manage projects, keys and members.
    pub can_admin: bool,
}

/// A project in the projects list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProjectRow {
    pub id: String,
    pub name: String,
    pub platform: Option<String>,
    pub unresolved_issues: i64,
    pub total_issues: i64,
    /// Events stored, and the disk they take (approximately).
    pub stored_events: i64,
    pub stored_bytes: String,
}

impl ProjectRow {
    /// The row of `project` with its issue counts (from `CountIssues`) and
    /// its usage.
    pub fn new(project: &Project, counts: &IssueCounts, usage: Usage) -> Self {
        ProjectRow {
            id: project.id.to_string(),
            name: project.name.clone(),
            platform: project.platform.clone(),
            unresolved_issues: counts.unresolved,
            total_issues: counts.total,
            stored_events: usage.events,
            stored_bytes: super::format::bytes(usage.bytes),
        }
    }
}

/// A project as the heading of its pages (issues, keys).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProjectHeader {
    pub id: String,
    pub name: String,
    pub org_id: String,
    pub org_name: String,
    /// Whether to show the admin links (keys) and controls.
    pub can_admin: bool,
}

/// `GET /projects/new`: the form to create a project.
#[derive(Debug, Template)]
#[template(path = "project_new.html")]
pub struct NewProjectPage {
    pub layout: Layout,
    /// The organizations where I am admin or owner.
    pub orgs: Vec<OrgOption>,
    /// What was submitted, kept after a refusal.
    pub org_id: String,
    pub name: String,
    pub platform: String,
    pub error: Option<String>,
}

/// `GET /orgs/new`: the form to create an organization (its creator
/// becomes its owner).
#[derive(Debug, Template)]
#[template(path = "org_new.html")]
pub struct NewOrgPage {
    pub layout: Layout,
    /// What was submitted, kept after a refusal.
    pub name: String,
    pub slug: String,
    pub error: Option<String>,
}

/// A choice in an organization `<select>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrgOption {
    pub id: String,
    pub name: String,
}

/// After `POST /projects/new`: the new project's DSN, shown this once,
/// with the setup snippets.
#[derive(Debug, Template)]
#[template(path = "project_created.html")]
pub struct ProjectCreatedPage {
    pub layout: Layout,
    pub project: ProjectHeader,
    pub setup: Setup,
}

/// The issue list's query string: the filters, the order and the page.
/// Empty values (an untouched form field) mean "no filter".
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct IssueFilters {
    /// `unresolved` (the default when absent), `resolved`, `archived`, or
    /// `all`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub environment: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub release: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub query: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sort: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cursor: Option<String>,
}

impl IssueFilters {
    fn non_empty(value: &Option<String>) -> Option<&str> {
        value.as_deref().filter(|v| !v.is_empty())
    }

    /// The status to list: `None` for all of them.
    pub fn status(&self) -> Option<&str> {
        match Self::non_empty(&self.status) {
            None => Some(IssueStatus::Unresolved.as_str()),
            Some("all") => None,
            Some(s) => Some(s),
        }
    }

    pub fn environment(&self) -> Option<&str> {
        Self::non_empty(&self.environment)
    }

    pub fn release(&self) -> Option<&str> {
        Self::non_empty(&self.release)
    }

    pub fn query(&self) -> Option<&str> {
        Self::non_empty(&self.query)
    }

    pub fn sort(&self) -> Option<&str> {
        Self::non_empty(&self.sort)
    }

    pub fn cursor(&self) -> Option<&str> {
        Self::non_empty(&self.cursor)
    }

    /// Whether anything narrows the list beyond the default (unresolved
    /// issues): the empty state then says so instead of "events will
    /// appear here".
    pub fn narrowed(&self) -> bool {
        self.status() != Some(IssueStatus::Unresolved.as_str())
            || self.environment().is_some()
            || self.release().is_some()
            || self.query().is_some()
    }

    /// The value the status `<select>` shows.
    pub fn status_choice(&self) -> &str {
        self.status().unwrap_or("all")
    }

    /// The value the sort `<select>` shows.
    pub fn sort_choice(&self) -> &str {
        self.sort().unwrap_or(IssueSort::default().as_str())
    }

    /// The query string of the same list at `cursor` (the first page when
    /// `None`), with the filters kept and empty ones dropped.
    pub fn query_string(&self, cursor: Option<&str>) -> String {
        let own = |v: Option<&str>| v.map(str::to_owned);
        let page = IssueFilters {
            status: own(Self::non_empty(&self.status)),
            environment: own(self.environment()),
            release: own(self.release()),
            query: own(self.query()),
            sort: own(self.sort()),
            cursor: own(cursor),
        };
        // Plain strings always encode.
        serde_urlencoded::to_string(&page).unwrap_or_default()
    }
}

/// The choices of the status filter and the sort, as (value, label).
pub const STATUS_CHOICES: [(&str, &str); 4] = [
    ("unresolved", "Unresolved"),
    ("resolved", "Resolved"),
    ("archived", "Archived"),
    ("all", "All"),
];
pub const SORT_CHOICES: [(&str, &str); 3] = [
    ("last_seen", "Last seen"),
    ("first_seen", "First seen"),
    ("event_count", "Events"),
];

/// `GET /projects/{project_id}/issues`.
#[derive(Debug, Template)]
#[template(path = "issues.html")]
pub struct IssuesPage {
    pub layout: Layout,
    pub project: ProjectHeader,
    pub filters: IssueFilters,
    pub rows: Vec<IssueRow>,
    /// The next page's link (`?` and query string), absent on the last.
    pub next_page: Option<String>,
    /// The first page's link, when this is a later page.
    pub first_page: Option<String>,
    /// Why the search could not be run, shown under the search box.
    pub search_error: Option<String>,
}

impl IssuesPage {
    /// `page` of `project`'s issues: the next page's link from the page's
    /// cursor, the first page's when this page had one.
    pub fn new(
        layout: Layout,
        project: ProjectHeader,
        filters: IssueFilters,
        rows: Vec<IssueRow>,
        next: Option<&str>,
    ) -> Self {
        let link = |cursor| format!("?{}", filters.query_string(cursor));
        IssuesPage {
            next_page: next.map(|n| link(Some(n))),
            first_page: filters.cursor().map(|_| link(None)),
            search_error: None,
            layout,
            project,
            filters,
            rows,
        }
    }
}

/// One issue in the list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IssueRow {
    pub id: String,
    pub title: String,
    pub culprit: Option<String>,
    pub level: &'static str,
    pub status: &'static str,
    pub event_count: i64,
    /// Distinct users affected, when the service counts them.
    pub users: Option<i64>,
    pub first_seen: RelTime,
    pub last_seen: RelTime,
    /// The last 14 days, when the service gives the list daily counts.
    pub sparkline: Option<Sparkline>,
}

impl IssueRow {
    /// The row of `issue` as seen at `now`, without user count or
    /// sparkline (the handler adds them when it has them).
    pub fn new(issue: &Issue, now: DateTime<Utc>) -> Self {
        IssueRow {
            id: issue.id.to_string(),
            title: issue.title.clone(),
            culprit: issue.culprit.clone(),
            level: issue.level.as_str(),
            status: issue.status.as_str(),
            event_count: issue.event_count,
            users: None,
            first_seen: RelTime::new(issue.first_seen, now),
            last_seen: RelTime::new(issue.last_seen, now),
            sparkline: None,
        }
    }

    /// This row with the user count and sparkline of `activity` (from
    /// `GetIssueActivity`).
    pub fn with_activity(self, activity: &IssueActivity) -> Self {
        IssueRow {
            users: known_users(activity.users),
            sparkline: Some(Sparkline::new(&activity.daily_counts)),
            ..self
        }
    }

    /// The rows of a page of issues, each with its entry of `activity`
    /// when there is one.
    pub fn page(issues: &[Issue], activity: &[IssueActivity], now: DateTime<Utc>) -> Vec<Self> {
        issues
            .iter()
            .map(|issue| {
                let row = IssueRow::new(issue, now);
                match activity.iter().find(|a| a.issue_id == issue.id) {
                    Some(a) => row.with_activity(a),
                    None => row,
                }
            })
            .collect()
    }

    /// The issue page's heading row of `detail`, with its user count (the
    /// page shows the sparkline apart, from the same daily counts).
    pub fn of_detail(detail: &IssueDetail, now: DateTime<Utc>) -> Self {
        IssueRow {
            users: known_users(detail.users),
            ..IssueRow::new(&detail.issue, now)
        }
    }
}

/// A user count as the pages show it: 0 means no event said whom it hit
/// (the SDK sends no user), which is "unknown", not "nobody".
fn known_users(users: i64) -> Option<i64> {
    (users > 0).then_some(users)
}

/// `GET /projects/{project_id}/issues/{issue_id}`.
#[derive(Debug, Template)]
#[template(path = "issue.html")]
pub struct IssuePage {
    pub layout: Layout,
    pub project: ProjectHeader,
    pub issue: IssueRow,
    /// Its events still stored (see [`crate::domain::IssueDetail`]).
    pub stored_events: i64,
    pub sparkline: Sparkline,
    /// Set while resolved.
    pub resolved: Option<RelTime>,
    pub assignee: Assignee,
    /// The event shown (the latest unless navigated); `None` when its
    /// partitions were dropped.
    pub event: Option<EventView>,
    /// Links to the newer and older events (`?event=<id>` or
    /// `?cursor=...`), absent at either end.
    pub newer_event: Option<String>,
    pub older_event: Option<String>,
    /// Tags, activity, releases, the condition in force.
    pub triage: super::triage::IssueTriage,
    /// The alerts it caused, newest first.
    pub alerts: Vec<super::alerts::AlertRow>,
}

impl IssuePage {
    /// The newer and older links of [`IssuePage`] for the event shown,
    /// from its neighbours (from `GetEventNeighbours`).
    pub fn event_links(neighbours: &EventNeighbours) -> (Option<String>, Option<String>) {
        let link = |id: Option<Uuid>| id.map(|id| format!("?event={id}"));
        (link(neighbours.newer), link(neighbours.older))
    }

    /// The status changes offered: every status but the current one.
    pub fn status_actions(&self) -> Vec<(&'static str, &'static str)> {
        [
            ("resolved", "Resolve"),
            ("unresolved", "Unresolve"),
            ("archived", "Archive"),
        ]
        .into_iter()
        .filter(|(s, _)| *s != self.issue.status)
        .collect()
    }
}

/// The assignee control: who it is and whom it could be.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Assignee {
    /// The assignee's name, or `None` for nobody.
    pub current: Option<String>,
    /// The organization's members, the current one marked.
    pub choices: Vec<MemberChoice>,
}

/// A member in the assignee `<select>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberChoice {
    pub user_id: String,
    pub label: String,
    pub selected: bool,
}

/// `GET /projects/{project_id}/keys` (admins).
#[derive(Debug, Template)]
#[template(path = "settings.html")]
pub struct SettingsPage {
    pub layout: Layout,
    pub project: ProjectHeader,
    /// The form's values: the project's settings, or what was sent.
    pub retention_days: String,
    pub rate_limit_per_minute: String,
    /// The server's retention, in days (0: everything kept).
    pub server_retention_days: u32,
    pub saved: bool,
    pub error: Option<String>,
}

#[derive(Debug, Template)]
#[template(path = "keys.html")]
pub struct KeysPage {
    pub layout: Layout,
    pub project: ProjectHeader,
    pub keys: Vec<KeyRow>,
    /// Right after `POST .../keys`: the new key's DSN, shown this once.
    pub created: Option<Setup>,
    pub error: Option<String>,
}

/// A key in the keys list: never the key itself, which is not stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyRow {
    pub id: String,
    pub label: String,
    /// The key's first characters, to tell keys apart.
    pub prefix: String,
    pub created: RelTime,
    pub revoked: Option<RelTime>,
    /// The key's own events per minute, empty for none: the form's value.
    pub rate_limit: String,
}

/// `GET /orgs/{org_id}/members` (admins).
#[derive(Debug, Template)]
#[template(path = "members.html")]
pub struct MembersPage {
    pub layout: Layout,
    pub org: OrgHeader,
    pub members: Vec<MemberRow>,
    /// The roles I may give: owners may give `owner` too.
    pub roles: Vec<&'static str>,
    /// The add-member form's email after a refusal.
    pub email: String,
    pub error: Option<String>,
}

/// A member in the members list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberRow {
    pub user_id: String,
    pub display_name: String,
    pub email: String,
    pub role: &'static str,
    pub joined: RelTime,
    /// Whether I may change this member's role (owners' roles only by
    /// owners).
    pub editable: bool,
}

/// An error page: 404 for what does not exist or I may not see, and any
/// other status a page answers with.
#[derive(Debug, Template)]
#[template(path = "error.html")]
pub struct ErrorPage {
    pub layout: Layout,
    pub status: u16,
    pub heading: String,
    pub message: String,
}

impl ErrorPage {
    /// The one 404 page: the same for a missing page and one the caller
    /// may not see, so it reveals nothing.
    pub fn not_found(nav: Option<Nav>) -> Self {
        ErrorPage {
            layout: Layout::new("Not found", nav),
            status: 404,
            heading: "Page not found".into(),
            message: "There is nothing here, or you do not have access to it.".into(),
        }
    }
}
