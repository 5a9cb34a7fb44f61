//! What Mesher counts, in the Prometheus text format served at `/metrics`.
//!
//! One [`Metrics`] is made by the wiring and handed to whoever counts. The
//! event counters are outcomes, as in Relay: every event that enters Mesher
//! ends in exactly one of them, or still waits somewhere that a gauge
//! shows, so the books always balance:
//!
//! ```text
//! received = refused + accepted
//! accepted = stored + duplicate + dropped + buffered + in_flight
//!            + spooled - replayed
//! ```
//!
//! - `received`: events that reached the intake (read from a request, or
//!   handed to `Store`); a request refused before its events could be read
//!   counts as one.
//! - `refused{reason}`: never accepted: the client got an error (or, for
//!   `Store`, the event was turned away before any buffer took it).
//! - `accepted`: taken by a writer's buffer (answered 200 over HTTP).
//! - `stored`: rows inserted into `events` — exactly the rows, so that
//!   `stored = count(*) from events` on a database Mesher alone fills.
//! - `duplicate`: skipped because the project already stored that event id
//!   (an SDK's retry, a replayed batch that had committed).
//! - `dropped{reason}`: accepted, then given up (a full buffer under
//!   `Store`'s drop-oldest, retries exhausted, PostgreSQL refusing an
//!   event's data, a corrupt spool row...), each logged where it happens.
//! - `buffered`, `in_flight` (gauges): waiting in a writer's buffer, or in
//!   a batch being written or spilled.
//! - `spooled`, `replayed{from}`: put in the local spool, and taken out
//!   of it again (`from="spool"`); or, after a crash, read back from the
//!   acknowledgement log of the process that died (`from="ack_log"`,
//!   events that process accepted but had not settled). Each replayed
//!   event then lands in `stored`, `duplicate` or `dropped`.
//!
//! Counting happens where the fact is known: the HTTP layer counts what it
//! receives and refuses, writers what they accept and drop, the statement's
//! caller what PostgreSQL inserted or skipped (even when the writer that
//! asked is gone), the spool what it holds.

use prometheus_client::encoding::{EncodeLabelSet, text};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use std::sync::Arc;
use std::time::Duration;

/// A label with one `reason`: why an event was refused or dropped.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct Reason {
    pub reason: &'static str,
}

/// Where replayed events came from: `spool` or `ack_log`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct Source {
    pub from: &'static str,
}

/// An envelope item type Mesher accepts without storing (a bounded set:
/// unknown types share one label).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ItemTypeName {
    pub item_type: &'static str,
}

/// A project, by id: the usage gauges' label.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ProjectLabel {
    pub project: String,
}

/// An HTTP request's route (the pattern, never the raw path, so the label
/// set stays bounded) and status.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RouteStatus {
    pub route: String,
    pub status: u16,
}

/// Why an alert fired: its condition (`new_issue`, `regression`, ...).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct Condition {
    pub condition: &'static str,
}

/// A delivery attempt's channel kind and outcome (`delivered`, `retry`,
/// `failed`).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ChannelOutcome {
    pub channel: &'static str,
    pub outcome: &'static str,
}

/// Every counter Mesher keeps; cheap to clone (shared inside).
#[derive(Clone)]
pub struct Metrics(Arc<Inner>);

struct Inner {
    registry: Registry,
    received: Counter,
    accepted: Counter,
    refused: Family<Reason, Counter>,
    stored: Counter,
    duplicate: Counter,
    dropped: Family<Reason, Counter>,
    buffered: Gauge,
    in_flight: Gauge,
    ignored_items: Family<ItemTypeName, Counter>,
    batches: Counter,
    batch_seconds: Histogram,
    http_requests: Family<RouteStatus, Counter>,
    writers: Gauge,
    spooled: Counter,
    replayed: Family<Source, Counter>,
    spool_events: Gauge,
    spool_bytes: Gauge,
    alerts_fired: Family<Condition, Counter>,
    notifications: Family<ChannelOutcome, Counter>,
    outbox_pending: Gauge,
    outbox_oldest_seconds: Gauge,
    ack_seconds: Histogram,
    ack_log_bytes: Gauge,
    partitions_dropped: Counter,
    expired_events: Counter,
    expired_issues: Counter,
    expired_sessions: Counter,
    project_events: Family<ProjectLabel, Gauge>,
    project_bytes: Family<ProjectLabel, Gauge>,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("mesher");
        let inner = Inner {
            received: Counter::default(),
            accepted: Counter::default(),
            refused: Family::default(),
            stored: Counter::default(),
            duplicate: Counter::default(),
            dropped: Family::default(),
            buffered: Gauge::default(),
            in_flight: Gauge::default(),
            ignored_items: Family::default(),
            batches: Counter::default(),
            // 1 ms to about 16 s.
            batch_seconds: Histogram::new(exponential_buckets(0.001, 2.0, 15)),
            http_requests: Family::default(),
            writers: Gauge::default(),
            spooled: Counter::default(),
            replayed: Family::default(),
            spool_events: Gauge::default(),
            spool_bytes: Gauge::default(),
            alerts_fired: Family::default(),
            notifications: Family::default(),
            outbox_pending: Gauge::default(),
            outbox_oldest_seconds: Gauge::default(),
            // 100 µs to about 3 s.
            ack_seconds: Histogram::new(exponential_buckets(0.0001, 2.0, 16)),
            ack_log_bytes: Gauge::default(),
            partitions_dropped: Counter::default(),
            expired_events: Counter::default(),
            expired_issues: Counter::default(),
            expired_sessions: Counter::default(),
            project_events: Family::default(),
            project_bytes: Family::default(),
            registry: Registry::default(),
        };
        let counters: [(&str, &str, &Counter); 5] = [
            (
                "events_received",
                "Events that reached the intake",
                &inner.received,
            ),
            (
                "events_accepted",
                "Events a writer took (answered 200 over HTTP)",
                &inner.accepted,
            ),
            (
                "events_stored",
                "Events inserted into PostgreSQL: the rows",
                &inner.stored,
            ),
            (
                "events_duplicate",
                "Events skipped as already stored (SDK retries, replays)",
                &inner.duplicate,
            ),
            (
                "events_spooled",
                "Events written to the local spool while PostgreSQL could not take them",
                &inner.spooled,
            ),
        ];
        for (name, help, counter) in counters {
            registry.register(name, help, counter.clone());
        }
        registry.register(
            "events_refused",
            "Events never accepted, by reason",
            inner.refused.clone(),
        );
        registry.register(
            "events_replayed",
            "Events taken out of the spool, or out of a crashed run's acknowledgement log, to be stored",
            inner.replayed.clone(),
        );
        registry.register(
            "events_dropped",
            "Accepted events given up, by reason",
            inner.dropped.clone(),
        );
        let gauges: [(&str, &str, &Gauge); 8] = [
            (
                "events_buffered",
                "Events waiting in writers' buffers",
                &inner.buffered,
            ),
            (
                "events_in_flight",
                "Events in batches being written or spilled",
                &inner.in_flight,
            ),
            ("writers_running", "Storage writers running", &inner.writers),
            (
                "spool_events",
                "Events waiting in the spool",
                &inner.spool_events,
            ),
            (
                "spool_bytes",
                "Bytes the spooled batches take",
                &inner.spool_bytes,
            ),
            (
                "outbox_pending",
                "Alert deliveries waiting to be sent or retried",
                &inner.outbox_pending,
            ),
            (
                "outbox_oldest_seconds",
                "Age of the oldest alert delivery still pending",
                &inner.outbox_oldest_seconds,
            ),
            (
                "ack_log_bytes",
                "Bytes the acknowledgement log's segments take on disk",
                &inner.ack_log_bytes,
            ),
        ];
        for (name, help, gauge) in gauges {
            registry.register(name, help, gauge.clone());
        }
        registry.register(
            "envelope_items_ignored",
            "Envelope items accepted but not stored, by type",
            inner.ignored_items.clone(),
        );
        let housekeeping: [(&str, &str, &Counter); 4] = [
            (
                "retention_partitions_dropped",
                "Daily partitions dropped past the retention (events and their ids)",
                &inner.partitions_dropped,
            ),
            (
                "retention_events_deleted",
                "Events deleted past their project's retention",
                &inner.expired_events,
            ),
            (
                "retention_issues_deleted",
                "Issues deleted whose events were all past the retention",
                &inner.expired_issues,
            ),
            (
                "sessions_expired_deleted",
                "Expired sessions swept",
                &inner.expired_sessions,
            ),
        ];
        for (name, help, counter) in housekeeping {
            registry.register(name, help, counter.clone());
        }
        registry.register(
            "project_events_stored",
            "Events a project has stored, as of the last housekeeping check",
            inner.project_events.clone(),
        );
        registry.register(
            "project_bytes_stored",
            "Approximate bytes a project's events take, as of the last housekeeping check",
            inner.project_bytes.clone(),
        );
        registry.register("batches", "Event batches written", inner.batches.clone());
        registry.register(
            "batch_duration_seconds",
            "Time to write one event batch",
            inner.batch_seconds.clone(),
        );
        registry.register(
            "ack_duration_seconds",
            "Time a request's events waited to be on disk before the answer (MESHER_ACK=durable)",
            inner.ack_seconds.clone(),
        );
        registry.register(
            "http_requests",
            "HTTP requests by route and status",
            inner.http_requests.clone(),
        );
        registry.register(
            "alerts_fired",
            "Alerts fired, by condition",
            inner.alerts_fired.clone(),
        );
        registry.register(
            "notifications",
            "Notification delivery attempts, by channel kind and outcome",
            inner.notifications.clone(),
        );
        Metrics(Arc::new(Inner { registry, ..inner }))
    }
}

impl Metrics {
    /// `n` events refused before any buffer took them (received, then
    /// refused: both counted here, so the two never disagree).
    pub fn events_refused(&self, reason: &'static str, n: u64) {
        self.0.received.inc_by(n);
        self.0.refused.get_or_create(&Reason { reason }).inc_by(n);
    }

    /// `n` events taken into a writer's buffer (received, then accepted).
    pub fn events_accepted(&self, n: u64) {
        self.0.received.inc_by(n);
        self.0.accepted.inc_by(n);
        self.0.buffered.inc_by(n as i64);
    }

    /// `n` buffered events left their buffer for a batch (written or
    /// spilled).
    pub fn events_batched(&self, n: u64) {
        self.0.buffered.dec_by(n as i64);
        self.0.in_flight.inc_by(n as i64);
    }

    /// What became of a batch of `stored + duplicate + refused` events that
    /// was in flight: inserted, skipped, or refused by PostgreSQL for its
    /// data (dropped).
    pub fn batch_landed(&self, stored: u64, duplicate: u64, refused: u64) {
        self.0
            .in_flight
            .dec_by((stored + duplicate + refused) as i64);
        self.events_inserted(stored, duplicate, refused);
    }

    /// Rows inserted and skipped, and events refused for their data, by a
    /// statement whose events were not in flight (a replay).
    pub fn events_inserted(&self, stored: u64, duplicate: u64, refused: u64) {
        self.0.stored.inc_by(stored);
        self.0.duplicate.inc_by(duplicate);
        if refused > 0 {
            self.0
                .dropped
                .get_or_create(&Reason {
                    reason: "refused_by_database",
                })
                .inc_by(refused);
        }
    }

    /// `n` events in flight reached the spool.
    pub fn in_flight_spooled(&self, n: u64) {
        self.0.in_flight.dec_by(n as i64);
        self.0.spooled.inc_by(n);
    }

    /// `n` events in flight given up.
    pub fn in_flight_dropped(&self, reason: &'static str, n: u64) {
        self.0.in_flight.dec_by(n as i64);
        self.events_dropped(reason, n);
    }

    /// `n` buffered events given up (pushed out of a full buffer).
    pub fn buffered_dropped(&self, reason: &'static str, n: u64) {
        self.0.buffered.dec_by(n as i64);
        self.events_dropped(reason, n);
    }

    /// `n` events given up that no gauge held (a spooled batch that cannot
    /// be replayed: it left `spooled` through `replayed`).
    pub fn events_dropped(&self, reason: &'static str, n: u64) {
        self.0.dropped.get_or_create(&Reason { reason }).inc_by(n);
    }

    /// `n` events taken out of the spool to be written (or given up).
    pub fn events_replayed(&self, n: u64) {
        self.0
            .replayed
            .get_or_create(&Source { from: "spool" })
            .inc_by(n);
    }

    /// `n` events read back from a crashed run's acknowledgement log, now
    /// in flight again (see [`crate::services::AckLog`]).
    pub fn events_recovered(&self, n: u64) {
        self.0
            .replayed
            .get_or_create(&Source { from: "ack_log" })
            .inc_by(n);
        self.0.in_flight.inc_by(n as i64);
    }

    /// A request's events waited `took` to be on disk.
    pub fn ack_waited(&self, took: Duration) {
        self.0.ack_seconds.observe(took.as_secs_f64());
    }

    /// What the acknowledgement log's segments take now.
    pub fn ack_log_bytes(&self, bytes: u64) {
        self.0.ack_log_bytes.set(bytes as i64);
    }

    pub fn item_ignored(&self, item_type: &'static str) {
        self.0
            .ignored_items
            .get_or_create(&ItemTypeName { item_type })
            .inc();
    }

    pub fn batch_written(&self, took: Duration) {
        self.0.batches.inc();
        self.0.batch_seconds.observe(took.as_secs_f64());
    }

    pub fn http_request(&self, route: &str, status: u16) {
        let labels = RouteStatus {
            route: route.to_owned(),
            status,
        };
        self.0.http_requests.get_or_create(&labels).inc();
    }

    pub fn writer_started(&self) {
        self.0.writers.inc();
    }

    pub fn writer_stopped(&self) {
        self.0.writers.dec();
    }

    /// What the spool holds now.
    pub fn spool_usage(&self, events: u64, bytes: u64) {
        self.0.spool_events.set(events as i64);
        self.0.spool_bytes.set(bytes as i64);
    }

    /// Alerts a stored batch fired, by condition.
    pub fn alerts_fired(&self, fired: &crate::db::alerts::Fired) {
        for (&condition, &n) in fired.iter() {
            self.0
                .alerts_fired
                .get_or_create(&Condition { condition })
                .inc_by(n);
        }
    }

    /// One delivery attempt to a channel of `channel` kind ended in
    /// `outcome`.
    pub fn notification(&self, channel: &'static str, outcome: &'static str) {
        self.0
            .notifications
            .get_or_create(&ChannelOutcome { channel, outcome })
            .inc();
    }

    /// The outbox now: deliveries pending, and how old the oldest is.
    pub fn outbox(&self, pending: i64, oldest: Duration) {
        self.0.outbox_pending.set(pending);
        self.0
            .outbox_oldest_seconds
            .set(i64::try_from(oldest.as_secs()).unwrap_or(i64::MAX));
    }

    /// What a retention check removed.
    pub fn retention(&self, partitions: u64, events: u64, issues: u64, sessions: u64) {
        self.0.partitions_dropped.inc_by(partitions);
        self.0.expired_events.inc_by(events);
        self.0.expired_issues.inc_by(issues);
        self.0.expired_sessions.inc_by(sessions);
    }

    /// A project's events stored and their approximate bytes.
    pub fn project_usage(&self, project: uuid::Uuid, events: i64, bytes: i64) {
        let label = ProjectLabel {
            project: project.to_string(),
        };
        self.0.project_events.get_or_create(&label).set(events);
        self.0.project_bytes.get_or_create(&label).set(bytes);
    }

    /// Everything counted so far, in the Prometheus text format.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = text::encode(&mut out, &self.0.registry);
        out
    }
}
