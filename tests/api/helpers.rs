//! What the tenancy tests share: the three tenancy services wired as
//! `mesher::start` wires them, [`call`], [`assert_err!`], and builders for
//! the messages and rows a test sets up, so that each test spells out only
//! the values it is about.
//!
//! Message builders return a message with ordinary values; a test that
//! needs one field otherwise says so with struct update syntax:
//! `Register { password: "x".repeat(73), ..register("ann@example.org") }`.

use crate::common::TestDb;
use actix::dev::ToEnvelope;
use actix::prelude::*;
use mesher::config::UserConfig;
use mesher::domain::{
    NewApiKey, NewSession, OrgMembership, Organization, Project, PublicUrl, User,
};
use mesher::services::{
    AddMember, CreateApiKey, CreateOrg, CreateProject, GetMembers, GetOrg, GetProject,
    GetProjectByApiKey, GetUser, GetUserOrgs, ListApiKeys, Login, Logout, OrgService,
    ProjectService, Register, UserService, ValidateSession,
};

pub const PASSWORD: &str = "correct horse battery";
pub const WRONG_PASSWORD: &str = "correct horse stapler";

/// Asserts that `result` is an `Err` matching `pattern`, showing what came
/// instead when it is not.
macro_rules! assert_err {
    ($result:expr, $pattern:pat $(,)?) => {
        match $result {
            Err($pattern) => {}
            other => panic!("expected Err({}), got {:?}", stringify!($pattern), other),
        }
    };
}
pub(crate) use assert_err;

/// Sends `msg` and waits for the reply. A mailbox error means an actor
/// died, which no test here expects.
pub async fn call<A, M>(addr: &Addr<A>, msg: M) -> M::Result
where
    A: Actor + Handler<M>,
    A::Context: ToEnvelope<A, M>,
    M: Message + Send + 'static,
    M::Result: Send,
{
    addr.send(msg).await.expect("actor is alive")
}

/// The three tenancy services, sharing the test database's pool the way
/// `mesher::start` wires them.
pub struct Services {
    pub orgs: Addr<OrgService>,
    pub projects: Addr<ProjectService>,
    pub users: Addr<UserService>,
}

impl Services {
    /// The services with the test configuration (bcrypt cost 4).
    pub fn start(t: &TestDb) -> Self {
        Self::start_with(t, t.config().users)
    }

    pub fn start_with(t: &TestDb, users: UserConfig) -> Self {
        Services {
            orgs: OrgService::new(t.pool.clone()).start(),
            projects: ProjectService::new(
                t.pool.clone(),
                PublicUrl::parse("http://127.0.0.1:8000").unwrap(),
            )
            .start(),
            users: UserService::new(t.pool.clone(), users).start(),
        }
    }

    /// A new organization; panics (naming it) if it cannot be created.
    pub async fn org(&self, name: &str, slug: &str) -> Organization {
        call(&self.orgs, create_org(name, slug))
            .await
            .unwrap_or_else(|e| panic!("create org {slug}: {e}"))
    }

    pub async fn project(&self, org: &Organization, name: &str) -> Project {
        call(&self.projects, create_project(org, name))
            .await
            .unwrap_or_else(|e| panic!("create project {name}: {e}"))
    }

    pub async fn key(&self, project: &Project, label: &str) -> NewApiKey {
        call(&self.projects, create_key(project, Some(label)))
            .await
            .unwrap_or_else(|e| panic!("create key {label}: {e}"))
    }

    /// A user registered with [`PASSWORD`].
    pub async fn user(&self, email: &str) -> User {
        self.register(register(email)).await
    }

    pub async fn register(&self, msg: Register) -> User {
        let email = msg.email.clone();
        call(&self.users, msg)
            .await
            .unwrap_or_else(|e| panic!("register {email}: {e}"))
    }

    /// A session for `email`, logged in with [`PASSWORD`].
    pub async fn login(&self, email: &str) -> NewSession {
        call(&self.users, login(email, PASSWORD))
            .await
            .unwrap_or_else(|e| panic!("login {email}: {e}"))
    }

    pub async fn member(&self, user: &User, org: &Organization, role: &str) -> OrgMembership {
        call(&self.users, add_member(user, org, role))
            .await
            .unwrap_or_else(|e| panic!("add {} to {}: {e}", user.email, org.slug))
    }
}

// Message builders.

pub fn create_org(name: &str, slug: &str) -> CreateOrg {
    CreateOrg {
        name: name.into(),
        slug: slug.into(),
    }
}

/// A project on the `rust` platform.
pub fn create_project(org: &Organization, name: &str) -> CreateProject {
    CreateProject {
        org_id: org.id.to_string(),
        name: name.into(),
        platform: Some("rust".into()),
    }
}

pub fn create_key(project: &Project, label: Option<&str>) -> CreateApiKey {
    CreateApiKey {
        project_id: project.id.to_string(),
        label: label.map(Into::into),
    }
}

/// A registration with [`PASSWORD`] and the display name "Ann".
pub fn register(email: &str) -> Register {
    Register {
        email: email.into(),
        password: PASSWORD.into(),
        display_name: "Ann".into(),
    }
}

pub fn login(email: &str, password: &str) -> Login {
    Login {
        email: email.into(),
        password: password.into(),
    }
}

pub fn add_member(user: &User, org: &Organization, role: &str) -> AddMember {
    AddMember {
        user_id: user.id.to_string(),
        org_id: org.id.to_string(),
        role: role.into(),
    }
}

pub fn get_org(org: &Organization) -> GetOrg {
    GetOrg {
        id: org.id.to_string(),
    }
}

pub fn get_project(project: &Project) -> GetProject {
    GetProject {
        id: project.id.to_string(),
    }
}

pub fn get_user(user: &User) -> GetUser {
    GetUser {
        id: user.id.to_string(),
    }
}

pub fn by_key(key: &NewApiKey) -> GetProjectByApiKey {
    GetProjectByApiKey {
        key: key.key.expose().into(),
    }
}

pub fn keys_of(project: &Project) -> ListApiKeys {
    ListApiKeys {
        project_id: project.id.to_string(),
    }
}

pub fn members_of(org: &Organization) -> GetMembers {
    GetMembers {
        org_id: org.id.to_string(),
    }
}

pub fn orgs_of(user: &User) -> GetUserOrgs {
    GetUserOrgs {
        user_id: user.id.to_string(),
    }
}

pub fn validate(token: &str) -> ValidateSession {
    ValidateSession {
        token: token.into(),
    }
}

pub fn logout(token: &str) -> Logout {
    Logout {
        token: token.into(),
    }
}

// Looking at the tables.

/// Rows in every tenancy table, to show a rejected message wrote nothing.
pub async fn row_counts(t: &TestDb) -> [(&'static str, i64); 6] {
    let mut out = [
        ("organizations", 0),
        ("projects", 0),
        ("api_keys", 0),
        ("users", 0),
        ("org_memberships", 0),
        ("sessions", 0),
    ];
    for (table, n) in &mut out {
        *n = t.count(&format!("SELECT count(*) FROM {table}")).await;
    }
    out
}

/// `count(*)` of a query taking one text parameter (the secrets checked
/// go in as bound values, never spliced into SQL).
pub async fn count_with(t: &TestDb, sql: &str, param: &str) -> i64 {
    t.pool
        .get()
        .await
        .expect("connection")
        .query_one(sql, &[&param])
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
        .get(0)
}
