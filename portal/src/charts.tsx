// Small charts for the dashboards (uPlot for time series, plain HTML for
// bars and the heat map), and the pieces the usage pages share: the period
// picker kept in the URL, usage-row tables and the pivot of series rows.
// Every chart has a text summary (aria-label and caption) and its data as
// a table, so nothing is only visible as pixels.
import uPlot from "uplot";
import "uplot/dist/uPlot.min.css";
import { Fragment } from "preact";
import { useEffect, useId, useRef } from "preact/hooks";
import type { UsageRow } from "./gen/ccag/admin/v1/admin_pb";
import { setQuery } from "./router";
import { Field, Table, num, usd, when, type Column } from "./ui";

const PALETTE = ["#2451b7", "#d95f02", "#1b9e77", "#7570b3", "#c2185b", "#5a8f00", "#a6761d", "#b38600", "#00838f"];
const OTHER = "#8a8a84";

function color(i: number, name: string): string {
  return name === "Other" ? OTHER : PALETTE[i % PALETTE.length];
}

/** The colour mixed with white: an opaque fill, so stacked areas do not blend. */
function tint(hex: string, a = 0.45): string {
  const n = parseInt(hex.slice(1), 16);
  const mix = (c: number) => Math.round(c * a + 255 * (1 - a));
  return `rgb(${mix(n >> 16)}, ${mix((n >> 8) & 255)}, ${mix(n & 255)})`;
}

/** A bucket's start for people: the UTC date for daily buckets, local time for hourly ones. */
export function bucketLabel(b: string, daily: boolean): string {
  if (!daily) return when(b);
  const d = new Date(b);
  return Number.isNaN(d.getTime()) ? b : d.toISOString().slice(0, 10);
}

export interface TimeSeries {
  name: string;
  values: number[];
}

export interface TimeChartProps {
  title: string;
  /** Bucket starts, RFC 3339, ascending; one value per bucket in each series. */
  buckets: string[];
  series: TimeSeries[];
  /** How values are shown (axis, legend, table, summary); e.g. `usd`. */
  format?: (v: number) => string;
  /** Stack the series as areas (their sum is meaningful, e.g. cost). */
  stacked?: boolean;
  /** Daily buckets: dates are shown in UTC, as the server counts them. */
  daily?: boolean;
  /** Values add up over time (cost, requests) rather than being levels (active users). */
  additive?: boolean;
  height?: number;
}

/** A time-series line or stacked-area chart, with a summary and the data as a table. */
export function TimeChart(props: TimeChartProps) {
  const { title, buckets, series, stacked = false, daily = false, additive = true, height = 240 } = props;
  const fmt = props.format ?? ((v: number) => num(v));
  const fmtRef = useRef(fmt);
  fmtRef.current = fmt;
  const box = useRef<HTMLDivElement>(null);
  const id = useId();
  const sig = `${stacked}|${daily}|${height}|${buckets.join(",")}|${series.map((s) => `${s.name}:${s.values.join(",")}`).join("|")}`;

  useEffect(() => {
    const el = box.current;
    if (!el || buckets.length === 0 || series.length === 0) return;
    const f = (v: number) => fmtRef.current(v);
    const xs = buckets.map((b) => Date.parse(b) / 1000);
    // Stacked: each series is drawn as the running sum, top-most first, so
    // the lower (opaque) areas paint over the upper ones.
    const cum: number[][] = [];
    series.forEach((s, i) => cum.push(s.values.map((v, k) => v + (i > 0 && stacked ? cum[i - 1][k] : 0))));
    const order = series.map((_, i) => i);
    if (stacked) order.reverse();
    const data = [xs, ...order.map((i) => cum[i])] as uPlot.AlignedData;
    const axis = { stroke: "#5f5f5a", grid: { stroke: "#ecece7" }, ticks: { stroke: "#deded8" } };
    const opts: uPlot.Options = {
      width: Math.max(el.clientWidth, 200),
      height,
      ...(daily ? { tzDate: (ts: number) => uPlot.tzDate(new Date(ts * 1e3), "Etc/UTC") } : {}),
      scales: { x: { time: true }, y: { range: (_u, _min, max) => [0, max > 0 ? max * 1.08 : 1] } },
      axes: [axis, { ...axis, size: 76, values: (_u, splits) => splits.map(f) }],
      series: [
        { label: daily ? "Day (UTC)" : "Time", value: daily ? "{YYYY}-{MM}-{DD}" : "{YYYY}-{MM}-{DD} {HH}:{mm}" },
        ...order.map((i) => ({
          label: series[i].name,
          stroke: color(i, series[i].name),
          width: 1.5,
          fill: stacked ? tint(color(i, series[i].name)) : undefined,
          points: { show: xs.length < 3 },
          value: (_u: uPlot, _v: number, _si: number, idx: number | null) => (idx == null ? "—" : f(series[i].values[idx] ?? 0)),
        })),
      ],
      legend: { live: true },
    };
    const u = new uPlot(opts, data, el);
    const ro = new ResizeObserver(() => {
      const w = el.clientWidth;
      if (w > 0 && w !== u.width) u.setSize({ width: w, height });
    });
    ro.observe(el);
    return () => {
      ro.disconnect();
      u.destroy();
    };
  }, [sig]);

  const empty = buckets.length === 0 || series.length === 0;
  const totals = series.map((s) => s.values.reduce((a, b) => a + b, 0));
  const perBucket = buckets.map((_, k) => series.reduce((a, s) => a + (s.values[k] ?? 0), 0));
  const peak = perBucket.reduce((best, v, k) => (v > perBucket[best] ? k : best), 0);
  const top = totals.reduce((best, v, i) => (v > totals[best] ? i : best), 0);
  const summary = empty
    ? `${title}: no data.`
    : [
        `${title}: ${series.length} series over ${buckets.length} ${daily ? "days" : "buckets"}, ` +
          `${bucketLabel(buckets[0], daily)} to ${bucketLabel(buckets[buckets.length - 1], daily)}.`,
        additive ? `Total ${fmt(totals.reduce((a, b) => a + b, 0))}.` : "",
        series.length > 1 && additive ? `Largest: ${series[top].name} (${fmt(totals[top])}).` : "",
        `Peak ${bucketLabel(buckets[peak], daily)}: ${fmt(perBucket[peak])}.`,
      ].filter(Boolean).join(" ");

  const cols: Column<number>[] = [
    { title: daily ? "Day (UTC)" : "Time", cell: (k) => bucketLabel(buckets[k], daily) },
    ...series.map((s) => ({ title: s.name, num: true, cell: (k: number) => fmt(s.values[k] ?? 0) })),
    ...(series.length > 1 && additive ? [{ title: "Total", num: true, cell: (k: number) => fmt(perBucket[k]) }] : []),
  ];
  return (
    <figure class="chart">
      <figcaption>
        <h3>{title}</h3>
      </figcaption>
      {empty ? (
        <p class="empty">No data in this period.</p>
      ) : (
        <>
          <div class="timechart" ref={box} role="img" aria-labelledby={id} />
          <p class="chart-summary" id={id}>{summary}</p>
          <details>
            <summary>{title} as a table</summary>
            <Table label={`${title} by ${daily ? "day" : "time"}`} columns={cols} rows={buckets.map((_, k) => k)} />
          </details>
        </>
      )}
    </figure>
  );
}

export interface Bar {
  name: string;
  value: number;
  /** A link for the name, e.g. to filter the dashboard by it. */
  href?: string;
  hint?: string;
}

/** A horizontal bar list: name, value and a bar proportional to the largest. */
export function BarList(props: { title: string; items: Bar[]; format?: (v: number) => string; emptyText?: string }) {
  const fmt = props.format ?? ((v: number) => num(v));
  const max = Math.max(0, ...props.items.map((i) => i.value));
  return (
    <figure class="chart">
      <figcaption>
        <h3>{props.title}</h3>
      </figcaption>
      {props.items.length === 0 ? (
        <p class="empty">{props.emptyText ?? "No data in this period."}</p>
      ) : (
        <ul class="bars" aria-label={props.title}>
          {props.items.map((i, k) => (
            <li key={`${k}:${i.name}`}>
              <span class="bar-name">{i.href ? <a href={i.href}>{i.name}</a> : i.name}</span>
              <span class="bar-value">
                {fmt(i.value)}
                {i.hint && <small> {i.hint}</small>}
              </span>
              <span class="bar-track" aria-hidden="true">
                <span class="bar-fill" style={{ width: `${max > 0 ? Math.max((i.value / max) * 100, i.value > 0 ? 1 : 0) : 0}%` }} />
              </span>
            </li>
          ))}
        </ul>
      )}
    </figure>
  );
}

export const WEEKDAYS = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"];

export interface Heat {
  /** 0 = Monday … 6 = Sunday. */
  weekday: number;
  /** UTC hour. */
  hour: number;
  requests: bigint | number;
}

/** Requests per weekday × UTC hour as a 7 × 24 grid; the darker, the busier. */
export function HeatMap(props: { title: string; cells: Heat[] }) {
  const grid = WEEKDAYS.map(() => new Array<number>(24).fill(0));
  for (const c of props.cells) if (c.weekday < 7 && c.hour < 24) grid[c.weekday][c.hour] += Number(c.requests);
  let max = 0;
  let at = [0, 0];
  grid.forEach((row, d) => row.forEach((v, h) => v > max && ((max = v), (at = [d, h]))));
  const total = grid.flat().reduce((a, b) => a + b, 0);
  const id = useId();
  const hh = (h: number) => `${String(h).padStart(2, "0")}:00`;
  const summary =
    total === 0
      ? `${props.title}: no requests.`
      : `${props.title}: ${num(total)} requests; busiest ${WEEKDAYS[at[0]]} ${hh(at[1])} UTC with ${num(max)}.`;
  return (
    <figure class="chart">
      <figcaption>
        <h3>{props.title}</h3>
      </figcaption>
      {total === 0 ? (
        <p class="empty">No requests in this period.</p>
      ) : (
        <>
          <div class="heat" role="img" aria-labelledby={id}>
            <span />
            {grid[0].map((_, h) => <span class="heat-hour">{h % 3 === 0 ? String(h).padStart(2, "0") : ""}</span>)}
            {grid.map((row, d) => (
              <Fragment key={d}>
                <span class="heat-day">{WEEKDAYS[d]}</span>
                {row.map((v, h) => (
                  <span
                    class="cell"
                    title={`${WEEKDAYS[d]} ${hh(h)} UTC: ${num(v)} requests`}
                    style={v > 0 ? { backgroundColor: `rgba(36, 81, 183, ${(0.12 + (0.88 * v) / max).toFixed(3)})` } : undefined}
                  />
                ))}
              </Fragment>
            ))}
          </div>
          <p class="chart-summary" id={id}>{summary} Hours are UTC; darker is busier.</p>
          <details>
            <summary>{props.title} as a table</summary>
            <Table
              label={`${props.title} by weekday and hour`}
              columns={[
                { title: "Day", cell: (d: number) => WEEKDAYS[d] },
                ...grid[0].map((_, h) => ({ title: String(h).padStart(2, "0"), num: true, cell: (d: number) => num(grid[d][h]) })),
                { title: "Total", num: true, cell: (d: number) => num(grid[d].reduce((a, b) => a + b, 0)) },
              ]}
              rows={WEEKDAYS.map((_, d) => d)}
            />
          </details>
        </>
      )}
    </figure>
  );
}

// ---------------------------------------------------------------- series rows

interface SeriesRow {
  bucket: string;
  group: string;
  name: string;
}

/**
 * Series rows (one per bucket and group) as one value array per group over
 * every bucket of the period (missing buckets are 0). The `max` largest
 * groups keep their own series; the rest are summed as "Other".
 */
export function pivot<R extends SeriesRow>(
  rows: R[],
  value: (r: R) => number,
  opts: { since?: string; until?: string; stepSecs?: number; max?: number; none?: string } = {},
): { buckets: string[]; series: TimeSeries[] } {
  const times = new Set<number>();
  const step = opts.stepSecs ?? 0;
  const since = opts.since ? Date.parse(opts.since) / 1000 : NaN;
  const until = opts.until ? Date.parse(opts.until) / 1000 : NaN;
  if (step > 0 && Number.isFinite(since) && Number.isFinite(until)) {
    for (let t = Math.floor(since / step) * step, n = 0; t < until && n < 2000; t += step, n++) times.add(t);
  }
  const byGroup = new Map<string, { name: string; total: number; at: Map<number, number> }>();
  for (const r of rows) {
    const t = Date.parse(r.bucket) / 1000;
    if (!Number.isFinite(t)) continue;
    times.add(t);
    let g = byGroup.get(r.group);
    if (!g) byGroup.set(r.group, (g = { name: r.name || r.group || opts.none || "(none)", total: 0, at: new Map() }));
    const v = value(r);
    g.total += v;
    g.at.set(t, (g.at.get(t) ?? 0) + v);
  }
  const ts = [...times].sort((a, b) => a - b);
  const groups = [...byGroup.values()].sort((a, b) => b.total - a.total);
  const max = opts.max ?? 8;
  const kept = groups.length > max + 1 ? groups.slice(0, max) : groups;
  const series = kept.map((g) => ({ name: g.name, values: ts.map((t) => g.at.get(t) ?? 0) }));
  if (kept.length < groups.length) {
    const rest = groups.slice(kept.length);
    series.push({ name: "Other", values: ts.map((t) => rest.reduce((a, g) => a + (g.at.get(t) ?? 0), 0)) });
  }
  return { buckets: ts.map((t) => new Date(t * 1000).toISOString()), series };
}

/** Points (one per bucket) as series over every bucket of the period. */
export function points<P extends { bucket: string }>(
  rows: P[],
  fields: { name: string; value: (p: P) => number }[],
  opts: { since?: string; until?: string; stepSecs?: number } = {},
): { buckets: string[]; series: TimeSeries[] } {
  const flat = rows.flatMap((p) => fields.map((f, i) => ({ bucket: p.bucket, group: String(i), name: f.name, v: f.value(p) })));
  const out = pivot(flat, (r) => r.v, { ...opts, max: fields.length });
  // Keep the fields' order (pivot sorts by total) and a series for a field with no rows.
  return {
    buckets: out.buckets,
    series: fields.map((f) => out.series.find((s) => s.name === f.name) ?? { name: f.name, values: out.buckets.map(() => 0) }),
  };
}

/** A usage row's name for people. */
export function rowName(r: UsageRow, none = "(none)"): string {
  return r.name || r.group || none;
}

/** Columns of a table of usage rows: cost, requests and tokens by kind. */
export function usageColumns(label: string, link?: (r: UsageRow) => string | undefined, none?: string): Column<UsageRow>[] {
  return [
    {
      title: label,
      cell: (r) => {
        const to = link?.(r);
        return to ? <a href={to}>{rowName(r, none)}</a> : rowName(r, none);
      },
    },
    { title: "Cost", num: true, cell: (r) => usd(r.costMicroUsd) },
    { title: "Requests", num: true, cell: (r) => num(r.requests) },
    { title: "Avg / request", num: true, cell: (r) => (r.requests > 0n ? usd(r.costMicroUsd / BigInt(r.requests)) : "—") },
    { title: "Input tokens", num: true, cell: (r) => num(r.inputTokens) },
    { title: "Output tokens", num: true, cell: (r) => num(r.outputTokens) },
    { title: "Cache write", num: true, cell: (r) => num(r.cacheCreationInputTokens) },
    { title: "Cache read", num: true, cell: (r) => num(r.cacheReadInputTokens) },
  ];
}

/** Usage rows as bars of their cost. */
export function costBars(rows: UsageRow[], link?: (r: UsageRow) => string | undefined, none?: string): Bar[] {
  return rows.map((r) => ({ name: rowName(r, none), value: Number(r.costMicroUsd), href: link?.(r), hint: `${num(r.requests)} req` }));
}

/** Micro-USD as a chart value formatter. */
export const usdValue = (v: number) => usd(Math.round(v));

// ---------------------------------------------------------------- period

export const PERIODS = [
  { id: "24h", label: "Last 24 hours", hours: 24 },
  { id: "7d", label: "Last 7 days", hours: 24 * 7 },
  { id: "30d", label: "Last 30 days", hours: 24 * 30 },
  { id: "90d", label: "Last 90 days", hours: 24 * 90 },
];
export const DEFAULT_PERIOD = "30d";

const isDate = (s: string) => /^\d{4}-\d{2}-\d{2}$/.test(s) && !Number.isNaN(Date.parse(`${s}T00:00:00Z`));
const rfc3339 = (ms: number) => new Date(ms).toISOString().replace(/\.\d{3}Z$/, "Z");
const day = (ms: number) => new Date(ms).toISOString().slice(0, 10);

/** The period the URL query names (`range`, and `since`/`until` dates for "custom"), as filter times. */
export function periodFilter(q: URLSearchParams): { since: string; until: string } {
  const range = q.get("range") || DEFAULT_PERIOD;
  if (range === "custom") {
    const s = q.get("since") ?? "";
    const u = q.get("until") ?? "";
    return {
      since: isDate(s) ? `${s}T00:00:00Z` : "",
      // The `until` date is inclusive: the period ends at the next midnight (UTC).
      until: isDate(u) ? rfc3339(Date.parse(`${u}T00:00:00Z`) + 86_400_000) : "",
    };
  }
  const p = PERIODS.find((p) => p.id === range) ?? PERIODS.find((p) => p.id === DEFAULT_PERIOD)!;
  return { since: rfc3339(Date.now() - p.hours * 3_600_000), until: "" };
}

/** The period's select (and date inputs for a custom period); changes go to the URL query. */
export function PeriodPicker(props: { query: URLSearchParams }) {
  const q = props.query;
  const range = q.get("range") || DEFAULT_PERIOD;
  const today = day(Date.now());
  return (
    <>
      <Field label="Period">
        <select
          name="range"
          value={range}
          onChange={(e) => {
            const v = e.currentTarget.value;
            if (v === "custom") setQuery({ range: v, since: q.get("since") || day(Date.now() - 29 * 86_400_000), until: q.get("until") || today });
            else setQuery({ range: v, since: undefined, until: undefined });
          }}
        >
          {PERIODS.map((p) => <option value={p.id}>{p.label}</option>)}
          <option value="custom">Custom dates…</option>
        </select>
      </Field>
      {range === "custom" && (
        <>
          <Field label="From (UTC)">
            <input type="date" name="since" value={q.get("since") ?? ""} max={today} onChange={(e) => setQuery({ since: e.currentTarget.value || undefined })} />
          </Field>
          <Field label="To (UTC, inclusive)">
            <input type="date" name="until" value={q.get("until") ?? ""} max={today} onChange={(e) => setQuery({ until: e.currentTarget.value || undefined })} />
          </Field>
        </>
      )}
    </>
  );
}
