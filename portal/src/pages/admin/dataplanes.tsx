// The fleet: this control-plane replica (version, database, configuration
// revision and epoch, leases, unpriced models, failing destinations) and
// every connected data plane with the revision it acknowledged. Refreshes
// every 10 seconds while open.
import { useEffect, useState } from "preact/hooks";
import { api, pb } from "../../api";
import { href } from "../../router";
import { Loaded, Page, Stat, Table, num, useAsync, when, type Column } from "../../ui";

const REFRESH_MS = 10_000;

function lag(s: pb.Status, d: pb.DataPlane): bigint {
  return s.configVersion - d.ackedVersion;
}

function lagBadge(s: pb.Status, d: pb.DataPlane) {
  const l = lag(s, d);
  if (l === 0n) return <span class="badge good">current</span>;
  // Connected to another replica that is already further on.
  if (l < 0n) return <span class="badge">ahead by {num(-l)}</span>;
  return <span class="badge bad">behind by {num(l)}</span>;
}

function nack(d: pb.DataPlane) {
  if (d.nackedVersion === 0n && !d.nackError) return "—";
  const refusing = d.nackedVersion > d.ackedVersion;
  return (
    <span>
      <span class={`badge ${refusing ? "bad" : ""}`}>{refusing ? "refusing" : "refused"} r{d.nackedVersion.toString()}</span>
      {d.nackError && <><br /><small class="ap-bad">{d.nackError}</small></>}
    </span>
  );
}

export default function DataPlanesPage() {
  const status = useAsync(() => api.status.getStatus({}), []);
  const [at, setAt] = useState<Date>();
  useEffect(() => {
    // Not while the tab is hidden; it catches up on the next tick.
    const t = setInterval(() => document.hidden || status.reload(), REFRESH_MS);
    return () => clearInterval(t);
  }, []);
  useEffect(() => {
    if (status.data && !status.loading && !status.error) setAt(new Date());
  }, [status.data, status.loading]);

  return (
    <Page
      title="Data planes"
      actions={
        <>
          <span class="ap-note">
            {status.loading ? "Refreshing…" : at ? `Updated ${at.toLocaleTimeString()} · every 10 s` : ""}
          </span>
          <button type="button" onClick={status.reload}>Refresh now</button>
        </>
      }
    >
      <Loaded state={status} what="the fleet's status">
        {(s) => {
          const columns: Column<pb.DataPlane>[] = [
            { title: "Data plane", cell: (d) => <code>{d.id}</code> },
            { title: "Address", cell: (d) => d.address || "—" },
            { title: "Replica", cell: (d) => (d.replica ? <span>{d.replica}{d.replica === s.replica && <small> (this one)</small>}</span> : "—") },
            { title: "Connected since", cell: (d) => when(d.connectedAt) },
            { title: "Acknowledged", num: true, cell: (d) => `r${d.ackedVersion.toString()} of r${s.configVersion.toString()}` },
            { title: "Lag", cell: (d) => lagBadge(s, d) },
            { title: "Last refusal (NACK)", cell: nack },
          ];
          const behind = s.dataplanes.filter((d) => lag(s, d) > 0n).length;
          return (
            <>
              <h2>Control plane</h2>
              <div class="stats">
                <Stat label="Version" value={s.version || "—"} />
                <Stat label="Database" value={s.database || "—"} />
                <Stat label="Replica" value={<span class="ap-wrap">{s.replica || "—"}</span>} hint={`started ${when(s.startedAt)}`} />
                <Stat label="Config revision" value={<span data-testid="config-version">r{s.configVersion.toString()}</span>} hint={`epoch ${s.configEpoch || "—"}`} />
                <Stat label="Data planes" value={<span data-testid="dataplane-count">{num(s.dataplanes.length)}</span>} hint={behind ? `${behind} behind` : "all current"} />
                <Stat label="Users · teams · active keys" value={`${num(s.users)} · ${num(s.teams)} · ${num(s.activeKeys)}`} />
              </div>

              <h2>Connected data planes</h2>
              {s.dataplanes.length === 0 ? (
                <p class="empty">No data plane is connected to any replica.</p>
              ) : (
                <Table label="Connected data planes" columns={columns} rows={s.dataplanes} rowKey={(d) => d.id} />
              )}

              <h2>Background work</h2>
              {s.leases.length === 0 ? (
                <p class="empty">No lease is held.</p>
              ) : (
                <Table
                  label="Leases"
                  rows={s.leases}
                  rowKey={(l) => l.name}
                  columns={[
                    { title: "Task", cell: (l) => <code>{l.name}</code> },
                    { title: "Held by", cell: (l) => <span>{l.holder}{l.holder === s.replica && <small> (this replica)</small>}</span> },
                    { title: "Expires", cell: (l) => when(l.expiresAt) },
                  ]}
                />
              )}

              <h2>Unpriced models</h2>
              {s.unpricedModels.length === 0 && s.unpricedRequests === 0n ? (
                <p class="empty">Every request of the last 30 days had a price.</p>
              ) : (
                <div class="panel">
                  <p>
                    <span class="badge bad">{num(s.unpricedRequests)} requests</span> in the last 30 days had no price and were charged
                    the highest rates: <a href={href("/admin/prices")}>set their prices</a>.
                  </p>
                  <ul>{s.unpricedModels.map((m) => <li><code>{m}</code></li>)}</ul>
                </div>
              )}

              <h2>Notification destinations</h2>
              {s.failingDestinations.length === 0 ? (
                <p class="empty">
                  No destination is failing.{s.deadDeliveries > 0n && <> {num(s.deadDeliveries)} deliveries were given up in the last 24 hours.</>}
                </p>
              ) : (
                <>
                  <p>
                    {s.deadDeliveries > 0n && <>{num(s.deadDeliveries)} deliveries given up in the last 24 hours. </>}
                    <a href={href("/admin/notifications")}>Manage destinations</a>.
                  </p>
                  <Table
                    label="Failing destinations"
                    rows={s.failingDestinations}
                    rowKey={(f) => f.id}
                    columns={[
                      { title: "Destination", cell: (f) => f.name || f.id },
                      { title: "Failing since", cell: (f) => <span class="badge bad">{when(f.failingSince)}</span> },
                      { title: "Last error", cell: (f) => <small>{f.lastError}</small> },
                      { title: "Deliveries", cell: (f) => <a href={href("/admin/notifications", { tab: "deliveries", destination: f.name || f.id, failed: "1" })}>failed deliveries</a> },
                    ]}
                  />
                </>
              )}
            </>
          );
        }}
      </Loaded>
    </Page>
  );
}
