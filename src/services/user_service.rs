//! UserService: accounts, password login, sessions and memberships.
//!
//! bcrypt is deliberately slow (a good fraction of a second at the default
//! cost), so it runs on tokio's blocking pool, never on the actor's thread:
//! a burst of logins must not stall the other actors sharing that thread.

use crate::config::UserConfig;
use crate::db::{self, Pool};
use crate::domain::{
    Email, Member, Name, NewSession, OrgMembership, Organization, Password, Role, Session,
    SessionToken, User, parse_id,
};
use crate::error::{Error, Result};
use actix::prelude::*;
use std::sync::{Arc, OnceLock};
use std::time::Duration;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use uuid::Uuid;

/// Logins and registrations allowed at once, from their lookup through
/// their bcrypt computation. Past it one is refused (429) rather than
/// queued: a flood of logins then costs at most this many blocking
/// threads, and ingestion, which shares the blocking pool for
/// decompression, keeps its share.
pub const BCRYPT_SLOTS: usize = 8;

/// How long a client refused for want of a bcrypt slot is asked to wait.
const BCRYPT_RETRY_AFTER: Duration = Duration::from_secs(1);

/// Registers users, logs them in and out, and manages memberships.
pub struct UserService {
    /// Shared connection pool; each request borrows a connection briefly.
    pool: Pool,
    /// bcrypt cost and session lifetime.
    config: UserConfig,
    /// A bcrypt hash of nothing anyone knows, at the configured cost. A
    /// login for an unknown email verifies against it, so it costs the same
    /// time as a wrong password and reveals nothing.
    dummy_hash: Arc<OnceLock<String>>,
    /// Bounds the bcrypt work in progress (see [`BCRYPT_SLOTS`]).
    bcrypt_slots: Arc<Semaphore>,
}

impl UserService {
    pub fn new(pool: Pool, config: UserConfig) -> Self {
        UserService {
            pool,
            config,
            dummy_hash: Arc::default(),
            bcrypt_slots: Arc::new(Semaphore::new(BCRYPT_SLOTS)),
        }
    }
}

/// A bcrypt slot if one is free; `Overloaded` otherwise. Taken as the
/// message is handled, before any query: requests get slots in the order
/// they arrive, and one past the slots is refused at once.
fn bcrypt_slot(slots: &Arc<Semaphore>) -> Result<OwnedSemaphorePermit> {
    slots
        .clone()
        .try_acquire_owned()
        .map_err(|_| Error::Overloaded {
            retry_after: BCRYPT_RETRY_AFTER,
        })
}

/// Runs bcrypt work on the blocking pool, holding `slot` until it is done.
async fn bcrypt_off_thread<T: Send + 'static>(
    slot: OwnedSemaphorePermit,
    f: impl FnOnce() -> T + Send + 'static,
) -> Result<T> {
    let done = off_thread(f).await;
    drop(slot);
    done
}

impl Actor for UserService {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        // Pay for the dummy hash before serving anything (off-thread; the
        // mailbox waits), so no login for an unknown email pays for it and
        // takes twice as long as a wrong password.
        let (dummy, cost) = (self.dummy_hash.clone(), self.config.bcrypt_cost);
        let prepare = off_thread(move || {
            dummy_hash(&dummy, cost);
        });
        ctx.wait(prepare.into_actor(self).map(|_, _, _| ()));
    }
}

fn dummy_hash(cell: &OnceLock<String>, cost: u32) -> &str {
    cell.get_or_init(|| {
        let mut secret = [0u8; 32];
        // The dummy only has to be unguessable by chance; should the RNG
        // fail, a fixed value still hashes to a valid, unmatchable hash.
        if let Err(e) = getrandom::fill(&mut secret) {
            log::warn!("dummy password hash made without randomness: the RNG failed: {e}");
        }
        // Only a cost outside bcrypt's 4..=31 fails here (a configuration
        // that skipped Config::validate); Register then fails too, so no
        // user exists, and a login finds no dummy to verify against.
        bcrypt::hash(hex::encode(secret), cost).unwrap_or_else(|e| {
            log::error!("cannot make the dummy password hash at cost {cost}: {e}");
            String::new()
        })
    })
}

/// Runs CPU-heavy work on the blocking pool.
async fn off_thread<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> Result<T> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| Error::internal_from("blocking task failed", e))
}

/// Creates an account. Errors: `InvalidInput` (email, password,
/// display_name), `AlreadyExists { "user" }` for an email taken in any
/// letter case.
#[derive(Message)]
#[rtype(result = "Result<User>")]
pub struct Register {
    pub email: String,
    pub password: String,
    pub display_name: String,
}

/// Checks a password and opens a session. Errors: `InvalidInput` (email,
/// password shape), `InvalidCredentials` for an unknown email or a wrong
/// password alike.
#[derive(Message)]
#[rtype(result = "Result<NewSession>")]
pub struct Login {
    pub email: String,
    pub password: String,
}

/// Resolves a session token. Errors: `InvalidInput` (malformed token),
/// `InvalidCredentials` (unknown or logged out), `SessionExpired`.
#[derive(Message)]
#[rtype(result = "Result<Session>")]
pub struct ValidateSession {
    pub token: String,
}

/// Ends a session; logging out an unknown token is not an error (the
/// outcome the caller wants already holds). Errors: `InvalidInput`.
#[derive(Message)]
#[rtype(result = "Result<()>")]
pub struct Logout {
    pub token: String,
}

/// Reads one user. Errors: `InvalidInput` (id), `NotFound`.
#[derive(Debug, Message)]
#[rtype(result = "Result<User>")]
pub struct GetUser {
    pub id: String,
}

/// Adds a user to an organization. Errors: `InvalidInput` (user_id,
/// org_id, role), `NotFound { "user" | "organization" }`,
/// `AlreadyExists { "membership" }`.
#[derive(Debug, Message)]
#[rtype(result = "Result<OrgMembership>")]
pub struct AddMember {
    pub user_id: String,
    pub org_id: String,
    pub role: String,
}

/// An organization's members. Errors: `InvalidInput`, `NotFound`.
#[derive(Debug, Message)]
#[rtype(result = "Result<Vec<OrgMembership>>")]
pub struct GetMembers {
    pub org_id: String,
}

/// The organizations a user belongs to. Errors: `InvalidInput`, `NotFound`.
#[derive(Debug, Message)]
#[rtype(result = "Result<Vec<Organization>>")]
pub struct GetUserOrgs {
    pub user_id: String,
}

impl Handler<Register> for UserService {
    type Result = ResponseFuture<Result<User>>;

    fn handle(&mut self, msg: Register, _: &mut Self::Context) -> Self::Result {
        let (pool, cost) = (self.pool.clone(), self.config.bcrypt_cost);
        // Bad input is refused as such, taking no slot.
        let parsed = Email::parse(&msg.email).and_then(|email| {
            let password = Password::parse(&msg.password)?;
            let display_name = Name::parse("display_name", &msg.display_name)?;
            let slot = bcrypt_slot(&self.bcrypt_slots)?;
            Ok((email, password, display_name, slot))
        });
        let (email, password, display_name, slot) = match parsed {
            Ok(parsed) => parsed,
            Err(e) => return Box::pin(std::future::ready(Err(e))),
        };
        Box::pin(async move {
            let hash = bcrypt_off_thread(slot, move || bcrypt::hash(password.expose(), cost))
                .await?
                .map_err(|e| Error::internal_from("bcrypt failed", e))?;
            db::users::insert(&pool, &email, &hash, &display_name).await
        })
    }
}

impl Handler<Login> for UserService {
    type Result = ResponseFuture<Result<NewSession>>;

    fn handle(&mut self, msg: Login, _: &mut Self::Context) -> Self::Result {
        let (pool, dummy, cost, ttl) = (
            self.pool.clone(),
            self.dummy_hash.clone(),
            self.config.bcrypt_cost,
            self.config.session_ttl,
        );
        // Bad input is refused as such, taking no slot.
        let parsed = Email::parse(&msg.email).and_then(|email| {
            let password = Password::parse(&msg.password)?;
            Ok((email, password, bcrypt_slot(&self.bcrypt_slots)?))
        });
        let (email, password, slot) = match parsed {
            Ok(parsed) => parsed,
            Err(e) => return Box::pin(std::future::ready(Err(e))),
        };
        Box::pin(async move {
            let found = db::users::credentials_by_email(&pool, &email).await?;
            let (user, hash) = match found {
                Some((user, hash)) => (Some(user), hash),
                None => (None, String::new()),
            };
            let verified = bcrypt_off_thread(slot, move || {
                let hash = if hash.is_empty() {
                    dummy_hash(&dummy, cost)
                } else {
                    &hash
                };
                bcrypt::verify(password.expose(), hash)
            })
            .await?;
            // A hash bcrypt cannot read is not a wrong password: a corrupt
            // row (or no dummy hash, logged when it was made).
            let matches = verified.map_err(|e| {
                let whose = user
                    .as_ref()
                    .map_or("the dummy".into(), |u| format!("user {}'s stored", u.id));
                log::error!("{whose} password hash is unreadable: {e}");
                Error::internal_from("unreadable password hash", e)
            })?;
            let user = user.filter(|_| matches).ok_or(Error::InvalidCredentials)?;
            let token = SessionToken::generate()?;
            let session = db::sessions::insert(&pool, &token, user.id, ttl).await?;
            Ok(NewSession { token, session })
        })
    }
}

impl Handler<ValidateSession> for UserService {
    type Result = ResponseFuture<Result<Session>>;

    fn handle(&mut self, msg: ValidateSession, _: &mut Self::Context) -> Self::Result {
        let pool = self.pool.clone();
        Box::pin(
            async move { db::sessions::validate(&pool, &SessionToken::parse(&msg.token)?).await },
        )
    }
}

impl Handler<Logout> for UserService {
    type Result = ResponseFuture<Result<()>>;

    fn handle(&mut self, msg: Logout, _: &mut Self::Context) -> Self::Result {
        let pool = self.pool.clone();
        Box::pin(async move {
            db::sessions::delete(&pool, &SessionToken::parse(&msg.token)?).await?;
            Ok(())
        })
    }
}

impl Handler<GetUser> for UserService {
    type Result = ResponseFuture<Result<User>>;

    fn handle(&mut self, msg: GetUser, _: &mut Self::Context) -> Self::Result {
        let pool = self.pool.clone();
        Box::pin(async move { db::users::get(&pool, parse_id("id", &msg.id)?).await })
    }
}

impl Handler<AddMember> for UserService {
    type Result = ResponseFuture<Result<OrgMembership>>;

    fn handle(&mut self, msg: AddMember, _: &mut Self::Context) -> Self::Result {
        let pool = self.pool.clone();
        Box::pin(async move {
            let user_id = parse_id("user_id", &msg.user_id)?;
            let org_id = parse_id("org_id", &msg.org_id)?;
            let role: Role = msg.role.parse()?;
            db::memberships::insert(&pool, user_id, org_id, role).await
        })
    }
}

impl Handler<GetMembers> for UserService {
    type Result = ResponseFuture<Result<Vec<OrgMembership>>>;

    fn handle(&mut self, msg: GetMembers, _: &mut Self::Context) -> Self::Result {
        let pool = self.pool.clone();
        Box::pin(async move {
            db::memberships::list_by_org(&pool, parse_id("org_id", &msg.org_id)?).await
        })
    }
}

impl Handler<GetUserOrgs> for UserService {
    type Result = ResponseFuture<Result<Vec<Organization>>>;

    fn handle(&mut self, msg: GetUserOrgs, _: &mut Self::Context) -> Self::Result {
        let pool = self.pool.clone();
        Box::pin(async move {
            db::memberships::orgs_of_user(&pool, parse_id("user_id", &msg.user_id)?).await
        })
    }
}

/// The role a user has in an organization; `None` for an outsider (call).
/// The dashboard's one access check asks this on every request.
#[derive(Debug, Message)]
#[rtype(result = "Result<Option<Role>>")]
pub struct GetRole {
    pub user_id: Uuid,
    pub org_id: Uuid,
}

impl Handler<GetRole> for UserService {
    type Result = ResponseFuture<Result<Option<Role>>>;

    fn handle(&mut self, msg: GetRole, _: &mut Self::Context) -> Self::Result {
        let pool = self.pool.clone();
        Box::pin(async move { db::memberships::role_of(&pool, msg.user_id, msg.org_id).await })
    }
}

/// An organization's members with their emails and names.
#[derive(Debug, Message)]
#[rtype(result = "Result<Vec<Member>>")]
pub struct ListMembers {
    pub org_id: Uuid,
}

impl Handler<ListMembers> for UserService {
    type Result = ResponseFuture<Result<Vec<Member>>>;

    fn handle(&mut self, msg: ListMembers, _: &mut Self::Context) -> Self::Result {
        let pool = self.pool.clone();
        Box::pin(async move { db::memberships::members(&pool, msg.org_id).await })
    }
}

/// Adds a registered user, found by email, to an organization. Errors:
/// `InvalidInput` (email, role), `NotFound { "user" }`,
/// `AlreadyExists { "membership" }`.
#[derive(Debug, Message)]
#[rtype(result = "Result<OrgMembership>")]
pub struct AddMemberByEmail {
    pub org_id: Uuid,
    pub email: String,
    pub role: String,
}

impl Handler<AddMemberByEmail> for UserService {
    type Result = ResponseFuture<Result<OrgMembership>>;

    fn handle(&mut self, msg: AddMemberByEmail, _: &mut Self::Context) -> Self::Result {
        let pool = self.pool.clone();
        Box::pin(async move {
            let email = Email::parse(&msg.email)?;
            let role: Role = msg.role.parse()?;
            let (user, _) = db::users::credentials_by_email(&pool, &email)
                .await?
                .ok_or(Error::NotFound { entity: "user" })?;
            db::memberships::insert(&pool, user.id, msg.org_id, role).await
        })
    }
}

/// Gives a member another role, or removes them with `role: None`; an
/// organization never loses its last owner. Errors: `InvalidInput` (role),
/// `NotFound { "membership" }`, `Conflict`.
#[derive(Debug, Message)]
#[rtype(result = "Result<()>")]
pub struct ChangeMember {
    pub org_id: Uuid,
    pub user_id: Uuid,
    pub role: Option<String>,
}

impl Handler<ChangeMember> for UserService {
    type Result = ResponseFuture<Result<()>>;

    fn handle(&mut self, msg: ChangeMember, _: &mut Self::Context) -> Self::Result {
        let pool = self.pool.clone();
        Box::pin(async move {
            let role = msg.role.as_deref().map(str::parse).transpose()?;
            db::memberships::change(&pool, msg.org_id, msg.user_id, role).await
        })
    }
}
