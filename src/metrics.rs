//! What Mesher counts, in the Prometheus text format served at `/metrics`.
//!
//! One [`Metrics`] is made by the wiring and handed to whoever counts: the
//! HTTP layer (requests, events received, accepted and refused, ignored
//! envelope items) and the storage writers (stored, dropped, batches and
//! their latency, writers running), and the spool (events spooled and
//! replayed, what it holds). Every event answered 200 ends up in `stored`
//! or in `dropped` with its reason, or waits in a buffer or the spool;
//! nothing leaves silently.

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

/// An envelope item type Mesher accepts without storing (a bounded set:
/// unknown types share one label).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ItemTypeName {
    pub item_type: &'static str,
}

/// An HTTP request's route (the pattern, never the raw path, so the label
/// set stays bounded) and status.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RouteStatus {
    pub route: String,
    pub status: u16,
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
    dropped: Family<Reason, Counter>,
    ignored_items: Family<ItemTypeName, Counter>,
    batches: Counter,
    batch_seconds: Histogram,
    http_requests: Family<RouteStatus, Counter>,
    writers: Gauge,
    spooled: Counter,
    replayed: Counter,
    spool_events: Gauge,
    spool_bytes: Gauge,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("mesher");
        let inner = Inner {
            received: Counter::default(),
            accepted: Counter::default(),
            refused: Family::default(),
            stored: Counter::default(),
            dropped: Family::default(),
            ignored_items: Family::default(),
            batches: Counter::default(),
            // 1 ms to about 16 s.
            batch_seconds: Histogram::new(exponential_buckets(0.001, 2.0, 15)),
            http_requests: Family::default(),
            writers: Gauge::default(),
            spooled: Counter::default(),
            replayed: Counter::default(),
            spool_events: Gauge::default(),
            spool_bytes: Gauge::default(),
            registry: Registry::default(),
        };
        registry.register(
            "events_received",
            "Events read from requests",
            inner.received.clone(),
        );
        registry.register(
            "events_accepted",
            "Events answered 200 and handed to a writer",
            inner.accepted.clone(),
        );
        registry.register(
            "events_refused",
            "Events answered with an error, by reason",
            inner.refused.clone(),
        );
        registry.register(
            "events_stored",
            "Events committed to PostgreSQL",
            inner.stored.clone(),
        );
        registry.register(
            "events_dropped",
            "Accepted events given up, by reason",
            inner.dropped.clone(),
        );
        registry.register(
            "envelope_items_ignored",
            "Envelope items accepted but not stored, by type",
            inner.ignored_items.clone(),
        );
        registry.register("batches", "Event batches written", inner.batches.clone());
        registry.register(
            "batch_duration_seconds",
            "Time to write one event batch",
            inner.batch_seconds.clone(),
        );
        registry.register(
            "http_requests",
            "HTTP requests by route and status",
            inner.http_requests.clone(),
        );
        registry.register(
            "writers_running",
            "Storage writers running",
            inner.writers.clone(),
        );
        registry.register(
            "events_spooled",
            "Events written to the local spool while PostgreSQL could not take them",
            inner.spooled.clone(),
        );
        registry.register(
            "events_replayed",
            "Spooled events since committed to PostgreSQL",
            inner.replayed.clone(),
        );
        registry.register(
            "spool_events",
            "Events waiting in the spool",
            inner.spool_events.clone(),
        );
        registry.register(
            "spool_bytes",
            "Bytes the spooled batches take",
            inner.spool_bytes.clone(),
        );
        Metrics(Arc::new(Inner { registry, ..inner }))
    }
}

impl Metrics {
    pub fn events_received(&self, n: u64) {
        self.0.received.inc_by(n);
    }

    pub fn events_accepted(&self, n: u64) {
        self.0.accepted.inc_by(n);
    }

    pub fn event_refused(&self, reason: &'static str) {
        self.0.refused.get_or_create(&Reason { reason }).inc();
    }

    pub fn events_stored(&self, n: u64) {
        self.0.stored.inc_by(n);
    }

    pub fn events_dropped(&self, reason: &'static str, n: u64) {
        self.0.dropped.get_or_create(&Reason { reason }).inc_by(n);
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

    pub fn events_spooled(&self, n: u64) {
        self.0.spooled.inc_by(n);
    }

    pub fn events_replayed(&self, n: u64) {
        self.0.replayed.inc_by(n);
    }

    /// What the spool holds now.
    pub fn spool_usage(&self, events: u64, bytes: u64) {
        self.0.spool_events.set(events as i64);
        self.0.spool_bytes.set(bytes as i64);
    }

    /// Everything counted so far, in the Prometheus text format.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = text::encode(&mut out, &self.0.registry);
        out
    }
}
