//! The chart `simulate --chart` writes: an SVG with three panels sharing a
//! time axis (load; replicas per policy; p95 per policy against the SLO).
//! Long runs are reduced to one column per pixel: the load's mean, and the
//! highest replica count and p95 of each column, so no peak is hidden.
//!
//! A run longer than [`LONG_MS`] (3 days) would draw thousands of spikes
//! over each other: its replicas get a strip per policy instead of one
//! shared panel, and its p95 panel becomes the SLO-violation minutes of
//! each day, a bar per policy. The time axis is marked at whole hours or
//! days from the start (`day 14`, `d2 12h`).

use std::fmt::Write as _;

use crate::markup::escape;

/// One policy's reduced series.
#[derive(Debug, Clone)]
pub struct Columns {
    steps_per_column: f64,
    step_ms: u64,
    load: Vec<(f64, u32)>,
    replicas: Vec<f64>,
    p95: Vec<f64>,
    /// Scale-ups and scale-downs in each column.
    actions: Vec<(u32, u32)>,
    /// SLO-violation time of each day of the run, ms.
    daily_violation_ms: Vec<u64>,
}

/// A day, ms.
const DAY_MS: u64 = 86_400_000;

/// Runs longer than this are drawn with a strip per policy and daily
/// SLO-violation bars.
pub const LONG_MS: u64 = 3 * DAY_MS;

/// Columns in the chart.
pub const WIDTH: usize = 900;

impl Columns {
    /// Columns for a run of `steps` steps of `step_ms`.
    pub fn new(steps: u64, step_ms: u64) -> Columns {
        let n = (steps as usize).clamp(1, WIDTH);
        Columns {
            steps_per_column: steps.max(1) as f64 / n as f64,
            step_ms: step_ms.max(1),
            load: vec![(0.0, 0); n],
            replicas: vec![0.0; n],
            p95: vec![0.0; n],
            actions: vec![(0, 0); n],
            daily_violation_ms: Vec::new(),
        }
    }

    fn column(&self, k: u64) -> usize {
        ((k as f64 / self.steps_per_column) as usize).min(self.load.len() - 1)
    }

    /// Mark an action `elapsed_ms` into the run.
    pub fn action(&mut self, elapsed_ms: i64, direction: vedfolnir_core::model::Direction) {
        let i = self.column(elapsed_ms.max(0) as u64 / self.step_ms);
        match direction {
            vedfolnir_core::model::Direction::Up => self.actions[i].0 += 1,
            vedfolnir_core::model::Direction::Down => self.actions[i].1 += 1,
            vedfolnir_core::model::Direction::Hold => {}
        }
    }

    /// Add step `k`; `violated` when it broke the SLO.
    pub fn add(&mut self, k: u64, load: f64, replicas: u32, p95: f64, violated: bool) {
        if violated {
            let day = (k * self.step_ms / DAY_MS) as usize;
            if self.daily_violation_ms.len() <= day {
                self.daily_violation_ms.resize(day + 1, 0);
            }
            self.daily_violation_ms[day] += self.step_ms;
        }
        let i = self.column(k);
        self.load[i].0 += load;
        self.load[i].1 += 1;
        self.replicas[i] = self.replicas[i].max(f64::from(replicas));
        self.p95[i] = self.p95[i].max(p95);
    }
}

const COLOURS: [&str; 8] = [
    "#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2", "#17becf",
];

/// The SVG for `runs` (label, columns), over `duration_ms`, with the SLO.
pub fn svg(title: &str, runs: &[(String, Columns)], duration_ms: u64, slo_p95: f64) -> String {
    let long = duration_ms > LONG_MS;
    let l = Layout::default();
    // The replicas panel: one shared, or a strip per policy.
    let replicas_h = if long {
        (l.strip_h * runs.len() as f64).max(l.panel_h)
    } else {
        l.panel_h
    };
    let tops = [
        l.top,
        l.top + l.panel_h + l.gap,
        l.top + l.panel_h + replicas_h + 2.0 * l.gap,
    ];
    let axis_y = tops[2] + l.panel_h;
    let width = l.left + l.plot_w + l.right;
    let height = axis_y + 70.0;
    let mut s = String::new();
    let _ = writeln!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" viewBox="0 0 {width} {height}" font-family="sans-serif" font-size="12">"#
    );
    let _ = writeln!(s, r#"<rect width="100%" height="100%" fill="white"/>"#);
    let _ = writeln!(
        s,
        r#"<text x="{}" y="22" font-size="15">{}</text>"#,
        l.left,
        escape(title)
    );
    let Some((_, first)) = runs.first() else {
        s.push_str("</svg>\n");
        return s;
    };
    let load: Vec<f64> = first
        .load
        .iter()
        .map(|(sum, c)| if *c == 0 { 0.0 } else { sum / f64::from(*c) })
        .collect();
    let max_load = load.iter().copied().fold(1.0, f64::max);
    l.panel(&mut s, tops[0], l.panel_h, "load (req/s)", max_load);
    l.path(&mut s, tops[0], l.panel_h, max_load, &load, "#444");
    if long {
        l.replica_strips(&mut s, tops[1], runs);
        l.daily_violations(&mut s, tops[2], runs, duration_ms);
    } else {
        l.replicas(&mut s, tops[1], runs);
        l.action_marks(&mut s, tops[1] + l.panel_h, runs, 0);
        l.p95(&mut s, tops[2], runs, slo_p95);
    }
    l.axis_and_legend(&mut s, axis_y, runs, duration_ms);
    s.push_str("</svg>\n");
    s
}

/// Where the panels go.
#[derive(Debug, Clone, Copy)]
struct Layout {
    left: f64,
    right: f64,
    top: f64,
    panel_h: f64,
    strip_h: f64,
    gap: f64,
    plot_w: f64,
}

impl Default for Layout {
    fn default() -> Self {
        Layout {
            left: 70.0,
            right: 20.0,
            top: 40.0,
            panel_h: 160.0,
            strip_h: 60.0,
            gap: 40.0,
            plot_w: WIDTH as f64,
        }
    }
}

impl Layout {
    /// Draw a panel's frame and labels, at `y0`, `h` high, its top `max`.
    fn panel(&self, s: &mut String, y0: f64, h: f64, label: &str, max: f64) {
        let (left, plot_w) = (self.left, self.plot_w);
        let _ = writeln!(
            s,
            r##"<rect x="{left}" y="{y0}" width="{plot_w}" height="{h}" fill="none" stroke="#999"/>"##
        );
        let _ = writeln!(
            s,
            r#"<text x="{}" y="{}" text-anchor="end">{}</text><text x="{}" y="{}" text-anchor="end">0</text>"#,
            left - 6.0,
            y0 + 12.0,
            number(max),
            left - 6.0,
            y0 + h
        );
        let _ = writeln!(
            s,
            r#"<text x="{}" y="{}" transform="rotate(-90 {} {})" text-anchor="middle">{label}</text>"#,
            18.0,
            y0 + h / 2.0,
            18.0,
            y0 + h / 2.0
        );
    }

    /// Every policy's replicas in one panel at `y0`.
    fn replicas(&self, s: &mut String, y0: f64, runs: &[(String, Columns)]) {
        let max = replicas_max(runs).ceil() + 1.0;
        self.panel(s, y0, self.panel_h, "replicas", max);
        for (r, (_, c)) in runs.iter().enumerate() {
            self.path(s, y0, self.panel_h, max, &c.replicas, colour(r));
        }
    }

    /// A strip per policy at `y0`: its replicas (the most of each column),
    /// its name, and its actions along the strip's bottom.
    fn replica_strips(&self, s: &mut String, y0: f64, runs: &[(String, Columns)]) {
        let max = replicas_max(runs).ceil();
        let h = (self.panel_h / runs.len() as f64).max(self.strip_h);
        for (r, (label, c)) in runs.iter().enumerate() {
            let top = y0 + h * r as f64;
            self.panel(s, top, h, "", max);
            self.path(s, top + 4.0, h - 4.0, max, &c.replicas, colour(r));
            let _ = writeln!(
                s,
                r#"<text x="{}" y="{}" fill="{}">{} (replicas)</text>"#,
                self.left + 6.0,
                top + 14.0,
                colour(r),
                escape(label)
            );
            self.action_marks(s, top + h, &runs[r..=r], r);
        }
    }

    /// Each policy's p95 in the panel at `y0`, against the SLO line.
    fn p95(&self, s: &mut String, y0: f64, runs: &[(String, Columns)], slo_p95: f64) {
        let max = runs
            .iter()
            .flat_map(|(_, c)| c.p95.iter().copied())
            .fold(slo_p95 * 2.0, f64::max)
            .min(slo_p95 * 6.0);
        self.panel(s, y0, self.panel_h, "p95 (s)", max);
        for (r, (_, c)) in runs.iter().enumerate() {
            self.path(s, y0, self.panel_h, max, &c.p95, colour(r));
        }
        let yy = self.y(y0, self.panel_h, max, slo_p95);
        let _ = writeln!(
            s,
            r##"<line x1="{}" x2="{}" y1="{yy:.1}" y2="{yy:.1}" stroke="#000" stroke-dasharray="5,4"/><text x="{}" y="{}" text-anchor="end">SLO {slo_p95}s</text>"##,
            self.left,
            self.left + self.plot_w,
            self.left + self.plot_w - 4.0,
            yy - 4.0,
        );
    }

    /// The SLO-violation minutes of each day, a bar per policy, at `y0`.
    fn daily_violations(
        &self,
        s: &mut String,
        y0: f64,
        runs: &[(String, Columns)],
        duration_ms: u64,
    ) {
        let days = duration_ms.div_ceil(DAY_MS).max(1) as usize;
        let minutes = |c: &Columns, d: usize| {
            c.daily_violation_ms.get(d).copied().unwrap_or(0) as f64 / 60_000.0
        };
        let max = runs
            .iter()
            .flat_map(|(_, c)| (0..days).map(move |d| minutes(c, d)))
            .fold(1.0, f64::max);
        self.panel(s, y0, self.panel_h, "SLO-violation min/day", max);
        let day_w = self.plot_w * DAY_MS as f64 / duration_ms as f64;
        let bar_w = day_w * 0.8 / runs.len() as f64;
        for (r, (_, c)) in runs.iter().enumerate() {
            let mut d_attr = String::new();
            for d in 0..days {
                let m = minutes(c, d);
                if m <= 0.0 {
                    continue;
                }
                let x = self.left + day_w * (d as f64 + 0.1) + bar_w * r as f64;
                let top = self.y(y0, self.panel_h, max, m);
                let _ = write!(
                    d_attr,
                    "M{x:.1},{:.1} V{top:.1} h{bar_w:.2} V{:.1} Z ",
                    y0 + self.panel_h,
                    y0 + self.panel_h
                );
            }
            if !d_attr.is_empty() {
                let _ = writeln!(
                    s,
                    r#"<path class="violations" d="{}" fill="{}"/>"#,
                    d_attr.trim_end(),
                    colour(r)
                );
            }
        }
    }

    /// Each policy's actions as ticks above `bottom` (a replicas panel's),
    /// a row per policy, coloured from the `colour_of`th colour: up from
    /// the row's base for a scale-up, down from it for a scale-down.
    fn action_marks(
        &self,
        s: &mut String,
        bottom: f64,
        runs: &[(String, Columns)],
        colour_of: usize,
    ) {
        for (r, (_, c)) in runs.iter().enumerate() {
            let base = bottom - 8.0 - 10.0 * r as f64;
            let n = c.actions.len();
            let mut d = String::new();
            for (i, (up, down)) in c.actions.iter().enumerate() {
                let x = self.left + self.plot_w * (i as f64 + 0.5) / n as f64;
                if *up > 0 {
                    let _ = write!(d, "M{x:.1},{base:.1} v-4 ");
                }
                if *down > 0 {
                    let _ = write!(d, "M{x:.1},{base:.1} v4 ");
                }
            }
            if !d.is_empty() {
                let _ = writeln!(
                    s,
                    r#"<path class="actions" d="{}" stroke="{}" stroke-width="1"/>"#,
                    d.trim_end(),
                    colour(colour_of + r)
                );
            }
        }
    }

    /// The height of `v` in the panel at `y0`, `h` high, whose top is `max`.
    fn y(&self, y0: f64, h: f64, max: f64, v: f64) -> f64 {
        y0 + h - h * (v / max).clamp(0.0, 1.0)
    }

    /// One series as a line in the panel at `y0`, `h` high.
    fn path(&self, s: &mut String, y0: f64, h: f64, max: f64, values: &[f64], colour: &str) {
        let n = values.len();
        let mut d = String::new();
        for (i, v) in values.iter().enumerate() {
            let x = self.left + self.plot_w * (i as f64 + 0.5) / n as f64;
            let _ = write!(
                d,
                "{}{:.1},{:.1}",
                if i == 0 { "M" } else { " L" },
                x,
                self.y(y0, h, max, *v)
            );
        }
        let _ = writeln!(
            s,
            r#"<path d="{d}" fill="none" stroke="{colour}" stroke-width="1.2"/>"#
        );
    }

    /// The time axis at `axis_y`, and the legend.
    fn axis_and_legend(
        &self,
        s: &mut String,
        axis_y: f64,
        runs: &[(String, Columns)],
        duration_ms: u64,
    ) {
        for (at, label) in ticks(duration_ms) {
            let x = self.left + self.plot_w * at as f64 / duration_ms.max(1) as f64;
            let _ = writeln!(
                s,
                r##"<line x1="{x:.1}" x2="{x:.1}" y1="{axis_y}" y2="{}" stroke="#999"/><text x="{x:.1}" y="{:.1}" text-anchor="middle">{label}</text>"##,
                axis_y + 4.0,
                axis_y + 16.0,
            );
        }
        let legend_y = axis_y + 40.0;
        let mut lx = self.left;
        for (r, (label, _)) in runs.iter().enumerate() {
            let _ = writeln!(
                s,
                r#"<rect x="{lx}" y="{}" width="14" height="4" fill="{}"/><text x="{}" y="{legend_y}">{}</text>"#,
                legend_y - 5.0,
                colour(r),
                lx + 18.0,
                escape(label)
            );
            lx += 30.0 + 7.5 * label.len() as f64;
        }
    }
}

fn colour(r: usize) -> &'static str {
    COLOURS[r % COLOURS.len()]
}

fn replicas_max(runs: &[(String, Columns)]) -> f64 {
    runs.iter()
        .flat_map(|(_, c)| c.replicas.iter().copied())
        .fold(1.0, f64::max)
}

/// Round marks on the time axis, about 6 to 12 of them: whole minutes,
/// hours or days from the start, labelled `30m`, `6h`, `d2 12h`, `day 14`.
pub fn ticks(duration_ms: u64) -> Vec<(u64, String)> {
    const MIN: u64 = 60_000;
    const HOUR: u64 = 60 * MIN;
    let steps = [
        MIN,
        5 * MIN,
        15 * MIN,
        30 * MIN,
        HOUR,
        2 * HOUR,
        3 * HOUR,
        6 * HOUR,
        12 * HOUR,
        DAY_MS,
        2 * DAY_MS,
        7 * DAY_MS,
        14 * DAY_MS,
        30 * DAY_MS,
        91 * DAY_MS,
    ];
    let step = steps
        .iter()
        .copied()
        .find(|s| duration_ms / s <= 12)
        .unwrap_or(365 * DAY_MS);
    (0..=duration_ms / step)
        .map(|i| {
            let at = i * step;
            let (days, hours, minutes) = (at / DAY_MS, at % DAY_MS / HOUR, at % HOUR / MIN);
            let label = match (step >= DAY_MS, days, minutes) {
                (true, _, _) => format!("day {days}"),
                (false, 0, 0) => format!("{hours}h"),
                (false, 0, _) if hours == 0 => format!("{minutes}m"),
                (false, 0, _) => format!("{hours}h{minutes:02}m"),
                (false, _, 0) => format!("d{days} {hours}h"),
                (false, _, _) => format!("d{days} {hours}h{minutes:02}m"),
            };
            (at, label)
        })
        .collect()
}

fn number(v: f64) -> String {
    if v >= 100.0 {
        format!("{v:.0}")
    } else if v >= 10.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.2}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_keep_every_peak_of_a_long_run() {
        let mut c = Columns::new(10_000, 15_000);
        for k in 0..10_000 {
            c.add(k, 1.0, if k == 5_555 { 9 } else { 2 }, 0.1, false);
        }
        assert_eq!(c.replicas.len(), WIDTH);
        assert_eq!(c.replicas.iter().copied().fold(0.0, f64::max), 9.0);
        assert_eq!(c.replicas.iter().filter(|&&r| r == 9.0).count(), 1);
    }

    #[test]
    fn the_svg_has_a_line_per_policy_and_escapes_labels() {
        let mut a = Columns::new(100, 60_000);
        let mut b = Columns::new(100, 60_000);
        for k in 0..100 {
            a.add(k, k as f64, 2, 0.2, false);
            b.add(k, k as f64, 3, 0.3, false);
        }
        a.action(30 * 60_000, vedfolnir_core::model::Direction::Up);
        a.action(31 * 60_000, vedfolnir_core::model::Direction::Down);
        let svg = svg(
            "t <1>",
            &[("a&b".into(), a), ("c".into(), b)],
            6_000_000,
            0.5,
        );
        assert!(svg.starts_with("<svg"));
        assert!(svg.trim_end().ends_with("</svg>"));
        // One load path, two replica paths, a path of action marks for
        // the policy that acted, two p95 paths.
        assert_eq!(svg.matches("<path").count(), 6);
        assert_eq!(svg.matches(r#"class="actions""#).count(), 1);
        assert!(svg.contains("v-4") && svg.contains("v4"), "{svg}");
        assert!(svg.contains("a&amp;b") && svg.contains("t &lt;1&gt;"));
        assert!(svg.contains("SLO 0.5s"));
    }

    #[test]
    fn the_time_axis_reads_in_round_hours_or_days() {
        let labels = |ms| ticks(ms).into_iter().map(|(_, l)| l).collect::<Vec<_>>();
        assert_eq!(labels(6 * 3_600_000)[..4], ["0h", "30m", "1h", "1h30m"]);
        assert_eq!(labels(2 * DAY_MS)[..3], ["0h", "6h", "12h"]);
        assert_eq!(labels(2 * DAY_MS)[5], "d1 6h");
        let two_months = labels(61 * DAY_MS);
        assert_eq!(two_months[..3], ["day 0", "day 7", "day 14"]);
        assert!(two_months.len() <= 13, "{two_months:?}");
    }

    #[test]
    fn a_long_run_has_a_strip_per_policy_and_daily_violation_bars() {
        let steps = 10 * 1440; // ten days of minutes
        let mut a = Columns::new(steps, 60_000);
        let mut b = Columns::new(steps, 60_000);
        for k in 0..steps {
            // a violates 30 minutes on day 2; b never.
            let bad = (2 * 1440..2 * 1440 + 30).contains(&k);
            a.add(k, 100.0, 3, if bad { 2.0 } else { 0.1 }, bad);
            b.add(k, 100.0, 4, 0.1, false);
        }
        assert_eq!(a.daily_violation_ms, vec![0, 0, 30 * 60_000]);
        let svg = svg(
            "long",
            &[("a".into(), a), ("b".into(), b)],
            10 * DAY_MS,
            0.5,
        );
        assert!(
            svg.contains("a (replicas)") && svg.contains("b (replicas)"),
            "{svg}"
        );
        assert!(svg.contains("SLO-violation min/day"));
        assert_eq!(svg.matches(r#"class="violations""#).count(), 1);
        assert!(!svg.contains("p95 (s)"));
        assert!(svg.contains(">day 2<") || svg.contains(">d2 0h<"), "{svg}");
    }
}
