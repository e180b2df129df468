// Shared pieces every page uses: loading, error and empty states, tables,
// forms, copy buttons, and how money, numbers and times are shown.
import type { ComponentChildren } from "preact";
import { useCallback, useEffect, useRef, useState } from "preact/hooks";
import { describe } from "./api";

export interface Async<T> {
  data: T | undefined;
  error: string | undefined;
  loading: boolean;
  reload: () => void;
}

/** Runs `load` when `deps` change; keeps the last answer while reloading. */
export function useAsync<T>(load: () => Promise<T>, deps: unknown[]): Async<T> {
  const [state, setState] = useState<{ data?: T; error?: string; loading: boolean }>({ loading: true });
  const [tick, setTick] = useState(0);
  const seq = useRef(0);
  useEffect(() => {
    const mine = ++seq.current;
    setState((s) => ({ ...s, loading: true }));
    load().then(
      (data) => mine === seq.current && setState({ data, loading: false }),
      (e) => mine === seq.current && setState((s) => ({ data: s.data, error: describe(e), loading: false })),
    );
  }, [...deps, tick]);
  const reload = useCallback(() => setTick((t) => t + 1), []);
  return { data: state.data, error: state.error, loading: state.loading, reload };
}

/** A function that reports its own failure and progress, for buttons and forms. */
export function useAction<A extends unknown[]>(run: (...a: A) => Promise<void>) {
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string>();
  const go = async (...a: A) => {
    setBusy(true);
    setError(undefined);
    try {
      await run(...a);
    } catch (e) {
      setError(describe(e));
    } finally {
      setBusy(false);
    }
  };
  return { go, busy, error, clear: () => setError(undefined) };
}

export function Page(props: { title: string; actions?: ComponentChildren; children: ComponentChildren }) {
  useEffect(() => {
    document.title = `${props.title} · CCAG`;
  }, [props.title]);
  return (
    <section class="page" aria-labelledby="page-title">
      <header class="page-head">
        <h1 id="page-title">{props.title}</h1>
        {props.actions && <div class="actions">{props.actions}</div>}
      </header>
      {props.children}
    </section>
  );
}

export function Loading(props: { what?: string }) {
  return <p class="loading" role="status">Loading {props.what ?? ""}…</p>;
}

export function ErrorBox(props: { error?: string; onRetry?: () => void }) {
  if (!props.error) return null;
  return (
    <div class="error" role="alert">
      <p>{props.error}</p>
      {props.onRetry && <button type="button" onClick={props.onRetry}>Try again</button>}
    </div>
  );
}

export function Empty(props: { children: ComponentChildren }) {
  return <p class="empty">{props.children}</p>;
}

/** Loading, error and empty states around a list, then the list itself. */
export function Loaded<T>(props: {
  state: Async<T>;
  what: string;
  empty?: (d: T) => boolean;
  emptyText?: ComponentChildren;
  children: (d: T) => ComponentChildren;
}) {
  const { state } = props;
  if (state.error && state.data === undefined) return <ErrorBox error={state.error} onRetry={state.reload} />;
  if (state.data === undefined) return <Loading what={props.what} />;
  return (
    <>
      <ErrorBox error={state.error} onRetry={state.reload} />
      {props.empty?.(state.data) ? <Empty>{props.emptyText ?? `No ${props.what} yet.`}</Empty> : props.children(state.data)}
    </>
  );
}

export interface Column<T> {
  title: string;
  cell: (row: T) => ComponentChildren;
  /** Right-aligned (numbers). */
  num?: boolean;
}

export function Table<T>(props: { columns: Column<T>[]; rows: T[]; label: string; rowKey?: (r: T) => string }) {
  return (
    <div class="table-wrap" tabIndex={0} role="region" aria-label={props.label}>
      <table>
        <thead>
          <tr>{props.columns.map((c) => <th scope="col" class={c.num ? "num" : ""}>{c.title}</th>)}</tr>
        </thead>
        <tbody>
          {props.rows.map((r, i) => (
            <tr key={props.rowKey ? props.rowKey(r) : i}>
              {props.columns.map((c) => <td class={c.num ? "num" : ""}>{c.cell(r)}</td>)}
            </tr>
          ))}
        </tbody>
      </table>
    </div>
  );
}

export function Field(props: { label: string; hint?: string; children: ComponentChildren }) {
  return (
    <label class="field">
      <span>{props.label}</span>
      {props.children}
      {props.hint && <small>{props.hint}</small>}
    </label>
  );
}

/** Text to copy, with its button; `testId` marks the text alone (a secret shown once). */
export function Copy(props: { text: string; label?: string; testId?: string }) {
  const [done, setDone] = useState(false);
  return (
    <div class="copy">
      <pre><code data-testid={props.testId}>{props.text}</code></pre>
      <button
        type="button"
        aria-label={props.label ?? "Copy"}
        onClick={async () => {
          try {
            await navigator.clipboard.writeText(props.text);
            setDone(true);
            setTimeout(() => setDone(false), 1500);
          } catch {
            // Clipboard refused (an insecure origin): the text stays selectable.
          }
        }}
      >
        {done ? "Copied" : "Copy"}
      </button>
    </div>
  );
}

export function Stat(props: { label: string; value: ComponentChildren; hint?: string }) {
  return (
    <div class="stat">
      <span class="stat-label">{props.label}</span>
      <span class="stat-value">{props.value}</span>
      {props.hint && <span class="stat-hint">{props.hint}</span>}
    </div>
  );
}

const usdFmt = new Intl.NumberFormat("en-US", { style: "currency", currency: "USD", minimumFractionDigits: 2, maximumFractionDigits: 2 });
const usdSmall = new Intl.NumberFormat("en-US", { style: "currency", currency: "USD", minimumFractionDigits: 4, maximumFractionDigits: 4 });
const numFmt = new Intl.NumberFormat("en-US");

/** Integer micro-USD as dollars (four decimals below a dollar). */
export function usd(micro: bigint | number): string {
  const v = Number(micro) / 1e6;
  return v !== 0 && Math.abs(v) < 1 ? usdSmall.format(v) : usdFmt.format(v);
}

export function num(n: bigint | number): string {
  return numFmt.format(typeof n === "bigint" ? Number(n) : n);
}

export function pct(x: number): string {
  return `${(x * 100).toFixed(1)}%`;
}

/** An RFC 3339 time in the reader's own time zone; "—" for none. */
export function when(t: string): string {
  if (!t) return "—";
  const d = new Date(t);
  return Number.isNaN(d.getTime()) ? t : d.toLocaleString();
}

/** Dollars typed by a person as integer micro-USD, or undefined if not a sum. */
export function parseUsd(s: string): bigint | undefined {
  const m = s.trim().replace(/^\$/, "").match(/^(\d+)(?:\.(\d{0,6}))?$/);
  if (!m) return undefined;
  return BigInt(m[1]) * 1_000_000n + BigInt((m[2] ?? "").padEnd(6, "0") || "0");
}

/**
 * A search box whose value lives in the URL's `param` once submitted, so a
 * search can be bookmarked; `children` are more filters beside it.
 */
export function SearchForm(props: {
  label: string;
  param: string;
  value: string;
  button?: string;
  onSearch: (value: string | undefined) => void;
  children?: ComponentChildren;
}) {
  const [text, setText] = useState(props.value);
  useEffect(() => setText(props.value), [props.value]);
  return (
    <form
      class="filters"
      role="search"
      onSubmit={(e) => {
        e.preventDefault();
        props.onSearch(text.trim() || undefined);
      }}
    >
      <Field label={props.label}>
        <input type="search" name={props.param} value={text} onInput={(e) => setText(e.currentTarget.value)} />
      </Field>
      <button type="submit">{props.button ?? "Search"}</button>
      {props.children}
    </form>
  );
}
