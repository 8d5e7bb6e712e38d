//! The Prometheus text exposition format, version 0.0.4: per family a
//! `# HELP` and a `# TYPE` line, then one line per series; histograms as
//! cumulative `_bucket{le="…"}` lines, `_sum` and `_count`.

use std::fmt::Write as _;
use std::sync::Arc;

use super::registry::{Family, Series};

/// The `Content-Type` of [`render`]'s output.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Renders `families`; a family without series is left out.
pub(crate) fn render(families: &[Arc<Family>]) -> String {
    let mut out = String::new();
    for f in families {
        let series = f.series();
        if series.is_empty() {
            continue;
        }
        let _ = writeln!(out, "# HELP {} {}", f.name, escape_help(&f.help));
        let _ = writeln!(out, "# TYPE {} {}", f.name, f.kind.type_name());
        for (values, s) in series {
            let labels = labels(&f.labels, &values);
            match s {
                Series::Counter(c) => line(&mut out, &f.name, "", &labels, None, c.get()),
                Series::Gauge(g) => line(&mut out, &f.name, "", &labels, None, g.get()),
                Series::Histogram(h) => {
                    let (buckets, sum) = h.snapshot();
                    let mut count = 0;
                    for (le, n) in buckets {
                        line(&mut out, &f.name, "_bucket", &labels, Some(le), n as f64);
                        count = n;
                    }
                    line(&mut out, &f.name, "_sum", &labels, None, sum);
                    line(&mut out, &f.name, "_count", &labels, None, count as f64);
                }
            }
        }
    }
    out
}

/// `name{a="x",b="y"}` label pairs without the braces.
fn labels(names: &[String], values: &[String]) -> String {
    let mut s = String::new();
    for (i, (n, v)) in names.iter().zip(values).enumerate() {
        if i > 0 {
            s.push(',');
        }
        let _ = write!(s, "{n}=\"{}\"", escape_label(v));
    }
    s
}

fn line(out: &mut String, name: &str, suffix: &str, labels: &str, le: Option<f64>, v: f64) {
    out.push_str(name);
    out.push_str(suffix);
    let le = le.map(|b| format!("le=\"{}\"", number(b)));
    match (labels.is_empty(), le) {
        (true, None) => {}
        (true, Some(le)) => {
            let _ = write!(out, "{{{le}}}");
        }
        (false, None) => {
            let _ = write!(out, "{{{labels}}}");
        }
        (false, Some(le)) => {
            let _ = write!(out, "{{{labels},{le}}}");
        }
    }
    let _ = writeln!(out, " {}", number(v));
}

/// Go's float syntax as Prometheus parses it: `+Inf`, `-Inf`, `NaN`, and
/// otherwise the shortest decimal that reads back the same value.
fn number(v: f64) -> String {
    if v.is_nan() {
        "NaN".to_owned()
    } else if v == f64::INFINITY {
        "+Inf".to_owned()
    } else if v == f64::NEG_INFINITY {
        "-Inf".to_owned()
    } else {
        format!("{v}")
    }
}

/// Label values escape backslash, double quote and line feed.
fn escape_label(v: &str) -> String {
    let mut s = String::with_capacity(v.len());
    for c in v.chars() {
        match c {
            '\\' => s.push_str("\\\\"),
            '"' => s.push_str("\\\""),
            '\n' => s.push_str("\\n"),
            c => s.push(c),
        }
    }
    s
}

/// Help text escapes backslash and line feed only.
fn escape_help(v: &str) -> String {
    v.replace('\\', "\\\\").replace('\n', "\\n")
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::super::Registry;

    #[test]
    fn counter_gauge_and_histogram_golden_text() {
        let r = Registry::new();
        r.counter("app_requests_total", "Requests served.")
            .inc_by(3.0);
        let g = r.gauge_vec("app_size_bytes", "Size of a file.", &["db", "mode"]);
        g.with(&["/b.db", "WAL"]).set(4096.0);
        g.with(&["/a.db", "WAL"]).set(0.5);
        let h = r.histogram_vec("app_latency_seconds", "Latency.", &["op"], &[0.25, 1.0]);
        let put = h.with(&["PUT"]);
        put.observe(0.125);
        put.observe(0.25);
        put.observe(0.5);
        put.observe(7.0);
        r.gauge_vec("app_unused", "No series: not shown.", &["x"]);
        let expected = "\
# HELP app_requests_total Requests served.
# TYPE app_requests_total counter
app_requests_total 3
# HELP app_size_bytes Size of a file.
# TYPE app_size_bytes gauge
app_size_bytes{db=\"/a.db\",mode=\"WAL\"} 0.5
app_size_bytes{db=\"/b.db\",mode=\"WAL\"} 4096
# HELP app_latency_seconds Latency.
# TYPE app_latency_seconds histogram
app_latency_seconds_bucket{op=\"PUT\",le=\"0.25\"} 2
app_latency_seconds_bucket{op=\"PUT\",le=\"1\"} 3
app_latency_seconds_bucket{op=\"PUT\",le=\"+Inf\"} 4
app_latency_seconds_sum{op=\"PUT\"} 7.875
app_latency_seconds_count{op=\"PUT\"} 4
";
        assert_eq!(r.render(), expected);
    }

    #[test]
    fn an_unlabelled_histogram_has_only_le() {
        let r = Registry::new();
        let h = r.histogram_vec("h", "x", &[], &[1.0]);
        h.with(&[]).observe(2.0);
        assert_eq!(
            r.render(),
            "# HELP h x\n# TYPE h histogram\nh_bucket{le=\"1\"} 0\nh_bucket{le=\"+Inf\"} 1\nh_sum 2\nh_count 1\n"
        );
    }

    #[test]
    fn label_values_and_help_are_escaped() {
        let r = Registry::new();
        let g = r.gauge_vec("g", "back\\slash\nnew line \"quoted\"", &["db"]);
        g.with(&["C:\\data\\\"x\"\nnext"]).set(f64::NAN);
        assert_eq!(
            r.render(),
            "# HELP g back\\\\slash\\nnew line \"quoted\"\n# TYPE g gauge\n\
             g{db=\"C:\\\\data\\\\\\\"x\\\"\\nnext\"} NaN\n"
        );
    }
}
