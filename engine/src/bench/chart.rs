//! An SVG chart of a bench run: throughput (producer and ClickHouse rows/s)
//! and lag (rows) over time, drawn by hand (no plotting dependency).

use std::fmt::Write as _;

use super::timeline::Timeline;

const W: f64 = 900.0;
const H: f64 = 260.0;
const PAD_L: f64 = 80.0;
const PAD_R: f64 = 20.0;
const PAD_T: f64 = 30.0;
const PAD_B: f64 = 40.0;

/// The chart as an SVG document.
pub fn svg(title: &str, tl: &Timeline) -> String {
    let rates = tl.rates();
    let mut s = String::new();
    let _ = write!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{}" font-family="sans-serif" font-size="12">"#,
        2.0 * H + 20.0
    );
    let _ = write!(s, r#"<rect width="100%" height="100%" fill="white"/>"#);
    let t_max = rates.last().map_or(1.0, |r| r.0).max(1e-3);
    let tp: Vec<(f64, f64)> = rates.iter().map(|r| (r.0, r.1)).collect();
    let tc: Vec<(f64, f64)> = rates.iter().map(|r| (r.0, r.2)).collect();
    let lag: Vec<(f64, f64)> = rates.iter().map(|r| (r.0, r.3)).collect();
    panel(
        &mut s,
        0.0,
        &format!("{} — throughput (rows/s)", escape(title)),
        t_max,
        &[
            ("producer (acked by Kafka)", "#1f77b4", &tp[..]),
            ("ClickHouse (rows counted)", "#d62728", &tc[..]),
        ],
    );
    panel(
        &mut s,
        H + 20.0,
        "lag (rows produced, not yet in ClickHouse)",
        t_max,
        &[("lag", "#2ca02c", &lag[..])],
    );
    s.push_str("</svg>\n");
    s
}

/// (name, colour, points) of one line.
type Series<'a> = (&'a str, &'a str, &'a [(f64, f64)]);

fn panel(s: &mut String, y0: f64, title: &str, t_max: f64, series: &[Series<'_>]) {
    let v_max = series
        .iter()
        .flat_map(|(_, _, pts)| pts.iter().map(|p| p.1))
        .fold(0.0f64, f64::max)
        .max(1.0);
    let x = |t: f64| PAD_L + (W - PAD_L - PAD_R) * t / t_max;
    let y = |v: f64| y0 + PAD_T + (H - PAD_T - PAD_B) * (1.0 - v / v_max);
    let _ = write!(
        s,
        r#"<text x="{PAD_L}" y="{}" font-weight="bold">{title}</text>"#,
        y0 + 18.0
    );
    // Axes and grid.
    for i in 0..=4 {
        let v = v_max * f64::from(i) / 4.0;
        let yy = y(v);
        let _ = write!(
            s,
            r##"<line x1="{PAD_L}" y1="{yy:.1}" x2="{:.1}" y2="{yy:.1}" stroke="#ddd"/><text x="{:.1}" y="{:.1}" text-anchor="end">{}</text>"##,
            W - PAD_R,
            PAD_L - 6.0,
            yy + 4.0,
            human(v)
        );
    }
    for i in 0..=5 {
        let t = t_max * f64::from(i) / 5.0;
        let _ = write!(
            s,
            r#"<text x="{:.1}" y="{:.1}" text-anchor="middle">{t:.1}s</text>"#,
            x(t),
            y0 + H - PAD_B + 16.0
        );
    }
    for (i, (name, color, pts)) in series.iter().enumerate() {
        let points: Vec<String> = pts
            .iter()
            .map(|(t, v)| format!("{:.1},{:.1}", x(*t), y(*v)))
            .collect();
        let _ = write!(
            s,
            r#"<polyline fill="none" stroke="{color}" stroke-width="2" points="{}"/>"#,
            points.join(" ")
        );
        let lx = PAD_L + 10.0 + 260.0 * i as f64;
        let ly = y0 + H - 8.0;
        let _ = write!(
            s,
            r#"<rect x="{lx}" y="{:.1}" width="12" height="4" fill="{color}"/><text x="{:.1}" y="{ly:.1}">{}</text>"#,
            ly - 4.0,
            lx + 16.0,
            escape(name)
        );
    }
}

fn human(v: f64) -> String {
    if v >= 1e6 {
        format!("{:.1}M", v / 1e6)
    } else if v >= 1e3 {
        format!("{:.0}k", v / 1e3)
    } else {
        format!("{v:.0}")
    }
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

#[cfg(test)]
mod tests {
    use super::super::timeline::Sample;
    use super::*;

    #[test]
    fn draws_both_panels_and_escapes_titles() {
        let tl = Timeline {
            samples: (0..10)
                .map(|i| Sample {
                    t: f64::from(i),
                    produced_rows: 1000 * i as u64,
                    clickhouse_rows: 800 * i as u64,
                })
                .collect(),
        };
        let svg = svg("a<b", &tl);
        assert!(svg.starts_with("<svg") && svg.ends_with("</svg>\n"));
        assert_eq!(svg.matches("<polyline").count(), 3);
        assert!(svg.contains("a&lt;b"));
    }
}
