// Notifications: destinations (webhooks, SNS topics, EventBridge buses) with
// their health, create/change/delete, secret rotation (the new secret shown
// once) and a test send; and the delivery log. The tab is in the URL.
import { useEffect, useRef, useState } from "preact/hooks";
import { api, describe, pb } from "../../api";
import { href, setQuery, useRoute } from "../../router";
import { Copy, ErrorBox, Field, Loaded, Page, Table, num, useAction, useAsync, when, type Column } from "../../ui";

const KIND: Record<number, { name: string; target: string; placeholder: string }> = {
  [pb.DestinationKind.WEBHOOK]: { name: "webhook", target: "URL", placeholder: "https://hooks.example.com/ccag" },
  [pb.DestinationKind.SNS]: { name: "SNS topic", target: "Topic ARN", placeholder: "arn:aws:sns:us-east-1:123456789012:ccag" },
  [pb.DestinationKind.EVENTBRIDGE]: { name: "EventBridge bus", target: "Bus name or ARN", placeholder: "ccag-events" },
};
const CATEGORIES = ["budget", "key", "user", "dataplane", "rate_limit", "notification"];
const eventList = (s: string) => s.split(/[,\s]+/).map((x) => x.trim()).filter((x) => x && x !== "all");

interface Form {
  kind: pb.DestinationKind;
  name: string;
  target: string;
  events: string;
  roleArn: string;
  enabled: boolean;
}

function DestinationForm(props: { dest?: pb.Destination; onCreated: (d: pb.Destination, secret: string) => void; onDone: () => void; onCancel: () => void }) {
  const d = props.dest;
  const [f, setF] = useState<Form>(
    d
      ? { kind: d.kind, name: d.name, target: d.target, events: d.events.join(", "), roleArn: d.roleArn, enabled: d.enabled }
      : { kind: pb.DestinationKind.WEBHOOK, name: "", target: "", events: "", roleArn: "", enabled: true },
  );
  const set = (p: Partial<Form>) => setF((x) => ({ ...x, ...p }));
  const ref = useRef<HTMLFormElement>(null);
  useEffect(() => {
    if (d) {
      ref.current?.scrollIntoView({ block: "nearest" });
      ref.current?.querySelector<HTMLInputElement>("input")?.focus();
    }
  }, []);
  const save = useAction(async () => {
    const events = eventList(f.events);
    const roleArn = f.kind === pb.DestinationKind.WEBHOOK ? "" : f.roleArn.trim();
    if (d) {
      const ch = <T,>(a: T, b: T) => (a === b ? undefined : b);
      await api.notifications.updateDestination({
        id: d.id,
        name: ch(d.name, f.name.trim()),
        target: ch(d.target, f.target.trim()),
        setEvents: events.join(",") !== d.events.join(","),
        events,
        enabled: ch(d.enabled, f.enabled),
        roleArn: ch(d.roleArn, roleArn),
      });
      props.onDone();
    } else {
      const r = await api.notifications.createDestination({
        kind: f.kind, name: f.name.trim(), target: f.target.trim(), events, roleArn, disabled: !f.enabled,
      });
      props.onCreated(r.destination!, r.secret);
    }
  });
  const k = KIND[f.kind];
  return (
    <form ref={ref} class="panel" data-testid="destination-form" onSubmit={(e) => { e.preventDefault(); save.go(); }}>
      <h2>{d ? `Change destination ${d.name}` : "Add a destination"}</h2>
      <div class="form-row">
        <Field label="Kind">
          <select name="kind" value={String(f.kind)} disabled={!!d} onChange={(e) => set({ kind: Number(e.currentTarget.value) })}>
            {Object.entries(KIND).map(([v, x]) => <option value={v}>{x.name}</option>)}
          </select>
        </Field>
        <Field label={k.target} hint={f.kind === pb.DestinationKind.WEBHOOK ? "https (plain http to loopback only)" : undefined}>
          <input name="target" required placeholder={k.placeholder} value={f.target} onInput={(e) => set({ target: e.currentTarget.value })} />
        </Field>
        <Field label="Name" hint={d ? undefined : "Unique; default: its id."}>
          <input name="name" required={!!d} value={f.name} onInput={(e) => set({ name: e.currentTarget.value })} />
        </Field>
        <Field label="Events" hint={`Types or categories (${CATEGORIES.join(", ")}), comma-separated; empty: every event.`}>
          <input name="events" placeholder="budget, key.revoked" value={f.events} onInput={(e) => set({ events: e.currentTarget.value })} />
        </Field>
        {f.kind !== pb.DestinationKind.WEBHOOK && (
          <Field label="Role ARN" hint="Optional: assumed for the call; empty: the control plane's own credentials.">
            <input name="roleArn" value={f.roleArn} onInput={(e) => set({ roleArn: e.currentTarget.value })} />
          </Field>
        )}
        <label class="ap-check">
          <input type="checkbox" checked={f.enabled} onChange={(e) => set({ enabled: e.currentTarget.checked })} /> Enabled
        </label>
      </div>
      <ErrorBox error={save.error} />
      <div class="form-row">
        <button class="primary" type="submit" disabled={save.busy}>{save.busy ? "Saving…" : d ? "Save changes" : "Add destination"}</button>
        {d && <button type="button" onClick={props.onCancel}>Cancel</button>}
      </div>
    </form>
  );
}

type TestResult = { name: string; r?: pb.TestDestinationResponse; error?: string };

function Destinations() {
  const dests = useAsync(() => api.notifications.listDestinations({}), []);
  const [editing, setEditing] = useState<pb.Destination>();
  const [formKey, setFormKey] = useState(0);
  const [secret, setSecret] = useState<{ name: string; secret: string; rotated: boolean }>();
  const [test, setTest] = useState<TestResult>();
  const [testing, setTesting] = useState<string>();
  const open = (d?: pb.Destination) => { setEditing(d); setFormKey((k) => k + 1); };
  const act = useAction(async (what: "delete" | "rotate", d: pb.Destination) => {
    if (what === "delete") {
      if (!window.confirm(`Delete destination ${d.name} and its delivery log?`)) return;
      await api.notifications.deleteDestination({ id: d.id });
      if (editing?.id === d.id) open();
    } else {
      if (!window.confirm(`Give ${d.name} a new signing secret? The current one keeps signing beside it for 24 hours.`)) return;
      const r = await api.notifications.rotateSecret({ id: d.id, overlapSecs: 86_400n });
      setSecret({ name: d.name, secret: r.secret, rotated: true });
    }
    dests.reload();
  });
  const sendTest = async (d: pb.Destination) => {
    setTesting(d.id);
    try {
      setTest({ name: d.name, r: await api.notifications.testDestination({ id: d.id }) });
    } catch (e) {
      setTest({ name: d.name, error: describe(e) });
    } finally {
      setTesting(undefined);
      dests.reload();
    }
  };
  const columns: Column<pb.Destination>[] = [
    { title: "Name", cell: (d) => <strong>{d.name}</strong> },
    { title: "Kind", cell: (d) => KIND[d.kind]?.name ?? "—" },
    { title: "Target", cell: (d) => <code class="ap-wrap">{d.target}</code> },
    { title: "Events", cell: (d) => (d.events.length ? d.events.join(", ") : "every event") },
    {
      title: "Health",
      cell: (d) => (
        <span>
          {!d.enabled ? <span class="badge">disabled</span> : d.failingSince ? <span class="badge bad">failing since {when(d.failingSince)}</span> : <span class="badge good">healthy</span>}
          {d.lastError && <><br /><small class="ap-bad">{d.lastError}</small></>}
          {d.lastSuccessAt && <><br /><small>last delivered {when(d.lastSuccessAt)}</small></>}
        </span>
      ),
    },
    { title: "Pending", num: true, cell: (d) => num(d.pending) },
    { title: "Given up", num: true, cell: (d) => (d.dead > 0n ? <a href={href("/admin/notifications", { tab: "deliveries", destination: d.name, failed: "1" })}>{num(d.dead)}</a> : "0") },
    {
      title: "Actions",
      cell: (d) => (
        <span class="ap-actions">
          <button type="button" aria-label={`Send test to ${d.name}`} disabled={testing === d.id} onClick={() => sendTest(d)}>{testing === d.id ? "Sending…" : "Send test"}</button>
          <button type="button" aria-label={`Edit ${d.name}`} onClick={() => open(d)}>Edit</button>
          {d.kind === pb.DestinationKind.WEBHOOK && (
            <button type="button" aria-label={`Rotate secret of ${d.name}`} disabled={act.busy} onClick={() => act.go("rotate", d)}>Rotate secret</button>
          )}
          <button type="button" class="danger" aria-label={`Delete ${d.name}`} disabled={act.busy} onClick={() => act.go("delete", d)}>Delete</button>
          {d.previousSecretUntil && <small>old secret signs until {when(d.previousSecretUntil)}</small>}
        </span>
      ),
    },
  ];
  return (
    <>
      {secret && (
        <div class="secret" role="status">
          <p>
            {secret.rotated ? "The new signing secret of" : "The signing secret of"} <strong>{secret.name}</strong>. Copy it now: it will not be shown
            again. Receivers verify the <code>webhook-signature</code> header with it.
          </p>
          <Copy text={secret.secret} label="Copy the signing secret" />
          <button type="button" onClick={() => setSecret(undefined)}>Done</button>
        </div>
      )}
      {test && (
        <div class={test.r?.ok ? "panel" : "error"} role="status" data-testid="test-result">
          <p>
            <strong>Test of {test.name}: </strong>
            {test.error ? test.error : test.r!.ok ? "delivered" : "not delivered"}
            {test.r && <> in {num(test.r.durationMs)} ms{test.r.status ? `, HTTP ${test.r.status}` : ""}</>}
          </p>
          {test.r?.answer && <pre class="ap-pre">{test.r.answer}</pre>}
          {test.r?.eventId && <p><small>event id <code>{test.r.eventId}</code></small></p>}
          <button type="button" onClick={() => setTest(undefined)}>Dismiss</button>
        </div>
      )}
      <ErrorBox error={act.error} />
      <Loaded state={dests} what="destinations" empty={(d) => d.destinations.length === 0} emptyText="No destination: gateway events are not sent anywhere.">
        {(d) => <Table label="Notification destinations" columns={columns} rows={d.destinations} rowKey={(x) => x.id} />}
      </Loaded>
      <DestinationForm
        key={formKey}
        dest={editing}
        onCreated={(d, s) => { if (s) setSecret({ name: d.name, secret: s, rotated: false }); open(); dests.reload(); }}
        onDone={() => { open(); dests.reload(); }}
        onCancel={() => open()}
      />
    </>
  );
}

function stateBadge(s: string) {
  return <span class={`badge ${s === "delivered" ? "good" : s === "dead" ? "bad" : ""}`}>{s === "dead" ? "given up" : s}</span>;
}

function Deliveries() {
  const { query } = useRoute();
  const destination = query.get("destination") ?? "";
  const failed = query.get("failed") === "1";
  const limit = Number(query.get("limit")) || 50;
  const dests = useAsync(() => api.notifications.listDestinations({}), []);
  const list = useAsync(() => api.notifications.listDeliveries({ destination, failed, limit }), [destination, failed, limit]);
  const columns: Column<pb.Delivery>[] = [
    { title: "Created", cell: (d) => when(d.createdAt) },
    { title: "Event", cell: (d) => <span>{d.eventType}<br /><small><code>{d.eventId}</code></small></span> },
    { title: "Destination", cell: (d) => d.destination || d.destinationId },
    { title: "Status", cell: (d) => stateBadge(d.state) },
    { title: "Attempts", num: true, cell: (d) => d.attempts },
    { title: "Last answer", num: true, cell: (d) => (d.lastStatus ? `HTTP ${d.lastStatus}` : "—") },
    { title: "Error", cell: (d) => (d.lastError ? <small class="ap-bad">{d.lastError}</small> : "—") },
    { title: "Delivered / next try", cell: (d) => (d.deliveredAt ? when(d.deliveredAt) : d.state === "pending" ? `next ${when(d.nextAttemptAt)}` : "—") },
  ];
  return (
    <>
      <div class="filters">
        <Field label="Destination">
          <select value={destination} onChange={(e) => setQuery({ destination: e.currentTarget.value || undefined })}>
            <option value="">every destination</option>
            {dests.data?.destinations.map((d) => <option value={d.name}>{d.name}</option>)}
            {destination && !dests.data?.destinations.some((d) => d.name === destination) && <option value={destination}>{destination}</option>}
          </select>
        </Field>
        <label class="ap-check">
          <input type="checkbox" checked={failed} onChange={(e) => setQuery({ failed: e.currentTarget.checked ? "1" : undefined })} /> Only failed (given up, or pending a retry)
        </label>
        <Field label="Show">
          <select value={String(limit)} onChange={(e) => setQuery({ limit: e.currentTarget.value === "50" ? undefined : e.currentTarget.value })}>
            {[50, 200, 1000].map((n) => <option value={String(n)}>{n} newest</option>)}
          </select>
        </Field>
        <button type="button" onClick={list.reload}>Refresh</button>
      </div>
      <Loaded state={list} what="deliveries" empty={(d) => d.deliveries.length === 0} emptyText="No delivery matches.">
        {(d) => <Table label="Deliveries" columns={columns} rows={d.deliveries} rowKey={(x) => x.id} />}
      </Loaded>
    </>
  );
}

export default function NotificationsPage() {
  const { query } = useRoute();
  const tab = query.get("tab") === "deliveries" ? "deliveries" : "destinations";
  return (
    <Page title="Notifications">
      <nav class="tabs" aria-label="Notification views">
        <a href={href("/admin/notifications")} aria-current={tab === "destinations" ? "page" : undefined}>Destinations</a>
        <a href={href("/admin/notifications", { tab: "deliveries" })} aria-current={tab === "deliveries" ? "page" : undefined}>Deliveries</a>
      </nav>
      {tab === "destinations" ? <Destinations /> : <Deliveries />}
    </Page>
  );
}
