// Bedrock endpoints: each region/account with its credentials, routing
// weight and the health the data planes report; create, change, delete.
// A Bedrock API key is write-only: the API says only whether one is stored.
import { useEffect, useRef, useState } from "preact/hooks";
import { api, pb } from "../../api";
import { href, setQuery, useRoute } from "../../router";
import { ErrorBox, Field, Loaded, Page, Table, num, useAction, useAsync, when, type Column } from "../../ui";

type Cred = "default" | "role" | "key";
type Scope = "geo" | "global" | "regional" | "explicit";
const WINDOWS: [string, string][] = [["300", "5 minutes"], ["900", "15 minutes"], ["3600", "1 hour"], ["86400", "24 hours"]];

interface Form {
  name: string;
  region: string;
  endpointUrl: string;
  cred: Cred;
  roleArn: string;
  externalId: string;
  perUserSessions: boolean;
  apiKey: string;
  priority: string;
  weight: string;
  scope: Scope;
  scopePrefix: string;
  models: string;
  profileArns: string;
  enabled: boolean;
}

const blank: Form = {
  name: "", region: "us-east-1", endpointUrl: "", cred: "default", roleArn: "", externalId: "", perUserSessions: false,
  apiKey: "", priority: "0", weight: "1", scope: "geo", scopePrefix: "", models: "", profileArns: "", enabled: true,
};

function credOf(e: pb.Endpoint): Cred {
  if (e.credentials === pb.EndpointCredentials.ASSUME_ROLE) return "role";
  if (e.credentials === pb.EndpointCredentials.API_KEY) return "key";
  return "default";
}

function scopeOf(e: pb.Endpoint): Scope {
  switch (e.scope) {
    case pb.InferenceScope.GLOBAL: return "global";
    case pb.InferenceScope.REGIONAL: return "regional";
    case pb.InferenceScope.EXPLICIT: return "explicit";
    default: return "geo";
  }
}
const SCOPE_ENUM: Record<Scope, pb.InferenceScope> = {
  geo: pb.InferenceScope.UNSPECIFIED, global: pb.InferenceScope.GLOBAL,
  regional: pb.InferenceScope.REGIONAL, explicit: pb.InferenceScope.EXPLICIT,
};

const profileText = (m: Record<string, string>) => Object.entries(m).sort().map(([k, v]) => `${k}=${v}`).join("\n");

function formOf(e: pb.Endpoint): Form {
  return {
    name: e.name, region: e.region, endpointUrl: e.endpointUrl, cred: credOf(e), roleArn: e.roleArn, externalId: e.externalId,
    perUserSessions: e.perUserSessions, apiKey: "", priority: String(e.priority), weight: String(e.weight || 1),
    scope: scopeOf(e), scopePrefix: e.scopePrefix, models: e.models.join(", "), profileArns: profileText(e.profileArns),
    enabled: e.enabled,
  };
}

const list = (s: string) => s.split(/[,\s]+/).map((x) => x.trim()).filter(Boolean);

function parseProfiles(s: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const line of s.split("\n").map((l) => l.trim()).filter(Boolean)) {
    const i = line.indexOf("=");
    const m = line.slice(0, i).trim();
    const arn = line.slice(i + 1).trim();
    if (i < 1 || !m || !arn) throw new Error(`Profile ARNs: "${line}" is not MODEL=ARN.`);
    if (m in out) throw new Error(`Profile ARNs: ${m} is given twice.`);
    out[m] = arn;
  }
  return out;
}

function ints(f: Form): { priority: number; weight: number } {
  const priority = Number(f.priority);
  const weight = Number(f.weight);
  if (!/^-?\d+$/.test(f.priority.trim()) || Math.abs(priority) > 2 ** 31 - 1) throw new Error("Priority: a whole number.");
  if (!/^\d+$/.test(f.weight.trim()) || weight < 1 || weight > 1000) throw new Error("Weight: a whole number from 1 to 1000.");
  return { priority, weight };
}

function createRequest(f: Form) {
  const { priority, weight } = ints(f);
  if (f.cred === "key" && !f.apiKey) throw new Error("Enter the Bedrock API key.");
  if (f.cred === "role" && !f.roleArn.trim()) throw new Error("Enter the role ARN to assume.");
  return {
    name: f.name.trim(), region: f.region.trim(), endpointUrl: f.endpointUrl.trim(), enabled: f.enabled, priority, weight,
    roleArn: f.cred === "role" ? f.roleArn.trim() : "",
    externalId: f.cred === "role" ? f.externalId.trim() : "",
    perUserSessions: f.cred === "role" && f.perUserSessions,
    apiKey: f.cred === "key" ? f.apiKey : "",
    scope: SCOPE_ENUM[f.scope], scopePrefix: f.scope === "explicit" ? f.scopePrefix.trim() : "",
    models: list(f.models), profileArns: parseProfiles(f.profileArns),
  };
}

/** Only what changed, so that an untouched endpoint keeps its client and circuit. */
function updateRequest(e: pb.Endpoint, f: Form) {
  const o = formOf(e);
  const { priority, weight } = ints(f);
  const ch = <T,>(a: T, b: T) => (a === b ? undefined : b);
  const role = f.cred === "role";
  if (role && !f.roleArn.trim()) throw new Error("Enter the role ARN to assume.");
  if (f.cred === "key" && !f.apiKey && !e.hasApiKey) throw new Error("Enter the Bedrock API key.");
  const models = list(f.models);
  const profiles = parseProfiles(f.profileArns);
  const scopePrefix = f.scope === "explicit" ? f.scopePrefix.trim() : "";
  return {
    id: e.id,
    name: ch(o.name, f.name.trim()),
    region: ch(o.region, f.region.trim()),
    endpointUrl: ch(o.endpointUrl, f.endpointUrl.trim()),
    enabled: ch(o.enabled, f.enabled),
    priority: ch(e.priority, priority),
    weight: ch(e.weight || 1, weight),
    roleArn: ch(o.roleArn, role ? f.roleArn.trim() : ""),
    externalId: ch(o.externalId, role ? f.externalId.trim() : ""),
    perUserSessions: ch(o.perUserSessions, role && f.perUserSessions),
    // A typed key replaces the stored one; leaving key mode removes it.
    apiKey: f.cred === "key" ? f.apiKey || undefined : e.hasApiKey ? "" : undefined,
    scope: o.scope === f.scope && o.scopePrefix === scopePrefix ? undefined : SCOPE_ENUM[f.scope],
    scopePrefix: o.scope === f.scope && o.scopePrefix === scopePrefix ? undefined : scopePrefix,
    setModels: models.join(",") !== e.models.join(","),
    models,
    setProfileArns: profileText(profiles) !== o.profileArns,
    profileArns: profiles,
  };
}

function EndpointForm(props: { endpoint?: pb.Endpoint; onDone: () => void; onCancel: () => void }) {
  const e = props.endpoint;
  const [f, setF] = useState<Form>(e ? formOf(e) : blank);
  const set = (p: Partial<Form>) => setF((x) => ({ ...x, ...p }));
  const ref = useRef<HTMLFormElement>(null);
  useEffect(() => {
    if (e) ref.current?.querySelector<HTMLInputElement>("input")?.focus();
  }, []);
  const save = useAction(async () => {
    if (e) await api.endpoints.updateEndpoint(updateRequest(e, f));
    else await api.endpoints.createEndpoint(createRequest(f));
    props.onDone();
  });
  const text = (k: keyof Form, label: string, hint?: string, extra?: Record<string, unknown>) => (
    <Field label={label} hint={hint}>
      <input name={k} value={f[k] as string} onInput={(ev) => set({ [k]: ev.currentTarget.value })} {...extra} />
    </Field>
  );
  return (
    <form ref={ref} class="panel" data-testid="endpoint-form" onSubmit={(ev) => { ev.preventDefault(); save.go(); }}>
      <h2>{e ? `Change endpoint ${e.name}` : "Add an endpoint"}</h2>
      <div class="form-row">
        {text("name", "Name", undefined, { required: true })}
        {text("region", "AWS region", "e.g. us-east-1", { required: true })}
        {text("endpointUrl", "Endpoint URL", "Optional: a VPC endpoint, FIPS host…; https, or http to loopback.", { type: "url", placeholder: "https://…" })}
        {text("priority", "Priority", "Lower runs first (fallback order).", { inputMode: "numeric" })}
        {text("weight", "Weight", "1 to 1000: its share of traffic.", { inputMode: "numeric" })}
      </div>
      <fieldset class="ap-fieldset">
        <legend>Credentials</legend>
        <div class="form-row">
          {([["default", "The data planes' default AWS chain"], ["role", "Assume an IAM role"], ["key", "A Bedrock API key"]] as [Cred, string][]).map(([v, l]) => (
            <label class="ap-check">
              <input type="radio" name="cred" value={v} checked={f.cred === v} onChange={() => set({ cred: v })} /> {l}
            </label>
          ))}
        </div>
        {f.cred === "role" && (
          <div class="form-row">
            {text("roleArn", "Role ARN", undefined, { required: true, placeholder: "arn:aws:iam::123456789012:role/ccag-bedrock" })}
            {text("externalId", "External id", "Optional, as the role's trust policy asks.")}
            <label class="ap-check">
              <input type="checkbox" checked={f.perUserSessions} onChange={(ev) => set({ perUserSessions: ev.currentTarget.checked })} />
              One STS session per user (CloudTrail names each caller)
            </label>
          </div>
        )}
        {f.cred === "key" && (
          <div class="form-row">
            <Field label="Bedrock API key" hint={e?.hasApiKey ? "A key is stored. Leave empty to keep it; type a new one to replace it." : "Stored sealed and never shown again."}>
              <input name="apiKey" type="password" autoComplete="off" required={!e?.hasApiKey} value={f.apiKey} onInput={(ev) => set({ apiKey: ev.currentTarget.value })} />
            </Field>
          </div>
        )}
        {e && e.hasApiKey && f.cred !== "key" && <p class="ap-note">Saving removes the stored API key.</p>}
      </fieldset>
      <div class="form-row">
        <Field label="Inference profiles" hint="Which profile ids the model names resolve to.">
          <select name="scope" value={f.scope} onChange={(ev) => set({ scope: ev.currentTarget.value as Scope })}>
            <option value="geo">geo: the region's (or routing.geo)</option>
            <option value="global">global</option>
            <option value="regional">regional: foundation model ids</option>
            <option value="explicit">a prefix…</option>
          </select>
        </Field>
        {f.scope === "explicit" && text("scopePrefix", "Prefix", "us, eu, apac, jp, au or us-gov", { required: true })}
        {text("models", "Models", "Anthropic model ids, comma-separated; empty: every model.", { placeholder: "claude-sonnet-4-5-20250929, …" })}
        <label class="ap-check">
          <input type="checkbox" checked={f.enabled} onChange={(ev) => set({ enabled: ev.currentTarget.checked })} /> Enabled
        </label>
      </div>
      <Field label="Application inference profiles" hint="One MODEL=ARN per line; empty: none.">
        <textarea name="profileArns" value={f.profileArns} onInput={(ev) => set({ profileArns: ev.currentTarget.value })} />
      </Field>
      <ErrorBox error={save.error} />
      <div class="form-row">
        <button class="primary" type="submit" disabled={save.busy}>{save.busy ? "Saving…" : e ? "Save changes" : "Add endpoint"}</button>
        {e && <button type="button" onClick={props.onCancel}>Cancel</button>}
      </div>
    </form>
  );
}

function circuit(s?: pb.EndpointStats) {
  switch (s?.circuit) {
    case pb.CircuitState.CLOSED: return <span class="badge good">healthy</span>;
    case pb.CircuitState.OPEN: return <span class="badge bad">circuit open</span>;
    case pb.CircuitState.HALF_OPEN: return <span class="badge bad">half-open (probing)</span>;
    default: return <span class="badge">no reports</span>;
  }
}

function credText(e: pb.Endpoint) {
  switch (credOf(e)) {
    case "role": return <span>role <code>{e.roleArn}</code>{e.externalId && " (external id)"}{e.perUserSessions && ", per-user sessions"}</span>;
    case "key": return <span>API key {e.hasApiKey ? "stored" : <span class="ap-bad">missing</span>}</span>;
    default: return "default chain";
  }
}

export default function EndpointsPage() {
  const { query } = useRoute();
  const window_ = query.get("window") || "900";
  const eps = useAsync(
    () => api.endpoints.listEndpoints({ page: { pageSize: 500 }, statsWindowSecs: Number(window_) || 900 }),
    [window_],
  );
  const [editing, setEditing] = useState<pb.Endpoint>();
  const [formKey, setFormKey] = useState(0);
  const reset = () => { setEditing(undefined); setFormKey((k) => k + 1); };
  const remove = useAction(async (e: pb.Endpoint) => {
    if (!window.confirm(`Delete endpoint ${e.name}? It leaves every team's list.`)) return;
    await api.endpoints.deleteEndpoint({ id: e.id });
    if (editing?.id === e.id) reset();
    eps.reload();
  });
  const columns: Column<pb.Endpoint>[] = [
    { title: "Name", cell: (e) => <span><strong>{e.name}</strong>{!e.enabled && <> <span class="badge">disabled</span></>}</span> },
    { title: "Region", cell: (e) => <span>{e.region}{e.endpointUrl && <><br /><small>{e.endpointUrl}</small></>}</span> },
    { title: "Priority", num: true, cell: (e) => e.priority },
    { title: "Weight", num: true, cell: (e) => e.weight || 1 },
    { title: "Credentials", cell: credText },
    { title: "Profiles", cell: (e) => <span>{scopeOf(e) === "explicit" ? e.scopePrefix : scopeOf(e)}{Object.keys(e.profileArns).length > 0 && <><br /><small>{Object.keys(e.profileArns).length} application profile(s)</small></>}</span> },
    { title: "Models", cell: (e) => (e.models.length ? e.models.join(", ") : "every model") },
    { title: "Health", cell: (e) => <span>{circuit(e.stats)}{e.stats?.reportedAt && <><br /><small>reported {when(e.stats.reportedAt)}</small></>}</span> },
    { title: "Requests", num: true, cell: (e) => num(e.stats?.requests ?? 0n) },
    { title: "Throttles", num: true, cell: (e) => num(e.stats?.throttles ?? 0n) },
    { title: "Errors", num: true, cell: (e) => num(e.stats?.errors ?? 0n) },
    { title: "TTFB p50 / p99", num: true, cell: (e) => (e.stats?.p50Ms ? `${num(e.stats.p50Ms)} / ${num(e.stats.p99Ms)} ms` : "—") },
    {
      title: "Actions",
      cell: (e) => (
        <span class="ap-actions">
          <button type="button" aria-label={`Edit ${e.name}`} onClick={() => { setEditing(e); setFormKey((k) => k + 1); }}>Edit</button>
          <button type="button" class="danger" aria-label={`Delete ${e.name}`} disabled={remove.busy} onClick={() => remove.go(e)}>Delete</button>
        </span>
      ),
    },
  ];
  return (
    <Page title="Endpoints" actions={<button type="button" onClick={eps.reload}>Refresh</button>}>
      <p class="ap-note">
        Bedrock endpoints requests are spread over (see the <code>routing.strategy</code> <a href={href("/admin/settings")}>setting</a>). With none, the
        data planes use their own AWS environment.
      </p>
      <div class="filters">
        <Field label="Health over the last">
          <select value={window_} onChange={(e) => setQuery({ window: e.currentTarget.value === "900" ? undefined : e.currentTarget.value })}>
            {WINDOWS.map(([v, l]) => <option value={v}>{l}</option>)}
          </select>
        </Field>
      </div>
      <ErrorBox error={remove.error} />
      <Loaded state={eps} what="endpoints" empty={(d) => d.endpoints.length === 0} emptyText="No endpoint is configured: the data planes call Bedrock with their own AWS credentials and region.">
        {(d) => <Table label="Endpoints" columns={columns} rows={d.endpoints} rowKey={(e) => e.id} />}
      </Loaded>
      <EndpointForm key={formKey} endpoint={editing} onDone={() => { reset(); eps.reload(); }} onCancel={reset} />
    </Page>
  );
}
