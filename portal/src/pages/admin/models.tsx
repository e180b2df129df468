// Models: the catalogue the data planes answer for (built-in models and
// explicit mappings, resolved to Bedrock ids and priced), and the explicit
// mappings themselves: create, change, delete.
import { useEffect, useRef, useState } from "preact/hooks";
import { api, pb } from "../../api";
import { href, useRoute } from "../../router";
import { ErrorBox, Field, Loaded, Page, Table, useAction, useAsync, usd, when, type Column } from "../../ui";

interface Form {
  anthropicId: string;
  bedrockId: string;
  displayName: string;
  listed: boolean;
}

function MappingForm(props: { model?: pb.Model; initial?: Partial<Form>; onDone: () => void; onCancel: () => void }) {
  const m = props.model;
  const [f, setF] = useState<Form>(
    m
      ? { anthropicId: m.anthropicId, bedrockId: m.bedrockId, displayName: m.displayName, listed: m.listed }
      : { anthropicId: "", bedrockId: "", displayName: "", listed: true, ...props.initial },
  );
  const set = (p: Partial<Form>) => setF((x) => ({ ...x, ...p }));
  const ref = useRef<HTMLFormElement>(null);
  useEffect(() => {
    if (m || props.initial) {
      ref.current?.scrollIntoView({ block: "nearest" });
      ref.current?.querySelector<HTMLInputElement>("input:not([disabled])")?.focus();
    }
  }, []);
  const save = useAction(async () => {
    if (m) {
      const ch = <T,>(a: T, b: T) => (a === b ? undefined : b);
      await api.models.updateModel({
        id: m.id,
        bedrockId: ch(m.bedrockId, f.bedrockId.trim()),
        displayName: ch(m.displayName, f.displayName.trim()),
        listed: ch(m.listed, f.listed),
      });
    } else {
      await api.models.createModel({
        anthropicId: f.anthropicId.trim(),
        bedrockId: f.bedrockId.trim(),
        displayName: f.displayName.trim(),
        listed: f.listed,
      });
    }
    props.onDone();
  });
  return (
    <form ref={ref} class="panel" data-testid="model-form" onSubmit={(e) => { e.preventDefault(); save.go(); }}>
      <h2>{m ? `Change the mapping of ${m.anthropicId}` : "Add a mapping"}</h2>
      <div class="form-row">
        <Field label="Name clients send" hint="e.g. claude-sonnet-4-5">
          <input name="anthropicId" required disabled={!!m} value={f.anthropicId} onInput={(e) => set({ anthropicId: e.currentTarget.value })} />
        </Field>
        <Field label="Bedrock id" hint="Inference profile, foundation model id or ARN; empty: the built-in resolution.">
          <input name="bedrockId" value={f.bedrockId} onInput={(e) => set({ bedrockId: e.currentTarget.value })} />
        </Field>
        <Field label="Display name">
          <input name="displayName" value={f.displayName} onInput={(e) => set({ displayName: e.currentTarget.value })} />
        </Field>
        <label class="ap-check">
          <input type="checkbox" checked={f.listed} onChange={(e) => set({ listed: e.currentTarget.checked })} /> Listed at GET /v1/models
        </label>
      </div>
      <ErrorBox error={save.error} />
      <div class="form-row">
        <button class="primary" type="submit" disabled={save.busy}>{save.busy ? "Saving…" : m ? "Save changes" : "Add mapping"}</button>
        {(m || props.initial) && <button type="button" onClick={props.onCancel}>Cancel</button>}
      </div>
    </form>
  );
}

const SOURCE: Record<number, string> = {
  [pb.ModelSource.BUILT_IN]: "built-in",
  [pb.ModelSource.BUILT_IN_MAPPED]: "built-in, mapped",
  [pb.ModelSource.MAPPING]: "mapping",
};

export default function ModelsPage() {
  const { query } = useRoute();
  const tab = query.get("tab") === "mappings" ? "mappings" : "catalogue";
  const cat = useAsync(() => api.models.listCatalogue({}), []);
  const maps = useAsync(() => api.models.listModels({ page: { pageSize: 500 } }), []);
  const [edit, setEdit] = useState<{ model?: pb.Model; initial?: Partial<Form> }>({});
  const [formKey, setFormKey] = useState(0);
  const open = (e: { model?: pb.Model; initial?: Partial<Form> }) => { setEdit(e); setFormKey((k) => k + 1); };
  const reload = () => { cat.reload(); maps.reload(); };
  const remove = useAction(async (m: pb.Model) => {
    if (!window.confirm(`Delete the mapping of ${m.anthropicId}? A built-in model goes back to its built-in resolution; any other name stops working.`)) return;
    await api.models.deleteModel({ id: m.id });
    if (edit.model?.id === m.id) open({});
    reload();
  });
  const mappingById = (id: string) => maps.data?.models.find((m) => m.id === id);

  const catCols: Column<pb.CatalogueModel>[] = [
    { title: "Name", cell: (c) => <span><code>{c.id}</code>{c.aliases.length > 0 && <><br /><small>also {c.aliases.join(", ")}</small></>}</span> },
    { title: "Display name", cell: (c) => c.displayName },
    { title: "Bedrock id", cell: (c) => (c.bedrockId ? <code>{c.bedrockId}</code> : <span class="badge bad">refused: no Bedrock id</span>) },
    { title: "Source", cell: (c) => SOURCE[c.source] ?? "—" },
    { title: "Listed", cell: (c) => (c.listed ? "yes" : "no") },
    { title: "Price row", cell: (c) => (c.priceModel ? c.priceModel : <a class="badge bad" href={href("/admin/prices")}>unpriced</a>) },
    { title: "Input", num: true, cell: (c) => usd(c.inputMicroUsdPerMtok) },
    { title: "Output", num: true, cell: (c) => usd(c.outputMicroUsdPerMtok) },
    { title: "Write 5 min", num: true, cell: (c) => usd(c.cacheWriteMicroUsdPerMtok) },
    { title: "Write 1 h", num: true, cell: (c) => usd(c.cacheWrite1hMicroUsdPerMtok) },
    { title: "Read", num: true, cell: (c) => usd(c.cacheReadMicroUsdPerMtok) },
    {
      title: "Mapping",
      cell: (c) => {
        const m = c.mappingId ? mappingById(c.mappingId) : undefined;
        return m ? (
          <button type="button" aria-label={`Edit mapping ${c.id}`} onClick={() => open({ model: m })}>Edit</button>
        ) : (
          <button type="button" aria-label={`Map ${c.id}`} onClick={() => open({ initial: { anthropicId: c.id, displayName: c.displayName } })}>Map</button>
        );
      },
    },
  ];
  const mapCols: Column<pb.Model>[] = [
    { title: "Name clients send", cell: (m) => <code>{m.anthropicId}</code> },
    { title: "Bedrock id", cell: (m) => (m.bedrockId ? <code>{m.bedrockId}</code> : "built-in resolution") },
    { title: "Display name", cell: (m) => m.displayName },
    { title: "Listed", cell: (m) => (m.listed ? "yes" : "no") },
    { title: "Updated", cell: (m) => when(m.updatedAt) },
    {
      title: "Actions",
      cell: (m) => (
        <span class="ap-actions">
          <button type="button" aria-label={`Edit mapping ${m.anthropicId}`} onClick={() => open({ model: m })}>Edit</button>
          <button type="button" class="danger" aria-label={`Delete mapping ${m.anthropicId}`} disabled={remove.busy} onClick={() => remove.go(m)}>Delete</button>
        </span>
      ),
    },
  ];
  const tabLink = (t: string, label: string) => (
    <a href={href("/admin/models", t === "catalogue" ? {} : { tab: t })} aria-current={tab === t ? "page" : undefined}>{label}</a>
  );
  return (
    <Page title="Models" actions={<button type="button" onClick={reload}>Refresh</button>}>
      <nav class="tabs" aria-label="Model views">
        {tabLink("catalogue", "Catalogue")}
        {tabLink("mappings", "Explicit mappings")}
      </nav>
      <ErrorBox error={remove.error} />
      {tab === "catalogue" ? (
        <Loaded state={cat} what="the catalogue" empty={(d) => d.models.length === 0} emptyText="The catalogue is empty.">
          {(d) => (
            <>
              <p class="ap-note">
                Bedrock ids for region <strong>{d.region || "(each data plane's own)"}</strong>
                {d.endpoint && <> (from endpoint {d.endpoint})</>}, inference-profile geo <strong>{d.geo}</strong>. Prices are
                US dollars per million tokens as charged, the regional premium included.
              </p>
              <Table label="Model catalogue" columns={catCols} rows={d.models} rowKey={(c) => c.id} />
            </>
          )}
        </Loaded>
      ) : (
        <Loaded state={maps} what="mappings" empty={(d) => d.models.length === 0} emptyText="No explicit mapping: every model resolves as built in.">
          {(d) => <Table label="Model mappings" columns={mapCols} rows={d.models} rowKey={(m) => m.id} />}
        </Loaded>
      )}
      <MappingForm key={formKey} model={edit.model} initial={edit.initial} onDone={() => { open({}); reload(); }} onCancel={() => open({})} />
    </Page>
  );
}
