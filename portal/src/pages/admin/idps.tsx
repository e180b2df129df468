// Identity providers (OpenID Connect): list, create, change, delete; each
// with the redirect URI to register at the provider and its sign-in URL.
// The client secret is write-only: the API says only whether one is stored.
import { useEffect, useRef, useState } from "preact/hooks";
import { api, pb } from "../../api";
import { Copy, ErrorBox, Field, Loaded, Page, Table, num, useAction, useAsync, when, type Column } from "../../ui";

interface Form {
  name: string;
  issuer: string;
  clientId: string;
  clientSecret: string;
  clearSecret: boolean;
  scopes: string;
  emailClaim: string;
  groupsClaim: string;
  allowedDomains: string;
  autoProvision: boolean;
  defaultRole: pb.Role;
  adminGroups: string;
  teamMappings: string;
  enabled: boolean;
  skipDiscovery: boolean;
}

const blank: Form = {
  name: "", issuer: "", clientId: "", clientSecret: "", clearSecret: false, scopes: "openid, email, profile", emailClaim: "",
  groupsClaim: "", allowedDomains: "", autoProvision: true, defaultRole: pb.Role.MEMBER, adminGroups: "", teamMappings: "",
  enabled: true, skipDiscovery: false,
};

const list = (s: string) => s.split(/[,\s]+/).map((x) => x.trim()).filter(Boolean);
const same = (a: string[], b: string[]) => a.join(",") === b.join(",");

function mappingsText(m: Record<string, string>, teamName: (id: string) => string): string {
  return Object.entries(m).sort().map(([g, t]) => `${g}=${teamName(t)}`).join("\n");
}

function parseMappings(s: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const line of s.split("\n").map((l) => l.trim()).filter(Boolean)) {
    const i = line.indexOf("=");
    const g = line.slice(0, i).trim();
    const t = line.slice(i + 1).trim();
    if (i < 1 || !g || !t) throw new Error(`Team mappings: "${line}" is not GROUP=TEAM.`);
    out[g] = t;
  }
  return out;
}

function formOf(p: pb.IdentityProvider, teamName: (id: string) => string): Form {
  return {
    name: p.name, issuer: p.issuer, clientId: p.clientId, clientSecret: "", clearSecret: false, scopes: p.scopes.join(", "),
    emailClaim: p.emailClaim, groupsClaim: p.groupsClaim, allowedDomains: p.allowedDomains.join(", "),
    autoProvision: p.autoProvision, defaultRole: p.defaultRole || pb.Role.MEMBER, adminGroups: p.adminGroups.join(", "),
    teamMappings: mappingsText(p.teamMappings, teamName), enabled: p.enabled, skipDiscovery: false,
  };
}

function IdpForm(props: { idp?: pb.IdentityProvider; teamName: (id: string) => string; onCreated: (p: pb.IdentityProvider) => void; onDone: () => void; onCancel: () => void }) {
  const p = props.idp;
  const [orig] = useState(() => (p ? formOf(p, props.teamName) : blank));
  const [f, setF] = useState<Form>(orig);
  const set = (x: Partial<Form>) => setF((o) => ({ ...o, ...x }));
  const ref = useRef<HTMLFormElement>(null);
  useEffect(() => {
    if (p) {
      ref.current?.scrollIntoView({ block: "nearest" });
      ref.current?.querySelector<HTMLInputElement>("input")?.focus();
    }
  }, []);
  const save = useAction(async () => {
    const teamMappings = parseMappings(f.teamMappings);
    if (!p) {
      const r = await api.idps.createIdentityProvider({
        name: f.name.trim(), issuer: f.issuer.trim(), clientId: f.clientId.trim(), clientSecret: f.clientSecret,
        scopes: list(f.scopes), emailClaim: f.emailClaim.trim(), groupsClaim: f.groupsClaim.trim(),
        allowedDomains: list(f.allowedDomains), autoProvision: f.autoProvision, defaultRole: f.defaultRole,
        adminGroups: list(f.adminGroups), teamMappings, enabled: f.enabled, skipDiscovery: f.skipDiscovery,
      });
      props.onCreated(r);
      return;
    }
    const ch = <T,>(a: T, b: T) => (a === b ? undefined : b);
    await api.idps.updateIdentityProvider({
      idp: p.id,
      name: ch(orig.name, f.name.trim()),
      issuer: ch(orig.issuer, f.issuer.trim()),
      clientId: ch(orig.clientId, f.clientId.trim()),
      clientSecret: f.clearSecret ? "" : f.clientSecret || undefined,
      setScopes: !same(list(orig.scopes), list(f.scopes)),
      scopes: list(f.scopes),
      emailClaim: ch(orig.emailClaim, f.emailClaim.trim()),
      groupsClaim: ch(orig.groupsClaim, f.groupsClaim.trim()),
      setAllowedDomains: !same(list(orig.allowedDomains), list(f.allowedDomains)),
      allowedDomains: list(f.allowedDomains),
      autoProvision: ch(orig.autoProvision, f.autoProvision),
      defaultRole: f.defaultRole === orig.defaultRole ? pb.Role.UNSPECIFIED : f.defaultRole,
      setAdminGroups: !same(list(orig.adminGroups), list(f.adminGroups)),
      adminGroups: list(f.adminGroups),
      setTeamMappings: f.teamMappings.trim() !== orig.teamMappings.trim(),
      teamMappings,
      enabled: ch(orig.enabled, f.enabled),
      skipDiscovery: f.skipDiscovery,
    });
    props.onDone();
  });
  const text = (k: "name" | "issuer" | "clientId" | "scopes" | "emailClaim" | "groupsClaim" | "allowedDomains" | "adminGroups", label: string, hint?: string, required = false, placeholder?: string) => (
    <Field label={label} hint={hint}>
      <input name={k} required={required} placeholder={placeholder} value={f[k]} onInput={(e) => set({ [k]: e.currentTarget.value })} />
    </Field>
  );
  const check = (k: "autoProvision" | "enabled" | "skipDiscovery" | "clearSecret", label: string) => (
    <label class="ap-check">
      <input type="checkbox" checked={f[k]} onChange={(e) => set({ [k]: e.currentTarget.checked })} /> {label}
    </label>
  );
  return (
    <form ref={ref} class="panel" data-testid="idp-form" onSubmit={(e) => { e.preventDefault(); save.go(); }}>
      <h2>{p ? `Change provider ${p.name}` : "Add an identity provider"}</h2>
      {p?.source === "env" && <p class="ap-note">This provider comes from the environment (OIDC_ISSUER): its settings are applied again at every start.</p>}
      <div class="form-row">
        {text("name", "Name", "Used in the sign-in URL.", true, "corp")}
        {text("issuer", "Issuer", "Exactly as its discovery document states it.", true, "https://login.example.com")}
        {text("clientId", "Client id", undefined, true)}
        <Field label="Client secret" hint={p?.hasClientSecret ? "A secret is stored. Leave empty to keep it." : "Empty for a public client (PKCE only). Never shown again."}>
          <input name="clientSecret" type="password" autoComplete="off" disabled={f.clearSecret} value={f.clientSecret} onInput={(e) => set({ clientSecret: e.currentTarget.value })} />
        </Field>
        {p?.hasClientSecret && check("clearSecret", "Remove the stored secret (public client)")}
      </div>
      <div class="form-row">
        {text("scopes", "Scopes", "openid is always included; add groups for group claims.")}
        {text("emailClaim", "Email claim", "Default email; or a JSON Pointer such as /upn.")}
        {text("groupsClaim", "Groups claim", "Default groups; or a JSON Pointer.")}
        {text("allowedDomains", "Allowed email domains", "Comma-separated; empty: any.")}
      </div>
      <div class="form-row">
        {check("autoProvision", "Create unknown users on first sign-in")}
        <Field label="Their role">
          <select value={String(f.defaultRole)} onChange={(e) => set({ defaultRole: Number(e.currentTarget.value) })}>
            <option value={String(pb.Role.MEMBER)}>member</option>
            <option value={String(pb.Role.ADMIN)}>admin</option>
          </select>
        </Field>
        {text("adminGroups", "Admin groups", "Members of these groups are admins.")}
      </div>
      <Field label="Team mappings" hint="One GROUP=TEAM per line (team name or id): members of the group are members of the team.">
        <textarea name="teamMappings" value={f.teamMappings} onInput={(e) => set({ teamMappings: e.currentTarget.value })} />
      </Field>
      <div class="form-row">
        {check("enabled", "Enabled")}
        {check("skipDiscovery", "Do not check the discovery document now (the provider is not reachable yet)")}
      </div>
      <ErrorBox error={save.error} />
      <div class="form-row">
        <button class="primary" type="submit" disabled={save.busy}>{save.busy ? "Saving…" : p ? "Save changes" : "Add provider"}</button>
        {p && <button type="button" onClick={props.onCancel}>Cancel</button>}
      </div>
    </form>
  );
}

export default function IdpsPage() {
  const idps = useAsync(() => api.idps.listIdentityProviders({ page: { pageSize: 500 } }), []);
  const teams = useAsync(() => api.teams.listTeams({ page: { pageSize: 500 } }).catch(() => undefined), []);
  const teamName = (id: string) => teams.data?.teams.find((t) => t.id === id)?.name ?? id;
  const [editing, setEditing] = useState<pb.IdentityProvider>();
  const [created, setCreated] = useState<pb.IdentityProvider>();
  const [formKey, setFormKey] = useState(0);
  const open = (p?: pb.IdentityProvider) => { setEditing(p); setFormKey((k) => k + 1); };
  const remove = useAction(async (p: pb.IdentityProvider) => {
    if (!window.confirm(`Delete identity provider ${p.name}? Its sessions end; the users it brought in stay.`)) return;
    await api.idps.deleteIdentityProvider({ idp: p.id });
    if (editing?.id === p.id) open();
    idps.reload();
  });
  const columns: Column<pb.IdentityProvider>[] = [
    { title: "Name", cell: (p) => <span><strong>{p.name}</strong>{p.source === "env" && <> <span class="badge">env</span></>}</span> },
    { title: "Status", cell: (p) => (p.enabled ? <span class="badge good">enabled</span> : <span class="badge">disabled</span>) },
    { title: "Issuer", cell: (p) => <code class="ap-wrap">{p.issuer}</code> },
    { title: "Client", cell: (p) => <span><code>{p.clientId}</code><br /><small>{p.hasClientSecret ? "secret stored" : "public client"}</small></span> },
    {
      title: "Access",
      cell: (p) => (
        <small>
          {p.allowedDomains.length ? `domains ${p.allowedDomains.join(", ")}` : "any domain"}
          {" · "}{p.autoProvision ? `new users as ${p.defaultRole === pb.Role.ADMIN ? "admin" : "member"}` : "existing users only"}
          {p.adminGroups.length > 0 && <> · admins: {p.adminGroups.join(", ")}</>}
          {Object.keys(p.teamMappings).length > 0 && <><br />teams: {Object.entries(p.teamMappings).map(([g, t]) => `${g} → ${teamName(t)}`).join(", ")}</>}
        </small>
      ),
    },
    { title: "Users", num: true, cell: (p) => num(p.users) },
    { title: "Redirect URI · sign-in URL", cell: (p) => <small><code class="ap-wrap">{p.redirectUri || "—"}</code><br />{p.loginUrl ? <a href={p.loginUrl}>{p.loginUrl}</a> : "—"}</small> },
    { title: "Updated", cell: (p) => when(p.updatedAt) },
    {
      title: "Actions",
      cell: (p) => (
        <span class="ap-actions">
          <button type="button" aria-label={`Edit ${p.name}`} onClick={() => open(p)}>Edit</button>
          <button type="button" class="danger" aria-label={`Delete ${p.name}`} disabled={remove.busy} onClick={() => remove.go(p)}>Delete</button>
        </span>
      ),
    },
  ];
  return (
    <Page title="Identity providers" actions={<button type="button" onClick={idps.reload}>Refresh</button>}>
      <p class="ap-note">OpenID Connect single sign-on. Register each provider's redirect URI at the provider as a web application.</p>
      {created && (
        <div class="panel" role="status" data-testid="idp-created">
          <h2>Provider {created.name} added</h2>
          <p>Register this redirect URI at the provider:</p>
          <Copy text={created.redirectUri} label="Copy the redirect URI" />
          <p>People sign in at:</p>
          <Copy text={created.loginUrl} label="Copy the sign-in URL" />
          <button type="button" onClick={() => setCreated(undefined)}>Done</button>
        </div>
      )}
      <ErrorBox error={remove.error} />
      <Loaded state={idps} what="identity providers" empty={(d) => d.identityProviders.length === 0} emptyText="No identity provider: people sign in with a password only.">
        {(d) => <Table label="Identity providers" columns={columns} rows={d.identityProviders} rowKey={(p) => p.id} />}
      </Loaded>
      <IdpForm
        key={formKey}
        idp={editing}
        teamName={teamName}
        onCreated={(p) => { setCreated(p); open(); idps.reload(); }}
        onDone={() => { open(); idps.reload(); }}
        onCancel={() => open()}
      />
    </Page>
  );
}
