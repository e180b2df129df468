// The organisation's analytics: spend, activity and performance for a
// period and optional team, user, model and endpoint, all kept in the URL
// query so a view can be bookmarked; and the matching usage records as CSV.
import { useState } from "preact/hooks";
import { api, pb } from "../../api";
import {
  BarList,
  HeatMap,
  PeriodPicker,
  TimeChart,
  costBars,
  periodFilter,
  pivot,
  points,
  usageColumns,
  usdValue,
} from "../../charts";
import { href, setQuery, useRoute } from "../../router";
import { Empty, ErrorBox, Field, Loaded, Page, Stat, Table, num, pct, usd, when, useAction, useAsync, type Column } from "../../ui";

const PATH = "/admin/analytics";
const TABS = [
  { id: "spend", label: "Spend" },
  { id: "activity", label: "Activity" },
  { id: "performance", label: "Models & performance" },
];
const FILTERS = ["team", "user", "model", "endpoint"] as const;
const BUCKETS: Record<string, pb.UsageBucket> = { hour: pb.UsageBucket.HOUR, day: pb.UsageBucket.DAY };
const NO_TEAM = "(no team)";
const BUILT_IN = "(built-in endpoint)";

function filterOf(q: URLSearchParams) {
  return { ...periodFilter(q), team: q.get("team") ?? "", user: q.get("user") ?? "", model: q.get("model") ?? "", endpoint: q.get("endpoint") ?? "" };
}

function download(csv: string, name: string) {
  const url = URL.createObjectURL(new Blob([csv], { type: "text/csv;charset=utf-8" }));
  const a = document.createElement("a");
  a.href = url;
  a.download = name;
  document.body.appendChild(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10_000);
}

function ms(v: number): string {
  if (!v) return "—";
  return v >= 1000 ? `${(v / 1000).toFixed(v >= 10_000 ? 0 : 1)} s` : `${v} ms`;
}

/** A select of one filter, its choices as [value, label]; the current value is kept even if not listed. */
function Pick(props: { label: string; name: string; value: string; all: string; options: [string, string][] }) {
  const opts = props.options.some(([v]) => v === props.value) || !props.value ? props.options : [[props.value, props.value] as [string, string], ...props.options];
  return (
    <Field label={props.label}>
      <select name={props.name} value={props.value} onChange={(e) => setQuery({ [props.name]: e.currentTarget.value || undefined })}>
        <option value="">{props.all}</option>
        {opts.map(([v, l]) => <option value={v}>{l}</option>)}
      </select>
    </Field>
  );
}

const perfColumns = (label: string, none: string): Column<pb.Performance>[] => [
  { title: label, cell: (p) => p.name || p.group || none },
  { title: "Requests", num: true, cell: (p) => num(p.requests) },
  { title: "Errors", num: true, cell: (p) => num(p.errors) },
  { title: "Error rate", num: true, cell: (p) => <span class={p.errorRate >= 0.05 ? "badge bad" : ""}>{pct(p.errorRate)}</span> },
  { title: "Throttled", num: true, cell: (p) => num(p.throttled) },
  { title: "Cache hit", num: true, cell: (p) => pct(p.cacheHitRate) },
  { title: "Latency p50", num: true, cell: (p) => ms(p.latencyP50Ms) },
  { title: "p95", num: true, cell: (p) => ms(p.latencyP95Ms) },
  { title: "p99", num: true, cell: (p) => ms(p.latencyP99Ms) },
  { title: "TTFT p50", num: true, cell: (p) => ms(p.ttftP50Ms) },
  { title: "p95", num: true, cell: (p) => ms(p.ttftP95Ms) },
  { title: "p99", num: true, cell: (p) => ms(p.ttftP99Ms) },
];

export default function AnalyticsPage() {
  const { query } = useRoute();
  // The dashboard's inputs: the whole query but the tab, so switching tabs does not fetch again.
  const qs = [...query.entries()].filter(([k]) => k !== "tab").map(([k, v]) => `${k}=${v}`).join("&");
  const tab = TABS.some((t) => t.id === query.get("tab")) ? query.get("tab")! : "spend";
  const bucket = query.get("bucket") ?? "";

  const dash = useAsync(
    () => api.analytics.getDashboard({ filter: filterOf(query), bucket: BUCKETS[bucket] ?? pb.UsageBucket.UNSPECIFIED, top: 20 }),
    [qs],
  );
  const teams = useAsync(() => api.teams.listTeams({ page: { pageSize: 500 } }), []);
  const users = useAsync(() => api.users.listUsers({ page: { pageSize: 500 } }), []);
  const endpoints = useAsync(() => api.endpoints.listEndpoints({ page: { pageSize: 500 } }), []);
  const models = useAsync(() => api.models.listModels({ page: { pageSize: 500 } }), []);
  const listError = teams.error ?? users.error ?? endpoints.error ?? models.error;

  const [exported, setExported] = useState<string>();
  const exporter = useAction(async () => {
    setExported(undefined);
    const f = filterOf(query);
    const resp = await api.analytics.exportUsage({ filter: f, limit: 100000 });
    const from = (f.since || new Date(Date.now() - 30 * 86_400_000).toISOString()).slice(0, 10);
    const to = (f.until || new Date().toISOString()).slice(0, 10);
    download(resp.csv, `ccag-usage-${from}-to-${to}.csv`);
    setExported(
      resp.truncated
        ? `Downloaded the newest ${num(resp.rows)} records only: more matched. Narrow the period or the filters to export the rest.`
        : `Downloaded ${num(resp.rows)} records.`,
    );
  });

  const current = Object.fromEntries(query.entries());
  const link = (patch: Record<string, string | undefined>) => href(PATH, { ...current, ...patch });
  const modelNames = new Set<string>([
    ...(models.data?.models.map((m) => m.anthropicId) ?? []),
    ...(dash.data?.topModels.map((r) => r.group) ?? []),
  ]);
  const anyFilter = FILTERS.some((f) => query.get(f)) || query.get("range") || query.get("bucket");

  return (
    <Page
      title="Analytics"
      actions={
        <button type="button" onClick={() => exporter.go()} disabled={exporter.busy}>
          {exporter.busy ? "Exporting…" : "Export CSV"}
        </button>
      }
    >
      <ErrorBox error={exporter.error} />
      {exported && <p role="status" class="note">{exported}</p>}
      <form class="filters" role="search" aria-label="Filters" onSubmit={(e) => e.preventDefault()}>
        <PeriodPicker query={query} />
        <Field label="By">
          <select name="bucket" value={bucket} onChange={(e) => setQuery({ bucket: e.currentTarget.value || undefined })}>
            <option value="">Auto</option>
            <option value="hour">Hour</option>
            <option value="day">Day</option>
          </select>
        </Field>
        <Pick label="Team" name="team" value={query.get("team") ?? ""} all="All teams" options={(teams.data?.teams ?? []).map((t) => [t.id, t.name])} />
        <Pick
          label="User"
          name="user"
          value={query.get("user") ?? ""}
          all="All users"
          options={(users.data?.users ?? []).map((u) => [u.id, u.email || u.displayName || u.id])}
        />
        <Pick label="Model" name="model" value={query.get("model") ?? ""} all="All models" options={[...modelNames].filter(Boolean).sort().map((m) => [m, m])} />
        <Pick
          label="Endpoint"
          name="endpoint"
          value={query.get("endpoint") ?? ""}
          all="All endpoints"
          options={[...(endpoints.data?.endpoints ?? []).map((e): [string, string] => [e.id, e.name]), ["-", "Built-in (data plane default)"]]}
        />
        {anyFilter && (
          <button type="button" onClick={() => setQuery({ range: undefined, since: undefined, until: undefined, bucket: undefined, team: undefined, user: undefined, model: undefined, endpoint: undefined })}>
            Clear filters
          </button>
        )}
        <button type="button" onClick={dash.reload} disabled={dash.loading}>{dash.loading ? "Loading…" : "Refresh"}</button>
      </form>
      {listError && <p class="note">Some filter choices could not be loaded: {listError}</p>}

      <Loaded state={dash} what="the dashboard">
        {(d) => {
          const t = d.total ?? ({ requests: 0n, costMicroUsd: 0n, inputTokens: 0n, outputTokens: 0n, cacheCreationInputTokens: 0n, cacheReadInputTokens: 0n, unpricedRequests: 0n } as pb.UsageRow);
          const daily = d.bucket === pb.UsageBucket.DAY;
          const range = { since: d.since, until: d.until, stepSecs: daily ? 86_400 : 3_600 };
          const cost = (r: pb.UsageRow) => Number(r.costMicroUsd);
          const teamLink = (r: pb.UsageRow) => (r.group ? link({ team: r.group }) : undefined);
          const userLink = (r: pb.UsageRow) => (r.group ? link({ user: r.group }) : undefined);
          const modelLink = (r: pb.UsageRow) => (r.group ? link({ model: r.group }) : undefined);
          const endpointLink = (r: pb.UsageRow) => link({ endpoint: r.group || "-" });
          return (
            <>
              <p class="period">
                {when(d.since)} – {when(d.until)} · by {daily ? "day (UTC)" : "hour"}
              </p>
              <div class="stats">
                <Stat
                  label="Total cost"
                  value={<span data-testid="total-cost">{usd(t.costMicroUsd)}</span>}
                  hint={t.unpricedRequests > 0n ? `${num(t.unpricedRequests)} requests had no price (charged at the default)` : undefined}
                />
                <Stat
                  label="Requests"
                  value={<span data-testid="total-requests">{num(t.requests)}</span>}
                  hint={t.requests > 0n ? `${usd(t.costMicroUsd / BigInt(t.requests))} per request` : undefined}
                />
                <Stat label="Input tokens" value={num(t.inputTokens)} />
                <Stat label="Output tokens" value={num(t.outputTokens)} />
                <Stat label="Cache write tokens" value={num(t.cacheCreationInputTokens)} />
                <Stat label="Cache read tokens" value={num(t.cacheReadInputTokens)} />
                <Stat label="Cache savings" value={usd(d.cacheSavingsMicroUsd)} />
                <Stat label="Active users" value={num(d.activeUsers)} />
                <Stat label="Errors" value={num(d.errors)} hint={t.requests > 0n ? pct(Number(d.errors) / Number(t.requests)) : undefined} />
                <Stat label="Throttled" value={num(d.throttled)} hint={t.requests > 0n ? pct(Number(d.throttled) / Number(t.requests)) : undefined} />
              </div>
              {t.unpricedRequests > 0n && (
                <p class="note">
                  Some models have no price. <a href={href("/admin/prices")}>Set their prices</a> for exact costs.
                </p>
              )}
              {t.requests === 0n ? (
                <Empty>No requests in this period{anyFilter ? " with these filters" : ""}. Choose a longer period or clear the filters.</Empty>
              ) : (
                <>
                  <nav class="tabs" aria-label="Dashboard sections">
                    {TABS.map((x) => (
                      <a href={link({ tab: x.id === "spend" ? undefined : x.id })} aria-current={tab === x.id ? "page" : undefined}>
                        {x.label}
                      </a>
                    ))}
                  </nav>

                  {tab === "spend" && (
                    <>
                      <h2>Spend over time</h2>
                      <div class="charts">
                        <TimeChart title="Spend by team" {...pivot(d.seriesByTeam, cost, { ...range, none: NO_TEAM })} format={usdValue} stacked daily={daily} />
                        <TimeChart title="Spend by model" {...pivot(d.seriesByModel, cost, range)} format={usdValue} stacked daily={daily} />
                      </div>
                      <h2>Top spenders</h2>
                      <div class="charts">
                        <BarList title="Users" items={costBars(d.topUsers, userLink)} format={usdValue} />
                        <BarList title="Teams" items={costBars(d.topTeams, teamLink, NO_TEAM)} format={usdValue} />
                        <BarList title="Models" items={costBars(d.topModels, modelLink)} format={usdValue} />
                      </div>
                      <h3>Users</h3>
                      <Table label="Top users by cost" columns={usageColumns("User", userLink)} rows={d.topUsers} rowKey={(r) => r.group} />
                      <h3>Teams</h3>
                      <Table label="Top teams by cost" columns={usageColumns("Team", teamLink, NO_TEAM)} rows={d.topTeams} rowKey={(r) => r.group} />
                      <h3>Models</h3>
                      <Table label="Top models by cost" columns={usageColumns("Model", modelLink)} rows={d.topModels} rowKey={(r) => r.group} />
                      <h2>Spend by endpoint</h2>
                      <div class="charts">
                        <BarList title="Endpoints" items={costBars(d.byEndpoint, endpointLink, BUILT_IN)} format={usdValue} />
                      </div>
                      <Table label="Spend by endpoint" columns={usageColumns("Endpoint", endpointLink, BUILT_IN)} rows={d.byEndpoint} rowKey={(r) => r.group} />
                    </>
                  )}

                  {tab === "activity" && (
                    <>
                      <h2>Activity</h2>
                      <div class="charts">
                        <TimeChart title="Requests" {...points(d.activity, [{ name: "Requests", value: (p) => Number(p.requests) }], range)} daily={daily} />
                        <TimeChart
                          title="Active users"
                          {...points(d.activity, [{ name: "Active users", value: (p) => Number(p.users) }], range)}
                          daily={daily}
                          additive={false}
                        />
                      </div>
                      <HeatMap title="Requests by weekday and hour (UTC)" cells={d.heatmap} />
                      <h3>Users by spend</h3>
                      <Table label="Top users by cost" columns={usageColumns("User", userLink)} rows={d.topUsers} rowKey={(r) => r.group} />
                    </>
                  )}

                  {tab === "performance" && (
                    <>
                      <h2>Models</h2>
                      {d.performanceByModel.length === 0 ? (
                        <Empty>No performance figures for this period.</Empty>
                      ) : (
                        <>
                          <div class="charts">
                            <BarList
                              title="Latency p95 by model"
                              items={d.performanceByModel.map((p) => ({ name: p.name || p.group, value: p.latencyP95Ms }))}
                              format={ms}
                            />
                            <BarList
                              title="Cache hit rate by model"
                              items={d.performanceByModel.map((p) => ({ name: p.name || p.group, value: p.cacheHitRate }))}
                              format={pct}
                            />
                          </div>
                          <Table label="Performance by model" columns={perfColumns("Model", "(unknown)")} rows={d.performanceByModel} rowKey={(p) => p.group} />
                        </>
                      )}
                      <h2>Endpoints</h2>
                      {d.performanceByEndpoint.length === 0 ? (
                        <Empty>No performance figures for this period.</Empty>
                      ) : (
                        <Table label="Performance by endpoint" columns={perfColumns("Endpoint", BUILT_IN)} rows={d.performanceByEndpoint} rowKey={(p) => p.group} />
                      )}
                      <h2>Model mix</h2>
                      <Table label="Usage by model" columns={usageColumns("Model", modelLink)} rows={d.topModels} rowKey={(r) => r.group} />
                    </>
                  )}
                </>
              )}
            </>
          );
        }}
      </Loaded>
    </Page>
  );
}
