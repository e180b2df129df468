// Settings: the gateway's typed settings (SettingsService) and web search
// (SearchService: the mode, and the organisation's provider) on one page.
import { useEffect, useRef, useState } from "preact/hooks";
import { api, describe, pb } from "../../api";
import { ErrorBox, Field, Loaded, Page, Table, useAction, useAsync, when, type Column } from "../../ui";

// The control plane's registry (controlplane/src/gateway_settings.rs); it
// refuses any other key, and says what a key takes.
const KNOWN: [string, string][] = [
  ["dataplane.max_body_bytes", "Largest request body the data plane accepts, in bytes (1024 to 25,000,000)."],
  ["dataplane.first_byte_timeout_ms", "How long to wait for Bedrock's first byte (ms)."],
  ["dataplane.stream_idle_timeout_ms", "Longest silence inside a stream (ms)."],
  ["dataplane.max_stream_duration_ms", "Longest a stream may last (ms, from 1000)."],
  ["dataplane.ping_interval_ms", "Interval of SSE pings to the client (ms, up to 3,600,000)."],
  ["dataplane.request_timeout_ms", "Deadline of a non-streaming request (ms)."],
  ["dataplane.extra_betas", "Betas forwarded to Bedrock on top of the built-in allow-list, comma-separated."],
  ["routing.geo", "Forces the inference-profile geo: global, us, eu, apac, jp, au or us-gov."],
  ["routing.strategy", "How requests spread over the endpoints, for teams that set none: fallback, round-robin, sticky (default) or adaptive."],
  ["routing.max_attempts", "Endpoints a request may try before its first byte, 1 to 10 (default 3)."],
  ["routing.attempt_timeout_ms", "How long one attempt waits for its first byte before the next endpoint (default: the whole first-byte timeout)."],
  ["routing.breaker_failures", "Consecutive failures that open an endpoint's circuit, 1 to 100 (default 5)."],
  ["routing.breaker_cooldown_ms", "How long an open circuit waits before a probe (ms, default 30000)."],
  ["scim.revoke_keys_on_deprovision", "true: SCIM deactivation or deletion also revokes the user's keys (default false)."],
];
const about = (k: string) => KNOWN.find(([key]) => key === k)?.[1] ?? "";

interface Row { key: string; setting?: pb.Setting }

async function loadSettings(): Promise<Row[]> {
  const stored: pb.Setting[] = [];
  let pageToken = "";
  do {
    const r = await api.settings.listSettings({ page: { pageSize: 500, pageToken } });
    stored.push(...r.settings);
    pageToken = r.nextPageToken;
  } while (pageToken);
  const rows: Row[] = KNOWN.map(([key]) => ({ key, setting: stored.find((s) => s.key === key) }));
  for (const s of stored) if (!KNOWN.some(([k]) => k === s.key)) rows.push({ key: s.key, setting: s });
  return rows;
}

function SettingForm(props: { initial?: Row; onDone: () => void; onCancel: () => void }) {
  const [key, setKey] = useState(props.initial?.key ?? "");
  const [value, setValue] = useState(props.initial?.setting?.value ?? "");
  const ref = useRef<HTMLFormElement>(null);
  useEffect(() => {
    if (props.initial) {
      ref.current?.scrollIntoView({ block: "nearest" });
      ref.current?.querySelector<HTMLInputElement>("input[name=value]")?.focus();
    }
  }, []);
  const save = useAction(async () => {
    await api.settings.setSetting({ key: key.trim(), value });
    props.onDone();
  });
  return (
    <form ref={ref} class="panel" data-testid="setting-form" onSubmit={(e) => { e.preventDefault(); save.go(); }}>
      <h2>Set a setting</h2>
      <div class="form-row">
        <Field label="Key" hint={about(key.trim()) || "One of the keys above."}>
          <input name="key" required list="setting-keys" value={key} onInput={(e) => setKey(e.currentTarget.value)} />
        </Field>
        <datalist id="setting-keys">{KNOWN.map(([k]) => <option value={k} />)}</datalist>
        <Field label="Value">
          <input name="value" required value={value} onInput={(e) => setValue(e.currentTarget.value)} />
        </Field>
      </div>
      <ErrorBox error={save.error} />
      <div class="form-row">
        <button class="primary" type="submit" disabled={save.busy}>{save.busy ? "Saving…" : "Save setting"}</button>
        {props.initial && <button type="button" onClick={props.onCancel}>Cancel</button>}
      </div>
    </form>
  );
}

function GatewaySettings() {
  const rows = useAsync(loadSettings, []);
  const [editing, setEditing] = useState<Row>();
  const [formKey, setFormKey] = useState(0);
  const open = (r?: Row) => { setEditing(r); setFormKey((k) => k + 1); };
  const reset = useAction(async (r: Row) => {
    if (!window.confirm(`Reset ${r.key} to its default?`)) return;
    await api.settings.deleteSetting({ key: r.key });
    rows.reload();
  });
  const columns: Column<Row>[] = [
    { title: "Key", cell: (r) => <code>{r.key}</code> },
    { title: "Value", cell: (r) => (r.setting ? <code class="ap-wrap">{r.setting.value}</code> : <span class="badge">default</span>) },
    { title: "Meaning", cell: (r) => <small>{about(r.key) || "not a setting this control plane knows"}</small> },
    { title: "Updated", cell: (r) => (r.setting ? when(r.setting.updatedAt) : "—") },
    {
      title: "Actions",
      cell: (r) => (
        <span class="ap-actions">
          <button type="button" aria-label={`Set ${r.key}`} onClick={() => open(r)}>{r.setting ? "Change" : "Set"}</button>
          {r.setting && <button type="button" class="danger" aria-label={`Reset ${r.key}`} disabled={reset.busy} onClick={() => reset.go(r)}>Reset</button>}
        </span>
      ),
    },
  ];
  return (
    <section aria-labelledby="gw-h">
      <h2 id="gw-h">Gateway settings</h2>
      <p class="ap-note">Sent to every data plane with its configuration. A value is checked and stored in canonical form.</p>
      <ErrorBox error={reset.error} />
      <Loaded state={rows} what="settings">
        {(d) => <Table label="Gateway settings" columns={columns} rows={d} rowKey={(r) => r.key} />}
      </Loaded>
      <SettingForm key={formKey} initial={editing} onDone={() => { open(); rows.reload(); }} onCancel={() => open()} />
    </section>
  );
}

const MODES: [string, string][] = [
  ["enabled", "Each user's own provider, else the organisation's, else DuckDuckGo."],
  ["global", "The organisation's provider for everyone (needs one set)."],
  ["disabled", "Web search tools are removed from requests."],
];
const KINDS = ["duckduckgo", "tavily", "serper", "brave", "searxng", "custom"];

function ProviderForm(props: { current?: pb.SearchProviderInfo; onDone: () => void }) {
  const c = props.current;
  const [kind, setKind] = useState(c?.kind || "duckduckgo");
  const [url, setUrl] = useState(c?.url ?? "");
  const [key, setKey] = useState("");
  const [max, setMax] = useState(c?.maxResults ? String(c.maxResults) : "");
  const save = useAction(async () => {
    const maxResults = max.trim() ? Number(max) : 0;
    if (!Number.isInteger(maxResults) || maxResults < 0 || maxResults > 20) throw new Error("Results per search: 1 to 20.");
    await api.search.setSearchProvider({ user: "", kind, url: url.trim(), apiKey: key, maxResults });
    setKey("");
    props.onDone();
  });
  return (
    <form class="form-row" onSubmit={(e) => { e.preventDefault(); save.go(); }}>
      <Field label="Provider">
        <select value={kind} onChange={(e) => setKind(e.currentTarget.value)}>{KINDS.map((k) => <option value={k}>{k}</option>)}</select>
      </Field>
      <Field label="URL" hint="Proxies, self-hosted SearXNG, custom.">
        <input type="url" value={url} onInput={(e) => setUrl(e.currentTarget.value)} required={kind === "searxng" || kind === "custom"} />
      </Field>
      <Field label="API key" hint={c?.hasApiKey && c.kind === kind ? "A key is stored; empty keeps it." : "Stored sealed, never shown again."}>
        <input type="password" autoComplete="off" value={key} onInput={(e) => setKey(e.currentTarget.value)} />
      </Field>
      <Field label="Results per search" hint="1 to 20; default 5.">
        <input inputMode="numeric" size={4} value={max} onInput={(e) => setMax(e.currentTarget.value)} />
      </Field>
      <button type="submit" class="primary" disabled={save.busy}>{save.busy ? "Saving…" : "Save provider"}</button>
      <ErrorBox error={save.error} />
    </form>
  );
}

function WebSearch() {
  const s = useAsync(() => api.search.getSearchSettings({}), []);
  const [mode, setMode] = useState<string>();
  const [test, setTest] = useState<{ r?: pb.TestSearchResponse; error?: string; busy?: boolean }>();
  const saveMode = useAction(async () => {
    if (!mode) return;
    await api.search.setSearchMode({ mode });
    setMode(undefined);
    s.reload();
  });
  const unset = useAction(async () => {
    if (!window.confirm("Remove the organisation's search provider? Users without their own get DuckDuckGo.")) return;
    await api.search.deleteSearchProvider({ user: "" });
    s.reload();
  });
  const runTest = async () => {
    setTest({ busy: true });
    try {
      setTest({ r: await api.search.testSearch({ user: "", query: "" }) });
    } catch (e) {
      setTest({ error: describe(e) });
    }
  };
  return (
    <section aria-labelledby="ws-h">
      <h2 id="ws-h">Web search</h2>
      <Loaded state={s} what="web search settings">
        {(d) => {
          const current = mode ?? d.mode;
          const org = d.orgProvider;
          return (
            <>
              <form class="panel" data-testid="search-mode" onSubmit={(e) => { e.preventDefault(); saveMode.go(); }}>
                <fieldset class="ap-fieldset">
                  <legend>Mode</legend>
                  {MODES.map(([m, text]) => (
                    <label class="ap-check ap-block">
                      <input type="radio" name="mode" value={m} checked={current === m} onChange={() => setMode(m)} /> <strong>{m}</strong>: {text}
                    </label>
                  ))}
                </fieldset>
                <ErrorBox error={saveMode.error} />
                <button type="submit" class="primary" disabled={saveMode.busy || current === d.mode}>{saveMode.busy ? "Saving…" : "Save mode"}</button>
              </form>
              <div class="panel">
                <h3>The organisation's provider</h3>
                <p>
                  {org ? (
                    <>
                      <strong>{org.kind}</strong>{org.url && <> at <code>{org.url}</code></>}{org.hasApiKey && " (API key stored)"}
                      {org.maxResults ? `, ${org.maxResults} results` : ""} · updated {when(org.updatedAt)}
                    </>
                  ) : (
                    "None: DuckDuckGo is used."
                  )}
                </p>
                <ProviderForm key={org?.updatedAt ?? "none"} current={org} onDone={s.reload} />
                <div class="form-row">
                  <button type="button" onClick={runTest} disabled={test?.busy}>{test?.busy ? "Searching…" : "Test search"}</button>
                  {org && <button type="button" class="danger" onClick={() => unset.go()} disabled={unset.busy}>Remove provider</button>}
                </div>
                <ErrorBox error={unset.error ?? test?.error} />
                {test?.r && (
                  <div class={test.r.error ? "error" : ""} role="status">
                    <p>
                      {test.r.provider} {test.r.error ? `failed after ${test.r.elapsedMs} ms (${test.r.errorCode}): ${test.r.error}` : `answered in ${test.r.elapsedMs} ms with ${test.r.results.length} results.`}
                    </p>
                    {test.r.results.length > 0 && (
                      <ol>{test.r.results.map((h) => <li><a href={h.url} rel="noopener noreferrer" target="_blank">{h.title || h.url}</a> <small>{h.snippet}</small></li>)}</ol>
                    )}
                  </div>
                )}
              </div>
              {d.users.length > 0 && (
                <Table
                  label="Users' own search providers"
                  rows={d.users}
                  columns={[
                    { title: "User", cell: (u) => u.userEmail || u.userId },
                    { title: "Provider", cell: (u) => u.kind },
                    { title: "API key", cell: (u) => (u.hasApiKey ? "stored" : "—") },
                    { title: "Updated", cell: (u) => when(u.updatedAt) },
                  ]}
                />
              )}
            </>
          );
        }}
      </Loaded>
    </section>
  );
}

export default function SettingsPage() {
  return (
    <Page title="Settings">
      <GatewaySettings />
      <WebSearch />
    </Page>
  );
}
