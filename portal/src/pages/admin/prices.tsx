// Prices: US dollars per million tokens, per model prefix (the longest
// matching prefix of a model name wins), as PricingService carries them.
import { useEffect, useRef, useState } from "preact/hooks";
import { api, pb } from "../../api";
import { ErrorBox, Field, Loaded, Page, Table, num, useAction, useAsync, when, type Column } from "../../ui";

const perM = new Intl.NumberFormat("en-US", { style: "currency", currency: "USD", minimumFractionDigits: 2, maximumFractionDigits: 6 });
/** A rate in US dollars per million tokens. */
const rate = (usd: number) => perM.format(usd);

/** Dollars per million tokens typed by a person; empty is 0. The API keeps six decimals. */
function parseRate(label: string, s: string, required = false): number {
  const t = s.trim().replace(/^\$/, "");
  if (!t && !required) return 0;
  if (!/^\d+(\.\d{1,6})?$/.test(t)) throw new Error(`${label}: US dollars per million tokens, e.g. 3 or 0.30 (at most six decimals).`);
  const v = Number(t);
  if (v > 100_000) throw new Error(`${label}: at most 100000 USD per million tokens.`);
  return v;
}

const show = (v: number) => (v ? String(v) : "");

interface Form {
  model: string;
  input: string;
  output: string;
  cacheWrite: string;
  cacheWrite1h: string;
  cacheRead: string;
  lcThreshold: string;
  lc: [string, string, string, string, string];
  premium: string;
}

const blank: Form = { model: "", input: "", output: "", cacheWrite: "", cacheWrite1h: "", cacheRead: "", lcThreshold: "", lc: ["", "", "", "", ""], premium: "" };

function formOf(p: pb.Price): Form {
  return {
    model: p.model, input: String(p.input), output: String(p.output), cacheWrite: show(p.cacheWrite), cacheWrite1h: show(p.cacheWrite1h),
    cacheRead: show(p.cacheRead), lcThreshold: p.longContextThreshold ? String(p.longContextThreshold) : "",
    lc: [show(p.longContextInput), show(p.longContextOutput), show(p.longContextCacheWrite), show(p.longContextCacheWrite1h), show(p.longContextCacheRead)],
    premium: p.regionalPremiumBp ? String(p.regionalPremiumBp / 100) : "",
  };
}

const LC_LABELS = ["Input", "Output", "Write 5 min", "Write 1 h", "Read"];

function toPrice(f: Form) {
  const threshold = f.lcThreshold.trim();
  if (threshold && !/^\d+$/.test(threshold)) throw new Error("Long-context threshold: a whole number of input tokens.");
  const lc = f.lc.map((v, i) => parseRate(`Long-context ${LC_LABELS[i].toLowerCase()}`, v));
  const lcThreshold = BigInt(threshold || "0");
  if (lcThreshold > 0n && lc[0] === 0) throw new Error("A long-context threshold needs at least the long-context input rate.");
  const premium = f.premium.trim().replace(/%$/, "");
  if (premium && !/^\d+(\.\d{1,2})?$/.test(premium)) throw new Error("Regional premium: a percentage such as 10 or 12.5.");
  const bp = Math.round(Number(premium || "0") * 100);
  if (bp > 100_000) throw new Error("Regional premium: at most 1000%.");
  return {
    model: f.model.trim(),
    input: parseRate("Input", f.input, true),
    output: parseRate("Output", f.output, true),
    cacheWrite: parseRate("Cache write (5 min)", f.cacheWrite),
    cacheWrite1h: parseRate("Cache write (1 h)", f.cacheWrite1h),
    cacheRead: parseRate("Cache read", f.cacheRead),
    longContextThreshold: lcThreshold,
    longContextInput: lc[0], longContextOutput: lc[1], longContextCacheWrite: lc[2], longContextCacheWrite1h: lc[3], longContextCacheRead: lc[4],
    regionalPremiumBp: bp,
  };
}

function PriceForm(props: { price?: pb.Price; onDone: () => void; onCancel: () => void }) {
  const p = props.price;
  const [f, setF] = useState<Form>(p ? formOf(p) : blank);
  const set = (x: Partial<Form>) => setF((o) => ({ ...o, ...x }));
  const ref = useRef<HTMLFormElement>(null);
  useEffect(() => {
    if (p) {
      ref.current?.scrollIntoView({ block: "nearest" });
      ref.current?.querySelector<HTMLInputElement>("input:not([disabled])")?.focus();
    }
  }, []);
  const save = useAction(async () => {
    await api.pricing.setPrice(toPrice(f));
    props.onDone();
  });
  const rateField = (k: "input" | "output" | "cacheWrite" | "cacheWrite1h" | "cacheRead", label: string, hint?: string, required = false) => (
    <Field label={label} hint={hint}>
      <input name={k} inputMode="decimal" required={required} size={8} value={f[k]} onInput={(e) => set({ [k]: e.currentTarget.value })} />
    </Field>
  );
  return (
    <form ref={ref} class="panel" data-testid="price-form" onSubmit={(e) => { e.preventDefault(); save.go(); }}>
      <h2>{p ? `Change the price of ${p.model}` : "Set a price"}</h2>
      <p class="ap-note">
        US dollars per million tokens. A price you set is marked <em>admin</em> and never overwritten by a release's defaults.
      </p>
      <div class="form-row">
        <Field label="Model prefix" hint="e.g. claude-sonnet-4-5">
          <input name="model" required disabled={!!p} value={f.model} onInput={(e) => set({ model: e.currentTarget.value })} />
        </Field>
        {rateField("input", "Input $/MTok", undefined, true)}
        {rateField("output", "Output $/MTok", undefined, true)}
        {rateField("cacheWrite", "Cache write 5 min", "$/MTok")}
        {rateField("cacheWrite1h", "Cache write 1 h", "$/MTok; empty: twice input")}
        {rateField("cacheRead", "Cache read", "$/MTok")}
        <Field label="Regional premium %" hint="Geo profiles over global">
          <input name="premium" inputMode="decimal" size={6} value={f.premium} onInput={(e) => set({ premium: e.currentTarget.value })} />
        </Field>
      </div>
      <fieldset class="ap-fieldset">
        <legend>Long context (optional)</legend>
        <div class="form-row">
          <Field label="Above input tokens" hint="The whole request then pays these rates.">
            <input name="lcThreshold" inputMode="numeric" size={9} placeholder="200000" value={f.lcThreshold} onInput={(e) => set({ lcThreshold: e.currentTarget.value })} />
          </Field>
          {LC_LABELS.map((l, i) => (
            <Field label={`${l} $/MTok`}>
              <input inputMode="decimal" size={8} value={f.lc[i]}
                onInput={(e) => { const lc = [...f.lc] as Form["lc"]; lc[i] = e.currentTarget.value; set({ lc }); }} />
            </Field>
          ))}
        </div>
      </fieldset>
      <ErrorBox error={save.error} />
      <div class="form-row">
        <button class="primary" type="submit" disabled={save.busy}>{save.busy ? "Saving…" : "Save price"}</button>
        {p && <button type="button" onClick={props.onCancel}>Cancel</button>}
      </div>
    </form>
  );
}

export default function PricesPage() {
  const prices = useAsync(() => api.pricing.listPrices({}), []);
  const [editing, setEditing] = useState<pb.Price>();
  const [formKey, setFormKey] = useState(0);
  const open = (p?: pb.Price) => { setEditing(p); setFormKey((k) => k + 1); };
  const remove = useAction(async (p: pb.Price) => {
    const note = p.source === "default" ? " It is a shipped default: the control plane adds it back at its next start." : "";
    if (!window.confirm(`Delete the price of ${p.model}? Models it matched fall back to a shorter prefix or the unpriced rates.${note}`)) return;
    await api.pricing.deletePrice({ model: p.model });
    if (editing?.model === p.model) open();
    prices.reload();
  });
  const columns: Column<pb.Price>[] = [
    { title: "Model prefix", cell: (p) => <code>{p.model}</code> },
    { title: "Input", num: true, cell: (p) => rate(p.input) },
    { title: "Output", num: true, cell: (p) => rate(p.output) },
    { title: "Write 5 min", num: true, cell: (p) => rate(p.cacheWrite) },
    { title: "Write 1 h", num: true, cell: (p) => rate(p.cacheWrite1h) },
    { title: "Read", num: true, cell: (p) => rate(p.cacheRead) },
    {
      title: "Long context",
      cell: (p) =>
        p.longContextThreshold > 0n ? (
          <span>
            &gt; {num(p.longContextThreshold)} tokens:
            <br />
            <small>
              {[p.longContextInput, p.longContextOutput, p.longContextCacheWrite, p.longContextCacheWrite1h, p.longContextCacheRead].map(rate).join(" / ")}
            </small>
          </span>
        ) : (
          "—"
        ),
    },
    { title: "Regional", num: true, cell: (p) => (p.regionalPremiumBp ? `+${p.regionalPremiumBp / 100}%` : "—") },
    { title: "Source", cell: (p) => <span class={`badge ${p.source === "admin" ? "good" : ""}`}>{p.source || "—"}</span> },
    { title: "Updated", cell: (p) => when(p.updatedAt) },
    {
      title: "Actions",
      cell: (p) => (
        <span class="ap-actions">
          <button type="button" aria-label={`Edit price ${p.model}`} onClick={() => open(p)}>Edit</button>
          <button type="button" class="danger" aria-label={`Delete price ${p.model}`} disabled={remove.busy} onClick={() => remove.go(p)}>Delete</button>
        </span>
      ),
    },
  ];
  return (
    <Page title="Prices" actions={<button type="button" onClick={prices.reload}>Refresh</button>}>
      <p class="ap-note">
        US dollars per million tokens. A request is priced by the row whose prefix is the longest match of its model; a
        model with no row is charged the highest rate of each kind and reported as unpriced. Edits apply to new requests only.
      </p>
      <ErrorBox error={remove.error} />
      <Loaded state={prices} what="prices" empty={(d) => d.prices.length === 0} emptyText="The price table is empty: every request is charged the unpriced rates.">
        {(d) => <Table label="Prices per million tokens" columns={columns} rows={d.prices} rowKey={(p) => p.model} />}
      </Loaded>
      <PriceForm key={formKey} price={editing} onDone={() => { open(); prices.reload(); }} onCancel={() => open()} />
    </Page>
  );
}
