//! A hand-written SVG chart of the latency percentiles, direct and through
//! the data plane, at each fixed rate and at saturation: one panel per
//! request kind, a logarithmic millisecond axis.

use std::fmt::Write as _;

use crate::load::{kind_name, Route, Upstream};
use crate::report::{pct_ms, Results};

const WIDTH: f64 = 960.0;
const PANEL_HEIGHT: f64 = 300.0;
const TOP: f64 = 70.0;
const LEFT: f64 = 70.0;
const RIGHT: f64 = 20.0;
const GAP: f64 = 70.0;
const PERCENTILES: [(&str, f64); 3] = [("p50", 0.5), ("p99", 0.99), ("p99.9", 0.999)];
/// Direct in blues, through the data plane in oranges; darker is a higher percentile.
const DIRECT: [&str; 3] = ["#9ecae1", "#4292c6", "#08519c"];
const GATEWAY: [&str; 3] = ["#fdae6b", "#f16913", "#a63603"];

/// One group of bars: a fixed rate or saturation, for one request kind.
struct Group {
    label: String,
    /// p50, p99, p99.9 in ms: direct, then through the data plane.
    direct: [f64; 3],
    gateway: [f64; 3],
}

fn groups(r: &Results, stream: bool) -> Vec<Group> {
    let mut out = Vec::new();
    for &rate in &r.params.rates {
        let (Some(d), Some(g)) = (
            r.latency_row(Upstream::Tls, rate, Route::Direct, stream),
            r.latency_row(Upstream::Tls, rate, Route::Gateway, stream),
        ) else {
            continue;
        };
        out.push(Group {
            label: format!("{rate} req/s"),
            direct: PERCENTILES.map(|(_, q)| pct_ms(&d.run.total, q)),
            gateway: PERCENTILES.map(|(_, q)| pct_ms(&g.run.total, q)),
        });
    }
    if let Some(g) = r.best_saturation(Upstream::Tls, Route::Gateway, stream) {
        if let Some(d) = r.saturation_row(Upstream::Tls, g.workers, Route::Direct, stream) {
            out.push(Group {
                label: format!("saturation, {} workers", g.workers),
                direct: PERCENTILES.map(|(_, q)| pct_ms(&d.run.latencies, q)),
                gateway: PERCENTILES.map(|(_, q)| pct_ms(&g.run.latencies, q)),
            });
        }
    }
    out
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;")
}

fn fmt_ms(v: f64) -> String {
    if v >= 100.0 {
        format!("{v:.0}")
    } else if v >= 10.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.2}")
    }
}

pub fn latency_svg(r: &Results) -> String {
    let panels: Vec<(bool, Vec<Group>)> = [false, true].into_iter().map(|s| (s, groups(r, s))).collect();
    let values = panels
        .iter()
        .flat_map(|(_, gs)| gs.iter().flat_map(|g| g.direct.iter().chain(g.gateway.iter())))
        .copied()
        .filter(|v| v.is_finite() && *v > 0.0);
    let (lo, hi) = values.fold((f64::MAX, f64::MIN), |(lo, hi), v| (lo.min(v), hi.max(v)));
    let (lo, hi) = if lo > hi { (0.1, 10.0) } else { (lo, hi) };
    // Whole decades around the data.
    let (d0, d1) = (lo.log10().floor() as i32, (hi.log10().ceil() as i32).max(lo.log10().floor() as i32 + 1));
    let height = TOP + panels.len() as f64 * (PANEL_HEIGHT + GAP) + 10.0;

    let mut s = String::new();
    let _ = writeln!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{height}" viewBox="0 0 {WIDTH} {height}" font-family="Helvetica, Arial, sans-serif" font-size="12">"#
    );
    let _ = writeln!(s, r##"<rect width="100%" height="100%" fill="#ffffff"/>"##);
    let p = &r.params;
    let _ = writeln!(
        s,
        r#"<text x="{LEFT}" y="24" font-size="16" font-weight="bold">Latency, direct to the Bedrock double vs through ccag-dataplane (ms, log scale)</text>"#
    );
    let _ = writeln!(
        s,
        r##"<text x="{LEFT}" y="44" fill="#444">{} run, {}; double: {} ms to first token, {} ms between events; fixed rates: open loop; saturation: closed loop</text>"##,
        esc(p.mode),
        esc(&r.machine.date),
        p.ttft_ms,
        p.inter_token_ms,
    );
    if r.disturbed_phases() > 0 {
        let _ = writeln!(
            s,
            r##"<text x="{}" y="24" font-size="14" font-weight="bold" text-anchor="end" fill="#c00000">disturbed run</text>"##,
            WIDTH - RIGHT
        );
    }
    // Legend.
    let mut x = LEFT;
    for (name, colours) in [("direct", DIRECT), ("via data plane", GATEWAY)] {
        for (i, (pname, _)) in PERCENTILES.iter().enumerate() {
            let _ = writeln!(s, r#"<rect x="{x}" y="52" width="10" height="10" fill="{}"/>"#, colours[i]);
            let label = format!("{name} {pname}");
            let _ = writeln!(s, r#"<text x="{}" y="61">{}</text>"#, x + 14.0, esc(&label));
            x += 24.0 + label.len() as f64 * 6.5;
        }
    }

    let plot_w = WIDTH - LEFT - RIGHT;
    for (pi, (stream, gs)) in panels.iter().enumerate() {
        let y0 = TOP + GAP * 0.5 + pi as f64 * (PANEL_HEIGHT + GAP);
        let y1 = y0 + PANEL_HEIGHT;
        let y_of = |v: f64| y1 - (v.log10() - d0 as f64) / (d1 - d0) as f64 * PANEL_HEIGHT;
        let _ = writeln!(
            s,
            r#"<text x="{LEFT}" y="{}" font-size="14" font-weight="bold">{}</text>"#,
            y0 - 10.0,
            kind_name(*stream)
        );
        // Grid: each decade, and 2 and 5 within it.
        for d in d0..=d1 {
            for m in [1.0, 2.0, 5.0] {
                let v = m * 10f64.powi(d);
                if v > 10f64.powi(d1) * 1.0001 {
                    continue;
                }
                let y = y_of(v);
                let (stroke, width) = if m == 1.0 { ("#bbbbbb", 1.0) } else { ("#e5e5e5", 0.8) };
                let _ = writeln!(
                    s,
                    r#"<line x1="{LEFT}" y1="{y:.1}" x2="{:.1}" y2="{y:.1}" stroke="{stroke}" stroke-width="{width}"/>"#,
                    WIDTH - RIGHT
                );
                let _ = writeln!(
                    s,
                    r##"<text x="{:.1}" y="{:.1}" text-anchor="end" fill="#555">{:.*}</text>"##,
                    LEFT - 6.0,
                    y + 4.0,
                    (-d).max(0) as usize,
                    v
                );
            }
        }
        let _ = writeln!(s, r##"<line x1="{LEFT}" y1="{y1}" x2="{}" y2="{y1}" stroke="#333"/>"##, WIDTH - RIGHT);
        if gs.is_empty() {
            continue;
        }
        let group_w = plot_w / gs.len() as f64;
        let bar_w = (group_w * 0.8 / 7.0).min(40.0);
        for (gi, g) in gs.iter().enumerate() {
            let gx = LEFT + gi as f64 * group_w + (group_w - bar_w * 7.0) / 2.0;
            for (k, (vals, colours)) in [(&g.direct, DIRECT), (&g.gateway, GATEWAY)].into_iter().enumerate() {
                for i in 0..3 {
                    let v = vals[i];
                    if !v.is_finite() || v <= 0.0 {
                        continue;
                    }
                    let bx = gx + (k * 4 + i) as f64 * bar_w;
                    let top = y_of(v.max(10f64.powi(d0)));
                    let _ = writeln!(
                        s,
                        r#"<rect x="{bx:.1}" y="{top:.1}" width="{:.1}" height="{:.1}" fill="{}"><title>{} {}: {} ms</title></rect>"#,
                        bar_w - 1.0,
                        y1 - top,
                        colours[i],
                        if k == 0 { "direct" } else { "via data plane" },
                        PERCENTILES[i].0,
                        fmt_ms(v)
                    );
                    let _ = writeln!(
                        s,
                        r#"<text x="{:.1}" y="{:.1}" font-size="9" text-anchor="middle">{}</text>"#,
                        bx + (bar_w - 1.0) / 2.0,
                        top - 3.0,
                        fmt_ms(v)
                    );
                }
            }
            let _ = writeln!(
                s,
                r#"<text x="{:.1}" y="{:.1}" text-anchor="middle">{}</text>"#,
                LEFT + (gi as f64 + 0.5) * group_w,
                y1 + 18.0,
                esc(&g.label)
            );
        }
    }
    s.push_str("</svg>\n");
    s
}
