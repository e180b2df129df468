// Sign-in: a password (for the bootstrap admin and password users) and one
// button per enabled identity provider. Both end in the HttpOnly session
// cookie; the page never sees the session token.
import { useEffect, useState } from "preact/hooks";
import { providers, signInWithPassword, type Provider } from "../api";
import { useRoute } from "../router";
import { ErrorBox, Field } from "../ui";

export function SignIn(props: { onSignedIn: () => void }) {
  const route = useRoute();
  const [idps, setIdps] = useState<Provider[]>([]);
  const [username, setUsername] = useState("");
  const [password, setPassword] = useState("");
  const [error, setError] = useState<string>();
  const [busy, setBusy] = useState(false);
  useEffect(() => {
    document.title = "Sign in · CCAG";
    providers().then(setIdps);
  }, []);
  const next = route.query.get("next") || `${location.pathname.replace(/^\/portal/, "") || "/"}${location.search}`;
  const returnTo = `/portal${next.startsWith("/signin") ? "/" : next}`;
  return (
    <main class="center">
      <section class="signin" aria-labelledby="signin-title">
        <h1 id="signin-title">Sign in to CCAG</h1>
        {idps.length > 0 && (
          <div class="idps">
            {idps.map((p) => (
              <a class="button primary" href={`${p.login_url}${p.login_url.includes("?") ? "&" : "?"}return_to=${encodeURIComponent(returnTo)}`}>
                Sign in with {p.name}
              </a>
            ))}
            <p class="or">or with a password</p>
          </div>
        )}
        <form
          onSubmit={async (e) => {
            e.preventDefault();
            setBusy(true);
            setError(undefined);
            try {
              await signInWithPassword(username, password);
              setPassword("");
              props.onSignedIn();
            } catch (err) {
              setError(err instanceof Error ? err.message : String(err));
            } finally {
              setBusy(false);
            }
          }}
        >
          <Field label="Email or username">
            <input name="username" autocomplete="username" required value={username} onInput={(e) => setUsername(e.currentTarget.value)} />
          </Field>
          <Field label="Password">
            <input name="password" type="password" autocomplete="current-password" required value={password} onInput={(e) => setPassword(e.currentTarget.value)} />
          </Field>
          <ErrorBox error={error} />
          <button type="submit" class="primary" disabled={busy}>{busy ? "Signing in…" : "Sign in"}</button>
        </form>
      </section>
    </main>
  );
}
