//! The chart `simulate --chart` writes: an SVG with three panels sharing a
//! time axis (load; replicas per policy; p95 per policy against the SLO).
//! Long runs are reduced to one column per pixel: the load's mean, and the
//! highest replica count and p95 of each column, so no peak is hidden.

use std::fmt::Write as _;

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
}

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

    /// Add step `k`.
    pub fn add(&mut self, k: u64, load: f64, replicas: u32, p95: f64) {
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
    let l = Layout::default();
    let width = l.left + l.plot_w + l.right;
    let height = l.top + 3.0 * l.panel_h + 2.0 * l.gap + 70.0;
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
    let replicas_max = runs
        .iter()
        .flat_map(|(_, c)| c.replicas.iter().copied())
        .fold(1.0, f64::max);
    let p95_max = runs
        .iter()
        .flat_map(|(_, c)| c.p95.iter().copied())
        .fold(slo_p95 * 2.0, f64::max)
        .min(slo_p95 * 6.0);
    let colour = |r: usize| COLOURS[r % COLOURS.len()];
    let max_load = load.iter().copied().fold(1.0, f64::max);
    let y0 = l.panel(&mut s, 0, "load (req/s)", max_load);
    l.path(&mut s, y0, max_load, &load, "#444");
    let y0 = l.panel(&mut s, 1, "replicas", replicas_max.ceil() + 1.0);
    for (r, (_, c)) in runs.iter().enumerate() {
        l.path(
            &mut s,
            y0,
            replicas_max.ceil() + 1.0,
            &c.replicas,
            colour(r),
        );
    }
    l.action_marks(&mut s, y0, runs);
    let y0 = l.panel(&mut s, 2, "p95 (s)", p95_max);
    for (r, (_, c)) in runs.iter().enumerate() {
        l.path(&mut s, y0, p95_max, &c.p95, colour(r));
    }
    let yy = l.y(y0, p95_max, slo_p95);
    let _ = writeln!(
        s,
        r##"<line x1="{}" x2="{}" y1="{yy:.1}" y2="{yy:.1}" stroke="#000" stroke-dasharray="5,4"/><text x="{}" y="{}" text-anchor="end">SLO {slo_p95}s</text>"##,
        l.left,
        l.left + l.plot_w,
        l.left + l.plot_w - 4.0,
        yy - 4.0,
    );
    l.axis_and_legend(&mut s, runs, duration_ms);
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
            gap: 40.0,
            plot_w: WIDTH as f64,
        }
    }
}

impl Layout {
    /// Draw panel `p`'s frame and labels; returns its top.
    fn panel(&self, s: &mut String, p: usize, label: &str, max: f64) -> f64 {
        let (left, plot_w, panel_h) = (self.left, self.plot_w, self.panel_h);
        let y0 = self.top + p as f64 * (panel_h + self.gap);
        let _ = writeln!(
            s,
            r##"<rect x="{left}" y="{y0}" width="{plot_w}" height="{panel_h}" fill="none" stroke="#999"/>"##
        );
        let _ = writeln!(
            s,
            r#"<text x="{}" y="{}" text-anchor="end">{}</text><text x="{}" y="{}" text-anchor="end">0</text>"#,
            left - 6.0,
            y0 + 12.0,
            number(max),
            left - 6.0,
            y0 + panel_h
        );
        let _ = writeln!(
            s,
            r#"<text x="{}" y="{}" transform="rotate(-90 {} {})" text-anchor="middle">{label}</text>"#,
            18.0,
            y0 + panel_h / 2.0,
            18.0,
            y0 + panel_h / 2.0
        );
        y0
    }

    /// Each policy's actions as ticks along the bottom of the replicas
    /// panel at `y0`, a row per policy: up from the row's base for a
    /// scale-up, down from it for a scale-down.
    fn action_marks(&self, s: &mut String, y0: f64, runs: &[(String, Columns)]) {
        for (r, (_, c)) in runs.iter().enumerate() {
            let base = y0 + self.panel_h - 8.0 - 10.0 * r as f64;
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
                    COLOURS[r % COLOURS.len()]
                );
            }
        }
    }

    /// The height of `v` in the panel at `y0` whose top is `max`.
    fn y(&self, y0: f64, max: f64, v: f64) -> f64 {
        y0 + self.panel_h - self.panel_h * (v / max).clamp(0.0, 1.0)
    }

    /// One series as a line in the panel at `y0`.
    fn path(&self, s: &mut String, y0: f64, max: f64, values: &[f64], colour: &str) {
        let n = values.len();
        let mut d = String::new();
        for (i, v) in values.iter().enumerate() {
            let x = self.left + self.plot_w * (i as f64 + 0.5) / n as f64;
            let _ = write!(
                d,
                "{}{:.1},{:.1}",
                if i == 0 { "M" } else { " L" },
                x,
                self.y(y0, max, *v)
            );
        }
        let _ = writeln!(
            s,
            r#"<path d="{d}" fill="none" stroke="{colour}" stroke-width="1.2"/>"#
        );
    }

    /// The time axis under the last panel, and the legend.
    fn axis_and_legend(&self, s: &mut String, runs: &[(String, Columns)], duration_ms: u64) {
        let axis_y = self.top + 3.0 * self.panel_h + 2.0 * self.gap;
        for tick in 0..=4 {
            let f = f64::from(tick) / 4.0;
            let _ = writeln!(
                s,
                r#"<text x="{:.1}" y="{:.1}" text-anchor="middle">{}</text>"#,
                self.left + self.plot_w * f,
                axis_y + 16.0,
                vedfolnir_core::format_duration((duration_ms as f64 * f) as u64)
            );
        }
        let legend_y = axis_y + 40.0;
        let mut lx = self.left;
        for (r, (label, _)) in runs.iter().enumerate() {
            let colour = COLOURS[r % COLOURS.len()];
            let _ = writeln!(
                s,
                r#"<rect x="{lx}" y="{}" width="14" height="4" fill="{colour}"/><text x="{}" y="{legend_y}">{}</text>"#,
                legend_y - 5.0,
                lx + 18.0,
                escape(label)
            );
            lx += 30.0 + 7.5 * label.len() as f64;
        }
    }
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

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_keep_every_peak_of_a_long_run() {
        let mut c = Columns::new(10_000, 15_000);
        for k in 0..10_000 {
            c.add(k, 1.0, if k == 5_555 { 9 } else { 2 }, 0.1);
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
            a.add(k, k as f64, 2, 0.2);
            b.add(k, k as f64, 3, 0.3);
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
}
