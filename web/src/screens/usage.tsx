// Usage of the organization against its plan's limits
// (GET /organizations/current/usage): each metric as a bar with its figures
// in words, so nothing depends on colour alone.
import { useCallback, useEffect, useState } from "react";
import { api, call } from "../api/client";
import { message } from "../api/problem";
import type { paths } from "../api/schema";
import { Link } from "../router";
import { Alert, Loading } from "../ui";
import { formatBytes } from "./billing";

type UsageBody = paths["/api/v1/organizations/current/usage"]["get"]["responses"]["200"]["content"]["application/json"];
type Metric = UsageBody["metrics"][number];

const labels: Record<Metric["metric"], string> = {
  seats: "Seats (members and pending invitations)",
  resources: "Resources",
  storage_bytes: "File storage",
  api_requests_per_minute: "API requests this minute",
};

function amount(m: Metric["metric"], n: number): string {
  return m === "storage_bytes" ? formatBytes(n) : n.toLocaleString();
}

export function Usage() {
  const [u, setU] = useState<UsageBody | null>(null);
  const [err, setErr] = useState("");
  const [busy, setBusy] = useState(false);
  const load = useCallback(() => {
    setBusy(true);
    call(api.GET("/api/v1/organizations/current/usage"))
      .then((b) => {
        setU(b);
        setErr("");
      }, (e) => setErr(message(e)))
      .finally(() => setBusy(false));
  }, []);
  useEffect(load, [load]);

  return (
    <main className="usage">
      <div className="bar">
        <h1>Usage</h1>
        <button type="button" className="secondary small" disabled={busy} onClick={load}>
          {busy ? "Refreshing…" : "Refresh"}
        </button>
      </div>
      <Alert>{err}</Alert>
      {!u ? (
        !err && <Loading what="usage" />
      ) : (
        <>
          <p>
            Plan: <strong data-testid="usage-plan">{u.plan.name}</strong>.{" "}
            <Link href="/billing">Need higher limits? Compare the plans on Billing.</Link>
          </p>
          <ul className="meters">
            {u.metrics.map((m) => (
              <MetricRow key={m.metric} m={m} />
            ))}
          </ul>
          <p className="muted">
            Seats count members and invitations not yet accepted. Storage counts files that finished uploading. Deleting
            resources or files lowers the figures; going over a limit refuses new items, never the ones you have.
          </p>
        </>
      )}
    </main>
  );
}

function MetricRow({ m }: { m: Metric }) {
  const used = m.used ?? 0;
  const label = labels[m.metric] ?? m.metric;
  const id = "metric-" + m.metric;
  if (m.limit === null || m.limit === undefined) {
    return (
      <li className="meter" data-metric={m.metric}>
        <span id={id} className="meter-label">{label}</span>
        <span className="meter-text">{m.used === undefined ? "Not measured right now" : `${amount(m.metric, used)} used`}, no limit</span>
      </li>
    );
  }
  const pct = m.limit === 0 ? 100 : Math.min(100, Math.round((used / m.limit) * 100));
  const level = used >= m.limit ? "full" : pct >= 80 ? "near" : "ok";
  const words = level === "full" ? " — limit reached" : level === "near" ? " — near the limit" : "";
  // A little use of a large limit reads "<1%", not "0%", and shows a sliver.
  const shown = used > 0 && pct === 0 ? "<1%" : pct + "%";
  const text = `${amount(m.metric, used)} of ${amount(m.metric, m.limit)} (${shown})${words}`;
  return (
    <li className={"meter meter-" + level} data-metric={m.metric}>
      <span id={id} className="meter-label">{label}</span>
      <div className="meter-track" role="meter" aria-labelledby={id} aria-valuemin={0} aria-valuemax={m.limit}
        aria-valuenow={Math.min(used, m.limit)} aria-valuetext={text}>
        <div className="meter-fill" style={{ width: used > 0 && pct === 0 ? "3px" : pct + "%" }} />
      </div>
      <span className="meter-text">{text}</span>
    </li>
  );
}
