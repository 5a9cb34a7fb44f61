//! The `mesher` command line: `mesher` / `mesher serve` runs the server;
//! the other subcommands set up a fresh install (organizations, projects,
//! keys, users) through the same services the server uses, without
//! starting it. Each prints what it made for people, or with `--json` one
//! JSON object for scripts.

use crate::config::Config;
use crate::db;
use crate::domain::ProjectWithKey;
use crate::error::{Error, Result};
use crate::services::{
    AddMember, CreateApiKey, CreateOrg, CreateOrgToken, CreateProjectWithKey, GetOrgBySlug,
    GetProject, ListApiKeys, OrgService, OrgTokenService, ProjectService, Register, UserService,
};
use actix::prelude::*;
use clap::{Args, Parser, Subcommand};
use serde_json::{Value, json};
use std::io::{BufRead, IsTerminal};

/// Mesher: a self-hosted error-monitoring backend for Sentry SDKs.
///
/// Configuration comes from the environment: DATABASE_URL, MESHER_* and
/// RUST_LOG (see the README).
#[derive(Debug, Parser)]
#[command(name = "mesher", version)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the server (the default).
    Serve,
    /// Organizations.
    #[command(subcommand)]
    Org(OrgCommand),
    /// Projects.
    #[command(subcommand)]
    Project(ProjectCommand),
    /// A project's ingest keys.
    #[command(subcommand)]
    Key(KeyCommand),
    /// Users.
    #[command(subcommand)]
    User(UserCommand),
    /// Organization tokens, what sentry-cli uploads source maps with.
    #[command(subcommand)]
    Token(TokenCommand),
}

#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// Create an organization token; prints it this once. Give it to
    /// sentry-cli as SENTRY_AUTH_TOKEN, with SENTRY_URL set to Mesher's
    /// public URL.
    Create {
        /// The organization's slug.
        #[arg(long)]
        org: String,
        /// What the token is for, e.g. "ci".
        #[arg(long)]
        label: Option<String>,
        #[command(flatten)]
        output: Output,
    },
}

#[derive(Debug, Subcommand)]
pub enum OrgCommand {
    /// Create an organization.
    Create {
        /// Lowercase letters, digits and dashes, e.g. "acme".
        #[arg(long)]
        slug: String,
        #[arg(long)]
        name: String,
        #[command(flatten)]
        output: Output,
    },
}

#[derive(Debug, Subcommand)]
pub enum ProjectCommand {
    /// Create a project and its first key; prints the DSN.
    Create {
        /// The organization's slug.
        #[arg(long)]
        org: String,
        #[arg(long)]
        name: String,
        /// The SDK platform, e.g. python, javascript, rust.
        #[arg(long)]
        platform: Option<String>,
        #[command(flatten)]
        output: Output,
    },
}

#[derive(Debug, Subcommand)]
pub enum KeyCommand {
    /// Create another key for a project; prints it and its DSN.
    Create {
        /// The project's public id (the number in its DSN).
        #[arg(long)]
        project: String,
        #[arg(long)]
        label: Option<String>,
        #[command(flatten)]
        output: Output,
    },
    /// List a project's keys (never the keys themselves).
    List {
        /// The project's public id (the number in its DSN).
        #[arg(long)]
        project: String,
        #[command(flatten)]
        output: Output,
    },
}

#[derive(Debug, Subcommand)]
pub enum UserCommand {
    /// Create a user; the password is read from the terminal, or from
    /// standard input when it is not a terminal (never an argument).
    Create {
        #[arg(long)]
        email: String,
        /// Shown in the dashboard; the email when not given.
        #[arg(long)]
        name: Option<String>,
        /// Also add the user to this organization (its slug).
        #[arg(long, requires = "role")]
        org: Option<String>,
        /// The role in --org: owner, admin or member.
        #[arg(long, requires = "org")]
        role: Option<String>,
        #[command(flatten)]
        output: Output,
    },
}

#[derive(Debug, Args)]
pub struct Output {
    /// Print one JSON object instead of text.
    #[arg(long)]
    json: bool,
}

/// The services a command needs, on the database the server uses; the
/// schema is applied first, so commands work on a fresh database.
struct Services {
    orgs: Addr<OrgService>,
    projects: Addr<ProjectService>,
    users: Addr<UserService>,
    tokens: Addr<OrgTokenService>,
}

async fn services(config: &Config) -> Result<Services> {
    db::wait_for_database(&config.database_url, config.database_wait).await?;
    let pool = db::pool(&config.database_url, 2)?;
    db::apply_schema(&pool).await?;
    let public_url = config.http.public_url(config.http.addr)?;
    Ok(Services {
        orgs: OrgService::new(pool.clone()).start(),
        projects: ProjectService::new(pool.clone(), public_url).start(),
        tokens: OrgTokenService::new(pool.clone()).start(),
        users: UserService::new(pool, config.users.clone()).start(),
    })
}

/// Runs an administrative command (anything but `serve`) and prints its
/// result on standard output.
pub async fn run_admin(config: &Config, command: Command) -> Result<()> {
    let s = services(config).await?;
    let (text, json, as_json) = match command {
        Command::Serve => return Err(Error::internal("serve is not an admin command")),
        Command::Org(OrgCommand::Create { slug, name, output }) => {
            let org = s.orgs.send(CreateOrg { name, slug }).await??;
            let text = format!("created organization {} ({})", org.slug, org.id);
            let json = json!({ "id": org.id, "slug": org.slug, "name": org.name });
            (text, json, output.json)
        }
        Command::Project(ProjectCommand::Create {
            org,
            name,
            platform,
            output,
        }) => {
            let org = s.orgs.send(GetOrgBySlug { slug: org }).await??;
            let ProjectWithKey { project, key } = s
                .projects
                .send(CreateProjectWithKey {
                    org_id: org.id.to_string(),
                    name,
                    platform,
                    label: None,
                })
                .await??;
            let text = format!(
                "created project {} (public id {})\nDSN: {}",
                project.name, project.public_id, key.dsn
            );
            let json = json!({
                "id": project.id,
                "public_id": project.public_id,
                "name": project.name,
                "key": key.key.expose(),
                "dsn": key.dsn,
            });
            (text, json, output.json)
        }
        Command::Key(KeyCommand::Create {
            project,
            label,
            output,
        }) => {
            let project = s.projects.send(GetProject { id: project }).await??;
            let key = s
                .projects
                .send(CreateApiKey {
                    project_id: project.id.to_string(),
                    label,
                })
                .await??;
            let text = format!("key: {}\nDSN: {}", key.key.expose(), key.dsn);
            let json = json!({ "key": key.key.expose(), "dsn": key.dsn });
            (text, json, output.json)
        }
        Command::Key(KeyCommand::List { project, output }) => {
            let project = s.projects.send(GetProject { id: project }).await??;
            let keys = s
                .projects
                .send(ListApiKeys {
                    project_id: project.id.to_string(),
                })
                .await??;
            let text = keys
                .iter()
                .map(|k| {
                    let state = match k.revoked_at {
                        Some(at) => format!("revoked {at}"),
                        None => "active".to_owned(),
                    };
                    format!(
                        "{}…  {}  created {}  {state}",
                        k.prefix, k.label, k.created_at
                    )
                })
                .collect::<Vec<_>>()
                .join("\n");
            let json = json!({ "keys": keys });
            (text, json, output.json)
        }
        Command::Token(TokenCommand::Create { org, label, output }) => {
            let org = s.orgs.send(GetOrgBySlug { slug: org }).await??;
            let made = s
                .tokens
                .send(CreateOrgToken {
                    org_id: org.id,
                    label,
                    created_by: None,
                })
                .await??;
            let text = format!(
                "token for {}: {}\nsentry-cli reads it as SENTRY_AUTH_TOKEN; it is shown this once",
                org.slug,
                made.token.expose()
            );
            let json = json!({ "token": made.token.expose(), "id": made.info.id, "org": org.slug });
            (text, json, output.json)
        }
        Command::User(UserCommand::Create {
            email,
            name,
            org,
            role,
            output,
        }) => {
            let password = read_password()?;
            let display_name = name.unwrap_or_else(|| email.clone());
            let user = s
                .users
                .send(Register {
                    email,
                    password,
                    display_name,
                })
                .await??;
            let mut text = format!("created user {} ({})", user.email, user.id);
            if let (Some(org), Some(role)) = (org, role) {
                let org = s.orgs.send(GetOrgBySlug { slug: org }).await??;
                let membership = s
                    .users
                    .send(AddMember {
                        user_id: user.id.to_string(),
                        org_id: org.id.to_string(),
                        role,
                    })
                    .await??;
                text.push_str(&format!(
                    "\nadded to {} as {}",
                    org.slug,
                    membership.role.as_str()
                ));
            }
            let json = json!({ "id": user.id, "email": user.email });
            (text, json, output.json)
        }
    };
    print(&text, &json, as_json);
    Ok(())
}

fn print(text: &str, json: &Value, as_json: bool) {
    if as_json {
        println!("{json}");
    } else {
        println!("{text}");
    }
}

/// The new user's password: typed without echo at a terminal, else the
/// first line of standard input (for scripts).
fn read_password() -> Result<String> {
    let failed = |e: std::io::Error| Error::internal_from("reading the password", e);
    if std::io::stdin().is_terminal() {
        let first = rpassword::prompt_password("Password: ").map_err(failed)?;
        let again = rpassword::prompt_password("Again: ").map_err(failed)?;
        if first != again {
            return Err(Error::invalid("password", "the two entries differ"));
        }
        Ok(first)
    } else {
        let mut line = String::new();
        std::io::stdin()
            .lock()
            .read_line(&mut line)
            .map_err(failed)?;
        Ok(line.trim_end_matches(['\r', '\n']).to_owned())
    }
}
