// Keys (admins): every key, filtered by user, team and status (in the URL);
// create one for a user (secret shown once) or a one-time setup command;
// disable / enable, revoke, delete revoked ones.
import { useState } from "preact/hooks";
import { api, pb } from "../../api";
import { href, setQuery, useRoute } from "../../router";
import { Copy, ErrorBox, Field, Loaded, Page, Table, num, useAction, useAsync, when, SearchForm } from "../../ui";
import { EXPIRY_CHOICES, KeyActions, KeyStatusBadge } from "../mykeys";

const STATUSES: Record<string, pb.KeyStatus> = {
  active: pb.KeyStatus.ACTIVE,
  disabled: pb.KeyStatus.DISABLED,
  revoked: pb.KeyStatus.REVOKED,
};

export default function AdminKeysPage() {
  const route = useRoute();
  const user = route.query.get("user") ?? "";
  const team = route.query.get("team") ?? "";
  const status = route.query.get("status") ?? "";

  const teams = useAsync(() => api.teams.listTeams({ page: { pageSize: 500 } }).then((r) => r.teams), []);
  const keys = useAsync(
    () =>
      api.keys
        .listKeys({ page: { pageSize: 500 }, userId: user, teamId: team, status: STATUSES[status] ?? pb.KeyStatus.UNSPECIFIED })
        .then((r) => ({ keys: r.keys, more: r.nextPageToken !== "" })),
    [user, team, status],
  );
  const act = useAction(async (run: () => Promise<unknown>) => {
    await run();
    keys.reload();
  });
  const teamList = teams.data ?? [];

  return (
    <Page title="Keys">
      <CreateForUser teams={teamList} onCreated={keys.reload} />
      <SearchForm label="User (email or id)" param="user" value={user} button="Filter" onSearch={(v) => setQuery({ user: v })}>
        <Field label="Team">
          <select value={team} onChange={(e) => setQuery({ team: e.currentTarget.value || undefined })}>
            <option value="">Any</option>
            {team && !teamList.some((t) => t.id === team) && <option value={team}>{team}</option>}
            {teamList.map((t) => <option value={t.id}>{t.name}</option>)}
          </select>
        </Field>
        <Field label="Status">
          <select value={status} onChange={(e) => setQuery({ status: e.currentTarget.value || undefined })}>
            <option value="">Any</option>
            <option value="active">Active</option>
            <option value="disabled">Disabled</option>
            <option value="revoked">Revoked</option>
          </select>
        </Field>
        {(user || team || status) && (
          <a class="button" href={href("/admin/keys")}>Clear filters</a>
        )}
      </SearchForm>
      <ErrorBox error={act.error} />
      <Loaded
        state={keys}
        what="keys"
        empty={(d) => d.keys.length === 0}
        emptyText={user || team || status ? "No key matches these filters." : "No keys yet."}
      >
        {(d) => (
          <>
            {d.more && <p class="hint">Showing the first 500 keys; filter to see others.</p>}
            <Table
              label="Keys"
              rows={d.keys}
              rowKey={(k) => k.id}
              columns={[
                { title: "Name", cell: (k) => k.name },
                { title: "Key", cell: (k) => <code>{k.prefix}…</code> },
                {
                  title: "Owner",
                  cell: (k) => <a href={href("/admin/keys", { user: k.userId, team: team || undefined, status: status || undefined })}>{k.userEmail || k.userId}</a>,
                },
                { title: "Team", cell: (k) => (k.teamId ? <a href={href("/admin/teams", { team: k.teamId })}>{k.teamName || k.teamId}</a> : "—") },
                { title: "Status", cell: (k) => <KeyStatusBadge k={k} /> },
                {
                  title: "Limits",
                  cell: (k) => (k.rpm || k.tpm ? [k.rpm ? `${num(k.rpm)} rpm` : "", k.tpm ? `${num(k.tpm)} tpm` : ""].filter(Boolean).join(", ") : "—"),
                },
                { title: "Last used", cell: (k) => (k.lastUsedAt ? when(k.lastUsedAt) : "never") },
                { title: "Created", cell: (k) => when(k.createdAt) },
                { title: "Expires", cell: (k) => (k.expiresAt ? when(k.expiresAt) : "never") },
                { title: "Actions", cell: (k) => <KeyActions k={k} busy={act.busy} run={(f) => void act.go(f)} /> },
              ]}
            />
          </>
        )}
      </Loaded>
    </Page>
  );
}

function CreateForUser(props: { teams: pb.Team[]; onCreated: () => void }) {
  const blank = { name: "", user: "", team: "", ttl: 0, rpm: 0, tpm: 0 };
  const [f, setF] = useState(blank);
  const [made, setMade] = useState<{ kind: "key" | "setup"; text: string; who: string; until?: string }>();
  const create = useAction(async (kind: "key" | "setup") => {
    setMade(undefined);
    if (kind === "key") {
      const r = await api.keys.createKey({ name: f.name.trim(), userId: f.user.trim(), teamId: f.team, ttlDays: f.ttl, rpm: f.rpm, tpm: f.tpm });
      setMade({ kind, text: r.key, who: r.apiKey?.userEmail || f.user.trim() || "you" });
      props.onCreated();
    } else {
      const r = await api.keys.createSetupToken({ user: f.user.trim(), team: f.team, keyName: f.name.trim() });
      setMade({ kind, text: r.command, who: f.user.trim() || "you", until: r.expiresAt });
    }
    setF(blank);
  });
  const numIn = (k: "rpm" | "tpm") => (e: { currentTarget: HTMLInputElement }) =>
    setF({ ...f, [k]: Math.max(0, Math.floor(Number(e.currentTarget.value) || 0)) });
  return (
    <section class="panel" aria-labelledby="keys-new">
      <h2 id="keys-new">New key</h2>
      <form
        class="form-row"
        data-testid="admin-create-key"
        onSubmit={(e) => {
          e.preventDefault();
          const submitter = (e as unknown as SubmitEvent).submitter as HTMLButtonElement | null;
          void create.go(submitter?.value === "setup" ? "setup" : "key");
        }}
      >
        <Field label="Name" hint="Optional for a setup command.">
          <input name="name" maxLength={100} value={f.name} onInput={(e) => setF({ ...f, name: e.currentTarget.value })} />
        </Field>
        <Field label="For user (email or id)" hint="Empty: yourself.">
          <input name="user" value={f.user} onInput={(e) => setF({ ...f, user: e.currentTarget.value })} />
        </Field>
        <Field label="Team">
          <select name="team" value={f.team} onChange={(e) => setF({ ...f, team: e.currentTarget.value })}>
            <option value="">No team</option>
            {props.teams.map((t) => <option value={t.id}>{t.name}</option>)}
          </select>
        </Field>
        <Field label="Expires">
          <select name="ttl_days" value={String(f.ttl)} onChange={(e) => setF({ ...f, ttl: Number(e.currentTarget.value) })}>
            {EXPIRY_CHOICES.map((c) => <option value={String(c.days)}>{c.label}</option>)}
          </select>
        </Field>
        <Field label="rpm" hint="0: no key limit">
          <input name="rpm" type="number" min={0} max={100000000} value={String(f.rpm)} onInput={numIn("rpm")} />
        </Field>
        <Field label="tpm" hint="0: no key limit">
          <input name="tpm" type="number" min={0} max={100000000} value={String(f.tpm)} onInput={numIn("tpm")} />
        </Field>
        <button type="submit" class="primary" value="key" disabled={create.busy || !f.name.trim()}>Create key</button>
        <button type="submit" value="setup" disabled={create.busy}>Make a setup command</button>
      </form>
      <p class="muted">
        A setup command works once, for 10 minutes: run on the developer's machine, it makes the key there and configures
        Claude Code (expiry and limits do not apply to it).
      </p>
      <ErrorBox error={create.error} />
      {made && (
        <div class="secret" role="status">
          {made.kind === "key" ? (
            <p><strong>The new key of {made.who}.</strong> Copy it now and send it safely: it will not be shown again.</p>
          ) : (
            <p>
              <strong>Setup command for {made.who}</strong>, to run before {when(made.until ?? "")}. It works once and will not be
              shown again.
            </p>
          )}
          <Copy text={made.text} label={made.kind === "key" ? "Copy the new key" : "Copy the setup command"} />
        </div>
      )}
    </section>
  );
}
