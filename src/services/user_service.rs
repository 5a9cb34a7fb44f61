//! UserService: accounts, password login, sessions and memberships.
//!
//! bcrypt is deliberately slow (a good fraction of a second at the default
//! cost), so it runs on tokio's blocking pool, never on the actor's thread:
//! a burst of logins must not stall the other actors sharing that thread.

use crate::config::UserConfig;
use crate::db::{self, Pool};
use crate::domain::{
    Email, Name, NewSession, OrgMembership, Organization, Password, Role, Session, SessionToken,
    User, parse_id,
};
use crate::error::{Error, Result};
use actix::prelude::*;
use std::sync::{Arc, OnceLock};

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
}

impl UserService {
    pub fn new(pool: Pool, config: UserConfig) -> Self {
        UserService {
            pool,
            config,
            dummy_hash: Arc::default(),
        }
    }
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
        Box::pin(async move {
            let email = Email::parse(&msg.email)?;
            let password = Password::parse(&msg.password)?;
            let display_name = Name::parse("display_name", &msg.display_name)?;
            let hash = off_thread(move || bcrypt::hash(password.expose(), cost))
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
        Box::pin(async move {
            let email = Email::parse(&msg.email)?;
            let password = Password::parse(&msg.password)?;
            let found = db::users::credentials_by_email(&pool, &email).await?;
            let (user, hash) = match found {
                Some((user, hash)) => (Some(user), hash),
                None => (None, String::new()),
            };
            let verified = off_thread(move || {
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
