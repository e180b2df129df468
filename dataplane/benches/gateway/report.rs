//! The markdown report: a summary with direct and data-plane figures side by
//! side, the verdicts against the targets, and one detail table per phase.

use std::fmt::Write as _;
use std::time::Duration;

use crate::distribution::DistributionCost;
use crate::fleet::{dataplane_binary, CpuUse, Machine, DISTURBED};
use crate::load::{kind_name, LatencyRun, Route, ThroughputRun, Upstream};
use crate::phases::{MemoryRun, PropagationSample, UsageLag, PROPAGATION_POLL, USAGE_POLL};
use crate::Params;

/// The targets (issue 18), judged on the rows with Bedrock over TLS.
pub const TARGET_RATES: [f64; 2] = [200.0, 1000.0];
pub const TARGET_P50_MS: f64 = 0.1;
pub const TARGET_P99_MS: f64 = 0.5;
pub const TARGET_STREAMS: usize = 1000;
pub const TARGET_STREAMS_MIB: f64 = 48.0;
/// The highest sustained streaming rate through the data plane, over direct.
pub const TARGET_STREAM_RATIO: f64 = 0.8;
/// Data-plane CPU per stream at saturation before issue 18, µs.
pub const TARGET_STREAM_CPU_US: f64 = 110.0;
pub const TARGET_PROPAGATION_MS: f64 = 50.0;

/// The control plane polls the configuration version this often
/// (`controlplane/src/fleet/publisher.rs`, `POLL`).
/// The data plane's default ping interval on idle streams.
const PING_INTERVAL_SECS: u64 = 10;

pub struct LatencyRow {
    pub upstream: Upstream,
    pub rate: f64,
    pub route: Route,
    pub stream: bool,
    /// Sorted.
    pub run: LatencyRun,
    pub cpu: CpuUse,
}

pub struct SaturationRow {
    pub upstream: Upstream,
    pub workers: usize,
    pub route: Route,
    pub stream: bool,
    /// Latencies sorted.
    pub run: ThroughputRun,
    pub cpu: CpuUse,
}

pub struct Results {
    pub params: Params,
    pub machine: Machine,
    pub nofile: Result<u64, String>,
    pub controlplane_binary: String,
    pub dataplanes: usize,
    pub rss_fresh: u64,
    pub fds_fresh: usize,
    pub rss_warm: u64,
    pub rss_end: u64,
    pub memory: MemoryRun,
    pub latency: Vec<LatencyRow>,
    pub saturation: Vec<SaturationRow>,
    pub propagation: Vec<PropagationSample>,
    pub usage: UsageLag,
    pub replicas: usize,
    pub postgres: bool,
    pub distribution: DistributionCost,
    pub spend: Option<crate::spend::SpendIngest>,
}

/// Nearest-rank percentile of sorted samples, in milliseconds.
pub fn pct_ms(sorted: &[Duration], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((p * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1].as_secs_f64() * 1e3
}

fn sorted(mut v: Vec<Duration>) -> Vec<Duration> {
    v.sort();
    v
}

fn mean_ms(v: &[Duration]) -> f64 {
    v.iter().map(Duration::as_secs_f64).sum::<f64>() / v.len().max(1) as f64 * 1e3
}

fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

fn rate_label(rate: f64) -> String {
    if rate.fract() == 0.0 {
        format!("{rate:.0}")
    } else {
        format!("{rate}")
    }
}

/// `met` / `**missed**`, flagged when another process took CPU during a phase.
fn verdict(ok: bool, phases: &[&CpuUse]) -> String {
    let v = if ok { "met" } else { "**missed**" };
    if phases.iter().any(|c| c.disturbed()) {
        format!("{v} (disturbed)")
    } else {
        v.to_string()
    }
}

fn pct_of_cpu(secs: f64, wall: f64) -> String {
    format!("{:.0}%", secs / wall * 100.0)
}

/// One summary row per percentile: both routes' figure and the difference.
fn added_rows(out: &mut String, figure: &str, at: &str, qs: &[(&str, f64)], direct: &[Duration], via: &[Duration]) {
    for (label, q) in qs {
        let (a, b) = (pct_ms(direct, *q), pct_ms(via, *q));
        let _ = writeln!(out, "| {figure} {label} {at} (ms) | {a:.3} | {b:.3} | {:+.3} ms |", b - a);
    }
}

impl Results {
    pub fn latency_row(&self, up: Upstream, rate: f64, route: Route, stream: bool) -> Option<&LatencyRow> {
        self.latency.iter().find(|l| l.upstream == up && l.rate == rate && l.route == route && l.stream == stream)
    }

    /// The closed-loop phase where `route` completed the most requests per second.
    pub fn best_saturation(&self, up: Upstream, route: Route, stream: bool) -> Option<&SaturationRow> {
        self.saturation
            .iter()
            .filter(|s| s.upstream == up && s.route == route && s.stream == stream)
            .max_by(|a, b| a.run.rate().total_cmp(&b.run.rate()))
    }

    pub fn saturation_row(&self, up: Upstream, workers: usize, route: Route, stream: bool) -> Option<&SaturationRow> {
        self.saturation
            .iter()
            .find(|s| s.upstream == up && s.workers == workers && s.route == route && s.stream == stream)
    }

    /// Phases during which other processes took CPU.
    pub fn disturbed_phases(&self) -> usize {
        self.latency.iter().filter(|l| l.cpu.disturbed()).count()
            + self.saturation.iter().filter(|s| s.cpu.disturbed()).count()
            + usize::from(self.memory.cpu_open.disturbed())
            + usize::from(self.memory.cpu_idle.disturbed())
    }

    pub fn errors(&self) -> usize {
        self.latency.iter().map(|l| l.run.errors).sum::<usize>()
            + self.saturation.iter().map(|s| s.run.errors).sum::<usize>()
    }

    /// Data-plane memory growth per open stream, KiB.
    fn kib_per_stream(&self) -> f64 {
        (self.memory.rss_open as f64 - self.rss_warm as f64) / self.memory.streams as f64
    }

    /// VmRSS with `TARGET_STREAMS` open: measured, or extrapolated linearly
    /// from the streams held.
    fn mib_at_target_streams(&self) -> f64 {
        if self.memory.streams == TARGET_STREAMS {
            mib(self.memory.rss_open)
        } else {
            (self.rss_warm as f64 + self.kib_per_stream() * TARGET_STREAMS as f64) / 1024.0
        }
    }

    /// Share of a CPU the data plane spends holding 1,000 idle streams, over
    /// its background without streams.
    fn idle_pct_per_1000(&self) -> f64 {
        let m = &self.memory;
        // Over a short window the two readings are noise around zero.
        ((m.dp_idle_secs / m.cpu_idle.wall_secs - m.dp_baseline_load) * 100.0 * 1000.0 / m.streams as f64).max(0.0)
    }

    pub fn markdown(&self) -> String {
        let mut out = String::new();
        self.header(&mut out);
        self.summary(&mut out);
        self.verdicts(&mut out);
        self.latency_detail(&mut out);
        self.saturation_detail(&mut out);
        self.memory_detail(&mut out);
        self.propagation_detail(&mut out);
        self.usage_detail(&mut out);
        self.distribution_detail(&mut out);
        self.spend_detail(&mut out);
        self.error_list(&mut out);
        out
    }

    fn header(&self, out: &mut String) {
        let (p, m) = (&self.params, &self.machine);
        let build = if cfg!(debug_assertions) { "debug" } else { "release" };
        let budgets = if p.budgets { ", every request under a budget" } else { "" };
        let _ = writeln!(out, "# CCAG gateway benchmark ({}{budgets})\n", p.mode);
        let _ = writeln!(
            out,
            "- Date: {}; machine: {}, {} logical CPUs, {:.1} GiB RAM, Linux {}.",
            m.date, m.cpu, m.nproc, m.mem_gib, m.kernel
        );
        let _ = writeln!(
            out,
            "- Processes, all on this machine and sharing its CPUs: the load generator and the Bedrock double \
             (one process, tokio with {} workers); {} `ccag-controlplane` replica(s) on {}; {} `ccag-dataplane` \
             ({build} builds) configured by them over the Watch stream (each given every replica, starting with a \
             different one) and reporting usage to them. The load goes to the first data plane; admin changes to \
             the first replica. The floor: a bare TCP relay (this binary again, one thread, bytes forwarded and \
             nothing else, TLS end to end) in front of the first HTTPS double, measured like the data plane.",
            m.nproc,
            self.replicas,
            if self.postgres { "one PostgreSQL database" } else { "SQLite" },
            self.dataplanes
        );
        let _ = writeln!(out, "- Binaries: `{}` and `{}`.", dataplane_binary(), self.controlplane_binary);
        let _ = writeln!(
            out,
            "- Configured as in production: the load's key has request and token limits (far above these rates), \
             its team routes round-robin over two endpoints, each a double of its own{}, and metrics are on. The \
             headline rows reach Bedrock over TLS (HTTPS doubles with a self-signed certificate, trusted through \
             `AWS_CA_BUNDLE`); the rows marked plain HTTP use two more doubles without TLS, for comparison. The data \
             plane speaks {} to the HTTPS doubles.",
            if p.budgets { "; every request is judged by an organisation-wide budget" } else { "" },
            if std::env::var("CCAG_BEDROCK_HTTP2").is_ok_and(|v| v.trim() == "on") {
                "HTTP/2 (`CCAG_BEDROCK_HTTP2=on`)"
            } else {
                "HTTP/1.1"
            }
        );
        let _ = writeln!(
            out,
            "- Double: time to first token {} ms, {} ms between events, {} text deltas per reply ({} SSE events \
             per stream). Client: hyper HTTP/1.1 with a keep-alive pool (over TLS to the HTTPS doubles).",
            p.ttft_ms,
            p.inter_token_ms,
            p.chunks,
            p.chunks + 5
        );
        let rates: Vec<String> = p.rates.iter().map(|r| rate_label(*r)).collect();
        let _ = writeln!(
            out,
            "- Latency at fixed rates: open loop at {} req/s, {} s per row after {} s of warm-up; measured from \
             the scheduled start to the last byte of the response.",
            rates.join(" and "),
            p.latency_secs,
            p.warmup_secs
        );
        let workers: Vec<String> = p.workers.iter().map(usize::to_string).collect();
        let _ = writeln!(
            out,
            "- Saturation: closed loop, {} concurrent workers, {} s per row after {} s of warm-up; the highest \
             sustained rate is the best of these rows. A stream counts once its whole body has been read.",
            workers.join(" or "),
            p.throughput_secs,
            p.warmup_secs
        );
        let _ = writeln!(
            out,
            "- Open streams: {} streams held through the first data plane (the double waits 600 s after the \
             first event), idle for {} s (ping interval {PING_INTERVAL_SECS} s); RLIMIT_NOFILE {}.",
            p.streams,
            p.idle_secs,
            match &self.nofile {
                Ok(n) => n.to_string(),
                Err(e) => format!("not raised: {e}"),
            }
        );
        let _ = writeln!(
            out,
            "- Configuration propagation: {} admin changes (a key disabled, then enabled again, in turn), each data \
             plane asked every {} ms. Usage-report lag: {} requests, the admin Usage API asked every {} ms.",
            self.propagation.len(),
            PROPAGATION_POLL.as_millis(),
            self.usage.samples.len(),
            USAGE_POLL.as_millis()
        );
        let _ = writeln!(out);
        let disturbed = self.disturbed_phases();
        if disturbed > 0 {
            let _ = writeln!(
                out,
                "**Warning: other processes took more than {:.0}% of a CPU during {disturbed} phase(s), marked \
                 (disturbed) below; run again on a quiet machine.**\n",
                DISTURBED * 100.0
            );
        }
    }

    fn summary(&self, out: &mut String) {
        let _ = writeln!(out, "## Summary\n");
        let _ = writeln!(out, "| Figure | Direct | Via data plane | Added / ratio |");
        let _ = writeln!(out, "|---|---:|---:|---:|");
        for up in [Upstream::Tls, Upstream::Plain] {
            // The plain-HTTP rows are for comparison; their labels say so.
            let via = if up == Upstream::Tls { String::new() } else { format!(", Bedrock over {}", up.name()) };
            self.summary_rates(out, up, &via);
            self.summary_saturation(out, up, &via);
        }
        let mem = &self.memory;
        let per_1000 = self.kib_per_stream() * 1000.0 / 1024.0;
        let _ = writeln!(out, "| data-plane VmRSS idle (MiB) | — | {:.1} | — |", mib(self.rss_warm));
        let _ = writeln!(
            out,
            "| data-plane VmRSS, {} open streams (MiB) | — | {:.1} | {per_1000:+.1} MiB per 1,000 streams |",
            mem.streams,
            mib(mem.rss_open)
        );
        let _ = writeln!(
            out,
            "| data-plane CPU to open 1,000 streams (ms) | — | {:.0} | — |",
            mem.dp_open_secs * 1e3 * 1000.0 / mem.streams as f64
        );
        let _ = writeln!(
            out,
            "| data-plane CPU holding 1,000 idle streams, over its background (% of a CPU) | — | {:.3}% | — |",
            self.idle_pct_per_1000()
        );
        let applied = sorted(self.propagation.iter().map(|s| s.applied).collect());
        let _ = writeln!(
            out,
            "| config propagation to all {} data planes, p50 / p99 / max (ms) | — | {:.0} / {:.0} / {:.0} | — |",
            self.dataplanes,
            pct_ms(&applied, 0.5),
            pct_ms(&applied, 0.99),
            pct_ms(&applied, 1.0)
        );
        let lag = sorted(self.usage.samples.clone());
        let _ = writeln!(
            out,
            "| usage-report lag, p50 / p99 / max (ms) | — | {:.1} / {:.1} / {:.1} | — |",
            pct_ms(&lag, 0.5),
            pct_ms(&lag, 0.99),
            pct_ms(&lag, 1.0)
        );
        let _ = writeln!(out);
    }

    /// The fixed-rate rows of one upstream.
    fn summary_rates(&self, out: &mut String, up: Upstream, via: &str) {
        const LATENCY: [(&str, f64); 3] = [("p50", 0.50), ("p99", 0.99), ("p99.9", 0.999)];
        for &rate in &self.params.rates {
            for stream in [false, true] {
                let (Some(d), Some(g)) = (
                    self.latency_row(up, rate, Route::Direct, stream),
                    self.latency_row(up, rate, Route::Gateway, stream),
                ) else {
                    continue;
                };
                let at = format!("at {} req/s{via}", rate_label(rate));
                let figure = format!("{} latency", kind_name(stream));
                added_rows(out, &figure, &at, &LATENCY, &d.run.total, &g.run.total);
                if stream {
                    added_rows(out, "streaming first event", &at, &LATENCY[..2], &d.run.first_byte, &g.run.first_byte);
                }
                let per_request = g.cpu.dp_secs / g.run.total.len().max(1) as f64 * 1e6;
                let _ = writeln!(
                    out,
                    "| data-plane CPU per {} request {at} (µs) | — | {per_request:.0} | — |",
                    kind_name(stream)
                );
                if let Some(r) = self.latency_row(up, rate, Route::Relay, stream) {
                    let floor = format!("{} latency through a bare relay (the floor)", kind_name(stream));
                    added_rows(out, &floor, &at, &LATENCY[..2], &d.run.total, &r.run.total);
                    if stream {
                        let first = "streaming first event through a bare relay (the floor)";
                        added_rows(out, first, &at, &LATENCY[..2], &d.run.first_byte, &r.run.first_byte);
                    }
                }
            }
        }
    }

    /// The saturation rows of one upstream.
    fn summary_saturation(&self, out: &mut String, up: Upstream, via: &str) {
        for stream in [false, true] {
            let (Some(d), Some(g)) =
                (self.best_saturation(up, Route::Direct, stream), self.best_saturation(up, Route::Gateway, stream))
            else {
                continue;
            };
            let _ = writeln!(
                out,
                "| {} highest sustained rate{via} (req/s) | {:.0} ({} workers) | {:.0} ({} workers) | ×{:.2} |",
                kind_name(stream),
                d.run.rate(),
                d.workers,
                g.run.rate(),
                g.workers,
                g.run.rate() / d.run.rate()
            );
            let _ = writeln!(
                out,
                "| data-plane CPU per {} request at saturation{via} (µs) | — | {:.0} | — |",
                kind_name(stream),
                g.cpu.dp_secs / g.run.completed.max(1) as f64 * 1e6
            );
            // Latency at saturation: both routes at the concurrency where the
            // data plane did best.
            if let Some(d) = self.saturation_row(up, g.workers, Route::Direct, stream) {
                let at = format!("at saturation, {} workers{via}", g.workers);
                let figure = format!("{} latency", kind_name(stream));
                added_rows(
                    out,
                    &figure,
                    &at,
                    &[("p50", 0.50), ("p99", 0.99), ("p99.9", 0.999)],
                    &d.run.latencies,
                    &g.run.latencies,
                );
            }
        }
    }

    fn verdicts(&self, out: &mut String) {
        let _ = writeln!(out, "## Against the targets\n");
        let _ = writeln!(out, "| Target | Result | Verdict |");
        let _ = writeln!(out, "|---|---|---|");
        let up = Upstream::Tls;
        for rate in TARGET_RATES {
            for (label, q, limit) in [("p50", 0.5, TARGET_P50_MS), ("p99", 0.99, TARGET_P99_MS)] {
                let target = format!("Added latency {label} ≤ {limit} ms at {} req/s", rate_label(rate));
                let rows = [false, true].map(|stream| {
                    self.latency_row(up, rate, Route::Direct, stream).zip(self.latency_row(
                        up,
                        rate,
                        Route::Gateway,
                        stream,
                    ))
                });
                let [Some((dn, gn)), Some((ds, gs))] = rows else {
                    let _ = writeln!(out, "| {target} | not measured: {} is not among --rates | — |", rate_label(rate));
                    continue;
                };
                let added = |d: &[Duration], g: &[Duration]| pct_ms(g, q) - pct_ms(d, q);
                let an = added(&dn.run.total, &gn.run.total);
                let as_ = added(&ds.run.total, &gs.run.total);
                let af = added(&ds.run.first_byte, &gs.run.first_byte);
                let _ = writeln!(
                    out,
                    "| {target} | non-streaming {an:+.3} ms; streaming {as_:+.3} ms to the last byte, {af:+.3} ms to \
                     the first event | {} |",
                    verdict(an <= limit && as_ <= limit && af <= limit, &[&dn.cpu, &gn.cpu, &ds.cpu, &gs.cpu])
                );
            }
        }
        self.floor_rows(out);
        let target = format!("Highest sustained streaming rate ≥ {TARGET_STREAM_RATIO} × direct");
        match (self.best_saturation(up, Route::Direct, true), self.best_saturation(up, Route::Gateway, true)) {
            (Some(d), Some(g)) => {
                let ratio = g.run.rate() / d.run.rate();
                let _ = writeln!(
                    out,
                    "| {target} | ×{ratio:.2} ({:.0} of {:.0} streams/s) | {} |",
                    g.run.rate(),
                    d.run.rate(),
                    verdict(ratio >= TARGET_STREAM_RATIO, &[&d.cpu, &g.cpu])
                );
                let cpu_us = g.cpu.dp_secs / g.run.completed.max(1) as f64 * 1e6;
                let _ = writeln!(
                    out,
                    "| Data-plane CPU per saturated stream < {TARGET_STREAM_CPU_US:.0} µs | {cpu_us:.0} µs at {} workers | {} |",
                    g.workers,
                    verdict(cpu_us < TARGET_STREAM_CPU_US, &[&g.cpu])
                );
            }
            _ => {
                let _ = writeln!(out, "| {target} | not measured | — |");
            }
        }
        let total = self.mib_at_target_streams();
        let how = if self.memory.streams == TARGET_STREAMS {
            "measured".to_string()
        } else {
            format!("extrapolated from {} streams", self.memory.streams)
        };
        let _ = writeln!(
            out,
            "| 1,000 open streams (Bedrock over TLS) in < {TARGET_STREAMS_MIB:.0} MiB of data-plane memory | {total:.1} MiB ({how}) | {} |",
            verdict(total < TARGET_STREAMS_MIB, &[])
        );
        let applied = sorted(self.propagation.iter().map(|s| s.applied).collect());
        let p99 = pct_ms(&applied, 0.99);
        let _ = writeln!(
            out,
            "| Config change on every data plane, p99 < {TARGET_PROPAGATION_MS:.0} ms | p99 {p99:.1} ms over {} changes, {} data planes, {} replica(s) | {} |",
            applied.len(),
            self.dataplanes,
            self.replicas,
            verdict(p99 < TARGET_PROPAGATION_MS, &[])
        );
        let _ = writeln!(out);
    }

    /// What the bare relay adds at the target rates: no target of its own,
    /// but the least any proxy on this machine could add.
    fn floor_rows(&self, out: &mut String) {
        let up = Upstream::Tls;
        for rate in TARGET_RATES {
            let rows = [false, true].map(|stream| {
                self.latency_row(up, rate, Route::Direct, stream).zip(self.latency_row(up, rate, Route::Relay, stream))
            });
            let [Some((dn, rn)), Some((ds, rs))] = rows else { continue };
            let added = |d: &[Duration], r: &[Duration], q: f64| pct_ms(r, q) - pct_ms(d, q);
            let _ = writeln!(
                out,
                "| The floor at {} req/s: what a bare TCP relay adds (for comparison, no target) | p50: non-streaming \
                 {:+.3} ms, streaming {:+.3} ms to the last byte, {:+.3} ms to the first event; p99: {:+.3}, {:+.3}, \
                 {:+.3} ms | — |",
                rate_label(rate),
                added(&dn.run.total, &rn.run.total, 0.5),
                added(&ds.run.total, &rs.run.total, 0.5),
                added(&ds.run.first_byte, &rs.run.first_byte, 0.5),
                added(&dn.run.total, &rn.run.total, 0.99),
                added(&ds.run.total, &rs.run.total, 0.99),
                added(&ds.run.first_byte, &rs.run.first_byte, 0.99),
            );
        }
    }

    fn latency_detail(&self, out: &mut String) {
        let _ = writeln!(out, "## Latency at fixed rates (open loop; ms from the scheduled start)\n");
        let _ = writeln!(
            out,
            "| Bedrock | Rate | Request | Route | ok | errors | achieved req/s | first byte p50 | first byte p99 | p50 | p90 | \
             p99 | p99.9 | max | data-plane (relay) CPU / req | bench CPU / req | control plane + other data planes | \
             other processes |"
        );
        let _ =
            writeln!(out, "|---|---:|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
        for l in &self.latency {
            let (run, cpu) = (&l.run, &l.cpu);
            let n = run.total.len().max(1) as f64;
            // The relay's rows: its own CPU.
            let dp_cpu =
                if l.route == Route::Direct { "—".into() } else { format!("{:.0} µs", cpu.dp_secs / n * 1e6) };
            let _ = writeln!(
                out,
                "| {} | {} | {} | {} | {} | {} | {:.0} | {:.3} | {:.3} | {:.3} | {:.3} | {:.3} | {:.3} | {:.3} | {dp_cpu} | \
                 {:.0} µs | {} | {} |",
                l.upstream.name(),
                rate_label(l.rate),
                kind_name(l.stream),
                l.route.name(),
                run.total.len(),
                run.errors,
                run.achieved_rate(),
                pct_ms(&run.first_byte, 0.5),
                pct_ms(&run.first_byte, 0.99),
                pct_ms(&run.total, 0.5),
                pct_ms(&run.total, 0.9),
                pct_ms(&run.total, 0.99),
                pct_ms(&run.total, 0.999),
                pct_ms(&run.total, 1.0),
                cpu.bench_secs / n * 1e6,
                pct_of_cpu(cpu.fleet_secs, cpu.wall_secs),
                pct_of_cpu(cpu.other_secs, cpu.wall_secs),
            );
        }
        let lag = self.latency.iter().map(|l| l.run.worst_dispatch_lag).max().unwrap_or_default();
        let _ = writeln!(
            out,
            "\nWorst lag of the request scheduler behind its schedule: {:.3} ms (included in the latencies). \
             CPU percentages are of one CPU; the machine has {} in all. \"Other processes\" is the machine's busy \
             time minus that of the bench, the data planes and the control plane: well above a few percent, \
             something else disturbed the figures.\n",
            lag.as_secs_f64() * 1e3,
            self.machine.nproc
        );
    }

    fn saturation_detail(&self, out: &mut String) {
        let _ = writeln!(out, "## Saturation (closed loop)\n");
        let _ = writeln!(
            out,
            "| Bedrock | Request | Route | workers | completed | errors | req/s | p50 (ms) | p99 (ms) | p99.9 (ms) | \
             data-plane CPU | bench CPU | control plane + other data planes | data-plane CPU / req | bench CPU / req | \
             other processes |"
        );
        let _ = writeln!(out, "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
        for s in &self.saturation {
            let (run, cpu) = (&s.run, &s.cpu);
            let n = run.completed.max(1) as f64;
            let dp_cpu =
                if s.route == Route::Gateway { format!("{:.0} µs", cpu.dp_secs / n * 1e6) } else { "—".into() };
            let _ = writeln!(
                out,
                "| {} | {} | {} | {} | {} | {} | {:.0} | {:.3} | {:.3} | {:.3} | {} | {} | {} | {dp_cpu} | {:.0} µs | {} |",
                s.upstream.name(),
                kind_name(s.stream),
                s.route.name(),
                s.workers,
                run.completed,
                run.errors,
                run.rate(),
                pct_ms(&run.latencies, 0.5),
                pct_ms(&run.latencies, 0.99),
                pct_ms(&run.latencies, 0.999),
                pct_of_cpu(cpu.dp_secs, cpu.wall_secs),
                pct_of_cpu(cpu.bench_secs, cpu.wall_secs),
                pct_of_cpu(cpu.fleet_secs, cpu.wall_secs),
                cpu.bench_secs / n * 1e6,
                pct_of_cpu(cpu.other_secs, cpu.wall_secs),
            );
        }
        let _ = writeln!(
            out,
            "\nLatency here runs from each request's own start: in a closed loop a slow answer delays the next \
             request instead of queueing behind it. The two routes run at different rates, so their latencies \
             are not an added cost; the data plane's CPU per request is.\n"
        );
    }

    fn memory_detail(&self, out: &mut String) {
        let mem = &self.memory;
        let n = mem.streams;
        let _ = writeln!(out, "## Data-plane memory and CPU with open streams\n");
        let _ = writeln!(out, "| State | VmRSS (MiB) | open fds | data-plane CPU |");
        let _ = writeln!(out, "|---|---:|---:|---|");
        let _ = writeln!(out, "| fresh, no request served | {:.1} | {} | |", mib(self.rss_fresh), self.fds_fresh);
        let _ = writeln!(
            out,
            "| idle after 80 requests (the baseline) | {:.1} | | {:.3}% of a CPU (background) |",
            mib(self.rss_warm),
            mem.dp_baseline_load * 100.0
        );
        let _ = writeln!(
            out,
            "| opening {n} streams (all had their first event after {:.2} s) | | | {:.1} ms in all, {:.0} µs per stream |",
            mem.open_time.as_secs_f64(),
            mem.dp_open_secs * 1e3,
            mem.dp_open_secs * 1e6 / n as f64
        );
        let _ = writeln!(
            out,
            "| {n} streams open and idle for {:.1} s ({} pings received) | {:.1} | {} | {:.1} ms in all, {:.3}% of a CPU |",
            mem.cpu_idle.wall_secs,
            mem.pings_idle,
            mib(mem.rss_open),
            mem.fds_open,
            mem.dp_idle_secs * 1e3,
            mem.dp_idle_secs / mem.cpu_idle.wall_secs * 100.0
        );
        let _ = writeln!(
            out,
            "| streams closed by the clients ({}) | {:.1} | {} | |",
            match mem.release_time {
                Some(t) => format!("sockets released in {:.2} s", t.as_secs_f64()),
                None => "sockets **not** all released within 15 s".into(),
            },
            mib(mem.rss_after),
            mem.fds_after
        );
        let _ = writeln!(out, "| idle after every phase | {:.1} | | |", mib(self.rss_end));
        let _ = writeln!(
            out,
            "\nPer 1,000 open streams: {:+.1} MiB of VmRSS over the baseline ({:.1} KiB per stream), {:.0} ms of \
             data-plane CPU to open them, {:.3}% of a CPU to hold them idle (over the background without streams). VmRSS with 1,000 streams: {:.1} MiB{}. \
             The data plane writes a `ping` on a stream after {PING_INTERVAL_SECS} s without an event; the idle \
             window saw {} of them. The data-plane CPU, here and in every load phase, is the sum of its threads' \
             on-CPU time (`/proc/PID/task/*/schedstat`, nanoseconds); the other CPU columns are utime + stime \
             from `/proc/PID/stat`, in 10 ms ticks.\n",
            self.kib_per_stream() * 1000.0 / 1024.0,
            self.kib_per_stream(),
            mem.dp_open_secs * 1e3 * 1000.0 / n as f64,
            self.idle_pct_per_1000(),
            self.mib_at_target_streams(),
            if n == TARGET_STREAMS { "" } else { " (extrapolated)" },
            mem.pings_idle
        );
    }

    fn propagation_detail(&self, out: &mut String) {
        let _ = writeln!(out, "## Configuration propagation\n");
        let _ = writeln!(out, "| From the admin call to… (ms) | p50 | p99 | max | mean |");
        let _ = writeln!(out, "|---|---:|---:|---:|---:|");
        let mut rows: Vec<(String, Vec<Duration>)> =
            vec![("the admin call's answer".into(), self.propagation.iter().map(|s| s.rpc).collect())];
        for i in 0..self.dataplanes {
            rows.push((
                format!("data plane {} applying it", i + 1),
                self.propagation.iter().filter_map(|s| s.per_dp.get(i).copied()).collect(),
            ));
        }
        rows.push((
            format!("**all {} data planes applying it**", self.dataplanes),
            self.propagation.iter().map(|s| s.applied).collect(),
        ));
        rows.push(("the status API showing every ACK".into(), self.propagation.iter().map(|s| s.acked).collect()));
        for (label, v) in rows {
            let v = sorted(v);
            let _ = writeln!(
                out,
                "| {label} | {:.1} | {:.1} | {:.1} | {:.1} |",
                pct_ms(&v, 0.5),
                pct_ms(&v, 0.99),
                pct_ms(&v, 1.0),
                mean_ms(&v)
            );
        }
        let _ = writeln!(
            out,
            "\n\"Applying it\" is the first answer of the data plane that reflects the change (401 for the disabled \
             key, 200 once enabled again). The change is pushed: the committing replica wakes at once, and on \
             PostgreSQL the other replicas hear it through LISTEN/NOTIFY; each sends its data planes a delta with \
             the changed key only.\n"
        );
    }

    fn distribution_detail(&self, out: &mut String) {
        let d = &self.distribution;
        let _ = writeln!(
            out,
            "## Distribution cost
"
        );
        let changes = d.change_bytes.len().max(1);
        let per_change_bytes = d.change_bytes.iter().sum::<usize>() as f64 / changes as f64;
        let cpu_ms = (d.changes_cpu_secs - d.quiet_cpu_secs).max(0.0) * 1e3 / changes as f64;
        let to_all = sorted(d.to_all_peers.clone());
        let _ = writeln!(out, "| {} keys, {} simulated data planes | figure |", d.keys, d.peers);
        let _ = writeln!(out, "|---|---:|");
        let _ = writeln!(out, "| full state, bytes to one data plane | {} |", d.full_state_bytes);
        let _ = writeln!(
            out,
            "| control-plane CPU to send every data plane its full state (ms) | {:.0} |",
            d.join_cpu_secs * 1e3
        );
        let _ = writeln!(out, "| one-key change: bytes to all {} data planes | {per_change_bytes:.0} |", d.peers);
        let _ =
            writeln!(out, "| one-key change: bytes per data plane | {:.0} |", per_change_bytes / d.peers.max(1) as f64);
        let _ = writeln!(out, "| one-key change: control-plane CPU over its background (ms) | {cpu_ms:.2} |");
        let _ = writeln!(
            out,
            "| one-key change to all {} data planes, p50 / p99 (ms) | {:.1} / {:.1} |",
            d.peers,
            pct_ms(&to_all, 0.5),
            pct_ms(&to_all, 0.99)
        );
        let _ = writeln!(
            out,
            "\nThe simulated data planes speak the Watch protocol from the bench process and acknowledge every \
             response. CPU is the control plane's utime + stime over the {} changes ({:.1} s) less as long a quiet \
             period after them ({:.0} ms of background: heartbeats, share computation, the safety-net poll); it \
             includes the admin call itself (its transaction and audit entry). A change costs the changed \
             resources, not the state: compare its bytes with the full state's.\n",
            changes,
            d.wall_secs,
            d.quiet_cpu_secs * 1e3
        );
    }

    fn spend_detail(&self, out: &mut String) {
        let Some(s) = &self.spend else { return };
        let counted = sorted(s.counted.clone());
        let pushed = sorted(s.pushed.clone());
        let _ = writeln!(out, "## Spend ingest\n");
        let _ = writeln!(
            out,
            "| {} budgeted users, {:.0} records/s offered for {:.0} s | figure |",
            s.users, s.rate, s.secs
        );
        let _ = writeln!(out, "|---|---:|");
        let _ = writeln!(out, "| records stored per second | {:.0} |", s.stored as f64 / s.wall_secs.max(1e-9));
        let _ = writeln!(
            out,
            "| counted: report sent to spend committed, p50 / p99 (ms) | {:.1} / {:.1} |",
            pct_ms(&counted, 0.5),
            pct_ms(&counted, 0.99)
        );
        let _ = writeln!(
            out,
            "| pushed: report sent to the verdict on the Watch stream, p50 / p99 (ms) | {:.0} / {:.0} |",
            pct_ms(&pushed, 0.5),
            pct_ms(&pushed, 0.99)
        );
        let _ = writeln!(
            out,
            "| counted spend not seen in a verdict by the end | {} of {} |",
            s.unseen,
            s.unseen + pushed.len()
        );
        let _ = writeln!(
            out,
            "| control-plane CPU (share of one core) | {:.0}% |",
            s.cp_cpu_secs / s.wall_secs.max(1e-9) * 100.0
        );
        let _ = writeln!(
            out,
            "\nFour simulated data planes report a batch every 100 ms; each record is priced, stored once, added to \
             its user's three period counters and checked against their budget lines in one transaction. The \
             verdicts go to every connected data plane; a data plane's own spend counts at once (the report's \
             answer), other data planes' spend within the pushed lag.\n"
        );
    }

    fn usage_detail(&self, out: &mut String) {
        let lag = sorted(self.usage.samples.clone());
        let _ = writeln!(out, "## Usage-report lag\n");
        let _ = writeln!(
            out,
            "| From the end of a response to its record in the admin Usage API (ms) | p50 | p99 | max | mean |"
        );
        let _ = writeln!(out, "|---|---:|---:|---:|---:|");
        let _ = writeln!(
            out,
            "| {} non-streaming requests, one at a time | {:.1} | {:.1} | {:.1} | {:.1} |",
            lag.len(),
            pct_ms(&lag, 0.5),
            pct_ms(&lag, 0.99),
            pct_ms(&lag, 1.0),
            mean_ms(&lag)
        );
        let cause = if pct_ms(&lag, 0.5) >= 250.0 {
            "The lag is of the order of the reporter's 500 ms linger (`LINGER` in \
             `dataplane/src/report/reporter.rs`): records wait for that fixed flush interval."
        } else {
            "No fixed flush interval sets this lag: the data plane appends each record to its spool and wakes \
             the reporter at once. Two bounds apply: the reporter sends at most one partial batch per 100 ms \
             (`MIN_GAP` in `dataplane/src/report/reporter.rs`), so a record that ends less than 100 ms after \
             the previous report waits for the rest of that gap; the 500 ms linger (`LINGER`) only bounds the \
             wait when no wake-up comes. What remains is the spool write and read, one ReportUsage call and \
             the control plane's insert."
        };
        let _ = writeln!(
            out,
            "\nOne GetUsage call took {:.2} ms on average, and the bench waits {} ms between calls: the figure's \
             resolution. {cause}\n",
            self.usage.query_time.as_secs_f64() * 1e3,
            USAGE_POLL.as_millis()
        );
    }

    fn error_list(&self, out: &mut String) {
        let errors: Vec<String> = self
            .latency
            .iter()
            .filter_map(|l| l.run.first_error.clone())
            .chain(self.saturation.iter().filter_map(|s| s.run.first_error.clone()))
            .collect();
        if !errors.is_empty() {
            let _ = writeln!(out, "## Errors (first of each phase)\n");
            for e in errors {
                let _ = writeln!(out, "- {}", e.replace('\n', " "));
            }
            let _ = writeln!(out);
        }
    }
}
