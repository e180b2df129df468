// Budgets: every cap (organisation default, team pool, team member default,
// user), its status this period, set and delete; a status check for any user
// or team; and the budget notifications recently sent.
import { useState } from "preact/hooks";
import { api, pb } from "../../api";
import { href, setQuery, useRoute } from "../../router";
import { ErrorBox, Field, Loaded, Page, Table, parseUsd, useAction, useAsync, usd, when, type Column } from "../../ui";

type Kind = "org" | "team" | "member_default" | "user";
const KINDS: { kind: Kind; label: string; subject?: string }[] = [
  { kind: "org", label: "Organisation default (every user)" },
  { kind: "team", label: "Team pool", subject: "Team (name or id)" },
  { kind: "member_default", label: "Team member default", subject: "Team (name or id)" },
  { kind: "user", label: "User", subject: "User (email or id)" },
];
const PERIODS = ["daily", "weekly", "monthly"];
const PRESETS: Record<string, string> = {
  standard: "80% notify, 100% block",
  soft: "80% and 100% notify, 150% block",
  shaped: "80% notify, 100% slowed to 5 rpm, 150% block",
};

function kindOf(b: pb.Budget): Kind {
  if (b.scope === pb.BudgetScope.USER) return "user";
  if (b.scope === pb.BudgetScope.TEAM) return b.memberDefault ? "member_default" : "team";
  return "org";
}
const kindLabel = (k: Kind) => KINDS.find((x) => x.kind === k)!.label.replace(/ \(.*\)$/, "");

/** Integer micro-USD as a plain decimal for an input ("12.5"). */
function microToInput(m: bigint): string {
  const frac = (m % 1_000_000n).toString().padStart(6, "0").replace(/0+$/, "");
  return `${m / 1_000_000n}${frac ? `.${frac}` : ""}`;
}

function statusBadge(status: string) {
  const cls = status === "ok" ? "good" : status === "shaped" || status === "blocked" ? "bad" : "";
  return <span class={`badge ${cls}`}>{status || "—"}</span>;
}

interface Row {
  b: pb.Budget;
  line?: pb.BudgetStatusLine;
  lineError?: string;
}

/** The budgets, each user budget and team pool with its line of this period. */
async function loadRows(): Promise<Row[]> {
  const { budgets } = await api.budgets.listBudgets({});
  const rows: Row[] = budgets.map((b) => ({ b }));
  const subjects = new Map<string, { user?: string; team?: string; rows: Row[] }>();
  for (const r of rows) {
    const k = kindOf(r.b);
    if (k !== "user" && k !== "team") continue;
    const key = `${k}:${r.b.subjectId}`;
    const s = subjects.get(key) ?? { [k]: r.b.subjectId, rows: [] };
    s.rows.push(r);
    subjects.set(key, s);
  }
  const queue = [...subjects.values()];
  const worker = async () => {
    for (let s = queue.shift(); s; s = queue.shift()) {
      try {
        const { lines } = await api.budgets.getBudgetStatus({ user: s.user ?? "", team: s.team ?? "" });
        for (const r of s.rows) r.line = lines.find((l) => l.budgetId === r.b.id);
      } catch (e) {
        for (const r of s.rows) r.lineError = e instanceof Error ? e.message : String(e);
      }
    }
  };
  await Promise.all(Array.from({ length: 6 }, worker));
  return rows;
}

interface Form {
  kind: Kind;
  subject: string;
  /** Editing: the subject's id, which always resolves (an email may be missing). */
  subjectId?: string;
  period: string;
  limit: string;
  preset: string;
  rules: string;
}
const blank: Form = { kind: "org", subject: "", period: "monthly", limit: "", preset: "standard", rules: "" };

function formOf(b: pb.Budget): Form {
  const preset = PRESETS[b.policy] ? b.policy : "custom";
  return {
    kind: kindOf(b),
    subject: b.subject || b.subjectId,
    subjectId: b.subjectId,
    period: b.period,
    limit: microToInput(b.limitMicroUsd),
    preset,
    rules: preset === "custom" ? b.policy : "",
  };
}

function BudgetForm(props: { initial: Form; editing: boolean; onDone: () => void; onCancel: () => void }) {
  const [f, setF] = useState(props.initial);
  const set = (patch: Partial<Form>) => setF((x) => ({ ...x, ...patch }));
  const kind = KINDS.find((k) => k.kind === f.kind)!;
  const save = useAction(async () => {
    const micro = parseUsd(f.limit);
    if (micro === undefined) throw new Error("Enter the limit in US dollars, e.g. 50 or 12.50.");
    if (micro === 0n && !window.confirm("A limit of $0 blocks every request of this scope. Set it?")) return;
    const policy = f.preset === "custom" ? f.rules.trim() : f.preset;
    await api.budgets.setBudget({
      scope: f.kind === "user" ? pb.BudgetScope.USER : f.kind === "org" ? pb.BudgetScope.ORG : pb.BudgetScope.TEAM,
      subject: f.kind === "org" ? "" : f.subjectId || f.subject.trim(),
      memberDefault: f.kind === "member_default",
      period: f.period,
      limitMicroUsd: micro,
      policy,
    });
    props.onDone();
  });
  return (
    <form class="panel" data-testid="budget-form" onSubmit={(e) => { e.preventDefault(); save.go(); }}>
      <h2>{props.editing ? "Change a budget" : "Set a budget"}</h2>
      <p class="ap-note">Setting a budget for the same scope, subject and period replaces it.</p>
      <div class="form-row">
        <Field label="Applies to">
          <select value={f.kind} disabled={props.editing} onChange={(e) => set({ kind: e.currentTarget.value as Kind })}>
            {KINDS.map((k) => <option value={k.kind}>{k.label}</option>)}
          </select>
        </Field>
        {kind.subject && (
          <Field label={kind.subject}>
            <input name="subject" required value={f.subject} disabled={props.editing} onInput={(e) => set({ subject: e.currentTarget.value })} />
          </Field>
        )}
        <Field label="Period (UTC)" hint="Weeks start on Monday.">
          <select name="period" value={f.period} disabled={props.editing} onChange={(e) => set({ period: e.currentTarget.value })}>
            {PERIODS.map((p) => <option value={p}>{p}</option>)}
          </select>
        </Field>
        <Field label="Limit (USD)">
          <input name="limit" inputMode="decimal" required placeholder="100.00" value={f.limit} onInput={(e) => set({ limit: e.currentTarget.value })} />
        </Field>
        <Field label="Policy" hint={PRESETS[f.preset] ?? "Rules PERCENT:ACTION, e.g. 80:notify,100:shape:5,150:block"}>
          <select name="policy" value={f.preset} onChange={(e) => set({ preset: e.currentTarget.value })}>
            {Object.keys(PRESETS).map((p) => <option value={p}>{p}</option>)}
            <option value="custom">custom rules…</option>
          </select>
        </Field>
        {f.preset === "custom" && (
          <Field label="Rules">
            <input name="rules" required placeholder="80:notify,100:shape:5,150:block" value={f.rules} onInput={(e) => set({ rules: e.currentTarget.value })} />
          </Field>
        )}
      </div>
      <ErrorBox error={save.error} />
      <div class="form-row">
        <button class="primary" type="submit" disabled={save.busy}>{save.busy ? "Saving…" : "Save budget"}</button>
        {props.editing && <button type="button" onClick={props.onCancel}>Cancel</button>}
      </div>
    </form>
  );
}

function StatusCheck() {
  const { query } = useRoute();
  const user = query.get("user") ?? "";
  const team = query.get("team") ?? "";
  const [who, setWho] = useState(team ? "team" : "user");
  const [text, setText] = useState(team || user);
  const status = useAsync(
    () => (user || team ? api.budgets.getBudgetStatus({ user, team }) : Promise.resolve(undefined)),
    [user, team],
  );
  const cols: Column<pb.BudgetStatusLine>[] = [
    { title: "Counts", cell: (l) => `${l.scope} ${l.subject}` },
    { title: "Period", cell: (l) => l.period },
    { title: "Spend", num: true, cell: (l) => usd(l.spendMicroUsd) },
    { title: "Limit", num: true, cell: (l) => usd(l.limitMicroUsd) },
    { title: "Used", num: true, cell: (l) => `${l.percent.toFixed(1)}%` },
    { title: "Status", cell: (l) => statusBadge(l.status) },
    { title: "From", cell: (l) => l.source.replace(/_/g, " ") },
    { title: "Policy", cell: (l) => l.policy },
    { title: "Resets", cell: (l) => when(l.resetsAt) },
  ];
  return (
    <section class="panel" aria-labelledby="check-h">
      <h2 id="check-h">Check a user or team</h2>
      <p class="ap-note">Organisation and member defaults apply to each user on their own: see what one user gets here.</p>
      <form
        class="filters"
        onSubmit={(e) => {
          e.preventDefault();
          setQuery({ user: who === "user" ? text.trim() : undefined, team: who === "team" ? text.trim() : undefined });
        }}
      >
        <Field label="Whose">
          <select value={who} onChange={(e) => setWho(e.currentTarget.value)}>
            <option value="user">User (email or id)</option>
            <option value="team">Team pool (name or id)</option>
          </select>
        </Field>
        <Field label={who === "user" ? "User" : "Team"}>
          <input value={text} onInput={(e) => setText(e.currentTarget.value)} required />
        </Field>
        <button type="submit">Check</button>
        {(user || team) && <button type="button" onClick={() => { setText(""); setQuery({ user: undefined, team: undefined }); }}>Clear</button>}
      </form>
      {(user || team) && (
        <Loaded state={status} what="budget status" empty={(d) => !d || d.lines.length === 0} emptyText="No budget applies.">
          {(d) => <Table label="Budget status" columns={cols} rows={d!.lines} />}
        </Loaded>
      )}
    </section>
  );
}

function RecentEvents() {
  const events = useAsync(async () => {
    const { deliveries } = await api.notifications.listDeliveries({ limit: 300 });
    const seen = new Map<string, { d: pb.Delivery; to: string[] }>();
    for (const d of deliveries) {
      if (!d.eventType.startsWith("budget.")) continue;
      const e = seen.get(d.eventId);
      if (e) e.to.push(`${d.destination} (${d.state})`);
      else seen.set(d.eventId, { d, to: [`${d.destination} (${d.state})`] });
    }
    return [...seen.values()].slice(0, 50);
  }, []);
  return (
    <section aria-labelledby="events-h">
      <h2 id="events-h">Recent budget events</h2>
      <p class="ap-note">
        Threshold crossings as sent to your <a href={href("/admin/notifications")}>notification destinations</a> (the API
        exposes budget events only through them). Budget changes are in the{" "}
        <a href={href("/admin/audit", { resource_type: "budget" })}>audit log</a>.
      </p>
      <Loaded state={events} what="budget events" empty={(d) => d.length === 0} emptyText="No budget notification was sent recently (or no destination takes budget events).">
        {(d) => (
          <Table
            label="Recent budget events"
            rows={d}
            columns={[
              { title: "Time", cell: (e) => when(e.d.createdAt) },
              { title: "Event", cell: (e) => statusBadge(e.d.eventType.replace("budget.", "")) },
              { title: "Delivered to", cell: (e) => e.to.join(", ") },
              { title: "Event id", cell: (e) => <code>{e.d.eventId}</code> },
            ]}
          />
        )}
      </Loaded>
    </section>
  );
}

export default function BudgetsPage() {
  const rows = useAsync(loadRows, []);
  const [editing, setEditing] = useState<pb.Budget>();
  const [formKey, setFormKey] = useState(0);
  const remove = useAction(async (b: pb.Budget) => {
    const what = `${kindLabel(kindOf(b)).toLowerCase()} ${b.period} budget${b.subject ? ` of ${b.subject}` : ""}`;
    if (!window.confirm(`Delete the ${what}?`)) return;
    await api.budgets.deleteBudget({ id: b.id });
    rows.reload();
  });
  const done = () => {
    setEditing(undefined);
    setFormKey((k) => k + 1);
    rows.reload();
  };
  const columns: Column<Row>[] = [
    { title: "Scope", cell: (r) => kindLabel(kindOf(r.b)) },
    { title: "Subject", cell: (r) => r.b.subject || (r.b.scope === pb.BudgetScope.ORG ? "everyone" : r.b.subjectId) },
    { title: "Period", cell: (r) => r.b.period },
    { title: "Limit", num: true, cell: (r) => usd(r.b.limitMicroUsd) },
    { title: "Policy", cell: (r) => <span title={PRESETS[r.b.policy]}>{r.b.policy}</span> },
    {
      title: "This period",
      cell: (r) =>
        r.line ? (
          <span>
            {statusBadge(r.line.status)} {usd(r.line.spendMicroUsd)} ({r.line.percent.toFixed(1)}%)
            <br />
            <small>resets {when(r.line.resetsAt)}</small>
          </span>
        ) : r.lineError ? (
          <small class="ap-bad">status unavailable</small>
        ) : (
          <small>per user: check below</small>
        ),
    },
    { title: "Updated", cell: (r) => when(r.b.updatedAt) },
    {
      title: "Actions",
      cell: (r) => (
        <span class="ap-actions">
          <button type="button" aria-label={`Edit budget ${r.b.subject || "organisation"} ${r.b.period}`} onClick={() => { setEditing(r.b); setFormKey((k) => k + 1); }}>Edit</button>
          <button type="button" class="danger" aria-label={`Delete budget ${r.b.subject || "organisation"} ${r.b.period}`} disabled={remove.busy} onClick={() => remove.go(r.b)}>Delete</button>
        </span>
      ),
    },
  ];
  return (
    <Page title="Budgets" actions={<button type="button" onClick={rows.reload}>Refresh</button>}>
      <p class="ap-note">
        Spend caps per UTC calendar period. A user's own budget wins over the strictest member default of their teams, which
        wins over the organisation default; team pools count the requests made with the team's keys.
      </p>
      <ErrorBox error={remove.error} />
      <Loaded state={rows} what="budgets" empty={(d) => d.length === 0} emptyText="No budget is set: spend is not capped.">
        {(d) => <Table label="Budgets" columns={columns} rows={d} rowKey={(r) => r.b.id} />}
      </Loaded>
      <BudgetForm
        key={formKey}
        initial={editing ? formOf(editing) : blank}
        editing={!!editing}
        onDone={done}
        onCancel={() => { setEditing(undefined); setFormKey((k) => k + 1); }}
      />
      <StatusCheck />
      <RecentEvents />
    </Page>
  );
}
