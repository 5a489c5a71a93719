//! The chart `simulate --chart` writes: an SVG with three panels sharing a
//! time axis (load; replicas per policy; p95 per policy against the SLO).
//! Long runs are reduced to one column per pixel: the load's mean, and the
//! highest replica count and p95 of each column, so no peak is hidden.

use std::fmt::Write as _;

/// One policy's reduced series.
#[derive(Debug, Clone)]
pub struct Columns {
    steps_per_column: f64,
    load: Vec<(f64, u32)>,
    replicas: Vec<f64>,
    p95: Vec<f64>,
}

/// Columns in the chart.
pub const WIDTH: usize = 900;

impl Columns {
    /// Columns for a run of `steps` steps.
    pub fn new(steps: u64) -> Columns {
        let n = (steps as usize).clamp(1, WIDTH);
        Columns {
            steps_per_column: steps.max(1) as f64 / n as f64,
            load: vec![(0.0, 0); n],
            replicas: vec![0.0; n],
            p95: vec![0.0; n],
        }
    }

    /// Add step `k`.
    pub fn add(&mut self, k: u64, load: f64, replicas: u32, p95: f64) {
        let i = ((k as f64 / self.steps_per_column) as usize).min(self.load.len() - 1);
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
    let (left, right, top) = (70.0, 20.0, 40.0);
    let panel_h = 160.0;
    let gap = 40.0;
    let plot_w = WIDTH as f64;
    let width = left + plot_w + right;
    let height = top + 3.0 * panel_h + 2.0 * gap + 70.0;
    let mut s = String::new();
    let _ = writeln!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" viewBox="0 0 {width} {height}" font-family="sans-serif" font-size="12">"#
    );
    let _ = writeln!(s, r#"<rect width="100%" height="100%" fill="white"/>"#);
    let _ = writeln!(
        s,
        r#"<text x="{left}" y="22" font-size="15">{}</text>"#,
        escape(title)
    );
    let Some((_, first)) = runs.first() else {
        s.push_str("</svg>\n");
        return s;
    };
    let n = first.load.len();
    let x = |i: usize| left + plot_w * (i as f64 + 0.5) / n as f64;
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
    let panels: [(&str, f64); 3] = [
        ("load (req/s)", load.iter().copied().fold(1.0, f64::max)),
        ("replicas", replicas_max.ceil() + 1.0),
        ("p95 (s)", p95_max),
    ];
    for (p, (label, max)) in panels.iter().enumerate() {
        let y0 = top + p as f64 * (panel_h + gap);
        let _ = writeln!(
            s,
            r##"<rect x="{left}" y="{y0}" width="{plot_w}" height="{panel_h}" fill="none" stroke="#999"/>"##
        );
        let _ = writeln!(
            s,
            r#"<text x="{}" y="{}" text-anchor="end">{}</text><text x="{}" y="{}" text-anchor="end">0</text>"#,
            left - 6.0,
            y0 + 12.0,
            number(*max),
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
        let y = |v: f64| y0 + panel_h - panel_h * (v / max).clamp(0.0, 1.0);
        let path = |values: &[f64], colour: &str, s: &mut String| {
            let mut d = String::new();
            for (i, v) in values.iter().enumerate() {
                let _ = write!(
                    d,
                    "{}{:.1},{:.1}",
                    if i == 0 { "M" } else { " L" },
                    x(i),
                    y(*v)
                );
            }
            let _ = writeln!(
                s,
                r#"<path d="{d}" fill="none" stroke="{colour}" stroke-width="1.2"/>"#
            );
        };
        match p {
            0 => path(&load, "#444", &mut s),
            1 => {
                for (r, (_, c)) in runs.iter().enumerate() {
                    path(&c.replicas, COLOURS[r % COLOURS.len()], &mut s);
                }
            }
            _ => {
                for (r, (_, c)) in runs.iter().enumerate() {
                    path(&c.p95, COLOURS[r % COLOURS.len()], &mut s);
                }
                let _ = writeln!(
                    s,
                    r##"<line x1="{left}" x2="{}" y1="{yy:.1}" y2="{yy:.1}" stroke="#000" stroke-dasharray="5,4"/><text x="{}" y="{}" text-anchor="end">SLO {slo_p95}s</text>"##,
                    left + plot_w,
                    left + plot_w - 4.0,
                    y(slo_p95) - 4.0,
                    yy = y(slo_p95),
                );
            }
        }
    }
    // Time axis under the last panel.
    let axis_y = top + 3.0 * panel_h + 2.0 * gap;
    for tick in 0..=4 {
        let f = f64::from(tick) / 4.0;
        let _ = writeln!(
            s,
            r#"<text x="{:.1}" y="{:.1}" text-anchor="middle">{}</text>"#,
            left + plot_w * f,
            axis_y + 16.0,
            vedfolnir_core::format_duration((duration_ms as f64 * f) as u64)
        );
    }
    // Legend.
    let legend_y = axis_y + 40.0;
    let mut lx = left;
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
    s.push_str("</svg>\n");
    s
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
        let mut c = Columns::new(10_000);
        for k in 0..10_000 {
            c.add(k, 1.0, if k == 5_555 { 9 } else { 2 }, 0.1);
        }
        assert_eq!(c.replicas.len(), WIDTH);
        assert_eq!(c.replicas.iter().copied().fold(0.0, f64::max), 9.0);
        assert_eq!(c.replicas.iter().filter(|&&r| r == 9.0).count(), 1);
    }

    #[test]
    fn the_svg_has_a_line_per_policy_and_escapes_labels() {
        let mut a = Columns::new(100);
        let mut b = Columns::new(100);
        for k in 0..100 {
            a.add(k, k as f64, 2, 0.2);
            b.add(k, k as f64, 3, 0.3);
        }
        let svg = svg(
            "t <1>",
            &[("a&b".into(), a), ("c".into(), b)],
            6_000_000,
            0.5,
        );
        assert!(svg.starts_with("<svg"));
        assert!(svg.trim_end().ends_with("</svg>"));
        // One load path, two replica paths, two p95 paths.
        assert_eq!(svg.matches("<path").count(), 5);
        assert!(svg.contains("a&amp;b") && svg.contains("t &lt;1&gt;"));
        assert!(svg.contains("SLO 0.5s"));
    }
}
