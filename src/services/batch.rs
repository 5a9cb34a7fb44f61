//! [`Batch`]: events in flight, which cannot leave the books unseen; and
//! the [`MemoryBudget`] every writer's events share.

use crate::domain::Event;
use crate::metrics::Metrics;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use uuid::Uuid;

/// The bytes of events that all writers together may hold, buffered or in
/// flight; cheap to clone (shared inside). A request whose events would go
/// past it is refused (429) rather than letting memory grow with the
/// number of busy projects.
#[derive(Clone, Debug)]
pub struct MemoryBudget {
    /// Bytes held now.
    used: Arc<AtomicUsize>,
    /// The most that may be held for requests that can be refused.
    limit: usize,
}

impl MemoryBudget {
    pub fn new(limit: usize) -> Self {
        MemoryBudget {
            used: Arc::default(),
            limit,
        }
    }

    /// Takes `bytes` if they fit (or nothing is held at all, so that no
    /// request is refused for ever); whether it did.
    pub fn try_take(&self, bytes: usize) -> bool {
        let mut used = self.used.load(Ordering::Relaxed);
        loop {
            if used != 0 && used + bytes > self.limit {
                return false;
            }
            match self.used.compare_exchange_weak(
                used,
                used + bytes,
                Ordering::Relaxed,
                Ordering::Relaxed,
            ) {
                Ok(_) => return true,
                Err(now) => used = now,
            }
        }
    }

    /// Takes `bytes` whatever is held (events that cannot be refused: the
    /// embedding API's drop-oldest path bounds them by count instead).
    pub fn take(&self, bytes: usize) {
        self.used.fetch_add(bytes, Ordering::Relaxed);
    }

    /// Gives `bytes` back.
    pub fn give(&self, bytes: usize) {
        self.used.fetch_sub(bytes, Ordering::Relaxed);
    }

    /// Bytes held now.
    pub fn used(&self) -> usize {
        self.used.load(Ordering::Relaxed)
    }
}

/// One project's events taken from a writer's buffer and not yet settled:
/// on their way to PostgreSQL or the spool, or waiting for a retry.
///
/// Whoever holds a batch settles it by saying what became of its events
/// ([`Batch::landed`], [`Batch::spooled`], [`Batch::dropped`]), which counts
/// them in the metrics' outcomes. A batch dropped unsettled — with a task
/// that panicked, an arbiter that stopped, a message to an actor that is
/// gone — counts its events as dropped (`lost`) and logs it, so that no
/// event leaves the books unseen, whatever path it took. (Relay's managed
/// envelopes do the same.)
pub struct Batch {
    /// Whose events; named in every log line.
    project_id: Uuid,
    /// Empty once settled.
    events: Vec<Event>,
    /// Their encoded size, for the bounds on combined statements.
    bytes: usize,
    /// Where the outcome is counted.
    metrics: Metrics,
    /// Given its bytes back once the batch is settled or gone.
    budget: MemoryBudget,
}

impl Batch {
    /// Takes `events` (of `project_id`) out of a buffer: from now on they
    /// count as in flight, and their bytes, already taken from `budget`
    /// when they were buffered, are given back when the batch is settled.
    pub fn take(
        project_id: Uuid,
        events: Vec<Event>,
        metrics: Metrics,
        budget: MemoryBudget,
    ) -> Batch {
        metrics.events_batched(events.len() as u64);
        let bytes = events.iter().map(Event::size).sum();
        Batch {
            project_id,
            events,
            bytes,
            metrics,
            budget,
        }
    }

    /// Events read back from a crashed run's acknowledgement log (see
    /// [`super::AckLog`]): in flight again from now on, counted as
    /// replayed from it; their bytes are taken from `budget` whatever it
    /// holds (the log bounds them), and given back when settled.
    pub fn recovered(
        project_id: Uuid,
        events: Vec<Event>,
        metrics: Metrics,
        budget: MemoryBudget,
    ) -> Batch {
        metrics.events_recovered(events.len() as u64);
        let bytes = events.iter().map(Event::size).sum();
        budget.take(bytes);
        Batch {
            project_id,
            events,
            bytes,
            metrics,
            budget,
        }
    }

    pub fn project_id(&self) -> Uuid {
        self.project_id
    }

    pub fn events(&self) -> &[Event] {
        &self.events
    }

    pub fn len(&self) -> usize {
        self.events.len()
    }

    pub fn is_empty(&self) -> bool {
        self.events.is_empty()
    }

    /// The events' encoded size, roughly what a statement carries.
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// PostgreSQL took the batch: `stored` rows inserted, `duplicate`
    /// events skipped as already stored, `refused` refused for their data.
    pub fn landed(mut self, stored: u64, duplicate: u64, refused: u64) {
        debug_assert_eq!(stored + duplicate + refused, self.events.len() as u64);
        self.metrics.batch_landed(stored, duplicate, refused);
        self.events.clear();
    }

    /// The spool holds the batch now.
    pub fn spooled(mut self) {
        self.metrics.in_flight_spooled(self.events.len() as u64);
        self.events.clear();
    }

    /// The batch is given up, for `reason`; the caller logs why.
    pub fn dropped(mut self, reason: &'static str) {
        self.metrics
            .in_flight_dropped(reason, self.events.len() as u64);
        self.events.clear();
    }
}

impl Drop for Batch {
    fn drop(&mut self) {
        self.budget.give(self.bytes);
        if self.events.is_empty() {
            return;
        }
        log::error!(
            "project {}: lost a batch of {} events in flight (a storage task or actor went away with it)",
            self.project_id,
            self.events.len()
        );
        self.metrics
            .in_flight_dropped("lost", self.events.len() as u64);
    }
}

impl std::fmt::Debug for Batch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Batch")
            .field("project_id", &self.project_id)
            .field("events", &self.events.len())
            .field("bytes", &self.bytes)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::EventPayload;

    fn events(project: Uuid, n: usize) -> Vec<Event> {
        (0..n)
            .map(|_| Event::from_payload(project, EventPayload::default()).unwrap())
            .collect()
    }

    /// The counters as `/metrics` shows them, read by an OpenMetrics
    /// parser: (in flight, stored, dropped as lost).
    fn books(metrics: &Metrics) -> (i64, u64, u64) {
        use openmetrics_parser::OpenMetricsValue;
        let parsed = openmetrics_parser::openmetrics::parse_openmetrics(&metrics.encode()).unwrap();
        let value = |family: &str, reason: Option<&str>| -> f64 {
            let Some(family) = parsed.families.get(family) else {
                return 0.0;
            };
            family
                .iter_samples()
                .filter(|s| {
                    reason.is_none_or(|r| {
                        s.get_labelset().unwrap().get_label_value("reason") == Some(r)
                    })
                })
                .map(|s| match &s.value {
                    OpenMetricsValue::Counter(c) => c.value.as_f64(),
                    OpenMetricsValue::Gauge(g) => g.as_f64(),
                    other => panic!("{other:?}"),
                })
                .sum()
        };
        (
            value("mesher_events_in_flight", None) as i64,
            value("mesher_events_stored", None) as u64,
            value("mesher_events_dropped", Some("lost")) as u64,
        )
    }

    #[test]
    fn a_batch_dropped_unsettled_counts_its_events_as_lost() {
        let metrics = Metrics::default();
        let project = Uuid::now_v7();
        metrics.events_accepted(3);
        let events = events(project, 3);
        let budget = MemoryBudget::new(1 << 20);
        budget.take(events.iter().map(Event::size).sum());
        let batch = Batch::take(project, events, metrics.clone(), budget.clone());
        assert_eq!(books(&metrics), (3, 0, 0));
        drop(batch);
        assert_eq!(books(&metrics), (0, 0, 3));
        assert_eq!(budget.used(), 0, "its bytes are given back");
    }

    #[test]
    fn the_budget_refuses_past_its_limit_unless_it_holds_nothing() {
        let budget = MemoryBudget::new(100);
        assert!(budget.try_take(150), "an empty budget takes any request");
        assert!(!budget.try_take(1));
        budget.give(150);
        assert!(budget.try_take(60));
        assert!(budget.try_take(40));
        assert!(!budget.try_take(1));
        budget.take(10);
        assert_eq!(budget.used(), 110, "drop-oldest's events are taken anyway");
    }

    #[test]
    fn a_settled_batch_counts_once() {
        let metrics = Metrics::default();
        let project = Uuid::now_v7();
        metrics.events_accepted(5);
        let events = events(project, 5);
        let budget = MemoryBudget::new(1 << 20);
        budget.take(events.iter().map(Event::size).sum());
        Batch::take(project, events, metrics.clone(), budget.clone()).landed(4, 1, 0);
        assert_eq!(books(&metrics), (0, 4, 0));
        assert_eq!(budget.used(), 0);
    }
}
