//! [`Batch`]: events in flight, which cannot leave the books unseen.

use crate::domain::Event;
use crate::metrics::Metrics;
use uuid::Uuid;

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
}

impl Batch {
    /// Takes `events` (of `project_id`) out of a buffer: from now on they
    /// count as in flight.
    pub fn take(project_id: Uuid, events: Vec<Event>, metrics: Metrics) -> Batch {
        metrics.events_batched(events.len() as u64);
        let bytes = events.iter().map(Event::size).sum();
        Batch {
            project_id,
            events,
            bytes,
            metrics,
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
        let batch = Batch::take(project, events(project, 3), metrics.clone());
        assert_eq!(books(&metrics), (3, 0, 0));
        drop(batch);
        assert_eq!(books(&metrics), (0, 0, 3));
    }

    #[test]
    fn a_settled_batch_counts_once() {
        let metrics = Metrics::default();
        let project = Uuid::now_v7();
        metrics.events_accepted(5);
        Batch::take(project, events(project, 5), metrics.clone()).landed(4, 1, 0);
        assert_eq!(books(&metrics), (0, 4, 0));
    }
}
