//! The actors. Each service lives in its own file, named after it, holds
//! what it needs (a pool, its config) and answers typed messages: a call
//! replies `Result<T, Error>`, a cast (`do_send`) replies nothing.
//!
//! Messages carry caller input as plain text, the way an API receives it;
//! handlers parse it into domain types first, so bad input gets a typed
//! error before any SQL runs.

mod ack_log;
mod batch;
mod committer;
mod inbox;
mod intake;
mod issue_service;
mod key_cache;
mod notifier;
mod org_service;
mod org_token_service;
mod partition_manager;
mod project_service;
mod rate_limiter;
mod source_map_service;
mod spool;
mod spool_replayer;
mod storage_writer;
mod user_service;
mod writer_registry;

pub use ack_log::{AckLog, DIR_NAME as ACK_LOG_DIR, Leftover, Replay, replay_leftovers};
pub use batch::{Batch, MemoryBudget};
pub use committer::{Commit, Committer, Landed, MAX_COMBINED_BYTES, MAX_COMBINED_EVENTS};
pub use inbox::{Admitted, Inbox};
pub use intake::Intake;
pub use issue_service::{
    AssignIssue, CountIssues, GetEvent, GetEventNeighbours, GetIssue, GetIssueActivity,
    GetIssueHistory, GetIssueTags, IssueService, ListIssueEvents, ListIssues, UpdateIssueStatus,
    WakeArchivedIssues,
};
pub use key_cache::{KEY_CACHE_TTL, KeyCache, resolve_key};
pub use notifier::{Notifier, SEND_TIMEOUT, Wake, check_webhook_target};
pub use org_service::{CreateOrg, CreateOrgAsOwner, GetOrg, GetOrgBySlug, ListOrgs, OrgService};
pub use org_token_service::{
    AuthenticateOrgToken, CreateOrgToken, ListOrgTokens, OrgTokenService, RevokeOrgToken,
};
pub use partition_manager::{ApplyRetention, EnsurePartitions, PartitionManager, Retained};
pub use project_service::{
    CreateApiKey, CreateProject, CreateProjectWithKey, GetProject, GetProjectByApiKey, ListApiKeys,
    ListProjectsByOrg, ProjectService, ProjectUsage, RevokeApiKey, SetKeyRateLimit,
    UpdateProjectSettings,
};
pub use rate_limiter::{Limit, RateLimiter};
pub use source_map_service::{
    AssembleBundle, AssembleState, Assembled, GetSourceMapStats, LoadMaps, SourceMapService,
    SourceMapStats, StoreChunks,
};
pub use spool::{Refused, Spool, SpoolStore};
pub use spool_replayer::SpoolReplayer;
pub use storage_writer::{Admit, Drain, Flush, Idle, Overflow, Stats, StorageWriter, WriterStats};
pub use user_service::{
    AddMember, AddMemberByEmail, BCRYPT_SLOTS, ChangeMember, GetMembers, GetRole, GetUser,
    GetUserOrgs, ListMembers, Login, Logout, Register, UserService, ValidateSession,
};
pub use writer_registry::{
    Accepting, Directory, DrainAll, GetWriter, RegistryStats, Store, TotalStats, WriterFor,
    WriterRegistry,
};
