// The audit log: filters in the URL, older pages on request, and each
// entry's before and after side by side with the changed keys marked.
import { useEffect, useState } from "preact/hooks";
import { api, pb } from "../../api";
import { href, setQuery, useRoute } from "../../router";
import { ErrorBox, Field, Loaded, Page, Table, useAction, useAsync, when, type Column } from "../../ui";

const TYPES = [
  "api_token", "budget", "endpoint", "identity_provider", "key", "managed_settings", "model", "notification_destination",
  "price", "scim_token", "search_provider", "session", "setting", "setup_token", "team", "user", "web_search",
];
const PAGE = 50;

function parse(s: string): unknown {
  if (!s) return undefined;
  try {
    return JSON.parse(s);
  } catch {
    return s;
  }
}

const isObj = (v: unknown): v is Record<string, unknown> => typeof v === "object" && v !== null && !Array.isArray(v);

/** Top-level keys whose values differ (every key when one side is missing). */
function changedKeys(before: unknown, after: unknown): string[] {
  const b = isObj(before) ? before : {};
  const a = isObj(after) ? after : {};
  const keys = [...new Set([...Object.keys(b), ...Object.keys(a)])].sort();
  return keys.filter((k) => JSON.stringify(b[k]) !== JSON.stringify(a[k]));
}

/** Pretty-printed JSON, each top-level key on its own, changed ones marked. */
function Json(props: { value: unknown; changed: Set<string>; label: string }) {
  const v = props.value;
  if (v === undefined) return <pre aria-label={props.label}><em>(none)</em></pre>;
  if (!isObj(v)) return <pre aria-label={props.label}>{JSON.stringify(v, null, 2)}</pre>;
  const keys = Object.keys(v);
  return (
    <pre aria-label={props.label}>
      {"{\n"}
      {keys.map((k, i) => {
        const body = JSON.stringify(v[k], null, 2).replace(/\n/g, "\n  ");
        const line = `  ${JSON.stringify(k)}: ${body}${i < keys.length - 1 ? "," : ""}\n`;
        return props.changed.has(k) ? <mark class="ap-changed">{line}</mark> : line;
      })}
      {"}"}
    </pre>
  );
}

function Changes(props: { e: pb.AuditEntry }) {
  const before = parse(props.e.beforeJson);
  const after = parse(props.e.afterJson);
  if (before === undefined && after === undefined) return <span>—</span>;
  const changed = changedKeys(before, after);
  const set = new Set(changed);
  const summary =
    before === undefined ? "Created" : after === undefined ? "Removed" : changed.length ? `Changed: ${changed.join(", ")}` : "No field changed";
  return (
    <details class="ap-details">
      <summary>{summary}</summary>
      <div class="diff">
        <div>
          <strong>Before</strong>
          <Json value={before} changed={set} label="Before" />
        </div>
        <div>
          <strong>After</strong>
          <Json value={after} changed={set} label="After" />
        </div>
      </div>
    </details>
  );
}

export default function AuditPage() {
  const { query } = useRoute();
  const f = {
    actor: query.get("actor") ?? "",
    action: query.get("action") ?? "",
    resourceType: query.get("resource_type") ?? "",
    resourceId: query.get("resource_id") ?? "",
  };
  const key = JSON.stringify(f);
  const [form, setForm] = useState(f);
  // The URL changed (back, a link): the form follows it.
  useEffect(() => setForm(f), [key]);
  const first = useAsync(() => api.audit.listAudit({ page: { pageSize: PAGE }, ...f }), [key]);
  const [more, setMore] = useState<{ key: string; entries: pb.AuditEntry[]; next: string }>();
  const extra = more?.key === key ? more : undefined;
  const next = extra ? extra.next : first.data?.nextPageToken;
  const older = useAction(async () => {
    const r = await api.audit.listAudit({ page: { pageSize: PAGE, pageToken: next }, ...f });
    setMore({ key, entries: [...(extra?.entries ?? []), ...r.entries], next: r.nextPageToken });
  });
  const refresh = () => { setMore(undefined); first.reload(); };
  const link = (patch: Record<string, string>) =>
    href("/admin/audit", { actor: f.actor, action: f.action, resource_type: f.resourceType, resource_id: f.resourceId, ...patch });
  const columns: Column<pb.AuditEntry>[] = [
    { title: "Time", cell: (e) => <time dateTime={e.at}>{when(e.at)}</time> },
    { title: "Actor", cell: (e) => <a href={link({ actor: e.actor })} title={`Only ${e.actorEmail || e.actor}`}>{e.actorEmail || e.actor}</a> },
    { title: "Action", cell: (e) => <a href={link({ action: e.action })}><code>{e.action}</code></a> },
    {
      title: "Resource",
      cell: (e) => (
        <span>
          <a href={link({ resource_type: e.resourceType })}>{e.resourceType}</a>
          {e.resourceId && <><br /><a href={link({ resource_type: e.resourceType, resource_id: e.resourceId })}><small><code>{e.resourceId}</code></small></a></>}
        </span>
      ),
    },
    { title: "Before / after", cell: (e) => <Changes e={e} /> },
  ];
  const input = (k: keyof typeof f, label: string, extraProps: Record<string, string> = {}) => (
    <Field label={label}>
      <input name={k} value={form[k]} onInput={(e) => setForm({ ...form, [k]: e.currentTarget.value })} {...extraProps} />
    </Field>
  );
  const filtered = Object.values(f).some(Boolean);
  return (
    <Page title="Audit log" actions={<button type="button" onClick={refresh}>Refresh</button>}>
      <form
        class="filters"
        role="search"
        onSubmit={(e) => {
          e.preventDefault();
          setQuery({ actor: form.actor.trim(), action: form.action.trim(), resource_type: form.resourceType.trim(), resource_id: form.resourceId.trim() });
        }}
      >
        {input("actor", "Actor", { placeholder: "email, id, system, idp:NAME" })}
        {input("action", "Action", { placeholder: "key.create" })}
        {input("resourceType", "Resource type", { list: "audit-types" })}
        <datalist id="audit-types">{TYPES.map((t) => <option value={t} />)}</datalist>
        {input("resourceId", "Resource id")}
        <button type="submit" class="primary">Filter</button>
        {filtered && <button type="button" onClick={() => setQuery({ actor: undefined, action: undefined, resource_type: undefined, resource_id: undefined })}>Clear</button>}
      </form>
      <Loaded state={first} what="audit entries" empty={(d) => d.entries.length === 0} emptyText={filtered ? "No entry matches these filters." : "The audit log is empty."}>
        {(d) => {
          const rows = [...d.entries, ...(extra?.entries ?? [])];
          return (
            <>
              <Table label="Audit entries" columns={columns} rows={rows} rowKey={(e) => e.id} />
              <ErrorBox error={older.error} />
              {next ? (
                <button type="button" onClick={() => older.go()} disabled={older.busy}>{older.busy ? "Loading…" : "Older"}</button>
              ) : (
                <p class="ap-note">{rows.length} entries: the oldest is shown.</p>
              )}
            </>
          );
        }}
      </Loaded>
    </Page>
  );
}
