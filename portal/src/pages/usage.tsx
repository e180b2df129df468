// My usage: what the signed-in person spent over a period (kept in the URL
// query), by model and over time, and the budgets that apply to them.
import { api, pb } from "../api";
import { PeriodPicker, TimeChart, periodFilter, pivot, usageColumns, usdValue } from "../charts";
import { href, useRoute } from "../router";
import { useSession } from "../session";
import { Empty, Loaded, Page, Stat, Table, num, usd, when, useAsync, type Column } from "../ui";

const SOURCES: Record<string, string> = {
  user: "Your own budget",
  team_member_default: "Team default per member",
  org_default: "Organisation default",
  team: "Team pool",
};

const STATUS: Record<string, [string, string]> = {
  ok: ["OK", "badge good"],
  warning: ["Warning", "badge"],
  shaped: ["Slowed down", "badge bad"],
  blocked: ["Blocked", "badge bad"],
};

const budgetColumns: Column<pb.BudgetStatusLine>[] = [
  {
    title: "Budget",
    cell: (l) => (
      <>
        {SOURCES[l.source] ?? l.source}
        {l.scope === "team" || l.source === "team_member_default" ? <small> · {l.subject}</small> : null}
      </>
    ),
  },
  { title: "Period", cell: (l) => l.period },
  { title: "Limit", num: true, cell: (l) => usd(l.limitMicroUsd) },
  { title: "Spent", num: true, cell: (l) => usd(l.spendMicroUsd) },
  { title: "Remaining", num: true, cell: (l) => usd(l.limitMicroUsd > l.spendMicroUsd ? l.limitMicroUsd - l.spendMicroUsd : 0n) },
  {
    title: "Used",
    num: true,
    cell: (l) => (
      <>
        <meter min={0} max={100} low={80} high={100} optimum={0} value={Math.min(l.percent, 100)} aria-label={`${l.percent}% used`} />{" "}
        {l.percent.toFixed(1)}%
      </>
    ),
  },
  { title: "Status", cell: (l) => { const [t, c] = STATUS[l.status] ?? [l.status, "badge"]; return <span class={c}>{t}</span>; } },
  { title: "Resets", cell: (l) => when(l.resetsAt) },
];

export default function UsagePage() {
  const session = useSession();
  const { query } = useRoute();
  const qs = ["range", "since", "until"].map((k) => query.get(k) ?? "").join("|");
  const dash = useAsync(
    () =>
      api.analytics.getDashboard({
        // Members are limited to their own usage by the server; an admin names themselves.
        filter: { ...periodFilter(query), user: session.role === "admin" ? session.user_id : "" },
        top: 100,
      }),
    [qs, session.user_id],
  );
  // Neither user nor team: the caller's own status (and their teams' pools).
  const budgets = useAsync(() => api.budgets.getBudgetStatus({}), [session.user_id]);

  return (
    <Page title="My usage" actions={<a class="button" href={href("/keys")}>My keys</a>}>
      <form class="filters" aria-label="Period" onSubmit={(e) => e.preventDefault()}>
        <PeriodPicker query={query} />
        <button type="button" onClick={dash.reload} disabled={dash.loading}>{dash.loading ? "Loading…" : "Refresh"}</button>
      </form>
      <Loaded state={dash} what="your usage">
        {(d) => {
          const t = d.total;
          const requests = t?.requests ?? 0n;
          const daily = d.bucket === pb.UsageBucket.DAY;
          return (
            <>
              <p class="period">
                {when(d.since)} – {when(d.until)}
              </p>
              <div class="stats">
                <Stat
                  label="Cost"
                  value={<span data-testid="my-cost">{usd(t?.costMicroUsd ?? 0n)}</span>}
                  hint={t && t.unpricedRequests > 0n ? `${num(t.unpricedRequests)} requests at the default price` : undefined}
                />
                <Stat label="Requests" value={<span data-testid="my-requests">{num(requests)}</span>} />
                <Stat label="Input tokens" value={num(t?.inputTokens ?? 0n)} />
                <Stat label="Output tokens" value={num(t?.outputTokens ?? 0n)} />
                <Stat label="Cache write tokens" value={num(t?.cacheCreationInputTokens ?? 0n)} />
                <Stat label="Cache read tokens" value={num(t?.cacheReadInputTokens ?? 0n)} />
                <Stat label="Cache savings" value={usd(d.cacheSavingsMicroUsd)} hint="Against paying full input price" />
              </div>
              {requests === 0n ? (
                <Empty>
                  No requests in this period. Choose a longer period, or <a href={href("/connect")}>connect Claude Code</a> to start.
                </Empty>
              ) : (
                <>
                  <div class="charts">
                    <TimeChart
                      title="Cost over time by model"
                      {...pivot(d.seriesByModel, (r) => Number(r.costMicroUsd), { since: d.since, until: d.until, stepSecs: daily ? 86_400 : 3_600 })}
                      format={usdValue}
                      stacked
                      daily={daily}
                    />
                  </div>
                  <h2>By model</h2>
                  <Table label="My usage by model" columns={usageColumns("Model")} rows={d.topModels} rowKey={(r) => r.group} />
                </>
              )}
            </>
          );
        }}
      </Loaded>

      <h2>My budget</h2>
      <Loaded state={budgets} what="your budget" empty={(b) => b.lines.length === 0} emptyText="No budget applies to you.">
        {(b) => <Table label="Budgets that apply to me" columns={budgetColumns} rows={b.lines} rowKey={(l) => `${l.budgetId}:${l.scope}:${l.subject}`} />}
      </Loaded>
      <p>
        Manage the keys your tools use on <a href={href("/keys")}>My keys</a>.
      </p>
    </Page>
  );
}
