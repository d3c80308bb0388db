//! The status page's HTML: one self-contained document (style inline, charts as inline SVG, no
//! script, nothing fetched from elsewhere) that reloads itself every [`REFRESH_SECONDS`].

use chrono::{DateTime, Utc};
use maud::{html, Markup, PreEscaped, DOCTYPE};

use super::gather::{Chart, Partition, Status, CHART_TABLE};
use crate::daily::history::StoredRun;
use crate::serve::overview::TableSummary;

pub(crate) const REFRESH_SECONDS: u32 = 10;

const STYLE: &str = "
body{font:14px/1.4 system-ui,sans-serif;margin:1.5em;color:#1d2330;background:#fafbfc}
h1{font-size:1.4em;margin:0}h2{font-size:1.1em;margin:1.6em 0 .5em}
header p{margin:.2em 0;color:#5b6472}
table{border-collapse:collapse;background:#fff;box-shadow:0 0 0 1px #dde1e6}
th,td{padding:.3em .8em;text-align:left;border-bottom:1px solid #eceff2;vertical-align:top}
td.n,th.n{text-align:right;font-variant-numeric:tabular-nums}
.pass,.succeeded{color:#17803d}.warn,.skipped{color:#9a6700}.fail,.failed,.error{color:#c62828}
.checks{margin:0;padding:0;list-style:none;max-width:36em}
.checks li{display:inline-block;margin:0 .3em .3em 0;padding:0 .4em;border-radius:3px;font-size:.9em}
li.pass{background:#e8f5ec}li.warn{background:#fff4d6}li.fail{background:#fde8e8}
.small{font-size:.9em}.nowrap{white-space:nowrap}.note{color:#5b6472}
.charts{display:flex;flex-wrap:wrap;gap:1em}
figure{margin:0;background:#fff;box-shadow:0 0 0 1px #dde1e6;padding:.5em}
figcaption{font-weight:600}svg text{font-size:11px;fill:#5b6472}
polyline{fill:none;stroke:#2962ff;stroke-width:2}circle{fill:#2962ff}
";

/// The page for `status` (or for the error that kept it from being read).
pub(crate) fn render(status: Result<&Status, &str>) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta http-equiv="refresh" content=(REFRESH_SECONDS);
                meta name="viewport" content="width=device-width, initial-scale=1";
                // No favicon request: a 404 would be the page's only failed load.
                link rel="icon" href="data:,";
                title { "lake status" }
                style { (PreEscaped(STYLE)) }
            }
            body {
                @match status {
                    Ok(s) => (body(s)),
                    Err(e) => {
                        h1 { "lake status" }
                        p.error #error { "The lake could not be read: " (e) }
                        p.note { "This page tries again every " (REFRESH_SECONDS) " s." }
                    }
                }
            }
        }
    }
}

fn body(s: &Status) -> Markup {
    html! {
        header {
            h1 { "lake status" }
            p { "As of " time #generated datetime=(s.generated_at.to_rfc3339()) { (when(s.generated_at)) }
                "; refreshes every " (REFRESH_SECONDS) " s." }
        }
        h2 { "Tables" }
        (tables(&s.tables, s.generated_at))
        h2 { "Ingest of " code { (s.source) } }
        (ingest(&s.partitions, s.lag_unknown.as_deref()))
        h2 { "Daily runs" }
        (runs(&s.runs))
        h2 { "Daily metrics (" code { (CHART_TABLE) } ")" }
        (chart(&s.chart))
    }
}

fn tables(tables: &[TableSummary], now: DateTime<Utc>) -> Markup {
    if tables.is_empty() {
        return html! { p.note { "No tables yet." } };
    }
    html! {
        table #tables {
            thead { tr { th { "Table" } th.n { "Version" } th.n { "Rows" } th.n { "Live files" }
                         th.n { "Size" } th { "Last commit" } } }
            tbody {
                @for t in tables {
                    tr data-table=(t.name) {
                        td { code { (t.name) } }
                        td.n.version { (t.version) }
                        td.n.rows { (grouped(t.rows)) }
                        td.n.files { (grouped(t.files)) }
                        td.n.bytes title=(format!("{} bytes", t.bytes)) { (size(t.bytes)) }
                        td { @match t.last_commit {
                            Some(at) => { (when(at)) " (" (ago(now, at)) ")" },
                            None => "—",
                        } }
                    }
                }
            }
        }
    }
}

fn ingest(partitions: &[Partition], lag_unknown: Option<&str>) -> Markup {
    if partitions.is_empty() {
        return html! { p.note { "Nothing ingested yet." } };
    }
    let total_lag: Option<i64> = partitions.iter().map(|p| p.lag).sum();
    html! {
        table #ingest {
            thead { tr { th.n { "Partition" } th.n { "Last offset in the lake" } th.n { "End offset in Kafka" }
                         th.n { "Lag (messages)" } th { "Newest event" } } }
            tbody {
                @for p in partitions {
                    tr data-partition=(p.partition) {
                        td.n { (p.partition) }
                        td.n.offset { (grouped(p.last_offset)) }
                        td.n { (optional(p.end_offset)) }
                        td.n.lag { (optional(p.lag)) }
                        td { @match p.newest_event { Some(t) => (when(t)), None => "—" } }
                    }
                }
            }
        }
        @if let Some(total) = total_lag {
            p #total-lag { "Total lag: " (grouped(total)) " messages." }
        }
        @if let Some(why) = lag_unknown {
            p.note #lag-unknown { "Lag unknown: " (why) "." }
        }
    }
}

fn runs(runs: &[StoredRun]) -> Markup {
    if runs.is_empty() {
        return html! { p.note { "No daily runs yet." } };
    }
    html! {
        table #runs {
            thead { tr { th { "Date" } th { "Status" } th { "Trigger" } th { "Started" }
                         th.n { "Took" } th { "Rows written" } th { "Checks" } } }
            tbody {
                @for r in runs {
                    tr data-run=(r.run_id) {
                        td.date.nowrap { (r.date) }
                        td.status.(r.status) { (r.status)
                            @if let Some(e) = &r.error { div.error { (e) } } }
                        td { (r.trigger) }
                        @let (started, took) = timing(r);
                        td.nowrap { (started) }
                        td.n { (took) }
                        td.small { @for (table, n) in &r.rows { div { code { (table) } ": " (grouped(*n)) } } }
                        td { ul.checks {
                            @for c in &r.checks {
                                li.(c.status) data-check=(c.check)
                                    title=[c.description.as_deref()] {
                                    (c.status) " " code { (c.check) }
                                    @if c.violation_count > 0 {
                                        " (" (c.severity) "): " span.violations { (grouped(c.violation_count)) }
                                        " violations"
                                    }
                                }
                            }
                        } }
                    }
                }
            }
        }
    }
}

/// Chart geometry in SVG user units.
const WIDTH: f64 = 300.0;
const HEIGHT: f64 = 120.0;
const LEFT: f64 = 52.0;
const BOTTOM: f64 = 18.0;

fn chart(c: &Chart) -> Markup {
    if let Some(why) = &c.why_empty {
        return html! { p.note #chart-empty { (why) "." } };
    }
    let n = c.dates.len();
    let x = |i: usize| match n {
        1 => LEFT + WIDTH / 2.0,
        _ => LEFT + WIDTH * i as f64 / (n - 1) as f64,
    };
    let (first, last) = (c.dates.first(), c.dates.last());
    html! {
        div.charts #charts {
            @for s in &c.series {
                @let top = s.values.iter().flatten().fold(0.0f64, |a, b| a.max(*b));
                @let scale = if top > 0.0 { HEIGHT / top } else { 0.0 };
                @let y = |v: f64| HEIGHT - v * scale + 4.0;
                @let points: Vec<String> = s.values.iter().enumerate()
                    .filter_map(|(i, v)| v.map(|v| format!("{:.1},{:.1}", x(i), y(v)))).collect();
                figure {
                    figcaption { (s.title) }
                    svg #{"chart-" (s.column)} width=(LEFT + WIDTH + 12.0) height=(HEIGHT + BOTTOM + 8.0)
                        role="img" aria-label=(format!("{} per date", s.title)) {
                        text x="0" y="12" { (number(top)) }
                        text x="0" y=(HEIGHT + 4.0) { "0" }
                        @if let (Some(first), Some(last)) = (first, last) {
                            text x=(LEFT) y=(HEIGHT + BOTTOM + 4.0) { (first) }
                            text x=(LEFT + WIDTH) y=(HEIGHT + BOTTOM + 4.0) text-anchor="end" { (last) }
                        }
                        polyline points=(points.join(" ")) {}
                        @for (i, v) in s.values.iter().enumerate() {
                            @if let Some(v) = v {
                                circle cx=(format!("{:.1}", x(i))) cy=(format!("{:.1}", y(*v))) r="3"
                                    data-date=(c.dates[i]) data-value=(v) {
                                    title { (c.dates[i]) ": " (number(*v)) }
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}

/// A run's start as shown, and how long it took (its times are stored as RFC 3339 text).
fn timing(r: &StoredRun) -> (String, String) {
    let parse = |t: &str| DateTime::parse_from_rfc3339(t).map(|t| t.with_timezone(&Utc));
    match (parse(&r.started_at), parse(&r.finished_at)) {
        (Ok(start), Ok(end)) => {
            let ms = (end - start).num_milliseconds().max(0);
            (when(start), format!("{:.1} s", ms as f64 / 1000.0))
        }
        (Ok(start), Err(_)) => (when(start), "—".into()),
        _ => (r.started_at.clone(), "—".into()),
    }
}

fn when(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%d %H:%M:%S UTC").to_string()
}

fn ago(now: DateTime<Utc>, then: DateTime<Utc>) -> String {
    let s = (now - then).num_seconds().max(0);
    match s {
        0..=119 => format!("{s} s ago"),
        120..=7199 => format!("{} min ago", s / 60),
        7200..=172_799 => format!("{} h ago", s / 3600),
        _ => format!("{} days ago", s / 86_400),
    }
}

/// `1234567` as `1,234,567`.
fn grouped(n: i64) -> String {
    let digits = n.unsigned_abs().to_string();
    let mut out = String::new();
    for (i, ch) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(ch);
    }
    if n < 0 {
        out.insert(0, '-');
    }
    out
}

fn optional(n: Option<i64>) -> String {
    n.map(grouped).unwrap_or_else(|| "—".into())
}

/// Whole numbers grouped, fractions with three significant decimals.
fn number(v: f64) -> String {
    if v.fract() == 0.0 && v.abs() < 1e15 {
        grouped(v as i64)
    } else {
        format!("{v:.3}")
    }
}

fn size(bytes: i64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = bytes as f64;
    let mut unit = 0;
    while v >= 1024.0 && unit + 1 < UNITS.len() {
        v /= 1024.0;
        unit += 1;
    }
    match unit {
        0 => format!("{bytes} B"),
        _ => format!("{v:.1} {}", UNITS[unit]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::daily::history::StoredCheck;
    use crate::serve::status::gather::Series;

    fn status() -> Status {
        let at = DateTime::from_timestamp(1_767_225_600, 0).unwrap_or_default();
        Status {
            generated_at: at,
            tables: vec![TableSummary {
                name: "raw.user_events".into(),
                version: 7,
                rows: 1_234_567,
                files: 3,
                bytes: 5 * 1024 * 1024,
                last_commit: Some(at - chrono::Duration::seconds(30)),
            }],
            source: "user_events".into(),
            partitions: vec![Partition {
                partition: 0,
                last_offset: 99,
                end_offset: Some(120),
                lag: Some(20),
                newest_event: Some(at),
            }],
            lag_unknown: None,
            runs: vec![StoredRun {
                run_id: "r1".into(),
                date: "2025-01-10".into(),
                status: "failed".into(),
                error: Some("<script>alert(1)</script>".into()),
                checks: vec![StoredCheck {
                    check: "no_negative".into(),
                    severity: "error".into(),
                    status: "fail".into(),
                    violation_count: 4,
                    ..StoredCheck::default()
                }],
                ..StoredRun::default()
            }],
            chart: Chart {
                dates: vec![
                    chrono::NaiveDate::from_ymd_opt(2025, 1, 10).unwrap_or_default(),
                    chrono::NaiveDate::from_ymd_opt(2025, 1, 11).unwrap_or_default(),
                ],
                series: vec![Series {
                    column: "total_events".into(),
                    title: "Events".into(),
                    values: vec![Some(100.0), None],
                }],
                why_empty: None,
            },
        }
    }

    #[test]
    fn shows_the_numbers_and_escapes_what_comes_from_data() {
        let page = render(Ok(&status())).into_string();
        for expected in [
            "1,234,567",
            "5.0 MiB",
            "30 s ago",
            "Total lag: 20 messages.",
            "<li class=\"fail\" data-check=\"no_negative\">",
            "<span class=\"violations\">4</span>",
            "<circle cx=\"52.0\" cy=\"4.0\" r=\"3\" data-date=\"2025-01-10\" data-value=\"100\">",
        ] {
            assert!(page.contains(expected), "{expected} missing from {page}");
        }
        assert!(
            page.contains("&lt;script&gt;alert(1)&lt;/script&gt;"),
            "{page}"
        );
        assert!(!page.contains("<script>"), "{page}");
        assert_eq!(
            page.matches("<circle").count(),
            1,
            "a missing value draws no point"
        );
    }

    #[test]
    fn an_unreadable_lake_is_a_page_that_says_so() {
        let page = render(Err("no such <dir>")).into_string();
        assert!(
            page.contains("could not be read: no such &lt;dir&gt;"),
            "{page}"
        );
        assert!(page.contains("http-equiv=\"refresh\""), "{page}");
    }

    #[test]
    fn numbers_read_well() {
        assert_eq!(grouped(0), "0");
        assert_eq!(grouped(999), "999");
        assert_eq!(grouped(-1_000), "-1,000");
        assert_eq!(size(1023), "1023 B");
        assert_eq!(size(3 * 1024 * 1024 * 1024), "3.0 GiB");
        assert_eq!(number(0.04512), "0.045");
    }
}
