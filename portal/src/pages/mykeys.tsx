// My keys: the signed-in user's own virtual keys. Create one (its secret is
// shown once), pause or resume it, revoke it for good, delete a revoked one.
import { useState } from "preact/hooks";
import { api, pb } from "../api";
import { href, setQuery, useRoute } from "../router";
import { useSession } from "../session";
import { Copy, ErrorBox, Field, Loaded, Page, Table, useAction, useAsync, when } from "../ui";

export const EXPIRY_CHOICES: { days: number; label: string }[] = [
  { days: 0, label: "Never" },
  { days: 7, label: "In 7 days" },
  { days: 30, label: "In 30 days" },
  { days: 90, label: "In 90 days" },
  { days: 365, label: "In a year" },
];

const STATUS_FILTERS: { id: string; label: string; status: pb.KeyStatus }[] = [
  { id: "", label: "All", status: pb.KeyStatus.UNSPECIFIED },
  { id: "active", label: "Active", status: pb.KeyStatus.ACTIVE },
  { id: "disabled", label: "Disabled", status: pb.KeyStatus.DISABLED },
  { id: "revoked", label: "Revoked", status: pb.KeyStatus.REVOKED },
];

export function KeyStatusBadge(props: { k: pb.ApiKey }) {
  const expired = props.k.expiresAt !== "" && new Date(props.k.expiresAt).getTime() < Date.now();
  switch (props.k.status) {
    case pb.KeyStatus.ACTIVE:
      return expired ? <span class="badge bad">expired</span> : <span class="badge good">active</span>;
    case pb.KeyStatus.DISABLED:
      return <span class="badge">disabled</span>;
    case pb.KeyStatus.REVOKED:
      return <span class="badge bad">revoked</span>;
    default:
      return <span class="badge">unknown</span>;
  }
}

export function confirmRevoke(k: pb.ApiKey): boolean {
  const extra = k.name === "claude-code-sign-in" ? " This is the sign-in key: every gateway sign-in of its user ends too." : "";
  return window.confirm(`Revoke the key "${k.name}" (${k.prefix}…)? Requests with it stop at once, and this cannot be undone.${extra}`);
}

export default function MyKeysPage() {
  const session = useSession();
  const route = useRoute();
  const statusId = route.query.get("status") ?? "";
  const filter = STATUS_FILTERS.find((f) => f.id === statusId) ?? STATUS_FILTERS[0];
  const keys = useAsync(
    () => api.keys.listKeys({ page: { pageSize: 500 }, userId: session.user_id, status: filter.status }).then((r) => r.keys),
    [session.user_id, filter.status],
  );
  const me = useAsync(() => api.users.getUser({ id: session.user_id }).catch(() => undefined), [session.user_id]);
  const teams = me.data ? me.data.teamIds.map((id, i) => ({ id, name: me.data!.teamNames[i] || id })) : [];

  const [name, setName] = useState("");
  const [team, setTeam] = useState("");
  const [ttl, setTtl] = useState(0);
  const [secret, setSecret] = useState<{ key: string; name: string }>();
  const create = useAction(async () => {
    setSecret(undefined);
    const r = await api.keys.createKey({ name: name.trim(), teamId: team, ttlDays: ttl });
    setSecret({ key: r.key, name: r.apiKey?.name ?? name.trim() });
    setName("");
    keys.reload();
  });
  const act = useAction(async (run: () => Promise<unknown>) => {
    await run();
    keys.reload();
  });

  return (
    <Page title="My keys">
      <p>
        Keys let Claude Code and other tools use the gateway as you. See <a href={href("/connect")}>Connect</a> for how to set
        one up.
      </p>
      <section class="panel" aria-labelledby="mykeys-new">
        <h2 id="mykeys-new">New key</h2>
        <form
          class="form-row"
          data-testid="create-key"
          onSubmit={(e) => {
            e.preventDefault();
            void create.go();
          }}
        >
          <Field label="Name">
            <input name="name" required maxLength={100} value={name} placeholder="laptop" onInput={(e) => setName(e.currentTarget.value)} />
          </Field>
          {teams.length > 0 && (
            <Field label="Team">
              <select name="team" value={team} onChange={(e) => setTeam(e.currentTarget.value)}>
                <option value="">No team</option>
                {teams.map((t) => <option value={t.id}>{t.name}</option>)}
              </select>
            </Field>
          )}
          <Field label="Expires">
            <select name="ttl_days" value={String(ttl)} onChange={(e) => setTtl(Number(e.currentTarget.value))}>
              {EXPIRY_CHOICES.map((c) => <option value={String(c.days)}>{c.label}</option>)}
            </select>
          </Field>
          <button type="submit" class="primary" disabled={create.busy}>{create.busy ? "Creating…" : "Create key"}</button>
        </form>
        <ErrorBox error={create.error} />
        {secret && (
          <div class="secret" role="status">
            <p>
              <strong>Your new key "{secret.name}".</strong> Copy it now: it will not be shown again.
            </p>
            <Copy text={secret.key} label="Copy the new key" testId="new-key-secret" />
            <p>To use it in a shell:</p>
            <Copy text={`export ANTHROPIC_BASE_URL=${location.origin}\nexport ANTHROPIC_API_KEY=${secret.key}`} label="Copy as shell exports" />
            <p><button type="button" onClick={() => setSecret(undefined)}>I have saved it</button></p>
          </div>
        )}
      </section>

      <div class="filters">
        <Field label="Status">
          <select value={filter.id} onChange={(e) => setQuery({ status: e.currentTarget.value || undefined })}>
            {STATUS_FILTERS.map((f) => <option value={f.id}>{f.label}</option>)}
          </select>
        </Field>
      </div>
      <ErrorBox error={act.error} />
      <Loaded state={keys} what="keys" empty={(d) => d.length === 0} emptyText={filter.id ? `No ${filter.id} keys.` : "You have no keys yet. Create one above."}>
        {(rows) => (
          <Table
            label="Your keys"
            rows={rows}
            rowKey={(k) => k.id}
            columns={[
              { title: "Name", cell: (k) => k.name },
              { title: "Key", cell: (k) => <code>{k.prefix}…</code> },
              { title: "Team", cell: (k) => k.teamName || "—" },
              { title: "Status", cell: (k) => <KeyStatusBadge k={k} /> },
              { title: "Last used", cell: (k) => (k.lastUsedAt ? when(k.lastUsedAt) : "never") },
              { title: "Created", cell: (k) => when(k.createdAt) },
              { title: "Expires", cell: (k) => (k.expiresAt ? when(k.expiresAt) : "never") },
              {
                title: "Actions",
                cell: (k) => <KeyActions k={k} busy={act.busy} run={(f) => void act.go(f)} />,
              },
            ]}
          />
        )}
      </Loaded>
    </Page>
  );
}

/** Disable / enable, revoke, and delete once revoked; used here and by the admin keys page. */
export function KeyActions(props: { k: pb.ApiKey; busy: boolean; run: (f: () => Promise<unknown>) => void }) {
  const { k } = props;
  if (k.status === pb.KeyStatus.REVOKED) {
    return (
      <div class="row-actions">
        <button
          type="button"
          class="danger"
          aria-label={`Delete ${k.name}`}
          disabled={props.busy}
          onClick={() => window.confirm(`Delete the revoked key "${k.name}"? It disappears from the list for good.`) && props.run(() => api.keys.deleteKey({ id: k.id }))}
        >
          Delete
        </button>
      </div>
    );
  }
  const active = k.status === pb.KeyStatus.ACTIVE;
  return (
    <div class="row-actions">
      <button
        type="button"
        aria-label={`${active ? "Disable" : "Enable"} ${k.name}`}
        disabled={props.busy}
        onClick={() => props.run(() => api.keys.updateKey({ id: k.id, status: active ? pb.KeyStatus.DISABLED : pb.KeyStatus.ACTIVE }))}
      >
        {active ? "Disable" : "Enable"}
      </button>
      <button
        type="button"
        class="danger"
        aria-label={`Revoke ${k.name}`}
        disabled={props.busy}
        onClick={() => confirmRevoke(k) && props.run(() => api.keys.revokeKey({ id: k.id }))}
      >
        Revoke
      </button>
    </div>
  );
}
