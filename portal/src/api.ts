// The admin API over gRPC-Web, on the control plane's own origin. The
// session is an HttpOnly cookie the browser sends by itself; every call
// also carries the session's CSRF token, which only a page of this origin
// can read (from /auth/session). Nothing is kept in local storage.
import { Code, ConnectError, createClient, type Client, type Interceptor } from "@connectrpc/connect";
import { createGrpcWebTransport } from "@connectrpc/connect-web";
import type { DescService } from "@bufbuild/protobuf";
import * as pb from "./gen/ccag/admin/v1/admin_pb";

export { pb };

export type Role = "admin" | "member";

export interface Session {
  user_id: string;
  email: string;
  role: Role;
  via: string;
  expires_at: string;
  csrf_token: string;
}

let csrf = "";

const withCsrf: Interceptor = (next) => async (req) => {
  req.header.set("x-csrf-token", csrf);
  return next(req);
};

const transport = createGrpcWebTransport({
  baseUrl: location.origin,
  interceptors: [withCsrf],
  fetch: (input, init) => fetch(input, { ...init, credentials: "same-origin" }),
});

const clients = new Map<DescService, Client<DescService>>();
function client<S extends DescService>(s: S): Client<S> {
  let c = clients.get(s);
  if (!c) {
    c = createClient(s, transport);
    clients.set(s, c);
  }
  return c as Client<S>;
}

export const api = {
  get auth() { return client(pb.AuthService); },
  get users() { return client(pb.UserService); },
  get teams() { return client(pb.TeamService); },
  get keys() { return client(pb.KeyService); },
  get models() { return client(pb.ModelService); },
  get endpoints() { return client(pb.EndpointService); },
  get idps() { return client(pb.IdentityProviderService); },
  get settings() { return client(pb.SettingsService); },
  get audit() { return client(pb.AuditService); },
  get status() { return client(pb.StatusService); },
  get usage() { return client(pb.UsageService); },
  get pricing() { return client(pb.PricingService); },
  get budgets() { return client(pb.BudgetService); },
  get notifications() { return client(pb.NotificationService); },
  get analytics() { return client(pb.AnalyticsService); },
  get search() { return client(pb.SearchService); },
  get managed() { return client(pb.ManagedSettingsService); },
  get scim() { return client(pb.ScimService); },
};

/** The signed-in session, or null; remembers its CSRF token for the calls. */
export async function loadSession(): Promise<Session | null> {
  const res = await fetch("/auth/session", { credentials: "same-origin" });
  if (res.status === 401) {
    // Read to the end: an unread answer stays open in the browser.
    await res.text();
    return null;
  }
  if (!res.ok) throw new Error(`the control plane answered ${res.status} for the session`);
  const s = (await res.json()) as Session;
  csrf = s.csrf_token;
  return s;
}

export async function signInWithPassword(username: string, password: string): Promise<void> {
  const res = await fetch("/auth/login", {
    method: "POST",
    credentials: "same-origin",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ username, password }),
  });
  const body = await res.json().catch(() => ({}));
  if (!res.ok) throw new Error(body.error || `sign-in failed (${res.status})`);
}

export async function signOut(): Promise<void> {
  const res = await fetch("/auth/logout", { method: "POST", credentials: "same-origin", headers: { "x-csrf-token": csrf } });
  await res.text();
  csrf = "";
}

export interface Provider { name: string; login_url: string }

export async function providers(): Promise<Provider[]> {
  const res = await fetch("/auth/providers", { credentials: "same-origin" });
  if (!res.ok) {
    await res.text();
    return [];
  }
  return ((await res.json()) as { providers: Provider[] }).providers;
}

/** What went wrong, in plain words, for the page to show. */
export function describe(e: unknown): string {
  if (e instanceof ConnectError) {
    const why = e.rawMessage || "";
    switch (e.code) {
      case Code.Unauthenticated: return `You are not signed in (${why}).`;
      case Code.PermissionDenied: return `You may not do this: ${why}.`;
      case Code.NotFound: return `Not found: ${why}.`;
      case Code.InvalidArgument: return `That was not accepted: ${why}.`;
      case Code.AlreadyExists: return `That exists already: ${why}.`;
      case Code.FailedPrecondition: return `Not possible now: ${why}.`;
      case Code.ResourceExhausted: return `Too many attempts: ${why}.`;
      case Code.Unavailable: return `The control plane or its database is unavailable: ${why}. Try again shortly.`;
      default: return `The control plane answered with an error: ${why || e.message}.`;
    }
  }
  if (e instanceof TypeError) return "The control plane could not be reached. Check your connection and try again.";
  return e instanceof Error ? e.message : String(e);
}

export function isUnauthenticated(e: unknown): boolean {
  return e instanceof ConnectError && e.code === Code.Unauthenticated;
}
