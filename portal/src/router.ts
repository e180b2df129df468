// Deep links: the path names the page (under /portal/) and the query
// string its filters, so a view can be bookmarked, shared and reloaded.
import { useEffect, useState } from "preact/hooks";

export const BASE = "/portal";

export interface Route {
  /** The page's path below /portal, e.g. "/admin/users" ("/" for the start page). */
  path: string;
  query: URLSearchParams;
}

function current(): Route {
  const p = location.pathname.startsWith(BASE) ? location.pathname.slice(BASE.length) : location.pathname;
  return { path: p === "" ? "/" : p.replace(/\/+$/, "") || "/", query: new URLSearchParams(location.search) };
}

const listeners = new Set<() => void>();
window.addEventListener("popstate", () => listeners.forEach((l) => l()));

export function href(path: string, query?: Record<string, string | undefined>): string {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(query ?? {})) if (v) q.set(k, v);
  const s = q.toString();
  return `${BASE}${path === "/" ? "/" : path}${s ? `?${s}` : ""}`;
}

export function navigate(path: string, query?: Record<string, string | undefined>, replace = false): void {
  const url = href(path, query);
  if (replace) history.replaceState(null, "", url);
  else history.pushState(null, "", url);
  listeners.forEach((l) => l());
}

/** Changes some of the current page's query parameters (filters), keeping the others. */
export function setQuery(patch: Record<string, string | undefined>): void {
  const r = current();
  const q: Record<string, string> = Object.fromEntries(r.query.entries());
  for (const [k, v] of Object.entries(patch)) {
    if (v) q[k] = v;
    else delete q[k];
  }
  navigate(r.path, q, true);
}

export function useRoute(): Route {
  const [route, setRoute] = useState(current);
  useEffect(() => {
    const l = () => setRoute(current());
    listeners.add(l);
    return () => void listeners.delete(l);
  }, []);
  return route;
}

/** A click on an in-portal link changes the page without a reload. */
export function onLinkClick(e: MouseEvent): void {
  const a = (e.target as HTMLElement).closest("a");
  if (!a || e.defaultPrevented || e.button !== 0 || e.metaKey || e.ctrlKey || e.shiftKey || a.target) return;
  const url = new URL(a.href, location.href);
  if (url.origin !== location.origin || !url.pathname.startsWith(BASE)) return;
  e.preventDefault();
  history.pushState(null, "", url.pathname + url.search);
  listeners.forEach((l) => l());
}
