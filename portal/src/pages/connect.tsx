// Connect: how a developer points Claude Code at this gateway. One command
// that signs in through the gateway (GET /setup), a one-time setup command
// for key-based machines (KeyService.CreateSetupToken), and the settings to
// write by hand. The gateway's public origin is this page's own.
import { useState } from "preact/hooks";
import { api, providers, type pb } from "../api";
import { href, setQuery, useRoute } from "../router";
import { useSession } from "../session";
import { Copy, ErrorBox, Field, Page, useAction, useAsync, when } from "../ui";

type Os = "macos" | "linux" | "wsl";
const OSES: { id: Os; label: string }[] = [
  { id: "macos", label: "macOS" },
  { id: "linux", label: "Linux" },
  { id: "wsl", label: "Windows (WSL)" },
];

function detectOs(): Os {
  const ua = navigator.userAgent;
  if (/Windows/i.test(ua)) return "wsl";
  if (/Macintosh|Mac OS X|iPhone|iPad/i.test(ua)) return "macos";
  return "linux";
}

/** The setup script's address, for the chosen scope. */
function setupUrl(origin: string, project: boolean): string {
  return `${origin}/setup${project ? "?scope=project" : ""}`;
}

export default function ConnectPage() {
  const route = useRoute();
  const session = useSession();
  const origin = location.origin;
  const q = route.query.get("os");
  const os: Os = q === "macos" || q === "linux" || q === "wsl" ? q : detectOs();
  const project = route.query.get("scope") === "project";
  const settingsFile = project ? "./.claude/settings.json" : "~/.claude/settings.json";
  const profile = os === "macos" ? "~/.zshrc" : "~/.bashrc";
  const idps = useAsync(() => providers(), []);
  const tabQuery = (o: Os) => ({ os: o, scope: project ? "project" : undefined });

  const exports = `export ANTHROPIC_BASE_URL=${origin}\nexport ANTHROPIC_API_KEY=sk-ccag-…  # a key from My keys`;
  const settingsJson = JSON.stringify({ env: { ANTHROPIC_BASE_URL: origin, ANTHROPIC_API_KEY: "sk-ccag-…" } }, null, 2);
  const managedDir = os === "macos" ? "/Library/Application Support/ClaudeCode" : "/etc/claude-code";
  const managed =
    `sudo mkdir -p '${managedDir}'\n` +
    `echo '${JSON.stringify({ forceLoginMethod: "gateway", forceLoginGatewayUrl: origin })}' | sudo tee '${managedDir}/managed-settings.json'`;

  return (
    <Page title="Connect">
      <p>
        Point Claude Code on your computer at this gateway, <code>{origin}</code>. Pick your system, then follow one of the
        ways below.
      </p>
      <nav class="tabs" aria-label="Your system">
        {OSES.map((o) => (
          <a href={href("/connect", tabQuery(o.id))} aria-current={o.id === os ? "page" : undefined}>{o.label}</a>
        ))}
      </nav>
      {os === "wsl" && (
        <p class="panel">
          On Windows, Claude Code runs in WSL. If you have no WSL yet, run <code>wsl --install</code> once in PowerShell and
          restart. Then run every command below in the WSL terminal (for example Ubuntu), not in PowerShell: there is no
          PowerShell setup yet.
        </p>
      )}
      <fieldset class="connect-scope">
        <legend>Where the settings go</legend>
        <label>
          <input type="radio" name="scope" checked={!project} onChange={() => setQuery({ scope: undefined })} /> For me, in every
          project (<code>~/.claude/settings.json</code>)
        </label>
        <label>
          <input type="radio" name="scope" checked={project} onChange={() => setQuery({ scope: "project" })} /> This project only
          (<code>./.claude/settings.json</code>; run it in the project's folder)
        </label>
      </fieldset>

      <section class="panel" aria-labelledby="connect-sso">
        <h2 id="connect-sso">1. Sign in through the gateway (recommended)</h2>
        <p>
          Run this in a terminal{os === "wsl" ? " in WSL" : ""}. It installs Claude Code if it is missing, shows a sign-in link
          and a code, and writes only the gateway's address and a sign-in helper into <code>{settingsFile}</code>, keeping your
          other settings. Running it again is harmless.
        </p>
        <Copy text={`curl -fsSL '${setupUrl(origin, project)}' | sh`} label="Copy the sign-in setup command" />
        <p>
          Open the link it prints, check that the page shows the same code as your terminal, and approve.{" "}
          {idps.data && idps.data.length === 0
            ? `No identity provider is set up, so approve it in this browser, where you are signed in as ${session.email || session.user_id}; or use a setup command below.`
            : `In this browser you are already signed in as ${session.email || session.user_id}.`}{" "}
          Want to read the script first? <a href={setupUrl(origin, project)} target="_blank" rel="noopener">Open it</a>.
        </p>
      </section>

      <SetupToken project={project} userId={session.user_id} />

      <section class="panel" aria-labelledby="connect-manual">
        <h2 id="connect-manual">3. Or set it up by hand</h2>
        <p>
          Install Claude Code (<code>npm install -g @anthropic-ai/claude-code</code>, or{" "}
          <code>curl -fsSL https://claude.ai/install.sh | bash</code>) and create a key on <a href={href("/keys")}>My keys</a>.
          Then either put these lines in your shell profile (<code>{profile}</code>):
        </p>
        <Copy text={exports} label="Copy the shell exports" />
        <p>
          or add the <code>env</code> entries to <code>{settingsFile}</code> (merge them into the file if you have one):
        </p>
        <Copy text={settingsJson} label="Copy the settings.json entries" />
        <p>
          Replace <code>sk-ccag-…</code> with your whole key. Remove <code>CLAUDE_CODE_USE_BEDROCK</code>,{" "}
          <code>ANTHROPIC_AUTH_TOKEN</code> and <code>apiKeyHelper</code> if you set them before: they would take over. Then
          start <code>claude</code>.
        </p>
        <details>
          <summary>Claude Code's own gateway sign-in (version 2.1.195 and later)</summary>
          <p>
            Instead of a key, a managed settings file can tell Claude Code to sign in to this gateway by itself. This replaces
            any managed settings file you have at <code>{managedDir}/managed-settings.json</code>:
          </p>
          <Copy text={managed} label="Copy the managed settings command" />
        </details>
      </section>
    </Page>
  );
}

function SetupToken(props: { project: boolean; userId: string }) {
  const me = useAsync<pb.User | undefined>(() => api.users.getUser({ id: props.userId }).catch(() => undefined), [props.userId]);
  const [team, setTeam] = useState("");
  const [name, setName] = useState("");
  const [made, setMade] = useState<{ command: string; expiresAt: string }>();
  const create = useAction(async () => {
    setMade(undefined);
    const r = await api.keys.createSetupToken({ team, keyName: name.trim() });
    const command = props.project ? r.command.replace("/setup?token=", "/setup?scope=project&token=") : r.command;
    setMade({ command, expiresAt: r.expiresAt });
  });
  const teams = me.data ? me.data.teamIds.map((id, i) => ({ id, name: me.data!.teamNames[i] || id })) : [];
  return (
    <section class="panel" aria-labelledby="connect-token">
      <h2 id="connect-token">2. Or with a key, for a machine without a browser</h2>
      <p>
        This makes a one-time command. Run it on the machine within 10 minutes: it installs Claude Code if needed, makes a new
        key for you (listed on <a href={href("/keys")}>My keys</a>) and configures Claude Code with it. It works once.
      </p>
      <form
        class="form-row"
        data-testid="setup-token"
        onSubmit={(e) => {
          e.preventDefault();
          void create.go();
        }}
      >
        {teams.length > 0 && (
          <Field label="Team" hint="The key's spend counts to this team.">
            <select name="team" value={team} onChange={(e) => setTeam(e.currentTarget.value)}>
              <option value="">No team</option>
              {teams.map((t) => <option value={t.id}>{t.name}</option>)}
            </select>
          </Field>
        )}
        <Field label="Key name (optional)" hint="Default: setup and today's date.">
          <input name="key_name" maxLength={100} value={name} placeholder="my-laptop" onInput={(e) => setName(e.currentTarget.value)} />
        </Field>
        <button type="submit" class="primary" disabled={create.busy}>{create.busy ? "Creating…" : "Create a setup command"}</button>
      </form>
      <ErrorBox error={create.error} />
      {made && (
        <div class="secret" role="status">
          <p>
            <strong>Run this on the developer machine before {when(made.expiresAt)}.</strong> It works once and will not be shown
            again.
          </p>
          <Copy text={made.command} label="Copy the one-time setup command" />
        </div>
      )}
    </section>
  );
}
