// Users (admins): search and filter (in the URL), create, change role,
// disable / enable, delete; each user's teams and a link to their keys.
import { useState } from "preact/hooks";
import { api, pb } from "../../api";
import { href, setQuery, useRoute } from "../../router";
import { useSession } from "../../session";
import { ErrorBox, Field, Loaded, Page, Table, num, useAction, useAsync, when, SearchForm } from "../../ui";

const ROLES: Record<string, pb.Role> = { admin: pb.Role.ADMIN, member: pb.Role.MEMBER };
const STATUSES: Record<string, pb.UserStatus> = { active: pb.UserStatus.ACTIVE, disabled: pb.UserStatus.DISABLED };

function roleName(r: pb.Role): string {
  return r === pb.Role.ADMIN ? "admin" : "member";
}

export default function UsersPage() {
  const route = useRoute();
  const session = useSession();
  const q = route.query.get("q") ?? "";
  const role = route.query.get("role") ?? "";
  const status = route.query.get("status") ?? "";

  const users = useAsync(
    () =>
      api.users
        .listUsers({
          page: { pageSize: 500 },
          query: q,
          role: ROLES[role] ?? pb.Role.UNSPECIFIED,
          status: STATUSES[status] ?? pb.UserStatus.UNSPECIFIED,
        })
        .then((r) => ({ users: r.users, more: r.nextPageToken !== "" })),
    [q, role, status],
  );
  const act = useAction(async (run: () => Promise<unknown>) => {
    await run();
    users.reload();
  });

  return (
    <Page title="Users">
      <CreateUser onCreated={users.reload} />
      <SearchForm label="Search email or name" param="q" value={q} button="Search" onSearch={(v) => setQuery({ q: v })}>
        <Field label="Role">
          <select value={role} onChange={(e) => setQuery({ role: e.currentTarget.value || undefined })}>
            <option value="">Any</option>
            <option value="admin">Admin</option>
            <option value="member">Member</option>
          </select>
        </Field>
        <Field label="Status">
          <select value={status} onChange={(e) => setQuery({ status: e.currentTarget.value || undefined })}>
            <option value="">Any</option>
            <option value="active">Active</option>
            <option value="disabled">Disabled</option>
          </select>
        </Field>
      </SearchForm>
      <ErrorBox error={act.error} />
      <Loaded
        state={users}
        what="users"
        empty={(d) => d.users.length === 0}
        emptyText={q || role || status ? "No user matches these filters." : "No users yet."}
      >
        {(d) => (
          <>
            {d.more && <p class="hint">Showing the first 500 users; narrow the search to see others.</p>}
            <Table
              label="Users"
              rows={d.users}
              rowKey={(u) => u.id}
              columns={[
                {
                  title: "User",
                  cell: (u) => (
                    <>
                      <strong>{u.email || u.subject || u.id}</strong>
                      {u.displayName && <div class="muted">{u.displayName}</div>}
                    </>
                  ),
                },
                { title: "Role", cell: (u) => <span class={`badge${u.role === pb.Role.ADMIN ? " good" : ""}`}>{roleName(u.role)}</span> },
                {
                  title: "Status",
                  cell: (u) =>
                    u.status === pb.UserStatus.ACTIVE ? <span class="badge good">active</span> : <span class="badge bad">disabled</span>,
                },
                {
                  title: "Teams",
                  cell: (u) =>
                    u.teamIds.length === 0 ? (
                      "—"
                    ) : (
                      <ul class="inline-list">
                        {u.teamIds.map((id, i) => (
                          <li><a href={href("/admin/teams", { team: id })}>{u.teamNames[i] || id}</a></li>
                        ))}
                      </ul>
                    ),
                },
                {
                  title: "Limits",
                  cell: (u) => (u.rpm || u.tpm ? `${u.rpm ? `${num(u.rpm)} rpm` : ""}${u.rpm && u.tpm ? ", " : ""}${u.tpm ? `${num(u.tpm)} tpm` : ""}` : "team default"),
                },
                { title: "Created", cell: (u) => when(u.createdAt) },
                {
                  title: "Actions",
                  cell: (u) => {
                    const who = u.email || u.id;
                    const active = u.status === pb.UserStatus.ACTIVE;
                    const admin = u.role === pb.Role.ADMIN;
                    return (
                      <div class="row-actions">
                        <a href={href("/admin/keys", { user: u.id })}>Keys</a>
                        <button
                          type="button"
                          disabled={act.busy}
                          aria-label={`${admin ? "Make member" : "Make admin"}: ${who}`}
                          onClick={() =>
                            (admin || window.confirm(`Give ${who} the admin role? Admins manage everything here.`)) &&
                            act.go(() => api.users.updateUser({ id: u.id, role: admin ? pb.Role.MEMBER : pb.Role.ADMIN }))
                          }
                        >
                          {admin ? "Make member" : "Make admin"}
                        </button>
                        <button
                          type="button"
                          disabled={act.busy}
                          aria-label={`${active ? "Disable" : "Enable"} ${who}`}
                          onClick={() =>
                            (!active || window.confirm(`Disable ${who}? Their sessions end and their keys stop working at once.`)) &&
                            act.go(() =>
                              api.users.updateUser({ id: u.id, status: active ? pb.UserStatus.DISABLED : pb.UserStatus.ACTIVE }),
                            )
                          }
                        >
                          {active ? "Disable" : "Enable"}
                        </button>
                        {u.id !== session.user_id && (
                          <button
                            type="button"
                            class="danger"
                            disabled={act.busy}
                            aria-label={`Delete ${who}`}
                            onClick={() =>
                              window.confirm(`Delete ${who}? Their keys, sessions and team memberships go with them. This cannot be undone.`) &&
                              act.go(() => api.users.deleteUser({ id: u.id }))
                            }
                          >
                            Delete
                          </button>
                        )}
                      </div>
                    );
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

function CreateUser(props: { onCreated: () => void }) {
  const blank = { email: "", displayName: "", role: "member", password: "" };
  const [f, setF] = useState(blank);
  const [done, setDone] = useState<string>();
  const create = useAction(async () => {
    setDone(undefined);
    const u = await api.users.createUser({
      email: f.email.trim(),
      displayName: f.displayName.trim(),
      role: ROLES[f.role],
      password: f.password,
    });
    setF(blank);
    setDone(`Created ${u.email || u.id}.`);
    props.onCreated();
  });
  const set = (k: keyof typeof blank) => (e: { currentTarget: HTMLInputElement | HTMLSelectElement }) =>
    setF({ ...f, [k]: e.currentTarget.value });
  return (
    <section class="panel" aria-labelledby="users-new">
      <h2 id="users-new">New user</h2>
      <form
        class="form-row"
        data-testid="create-user"
        onSubmit={(e) => {
          e.preventDefault();
          void create.go();
        }}
      >
        <Field label="Email">
          <input name="email" type="email" required autocomplete="off" value={f.email} onInput={set("email")} />
        </Field>
        <Field label="Name (optional)">
          <input name="display_name" value={f.displayName} onInput={set("displayName")} />
        </Field>
        <Field label="Role">
          <select name="role" value={f.role} onChange={set("role")}>
            <option value="member">Member</option>
            <option value="admin">Admin</option>
          </select>
        </Field>
        <Field label="Password (optional)" hint="Only for password sign-in; SSO users need none.">
          <input name="password" type="password" autocomplete="new-password" value={f.password} onInput={set("password")} />
        </Field>
        <button type="submit" class="primary" disabled={create.busy}>{create.busy ? "Creating…" : "Create user"}</button>
      </form>
      <ErrorBox error={create.error} />
      {done && <p role="status">{done}</p>}
    </section>
  );
}
