// Teams (admins): the list with each team's budget, creating one, and a
// team's own view (`?team=ID`): settings and limits, members, routing (its
// strategy and ordered endpoints), its budget with status and history.
import { useEffect, useState } from "preact/hooks";
import { api, pb } from "../../api";
import { href, setQuery, useRoute } from "../../router";
import { Empty, ErrorBox, Field, Loaded, Page, Table, num, parseUsd, usd, useAction, useAsync, when, SearchForm } from "../../ui";

const STRATEGIES: { value: pb.RoutingStrategy; label: string }[] = [
  { value: pb.RoutingStrategy.UNSPECIFIED, label: "The organisation's" },
  { value: pb.RoutingStrategy.STICKY, label: "Sticky" },
  { value: pb.RoutingStrategy.FALLBACK, label: "Fallback" },
  { value: pb.RoutingStrategy.ROUND_ROBIN, label: "Round robin" },
  { value: pb.RoutingStrategy.ADAPTIVE, label: "Adaptive" },
];
const strategyName = (s: pb.RoutingStrategy) => STRATEGIES.find((x) => x.value === s)?.label ?? "—";
const PERIODS = ["daily", "weekly", "monthly"];
const POLICIES: { id: string; label: string }[] = [
  { id: "standard", label: "Standard: notify at 80%, block at 100%" },
  { id: "soft", label: "Soft: notify at 80% and 100%, block at 150%" },
  { id: "shaped", label: "Shaped: notify at 80%, slow to 5 rpm at 100%, block at 150%" },
  { id: "custom", label: "Custom rules" },
];

function limits(rpm: number, tpm: number): string {
  if (!rpm && !tpm) return "none";
  return [rpm ? `${num(rpm)} rpm` : "", tpm ? `${num(tpm)} tpm` : ""].filter(Boolean).join(", ");
}

const teamBudgets = (all: pb.Budget[], teamId: string) =>
  all.filter((b) => b.scope === pb.BudgetScope.TEAM && b.subjectId === teamId);

function budgetKind(b: { memberDefault: boolean }): string {
  return b.memberDefault ? "each member" : "team pool";
}

export default function TeamsPage() {
  const route = useRoute();
  const id = route.query.get("team");
  return id ? <TeamDetail id={id} /> : <TeamList />;
}

// ------------------------------------------------------------------ list

function TeamList() {
  const route = useRoute();
  const q = route.query.get("q") ?? "";
  const data = useAsync(async () => {
    const [t, b] = await Promise.all([
      api.teams.listTeams({ page: { pageSize: 500 }, query: q }),
      api.budgets.listBudgets({}).then((r) => r.budgets).catch(() => [] as pb.Budget[]),
    ]);
    return { teams: t.teams, budgets: b, more: t.nextPageToken !== "" };
  }, [q]);
  return (
    <Page title="Teams">
      <CreateTeam />
      <SearchForm label="Search team names" param="q" value={q} button="Search" onSearch={(v) => setQuery({ q: v })}>
      </SearchForm>
      <Loaded state={data} what="teams" empty={(d) => d.teams.length === 0} emptyText={q ? "No team matches." : "No teams yet."}>
        {(d) => (
          <>
            {d.more && <p class="hint">Showing the first 500 teams; narrow the search to see others.</p>}
            <Table
              label="Teams"
              rows={d.teams}
              rowKey={(t) => t.id}
              columns={[
                {
                  title: "Team",
                  cell: (t) => (
                    <>
                      <a href={href("/admin/teams", { team: t.id })}>{t.name}</a>
                      {t.description && <div class="muted">{t.description}</div>}
                    </>
                  ),
                },
                { title: "Members", cell: (t) => num(t.memberIds.length), num: true },
                { title: "Routing", cell: (t) => strategyName(t.routing) },
                { title: "Endpoints", cell: (t) => (t.endpointNames.length ? t.endpointNames.join(" → ") : "all enabled") },
                { title: "Team limits", cell: (t) => limits(t.rpm, t.tpm) },
                {
                  title: "Budget",
                  cell: (t) => {
                    const bs = teamBudgets(d.budgets, t.id);
                    return bs.length === 0
                      ? "none"
                      : bs.map((b) => <div>{usd(b.limitMicroUsd)} {b.period}{b.memberDefault ? " per member" : ""}</div>);
                  },
                },
              ]}
            />
          </>
        )}
      </Loaded>
    </Page>
  );
}

function CreateTeam() {
  const [name, setName] = useState("");
  const [description, setDescription] = useState("");
  const create = useAction(async () => {
    const t = await api.teams.createTeam({ name: name.trim(), description: description.trim() });
    setQuery({ team: t.id, q: undefined });
  });
  return (
    <section class="panel" aria-labelledby="teams-new">
      <h2 id="teams-new">New team</h2>
      <form
        class="form-row"
        data-testid="create-team"
        onSubmit={(e) => {
          e.preventDefault();
          void create.go();
        }}
      >
        <Field label="Name">
          <input name="name" required maxLength={100} value={name} onInput={(e) => setName(e.currentTarget.value)} />
        </Field>
        <Field label="Description (optional)">
          <input name="description" maxLength={1000} value={description} onInput={(e) => setDescription(e.currentTarget.value)} />
        </Field>
        <button type="submit" class="primary" disabled={create.busy}>{create.busy ? "Creating…" : "Create team"}</button>
      </form>
      <ErrorBox error={create.error} />
    </section>
  );
}

// ------------------------------------------------------------------ one team

function TeamDetail(props: { id: string }) {
  const team = useAsync(() => api.teams.getTeam({ id: props.id }), [props.id]);
  const del = useAction(async (t: pb.Team) => {
    await api.teams.deleteTeam({ id: t.id });
    setQuery({ team: undefined });
  });
  return (
    <Page title={team.data ? `Team ${team.data.name}` : "Team"} actions={<a href={href("/admin/teams")}>All teams</a>}>
      <Loaded state={team} what="the team">
        {(t) => (
          <>
            <TeamSettings team={t} onSaved={team.reload} />
            <Members team={t} onChanged={team.reload} />
            <Routing team={t} onSaved={team.reload} />
            <TeamBudget team={t} />
            <section class="panel" aria-labelledby="team-delete">
              <h2 id="team-delete">Delete the team</h2>
              <p>Its memberships and endpoint list go; its keys stay, without a team.</p>
              <button
                type="button"
                class="danger"
                disabled={del.busy}
                onClick={() => window.confirm(`Delete the team ${t.name}? This cannot be undone.`) && del.go(t)}
              >
                Delete team {t.name}
              </button>
              <ErrorBox error={del.error} />
            </section>
          </>
        )}
      </Loaded>
    </Page>
  );
}

function NumberField(props: { label: string; name: string; value: number; set: (v: number) => void; hint?: string }) {
  return (
    <Field label={props.label} hint={props.hint}>
      <input
        name={props.name}
        type="number"
        min={0}
        max={100000000}
        step={1}
        inputMode="numeric"
        value={String(props.value)}
        onInput={(e) => props.set(Math.max(0, Math.floor(Number(e.currentTarget.value) || 0)))}
      />
    </Field>
  );
}

function TeamSettings(props: { team: pb.Team; onSaved: () => void }) {
  const t = props.team;
  const init = () => ({ name: t.name, description: t.description, rpm: t.rpm, tpm: t.tpm, memberRpm: t.memberRpm, memberTpm: t.memberTpm });
  const [f, setF] = useState(init);
  useEffect(() => setF(init()), [t]);
  const [saved, setSaved] = useState(false);
  const save = useAction(async () => {
    setSaved(false);
    await api.teams.updateTeam({ id: t.id, name: f.name.trim(), description: f.description.trim(), rpm: f.rpm, tpm: f.tpm, memberRpm: f.memberRpm, memberTpm: f.memberTpm });
    setSaved(true);
    props.onSaved();
  });
  return (
    <section class="panel" aria-labelledby="team-settings">
      <h2 id="team-settings">Settings and rate limits</h2>
      <form
        class="form-row"
        onSubmit={(e) => {
          e.preventDefault();
          void save.go();
        }}
      >
        <Field label="Name">
          <input name="name" required maxLength={100} value={f.name} onInput={(e) => setF({ ...f, name: e.currentTarget.value })} />
        </Field>
        <Field label="Description">
          <input name="description" maxLength={1000} value={f.description} onInput={(e) => setF({ ...f, description: e.currentTarget.value })} />
        </Field>
        <NumberField label="Team rpm" name="rpm" value={f.rpm} set={(rpm) => setF({ ...f, rpm })} hint="0: unlimited" />
        <NumberField label="Team tpm" name="tpm" value={f.tpm} set={(tpm) => setF({ ...f, tpm })} hint="0: unlimited" />
        <NumberField label="Per member rpm" name="member_rpm" value={f.memberRpm} set={(memberRpm) => setF({ ...f, memberRpm })} hint="0: unlimited" />
        <NumberField label="Per member tpm" name="member_tpm" value={f.memberTpm} set={(memberTpm) => setF({ ...f, memberTpm })} hint="0: unlimited" />
        <button type="submit" class="primary" disabled={save.busy}>Save</button>
      </form>
      <ErrorBox error={save.error} />
      {saved && <p role="status">Saved.</p>}
      <p class="muted">Created {when(t.createdAt)}, changed {when(t.updatedAt)}.</p>
    </section>
  );
}

function Members(props: { team: pb.Team; onChanged: () => void }) {
  const t = props.team;
  const [email, setEmail] = useState("");
  const act = useAction(async (run: () => Promise<unknown>) => {
    await run();
    props.onChanged();
  });
  const rows = t.memberIds.map((id, i) => ({ id, email: t.memberEmails[i] || "" }));
  return (
    <section class="panel" aria-labelledby="team-members">
      <h2 id="team-members">Members ({num(rows.length)})</h2>
      <form
        class="form-row"
        data-testid="add-member"
        onSubmit={(e) => {
          e.preventDefault();
          void act.go(async () => {
            await api.teams.addMember({ teamId: t.id, userId: email.trim() });
            setEmail("");
          });
        }}
      >
        <Field label="Add by email">
          <input name="email" type="email" required value={email} onInput={(e) => setEmail(e.currentTarget.value)} />
        </Field>
        <button type="submit" disabled={act.busy}>Add member</button>
      </form>
      <ErrorBox error={act.error} />
      {rows.length === 0 ? (
        <Empty>No members yet.</Empty>
      ) : (
        <Table
          label="Members"
          rows={rows}
          rowKey={(m) => m.id}
          columns={[
            { title: "Member", cell: (m) => <a href={href("/admin/users", { q: m.email || undefined })}>{m.email || m.id}</a> },
            {
              title: "Actions",
              cell: (m) => (
                <button
                  type="button"
                  class="danger"
                  aria-label={`Remove ${m.email || m.id}`}
                  disabled={act.busy}
                  onClick={() =>
                    window.confirm(`Remove ${m.email || m.id} from ${t.name}?`) &&
                    act.go(() => api.teams.removeMember({ teamId: t.id, userId: m.id }))
                  }
                >
                  Remove
                </button>
              ),
            },
          ]}
        />
      )}
    </section>
  );
}

function Routing(props: { team: pb.Team; onSaved: () => void }) {
  const t = props.team;
  const endpoints = useAsync(() => api.endpoints.listEndpoints({ page: { pageSize: 500 } }).then((r) => r.endpoints), []);
  const [strategy, setStrategy] = useState(t.routing);
  const [list, setList] = useState<string[]>(t.endpointIds);
  const [pick, setPick] = useState("");
  useEffect(() => {
    setStrategy(t.routing);
    setList(t.endpointIds);
  }, [t]);
  const [saved, setSaved] = useState(false);
  const save = useAction(async () => {
    setSaved(false);
    await api.teams.updateTeam({ id: t.id, routing: strategy, setEndpoints: true, endpoints: list });
    setSaved(true);
    props.onSaved();
  });
  const nameOf = (id: string) =>
    endpoints.data?.find((e) => e.id === id)?.name ?? t.endpointNames[t.endpointIds.indexOf(id)] ?? id;
  const move = (i: number, d: number) => {
    const l = [...list];
    [l[i], l[i + d]] = [l[i + d], l[i]];
    setList(l);
  };
  const available = (endpoints.data ?? []).filter((e) => !list.includes(e.id));
  return (
    <section class="panel" aria-labelledby="team-routing">
      <h2 id="team-routing">Routing</h2>
      <form
        onSubmit={(e) => {
          e.preventDefault();
          void save.go();
        }}
      >
        <div class="form-row">
          <Field label="Strategy" hint="Which endpoint a request tries first; the others follow as failover.">
            <select name="routing" value={String(strategy)} onChange={(e) => setStrategy(Number(e.currentTarget.value) as pb.RoutingStrategy)}>
              {STRATEGIES.map((s) => <option value={String(s.value)}>{s.label}</option>)}
            </select>
          </Field>
        </div>
        <h3>Endpoints, in order</h3>
        {list.length === 0 ? (
          <p class="muted">None listed: the team may use every enabled endpoint, by priority.</p>
        ) : (
          <ol class="ordered">
            {list.map((id, i) => (
              <li>
                <span>{nameOf(id)}</span>
                <button type="button" aria-label={`Move ${nameOf(id)} up`} disabled={i === 0} onClick={() => move(i, -1)}>↑</button>
                <button type="button" aria-label={`Move ${nameOf(id)} down`} disabled={i === list.length - 1} onClick={() => move(i, 1)}>↓</button>
                <button type="button" aria-label={`Take ${nameOf(id)} off the list`} onClick={() => setList(list.filter((x) => x !== id))}>Remove</button>
              </li>
            ))}
          </ol>
        )}
        <ErrorBox error={endpoints.error} onRetry={endpoints.reload} />
        {available.length > 0 && (
          <div class="form-row">
            <Field label="Add an endpoint">
              <select value={pick} onChange={(e) => setPick(e.currentTarget.value)}>
                <option value="">Choose…</option>
                {available.map((e) => (
                  <option value={e.id}>{e.name} ({e.region}{e.enabled ? "" : ", disabled"})</option>
                ))}
              </select>
            </Field>
            <button
              type="button"
              disabled={!pick}
              onClick={() => {
                setList([...list, pick]);
                setPick("");
              }}
            >
              Add to the list
            </button>
          </div>
        )}
        <p>
          <button type="submit" class="primary" disabled={save.busy}>Save routing</button>
        </p>
      </form>
      <ErrorBox error={save.error} />
      {saved && <p role="status">Routing saved.</p>}
    </section>
  );
}

// ------------------------------------------------------------------ budget

interface BudgetChange {
  at: string;
  action: string;
  actor: string;
  period: string;
  memberDefault: boolean;
  limit?: number;
}

/** The audit log's budget changes of this team (set and delete), newest first. */
async function budgetChanges(teamId: string): Promise<BudgetChange[]> {
  const r = await api.audit.listAudit({ resourceType: "budget", page: { pageSize: 200 } });
  const out: BudgetChange[] = [];
  for (const e of r.entries) {
    let row: { subject_id?: string; scope?: string; period?: string; member_default?: boolean; limit_micro_usd?: number } = {};
    try {
      row = JSON.parse(e.afterJson || e.beforeJson || "{}");
    } catch {
      continue;
    }
    if (row.scope !== "team" || row.subject_id !== teamId) continue;
    out.push({
      at: e.at,
      action: e.action,
      actor: e.actorEmail || e.actor,
      period: row.period ?? "",
      memberDefault: !!row.member_default,
      limit: e.afterJson ? row.limit_micro_usd : undefined,
    });
  }
  return out.slice(0, 20);
}

function statusBadge(s: string) {
  const cls = s === "ok" ? "good" : s === "blocked" || s === "shaped" ? "bad" : "";
  return <span class={`badge ${cls}`}>{s}</span>;
}

function TeamBudget(props: { team: pb.Team }) {
  const t = props.team;
  const budgets = useAsync(() => api.budgets.listBudgets({}).then((r) => teamBudgets(r.budgets, t.id)), [t.id]);
  const status = useAsync(() => api.budgets.getBudgetStatus({ team: t.id }).then((r) => r.lines), [t.id]);
  const changes = useAsync(() => budgetChanges(t.id), [t.id]);
  const reload = () => {
    budgets.reload();
    status.reload();
    changes.reload();
  };
  const [kind, setKind] = useState("pool");
  const [period, setPeriod] = useState("monthly");
  const [amount, setAmount] = useState("");
  const [policy, setPolicy] = useState("standard");
  const [rules, setRules] = useState("");
  const [amountError, setAmountError] = useState<string>();
  const set = useAction(async () => {
    const micro = parseUsd(amount);
    if (micro === undefined) {
      setAmountError("Give an amount in dollars, such as 250 or 99.50.");
      return;
    }
    setAmountError(undefined);
    if (micro === 0n && !window.confirm("A limit of $0 blocks every request of the team. Set it?")) return;
    await api.budgets.setBudget({
      scope: pb.BudgetScope.TEAM,
      subject: t.id,
      memberDefault: kind === "member",
      period,
      limitMicroUsd: micro,
      policy: policy === "custom" ? rules.trim() : policy,
    });
    setAmount("");
    reload();
  });
  const del = useAction(async (b: pb.Budget) => {
    await api.budgets.deleteBudget({ id: b.id });
    reload();
  });

  return (
    <section class="panel" aria-labelledby="team-budget" data-testid="team-budget">
      <h2 id="team-budget">Budget</h2>
      <p class="muted">
        The team pool caps the spend of the team's keys together; "each member" is the default cap of every member who has no
        budget of their own. Periods are UTC calendar days, weeks (from Monday) and months.
      </p>
      <ErrorBox error={del.error} />
      <Loaded state={budgets} what="budgets" empty={(d) => d.length === 0} emptyText="This team has no budget.">
        {(rows) => (
          <Table
            label="The team's budgets"
            rows={rows}
            rowKey={(b) => b.id}
            columns={[
              { title: "Applies to", cell: budgetKind },
              { title: "Period", cell: (b) => b.period },
              { title: "Limit", cell: (b) => <span data-testid="budget-amount">{usd(b.limitMicroUsd)}</span>, num: true },
              { title: "Policy", cell: (b) => <code>{b.policy}</code> },
              { title: "Changed", cell: (b) => when(b.updatedAt) },
              {
                title: "Actions",
                cell: (b) => (
                  <button
                    type="button"
                    class="danger"
                    aria-label={`Delete the ${b.period} budget (${budgetKind(b)})`}
                    disabled={del.busy}
                    onClick={() => window.confirm(`Delete the ${b.period} budget of ${t.name} (${budgetKind(b)})?`) && del.go(b)}
                  >
                    Delete
                  </button>
                ),
              },
            ]}
          />
        )}
      </Loaded>

      <h3>Set a budget</h3>
      <form
        class="form-row"
        data-testid="budget-form"
        onSubmit={(e) => {
          e.preventDefault();
          void set.go();
        }}
      >
        <Field label="Applies to">
          <select name="kind" value={kind} onChange={(e) => setKind(e.currentTarget.value)}>
            <option value="pool">The team pool</option>
            <option value="member">Each member (default)</option>
          </select>
        </Field>
        <Field label="Period">
          <select name="period" value={period} onChange={(e) => setPeriod(e.currentTarget.value)}>
            {PERIODS.map((p) => <option value={p}>{p}</option>)}
          </select>
        </Field>
        <Field label="Limit (USD)" hint="Replaces the budget of the same kind and period.">
          <input
            name="amount"
            required
            inputMode="decimal"
            placeholder="250.00"
            value={amount}
            aria-invalid={amountError ? true : undefined}
            onInput={(e) => setAmount(e.currentTarget.value)}
          />
        </Field>
        <Field label="Policy">
          <select name="policy" value={policy} onChange={(e) => setPolicy(e.currentTarget.value)}>
            {POLICIES.map((p) => <option value={p.id}>{p.label}</option>)}
          </select>
        </Field>
        {policy === "custom" && (
          <Field label="Rules" hint="PERCENT:ACTION, ascending; actions notify, shape:RPM, block (last).">
            <input name="rules" required placeholder="80:notify,100:shape:5,150:block" value={rules} onInput={(e) => setRules(e.currentTarget.value)} />
          </Field>
        )}
        <button type="submit" class="primary" disabled={set.busy}>{set.busy ? "Saving…" : "Set budget"}</button>
      </form>
      <ErrorBox error={amountError ?? set.error} />

      <h3>This period</h3>
      <Loaded state={status} what="budget status" empty={(d) => d.length === 0} emptyText="No budget applies to this team's pool.">
        {(lines) => (
          <Table
            label="Budget status"
            rows={lines}
            rowKey={(l) => l.budgetId + l.period}
            columns={[
              { title: "Period", cell: (l) => l.period },
              { title: "Spent", cell: (l) => usd(l.spendMicroUsd), num: true },
              { title: "Limit", cell: (l) => usd(l.limitMicroUsd), num: true },
              { title: "Used", cell: (l) => <meter min={0} max={100} value={Math.min(l.percent, 100)} aria-label={`${l.percent}%`}>{l.percent}%</meter>, num: false },
              { title: "%", cell: (l) => `${l.percent.toFixed(1)}%`, num: true },
              { title: "Status", cell: (l) => statusBadge(l.status) },
              { title: "Resets", cell: (l) => when(l.resetsAt) },
            ]}
          />
        )}
      </Loaded>

      <h3>Recent budget changes</h3>
      <Loaded state={changes} what="budget changes" empty={(d) => d.length === 0} emptyText="No changes recorded for this team's budgets.">
        {(rows) => (
          <Table
            label="Recent budget changes"
            rows={rows}
            columns={[
              { title: "When", cell: (c) => when(c.at) },
              { title: "Change", cell: (c) => c.action },
              { title: "Budget", cell: (c) => `${c.period}, ${budgetKind(c)}` },
              { title: "Limit", cell: (c) => (c.limit === undefined ? "—" : usd(c.limit)), num: true },
              { title: "By", cell: (c) => c.actor },
            ]}
          />
        )}
      </Loaded>
    </section>
  );
}
