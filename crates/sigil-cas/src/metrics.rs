//! Counters exported at `/metrics` in the Prometheus text format.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::Mutex;

/// A counter's name and its labels.
type CounterKey = (String, Vec<(String, String)>);

/// A set of labelled counters. Names must be Prometheus metric names;
/// label values are escaped.
#[derive(Debug, Default)]
pub struct Metrics {
    counters: Mutex<BTreeMap<CounterKey, u64>>,
    help: Mutex<BTreeMap<String, String>>,
}

impl Metrics {
    /// Describes a metric (`# HELP`).
    pub fn describe(&self, name: &str, help: &str) {
        if let Ok(mut h) = self.help.lock() {
            h.insert(name.to_string(), help.to_string());
        }
    }

    /// Adds `n` to a counter.
    pub fn add(&self, name: &str, labels: &[(&str, &str)], n: u64) {
        let key = (
            name.to_string(),
            labels
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        );
        if let Ok(mut c) = self.counters.lock() {
            *c.entry(key).or_insert(0) += n;
        }
    }

    /// Adds 1 to a counter.
    pub fn inc(&self, name: &str, labels: &[(&str, &str)]) {
        self.add(name, labels, 1);
    }

    /// Current value of a counter (0 if never touched).
    pub fn get(&self, name: &str, labels: &[(&str, &str)]) -> u64 {
        let key = (
            name.to_string(),
            labels
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect::<Vec<_>>(),
        );
        self.counters
            .lock()
            .map(|c| c.get(&key).copied().unwrap_or(0))
            .unwrap_or(0)
    }

    /// Renders all counters, plus the gauges given, in the text format.
    pub fn render(&self, gauges: &[(&str, &str, f64)]) -> String {
        let mut out = String::new();
        let help = self.help.lock().map(|h| h.clone()).unwrap_or_default();
        let counters = self.counters.lock().map(|c| c.clone()).unwrap_or_default();
        let mut last = String::new();
        for ((name, labels), v) in &counters {
            if *name != last {
                if let Some(h) = help.get(name) {
                    let _ = writeln!(out, "# HELP {name} {h}");
                }
                let _ = writeln!(out, "# TYPE {name} counter");
                last = name.clone();
            }
            let _ = write!(out, "{name}");
            if !labels.is_empty() {
                let l: Vec<String> = labels
                    .iter()
                    .map(|(k, v)| format!("{k}=\"{}\"", escape(v)))
                    .collect();
                let _ = write!(out, "{{{}}}", l.join(","));
            }
            let _ = writeln!(out, " {v}");
        }
        for (name, h, v) in gauges {
            let _ = writeln!(out, "# HELP {name} {h}\n# TYPE {name} gauge\n{name} {v}");
        }
        out
    }
}

fn escape(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counters_with_escaped_labels() {
        let m = Metrics::default();
        m.describe("sigil_x_total", "X.");
        m.inc("sigil_x_total", &[("route", "a\"b")]);
        m.add("sigil_x_total", &[("route", "a\"b")], 2);
        m.inc("sigil_y_total", &[]);
        assert_eq!(m.get("sigil_x_total", &[("route", "a\"b")]), 3);
        let t = m.render(&[("sigil_g", "G.", 1.5)]);
        assert!(t.contains("# HELP sigil_x_total X.\n# TYPE sigil_x_total counter\n"));
        assert!(t.contains("sigil_x_total{route=\"a\\\"b\"} 3\n"), "{t}");
        assert!(t.contains("sigil_y_total 1\n"));
        assert!(t.contains("# TYPE sigil_g gauge\nsigil_g 1.5\n"));
    }
}
