// The shell: who is signed in, the navigation their role allows, and the
// page the URL names. Admin pages are hidden from members here, but what
// protects them is the API, which refuses members.
import type { ComponentChildren, FunctionComponent } from "preact";
import { lazy, Suspense } from "preact/compat";
import { useEffect, useState } from "preact/hooks";
import { describe, loadSession, signOut, type Session } from "./api";
import { href, navigate, onLinkClick, useRoute } from "./router";
import { SessionContext } from "./session";
import { ErrorBox, Loading } from "./ui";
import { SignIn } from "./pages/signin";

interface PageDef {
  path: string;
  title: string;
  admin?: boolean;
  component: FunctionComponent;
}

// Every page but sign-in loads on first use, so the first load stays small.
const pages: PageDef[] = [
  { path: "/connect", title: "Connect", component: lazy(() => import("./pages/connect")) },
  { path: "/usage", title: "My usage", component: lazy(() => import("./pages/usage")) },
  { path: "/keys", title: "My keys", component: lazy(() => import("./pages/mykeys")) },
  { path: "/admin/analytics", title: "Analytics", admin: true, component: lazy(() => import("./pages/admin/analytics")) },
  { path: "/admin/users", title: "Users", admin: true, component: lazy(() => import("./pages/admin/users")) },
  { path: "/admin/teams", title: "Teams", admin: true, component: lazy(() => import("./pages/admin/teams")) },
  { path: "/admin/keys", title: "Keys", admin: true, component: lazy(() => import("./pages/admin/keys")) },
  { path: "/admin/budgets", title: "Budgets", admin: true, component: lazy(() => import("./pages/admin/budgets")) },
  { path: "/admin/endpoints", title: "Endpoints", admin: true, component: lazy(() => import("./pages/admin/endpoints")) },
  { path: "/admin/models", title: "Models", admin: true, component: lazy(() => import("./pages/admin/models")) },
  { path: "/admin/prices", title: "Prices", admin: true, component: lazy(() => import("./pages/admin/prices")) },
  { path: "/admin/notifications", title: "Notifications", admin: true, component: lazy(() => import("./pages/admin/notifications")) },
  { path: "/admin/idps", title: "Identity providers", admin: true, component: lazy(() => import("./pages/admin/idps")) },
  { path: "/admin/settings", title: "Settings", admin: true, component: lazy(() => import("./pages/admin/settings")) },
  { path: "/admin/audit", title: "Audit log", admin: true, component: lazy(() => import("./pages/admin/audit")) },
  { path: "/admin/dataplanes", title: "Data planes", admin: true, component: lazy(() => import("./pages/admin/dataplanes")) },
];

function Nav(props: { session: Session; path: string }) {
  const link = (p: PageDef) => (
    <li>
      <a href={href(p.path)} aria-current={props.path === p.path ? "page" : undefined}>{p.title}</a>
    </li>
  );
  return (
    <nav aria-label="Main">
      <ul>{pages.filter((p) => !p.admin).map(link)}</ul>
      {props.session.role === "admin" && (
        <>
          <h2 class="nav-head">Admin</h2>
          <ul>{pages.filter((p) => p.admin).map(link)}</ul>
        </>
      )}
    </nav>
  );
}

function Shell(props: { session: Session; children: ComponentChildren; path: string; onSignOut: () => void }) {
  const [open, setOpen] = useState(false);
  return (
    <div class={`shell${open ? " nav-open" : ""}`} onClick={(e) => onLinkClick(e as unknown as MouseEvent)}>
      <a class="skip" href="#main">Skip to content</a>
      <header class="top">
        <button type="button" class="menu" aria-expanded={open} aria-controls="sidebar" onClick={() => setOpen(!open)}>Menu</button>
        <a class="brand" href={href("/")}>CCAG</a>
        <span class="who" data-testid="who">{props.session.email || props.session.user_id} · {props.session.role}</span>
        <button type="button" onClick={props.onSignOut}>Sign out</button>
      </header>
      <aside id="sidebar" onClick={() => setOpen(false)}>
        <Nav session={props.session} path={props.path} />
      </aside>
      <main id="main" tabIndex={-1}>{props.children}</main>
    </div>
  );
}

function NotFound() {
  return (
    <section class="page">
      <h1>Page not found</h1>
      <p>There is no page at this address. <a href={href("/")}>Go to the start page</a>.</p>
    </section>
  );
}

function Forbidden() {
  return (
    <section class="page">
      <h1>Admins only</h1>
      <p>This page needs the admin role. <a href={href("/usage")}>See your own usage</a>.</p>
    </section>
  );
}

export function App() {
  const route = useRoute();
  const [state, setState] = useState<{ session?: Session | null; error?: string }>({});
  const refresh = () =>
    loadSession().then(
      (session) => setState({ session }),
      (e) => setState({ error: describe(e) }),
    );
  useEffect(() => void refresh(), []);

  if (state.error) return <main class="center"><ErrorBox error={state.error} onRetry={refresh} /></main>;
  if (state.session === undefined) return <main class="center"><Loading what="your session" /></main>;
  if (state.session === null || route.path === "/signin") {
    if (state.session && route.path === "/signin") {
      navigate(route.query.get("next") || "/", undefined, true);
      return null;
    }
    return <SignIn onSignedIn={refresh} />;
  }
  const session = state.session;
  const path = route.path === "/" ? (session.role === "admin" ? "/admin/analytics" : "/usage") : route.path;
  const page = pages.find((p) => p.path === path);
  const body = !page ? <NotFound /> : page.admin && session.role !== "admin" ? <Forbidden /> : <page.component />;
  return (
    <SessionContext.Provider value={{ session, refresh }}>
      <Shell
        session={session}
        path={path}
        onSignOut={async () => {
          await signOut();
          setState({ session: null });
          navigate("/signin", undefined, true);
        }}
      >
        <Suspense fallback={<Loading what="the page" />}>{body}</Suspense>
      </Shell>
    </SessionContext.Provider>
  );
}
