//! Reading `/metrics` as a client would: the text parsed by a real
//! OpenMetrics parser (not `contains("…_total 1")`, which also matches 10
//! to 19), and the outcome books checked against each other and against
//! the rows.

use super::TestDb;
use openmetrics_parser::openmetrics::parse_openmetrics;
use openmetrics_parser::{MetricsExposition, OpenMetricsType, OpenMetricsValue};

/// One scrape of Mesher's metrics.
#[derive(Debug)]
pub struct Metrics(MetricsExposition<OpenMetricsType, OpenMetricsValue>);

impl Metrics {
    /// Parses the text `/metrics` serves (OpenMetrics, Prometheus' text
    /// format's successor, as the prometheus-client crate writes it).
    pub fn parse(text: &str) -> Metrics {
        Metrics(parse_openmetrics(text).expect("the metrics parse as OpenMetrics text"))
    }

    /// The metrics of a running Mesher, as its `/metrics` would serve them.
    pub fn of(metrics: &mesher::metrics::Metrics) -> Metrics {
        Self::parse(&metrics.encode())
    }

    /// The sum of the samples of the family `name` (`mesher_...`, without
    /// a counter's `_total`) whose labels include every pair of `labels`;
    /// 0 when there is none.
    pub fn value(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        let Some(family) = self.0.families.get(name) else {
            return 0.0;
        };
        family
            .iter_samples()
            .filter(|sample| {
                let set = sample.get_labelset().expect("labels");
                labels
                    .iter()
                    .all(|(k, v)| set.get_label_value(k) == Some(*v))
            })
            .map(|sample| match &sample.value {
                OpenMetricsValue::Counter(c) => c.value.as_f64(),
                OpenMetricsValue::Gauge(n) | OpenMetricsValue::Unknown(n) => n.as_f64(),
                other => panic!("{name} is not a single number: {other:?}"),
            })
            .sum()
    }

    /// The counter `mesher_<name>`, all labels summed, as a whole number.
    pub fn counter(&self, name: &str) -> u64 {
        self.value(&format!("mesher_{name}"), &[]) as u64
    }

    /// The counter `mesher_<name>` with `label` = `value`.
    pub fn counter_with(&self, name: &str, label: &str, value: &str) -> u64 {
        self.value(&format!("mesher_{name}"), &[(label, value)]) as u64
    }

    /// The gauge `mesher_<name>`.
    pub fn gauge(&self, name: &str) -> i64 {
        self.value(&format!("mesher_{name}"), &[]) as i64
    }

    /// Every event in exactly one place:
    /// `received = refused + accepted` and `accepted = stored + duplicate
    /// + dropped + buffered + in_flight + spooled - replayed`.
    #[track_caller]
    pub fn assert_balanced(&self) {
        let accepted = self.counter("events_accepted");
        assert_eq!(
            self.counter("events_received"),
            self.counter("events_refused") + accepted,
            "received = refused + accepted in {self:#?}"
        );
        let held = self.counter("events_stored")
            + self.counter("events_duplicate")
            + self.counter("events_dropped")
            + self.gauge("events_buffered") as u64
            + self.gauge("events_in_flight") as u64
            + self.counter("events_spooled");
        assert_eq!(
            accepted + self.counter("events_replayed"),
            held,
            "accepted = stored + duplicate + dropped + buffered + in flight + spooled - replayed in {self:#?}"
        );
    }

    /// The books balance, nothing waits any more, and the events counted
    /// as stored are exactly the rows of `events`, which are exactly the
    /// issues' counts.
    pub async fn assert_settled_and_equal_to_rows(&self, t: &TestDb) {
        self.assert_balanced();
        assert_eq!(self.gauge("events_buffered"), 0, "nothing buffered");
        assert_eq!(self.gauge("events_in_flight"), 0, "nothing in flight");
        let rows = t.count("SELECT count(*) FROM events").await;
        let counted = t
            .count("SELECT coalesce(sum(event_count), 0)::bigint FROM issues")
            .await;
        assert_eq!(self.counter("events_stored") as i64, rows, "stored = rows");
        assert_eq!(rows, counted, "rows = sum(issues.event_count)");
    }
}
