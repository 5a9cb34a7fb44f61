//! Domain types: the values Mesher stores and the rules they obey.
//!
//! Every type with a rule (slug, email, password, role, API key, session
//! token, an event built from a payload) can only be built through a
//! constructor that checks it, so an invalid value never reaches a service's
//! query or the database. Each rule is unit-tested beside its type.

pub mod access;
mod alert;
mod artifact;
mod event;
pub mod grouping;
mod issue;
mod names;
pub mod notice;
pub mod rate_limit;
pub mod search;
mod secret;
mod tenancy;
mod triage;
mod user;

pub use alert::{
    Alert, AlertCondition, AlertFilters, AlertPage, AlertRule, Channel, ChannelKind, ChannelPatch,
    ChannelSecret, ChannelSpec, ChannelTarget, DEFAULT_ACTION_INTERVAL_MINUTES, Delivery,
    DeliveryState, MAX_WINDOW_MINUTES, NewChannel, NewChannelReply, NewRule, RuleAction, RulePatch,
    RuleSpec, TagFilter, WebhookUrl, url_origin,
};
pub use artifact::{ArtifactType, NewOrgToken, OrgTokenInfo};
pub use event::{
    Breadcrumb, ClientSdk, Event, EventBody, EventParts, EventPayload, ExceptionInfo, Hold,
    LogEntry, MAX_CLOCK_DRIFT, MAX_EVENT_BYTES, Mechanism, RawJson, Severity, StackFrame,
    Stacktrace, Tag, Thread, read_payload, tags,
};
pub use issue::{
    Cursor, DAILY_COUNT_DAYS, DEFAULT_PAGE_LIMIT, DayWindow, EventNeighbours, EventPage, Issue,
    IssueActivity, IssueCounts, IssueDetail, IssuePage, IssueSort, IssueStatus, MAX_PAGE_LIMIT,
    StoredEvent, contains_pattern, filter_text, page_limit,
};
pub use names::{Name, Slug};
pub use search::Search;
pub use secret::{ApiKey, OrgToken, SessionToken};
pub use tenancy::{
    ApiKeyInfo, MAX_RATE_LIMIT_PER_MINUTE, NewApiKey, Organization, Project, ProjectSettings,
    ProjectWithKey, PublicUrl, ResolvedKey, check_rate_limit,
};
pub use triage::{
    Activity, ArchiveUntil, MAX_ARCHIVE_AMOUNT, ResolveIn, StatusChange, TOP_TAG_VALUES,
    TagBreakdown, TagCount,
};
pub use user::{Email, Member, NewSession, OrgMembership, Password, Role, Session, User};

use crate::error::{Error, Result};
use uuid::Uuid;

/// Parses an id given as text (every message takes ids as text, like an API
/// would), naming `field` in the error when it is not a UUID.
pub fn parse_id(field: &'static str, text: &str) -> Result<Uuid> {
    Uuid::parse_str(text.trim()).map_err(|_| Error::invalid(field, "must be a UUID"))
}

/// A new time-ordered (v7) id: primary keys stay roughly insert-ordered,
/// which keeps B-tree inserts at the right edge of the index.
pub fn new_id() -> Uuid {
    Uuid::now_v7()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_id_accepts_uuid_and_rejects_garbage() {
        let id = new_id();
        assert_eq!(parse_id("org_id", &id.to_string()).unwrap(), id);
        assert!(matches!(
            parse_id("org_id", "not-a-uuid'; DROP TABLE x;--"),
            Err(Error::InvalidInput {
                field: "org_id",
                ..
            })
        ));
        assert!(matches!(
            parse_id("org_id", "ünïcödé"),
            Err(Error::InvalidInput { .. })
        ));
    }

    #[test]
    fn new_ids_are_version_7_and_ordered() {
        let a = new_id();
        let b = new_id();
        assert_eq!(a.get_version_num(), 7);
        assert!(a < b);
    }
}
