//! Notifier: drains the outbox of alert deliveries (see
//! [`crate::db::alerts`]) to webhooks, Slack, Discord and email.
//!
//! It runs passes, each re-arming the next with `run_later`: a pass claims
//! the due deliveries (`FOR UPDATE SKIP LOCKED`, with a lease, so the
//! notifiers of several processes share the outbox and none sends what
//! another holds), sends them at once, and settles each attempt:
//! delivered, or pending again after an exponential backoff (from
//! `retry_first` to `retry_max`), or failed once it has been retried for
//! `retry_for`. A batch that fires alerts wakes every process's notifier
//! at its commit (PostgreSQL's `NOTIFY`, on a connection of the
//! notifier's own that `LISTEN`s); otherwise a pass runs every
//! `poll_interval`, or when the next retry is due if that is sooner. A
//! process that dies mid-send leaves its claim to run out: the delivery
//! then goes out again, with the same `X-Mesher-Delivery` id.
//!
//! HTTP goes through reqwest, with rustls and Mozilla's roots, no
//! redirects, a 10 s timeout, and response bodies read to 64 KiB at most;
//! every address a host resolves to is checked before connecting (see
//! [`crate::domain::notice::is_public_address`]). Email goes through
//! lettre's SMTP transport. No log line or recorded error holds a URL's
//! path, a secret or the SMTP password.

use crate::config::NotifierConfig;
use crate::db::{self, Pool, alerts::Outgoing};
use crate::domain::notice::{self, is_public_address};
use crate::domain::{ChannelKind, DeliveryState, PublicUrl, WebhookUrl, new_id};
use crate::error::{Error, Result};
use crate::metrics::Metrics;
use actix::prelude::*;
use futures_util::StreamExt;
use lettre::message::{Mailbox, MultiPart};
use lettre::{AsyncSmtpTransport, AsyncTransport, Message as Email, Tokio1Executor};
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio_postgres::{AsyncMessage, NoTls};

/// How long one send may take, connecting included.
pub const SEND_TIMEOUT: Duration = Duration::from_secs(10);
/// The most of a receiver's answer that is read.
const MAX_RESPONSE_BYTES: usize = 64 * 1024;
/// The most of a receiver's answer kept as the attempt's error.
const ERROR_SNIPPET_CHARS: usize = 300;
/// Deliveries claimed per pass; a full pass is followed by another at once.
const PASS_SIZE: i64 = 32;
/// How long the wake-up connection waits before connecting again.
const LISTEN_RETRY: Duration = Duration::from_secs(5);
/// How often `alert_issue_users` is swept.
const SWEEP_INTERVAL: Duration = Duration::from_secs(3600);

/// Sends the outbox's deliveries (see the module documentation).
pub struct Notifier {
    /// Claims, settles and reads the outbox.
    pool: Pool,
    /// Retries, leases and the poll interval.
    config: NotifierConfig,
    /// The clients, shared by the sends of a pass.
    sender: Arc<Sender>,
    /// What issue links point at.
    public_url: PublicUrl,
    /// Deliveries by channel and outcome; the outbox's depth.
    metrics: Metrics,
    /// Where the wake-up connection connects.
    database_url: String,
    /// A pass is running.
    busy: bool,
    /// A wake-up came during the pass: run another after it.
    again: bool,
    /// The timer of the next pass, cancelled by an earlier wake-up.
    timer: Option<SpawnHandle>,
    /// When `alert_issue_users` was last swept.
    swept: Option<Instant>,
}

/// The clients a delivery goes out through.
pub struct Sender {
    http: reqwest::Client,
    /// The SMTP transport and the sender's address, when configured.
    smtp: Option<(AsyncSmtpTransport<Tokio1Executor>, Mailbox)>,
    /// Whether webhooks may reach non-public addresses.
    allow_private: bool,
}

impl Notifier {
    /// A notifier over `pool`; fails for an SMTP URL lettre cannot use.
    pub fn new(
        pool: Pool,
        config: NotifierConfig,
        public_url: PublicUrl,
        metrics: Metrics,
        database_url: String,
    ) -> Result<Notifier> {
        let sender = Arc::new(Sender::new(&config)?);
        Ok(Notifier {
            pool,
            config,
            sender,
            public_url,
            metrics,
            database_url,
            busy: false,
            again: false,
            timer: None,
            swept: None,
        })
    }

    /// Runs a pass now, or right after the one running.
    fn pass(&mut self, ctx: &mut Context<Self>) {
        if self.busy {
            self.again = true;
            return;
        }
        self.busy = true;
        self.again = false;
        if let Some(timer) = self.timer.take() {
            ctx.cancel_future(timer);
        }
        let sweep = self.swept.is_none_or(|at| at.elapsed() >= SWEEP_INTERVAL);
        if sweep {
            self.swept = Some(Instant::now());
        }
        let work = run_pass(
            self.pool.clone(),
            Arc::clone(&self.sender),
            self.config.clone(),
            self.public_url.clone(),
            self.metrics.clone(),
            sweep,
        );
        ctx.spawn(work.into_actor(self).map(|result, act, ctx| {
            act.busy = false;
            let wait = match result {
                Ok(wait) => wait,
                Err(e) => {
                    log::warn!("a notifier pass failed: {}", e.report());
                    act.config.poll_interval
                }
            };
            let wait = if act.again { Duration::ZERO } else { wait };
            act.timer = Some(ctx.run_later(wait, |act, ctx| {
                act.timer = None;
                act.pass(ctx);
            }));
        }));
    }
}

impl Actor for Notifier {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        actix_rt::spawn(listen(self.database_url.clone(), ctx.address()));
        self.pass(ctx);
    }
}

/// Something may be due: run a pass (cast).
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct Wake;

impl Handler<Wake> for Notifier {
    type Result = ();

    fn handle(&mut self, _: Wake, ctx: &mut Self::Context) {
        self.pass(ctx);
    }
}

/// Keeps a connection that `LISTEN`s for batches that fired alerts and
/// wakes the notifier for each, reconnecting when it is lost (and waking
/// it then, for what it may have missed).
async fn listen(url: String, notifier: Addr<Notifier>) {
    while notifier.connected() {
        match tokio_postgres::connect(&url, NoTls).await {
            Ok((client, mut connection)) => {
                let woken = notifier.clone();
                let messages = async move {
                    let mut messages =
                        futures_util::stream::poll_fn(move |cx| connection.poll_message(cx));
                    while let Some(message) = messages.next().await {
                        match message {
                            Ok(AsyncMessage::Notification(_)) => woken.do_send(Wake),
                            Ok(_) => {}
                            Err(e) => {
                                log::warn!("the notifier's wake-up connection failed: {e}");
                                break;
                            }
                        }
                    }
                };
                let subscribed = async {
                    match client
                        .batch_execute(&format!("LISTEN {}", db::alerts::WAKE_CHANNEL))
                        .await
                    {
                        Ok(()) => {
                            notifier.do_send(Wake);
                            std::future::pending::<()>().await
                        }
                        Err(e) => log::warn!("the notifier cannot LISTEN: {e}"),
                    }
                };
                futures_util::future::select(Box::pin(messages), Box::pin(subscribed)).await;
            }
            Err(e) => log::warn!("the notifier's wake-up connection cannot connect: {e}"),
        }
        tokio::time::sleep(LISTEN_RETRY).await;
    }
}

/// One pass: claims, sends and settles; returns how long to wait for the
/// next.
async fn run_pass(
    pool: Pool,
    sender: Arc<Sender>,
    config: NotifierConfig,
    public_url: PublicUrl,
    metrics: Metrics,
    sweep: bool,
) -> Result<Duration> {
    if sweep {
        db::alerts::sweep_users(&pool).await?;
    }
    let claim = new_id();
    let claimed = db::alerts::claim(&pool, claim, PASS_SIZE, config.lease).await?;
    let full = claimed.len() as i64 == PASS_SIZE;
    let sends = claimed.into_iter().map(|mut out| {
        if let Some(issue) = &mut out.notice.issue {
            issue.url = format!(
                "{public_url}/projects/{}/issues/{}",
                out.notice.project.id, issue.id
            );
        }
        deliver(&pool, &sender, &config, &metrics, claim, out)
    });
    futures_util::future::join_all(sends).await;
    let (pending, oldest, next_due) = db::alerts::outbox(&pool).await?;
    metrics.outbox(pending, oldest);
    if full {
        return Ok(Duration::ZERO);
    }
    Ok(next_due.map_or(config.poll_interval, |due| due.min(config.poll_interval)))
}

/// Sends one claimed delivery and settles the attempt.
async fn deliver(
    pool: &Pool,
    sender: &Sender,
    config: &NotifierConfig,
    metrics: &Metrics,
    claim: uuid::Uuid,
    out: Outgoing,
) {
    let error = sender.send(&out).await.err();
    let retry_in = notice::backoff(
        u32::try_from(out.attempts).unwrap_or(0),
        config.retry_first,
        config.retry_max,
    );
    let settled = db::alerts::settle(
        pool,
        out.delivery_id,
        claim,
        error.as_deref(),
        retry_in,
        config.retry_for,
    )
    .await;
    let (kind, id, channel) = (out.kind.as_str(), out.delivery_id, out.channel_id);
    match settled {
        Ok(Some(state)) => {
            let outcome = match state {
                DeliveryState::Delivered => "delivered",
                DeliveryState::Pending => "retry",
                DeliveryState::Failed => "failed",
            };
            metrics.notification(kind, outcome);
            match (state, &error) {
                (DeliveryState::Delivered, _) => {
                    log::info!("delivery {id} to {kind} channel {channel}: delivered")
                }
                (state, error) => log::warn!(
                    "delivery {id} to {kind} channel {channel}, attempt {}: {} ({})",
                    out.attempts,
                    error.as_deref().unwrap_or("failed"),
                    match state {
                        DeliveryState::Failed => "failed for good".to_owned(),
                        _ => format!("retrying in {retry_in:?}"),
                    }
                ),
            }
        }
        Ok(None) => log::info!(
            "delivery {id}: its claim ran out during the attempt, and another notifier has it"
        ),
        Err(e) => log::warn!(
            "delivery {id}: the attempt's outcome could not be recorded ({}); it is retried when its claim runs out",
            e.report()
        ),
    }
}

impl Sender {
    fn new(config: &NotifierConfig) -> Result<Sender> {
        let roots = rustls::RootCertStore {
            roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
        };
        let tls = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .map_err(|e| Error::internal_from("TLS configuration", e))?
        .with_root_certificates(roots)
        .with_no_client_auth();
        let http = reqwest::Client::builder()
            .use_preconfigured_tls(tls)
            .redirect(reqwest::redirect::Policy::none())
            .timeout(SEND_TIMEOUT)
            .connect_timeout(SEND_TIMEOUT)
            .no_proxy()
            .user_agent(concat!("Mesher/", env!("CARGO_PKG_VERSION")))
            .dns_resolver(Arc::new(GuardedResolver {
                allow_private: config.allow_private_webhooks,
            }))
            .build()
            .map_err(|e| Error::internal_from("HTTP client", e))?;
        let smtp = match (&config.smtp_url, &config.email_from) {
            (Some(url), Some(from)) => Some((
                smtp_transport(url)?,
                from.parse().map_err(|_| {
                    Error::invalid(
                        "MESHER_EMAIL_FROM",
                        "must be an address, or a name and <address>",
                    )
                })?,
            )),
            _ => None,
        };
        Ok(Sender {
            http,
            smtp,
            allow_private: config.allow_private_webhooks,
        })
    }

    /// Sends `out`; the error, for people, when it did not go through.
    async fn send(&self, out: &Outgoing) -> Result<(), String> {
        match out.kind {
            ChannelKind::Email => self.email(out).await,
            kind => self.post(kind, out).await,
        }
    }

    async fn post(&self, kind: ChannelKind, out: &Outgoing) -> Result<(), String> {
        let url = out
            .url
            .as_deref()
            .ok_or("the channel has no URL")
            .and_then(|u| WebhookUrl::parse(u).map_err(|_| "the channel's URL is not valid"))?;
        if let Some(url::Host::Ipv4(_) | url::Host::Ipv6(_)) = url.url().host() {
            let ip: Option<IpAddr> = match url.url().host() {
                Some(url::Host::Ipv4(v4)) => Some(v4.into()),
                Some(url::Host::Ipv6(v6)) => Some(v6.into()),
                _ => None,
            };
            if let Some(ip) = ip.filter(|ip| !self.allow_private && !is_public_address(*ip)) {
                return Err(format!(
                    "refused: {ip} is not a public address (MESHER_WEBHOOK_ALLOW_PRIVATE)"
                ));
            }
        }
        let body = match kind {
            ChannelKind::Slack => notice::slack_body(&out.notice),
            ChannelKind::Discord => notice::discord_body(&out.notice),
            _ => notice::webhook_body(&out.notice),
        };
        let mut request = self
            .http
            .post(url.url().clone())
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .header("X-Mesher-Delivery", out.delivery_id.to_string());
        if let (ChannelKind::Webhook, Some(secret)) = (kind, &out.secret) {
            request = request.header(
                "X-Mesher-Signature",
                notice::signature(secret.expose(), &body),
            );
        }
        let mut response = request
            .body(body)
            .send()
            .await
            .map_err(|e| describe(&e.without_url()))?;
        let status = response.status();
        if status.is_success() {
            return Ok(());
        }
        let mut answer = Vec::new();
        while answer.len() < MAX_RESPONSE_BYTES {
            match response.chunk().await {
                Ok(Some(chunk)) => answer.extend_from_slice(&chunk),
                _ => break,
            }
        }
        answer.truncate(MAX_RESPONSE_BYTES);
        let text: String = String::from_utf8_lossy(&answer)
            .chars()
            .filter(|c| !c.is_control())
            .take(ERROR_SNIPPET_CHARS)
            .collect();
        Err(if status.is_redirection() {
            format!("HTTP {status}: redirects are not followed")
        } else {
            format!("HTTP {status}: {text}").trim_end().to_owned()
        })
    }

    async fn email(&self, out: &Outgoing) -> Result<(), String> {
        let Some((transport, from)) = &self.smtp else {
            return Err("SMTP is not configured (MESHER_SMTP_URL)".into());
        };
        let mut message = Email::builder()
            .from(from.clone())
            .subject(notice::email_subject(&out.notice))
            .message_id(Some(format!("<{}@mesher>", out.delivery_id)));
        let mut recipients = 0;
        for address in &out.recipients {
            if let Ok(to) = address.parse::<Mailbox>() {
                message = message.to(to);
                recipients += 1;
            }
        }
        if recipients == 0 {
            return Err("the channel has no recipients".into());
        }
        let (text, html) = notice::email_parts(&out.notice);
        let message = message
            .multipart(MultiPart::alternative_plain_html(text, html))
            .map_err(|e| format!("cannot build the message: {e}"))?;
        transport
            .send(message)
            .await
            .map(|_| ())
            .map_err(|e| describe(&e))
    }
}

/// An error and its causes on one line (reqwest's and lettre's errors
/// keep the detail in their sources).
fn describe(e: &(dyn std::error::Error + 'static)) -> String {
    crate::error::Report(e).to_string()
}

/// lettre's transport for `url`: `smtps://` is TLS from the start;
/// `smtp://...?tls=starttls` (lettre's `tls=required`) upgrades, and
/// `tls=opportunistic` upgrades when offered.
fn smtp_transport(url: &str) -> Result<AsyncSmtpTransport<Tokio1Executor>> {
    let url = url.replace("tls=starttls", "tls=required");
    Ok(AsyncSmtpTransport::<Tokio1Executor>::from_url(&url)
        .map_err(|_| {
            Error::invalid(
                "MESHER_SMTP_URL",
                "must be smtp://[user:pass@]host[:port][?tls=starttls|opportunistic] or smtps://...",
            )
        })?
        .timeout(Some(SEND_TIMEOUT))
        .build())
}

/// Resolves hosts for the webhooks' client, refusing any that resolves to
/// an address that is not public (unless allowed): checked at every
/// connection, so a name that resolves differently later is caught too.
struct GuardedResolver {
    allow_private: bool,
}

impl reqwest::dns::Resolve for GuardedResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let allow_private = self.allow_private;
        let host = name.as_str().to_owned();
        Box::pin(async move {
            let addrs = resolve(&host, allow_private)
                .await
                .map_err(|e| e.to_string())?;
            Ok(Box::new(addrs.into_iter()) as reqwest::dns::Addrs)
        })
    }
}

/// The addresses `host` resolves to, all of them public unless
/// `allow_private`.
async fn resolve(host: &str, allow_private: bool) -> Result<Vec<SocketAddr>, String> {
    let addrs: Vec<SocketAddr> = tokio::net::lookup_host((host, 0))
        .await
        .map_err(|e| format!("{host} does not resolve: {e}"))?
        .collect();
    if addrs.is_empty() {
        return Err(format!("{host} does not resolve"));
    }
    if !allow_private && let Some(addr) = addrs.iter().find(|a| !is_public_address(a.ip())) {
        return Err(format!(
            "refused: {host} resolves to {}, not a public address (MESHER_WEBHOOK_ALLOW_PRIVATE)",
            addr.ip()
        ));
    }
    Ok(addrs)
}

/// Whether a webhook channel may be created with `url`: its host must
/// resolve, and only to public addresses unless `allow_private`.
pub async fn check_webhook_target(url: &WebhookUrl, allow_private: bool) -> Result<()> {
    let host = match url.url().host() {
        Some(url::Host::Domain(d)) => d.to_owned(),
        Some(url::Host::Ipv4(v4)) => v4.to_string(),
        Some(url::Host::Ipv6(v6)) => v6.to_string(),
        None => return Err(Error::invalid("url", "must name a host")),
    };
    match resolve(&host, allow_private).await {
        Ok(_) => Ok(()),
        Err(e) if e.starts_with("refused") => Err(Error::invalid(
            "url",
            "must not point at a loopback, private, link-local or multicast address (unless MESHER_WEBHOOK_ALLOW_PRIVATE=true)",
        )),
        Err(_) => Err(Error::invalid("url", "names a host that does not resolve")),
    }
}
