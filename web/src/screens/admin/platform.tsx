// The platform admin area (/platform/...), loaded on demand by admin.tsx:
// stats with charts, users (search, detail, disable/enable, support
// access), organizations (search, detail, suspend/unsuspend), the audit log
// across organizations, jobs and dead tasks, and the queue UI (asynqmon).
// Every call goes to /api/v1/admin, whose gate (a platform admin, 2FA on,
// a login opened with a TOTP code) decides each time; its refusal is shown
// in words. Every admin call is audited by the API, reads included, so
// searches run on submit, not on every keystroke.
import { useEffect, useState, type FormEvent, type ReactNode } from "react";
import { api, call, idempotencyKey, session } from "../../api/client";
import { ApiError, message, toApiError } from "../../api/problem";
import type { components } from "../../api/schema";
import { Link, navigate } from "../../router";
import { Alert, Field, Loading, Select, usePaged, useSubmit } from "../../ui";

type Stats = components["schemas"]["AdminStats"];
type AdminUser = components["schemas"]["AdminUser"];
type UserDetail = components["schemas"]["AdminUserDetail"];
type AdminOrg = components["schemas"]["AdminOrganization"];
type OrgDetail = components["schemas"]["AdminOrganizationDetail"];
type AuditEntry = components["schemas"]["AdminAuditEntry"];
type DeadTask = components["schemas"]["AdminDeadTask"];
type JobRun = components["schemas"]["AdminJobRun"];

const sections: [string, string][] = [
  ["/platform", "Overview"],
  ["/platform/users", "Users"],
  ["/platform/organizations", "Organizations"],
  ["/platform/audit-log", "Audit log"],
  ["/platform/jobs", "Jobs"],
];

export default function PlatformArea({ path }: { path: string }) {
  const rest = path.slice("/platform".length).replace(/\/+$/, "");
  const [, section, id] = rest.split("/");
  let screen: ReactNode;
  if (!section) screen = <Overview />;
  else if (section === "users" && id) screen = <UserView key={id} id={id} />;
  else if (section === "users") screen = <Users />;
  else if (section === "organizations" && id) screen = <OrgView key={id} id={id} />;
  else if (section === "organizations") screen = <Orgs />;
  else if (section === "audit-log") screen = <Audit />;
  else if (section === "jobs") screen = <Jobs />;
  else screen = <p>No such admin page. <Link href="/platform">Go to the overview</Link></p>;
  const current = "/platform" + (section ? "/" + section : "");
  return (
    <main className="platform">
      <h1>Platform admin</h1>
      <nav aria-label="Platform admin" className="subnav">
        {sections.map(([href, text]) => (
          <Link key={href} href={href} aria-current={href === current ? "page" : undefined}>
            {text}
          </Link>
        ))}
      </nav>
      {screen}
    </main>
  );
}

// ---- shared pieces ----

const refusals: Record<string, [string, ReactNode]> = {
  platform_admin_required: [
    "Not a platform admin",
    "This area is for the people who run the platform. If you need it, ask whoever operates this server.",
  ],
  admin_requires_2fa: [
    "Two-factor authentication required",
    <>
      Platform admins must turn on two-factor authentication (on the <Link href="/account">Account</Link> page) and
      then log out and log in again with a code from their authenticator app. A recovery code is not enough here.
    </>,
  ],
  support_access_forbidden: [
    "Not during support access",
    "You are acting as a user. End support access (the banner above) to use the admin area again.",
  ],
  account_disabled: ["Account disabled", "This account is disabled."],
  admin_unavailable: ["The admin area is not configured", "The server has no admin database connection (ADMIN_DATABASE_URL)."],
};

/** An API error in words: the gate's refusals with a heading and what to do, anything else as the API's sentence. */
function Problem({ error }: { error: ApiError | null }) {
  if (!error) return null;
  const r = refusals[error.code];
  if (!r) return <Alert>{message(error)}</Alert>;
  return (
    <div className="alert alert-error refusal" role="alert">
      <h2>{r[0]}</h2>
      <p>{message(error)}</p>
      <p>{r[1]}</p>
    </div>
  );
}

/** Loads once (and on reload()): data, error, loading. */
function useLoad<T>(fn: () => Promise<T>) {
  const [data, setData] = useState<T | null>(null);
  const [error, setError] = useState<ApiError | null>(null);
  const [loading, setLoading] = useState(true);
  async function reload() {
    setLoading(true);
    setError(null);
    try {
      setData(await fn());
    } catch (e) {
      setError(toApiError(e));
    } finally {
      setLoading(false);
    }
  }
  useEffect(() => {
    void reload();
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, []);
  return { data, setData, error, loading, reload };
}

function More({ next, loading, load }: { next?: string; loading: boolean; load: (c?: string) => Promise<void> }) {
  if (!next || loading) return null;
  return (
    <button type="button" className="secondary" onClick={() => void load(next)}>
      Load more
    </button>
  );
}

function when(t?: string | null): string {
  return t ? new Date(t).toLocaleString([], { dateStyle: "medium", timeStyle: "short" }) : "—";
}

function day(t?: string | null): string {
  return t ? new Date(t).toLocaleDateString() : "—";
}

function money(amount: number, currency: string): string {
  try {
    const f = new Intl.NumberFormat(undefined, { style: "currency", currency: currency.toUpperCase() });
    const digits = f.resolvedOptions().maximumFractionDigits ?? 2;
    return f.format(amount / 10 ** digits);
  } catch {
    return `${amount} ${currency} (smallest unit)`;
  }
}

/** A textarea-free reason field: one line, as the API wants (1 to 500 characters). */
function Reason(props: { label: string; value: string; onChange: (v: string) => void; error?: string; required?: boolean }) {
  return (
    <Field label={props.label} name="reason" value={props.value} maxLength={500} required={props.required}
      error={props.error} hint="One line, up to 500 characters; it goes into the audit log."
      onChange={(e) => props.onChange(e.target.value)} />
  );
}

// ---- overview: stats and charts ----

function Overview() {
  const stats = useLoad(() => call(api.GET("/api/v1/admin/stats")));
  return (
    <>
      <h2>Overview</h2>
      <Problem error={stats.error} />
      {stats.loading && <Loading what="the figures" />}
      {stats.data && <StatsView s={stats.data} />}
      {!stats.error && <QueueMonitor />}
    </>
  );
}

function StatsView({ s }: { s: Stats }) {
  const total = s.signups_per_day.reduce((n, d) => n + d.count, 0);
  const today = s.signups_per_day[s.signups_per_day.length - 1];
  return (
    <>
      <p className="muted">As of {when(s.as_of)} (days are UTC days).</p>
      <dl className="figures">
        <div><dt>Sign-ups, last 30 days</dt><dd data-figure="signups">{total}</dd></div>
        <div><dt>Active organizations (a write in 30 days)</dt><dd data-figure="active">{s.active_organizations}</dd></div>
        <div><dt>Trialing organizations</dt><dd data-figure="trialing">{s.trialing_organizations}</dd></div>
        <div><dt>Paying organizations</dt><dd data-figure="paying">{s.paying_organizations.total}</dd></div>
        <div><dt>Churned this month</dt><dd data-figure="churned">{s.churned_this_month}</dd></div>
        <div><dt>Failed payments still open</dt><dd data-figure="failed">{s.failed_payments_open}</dd></div>
      </dl>
      <h3>Monthly recurring revenue</h3>
      {s.mrr.length === 0 ? (
        <p className="muted">No recurring revenue yet.</p>
      ) : (
        <ul className="list">
          {s.mrr.map((m) => (
            <li key={m.currency}>
              <strong>{money(m.amount, m.currency)}</strong>
              <span className="muted">
                {m.change === 0 ? "no change" : (m.change > 0 ? "+" : "−") + money(Math.abs(m.change), m.currency)} against 30 days
                ago ({money(m.amount_30_days_ago, m.currency)})
              </span>
            </li>
          ))}
        </ul>
      )}
      <h3 id="signups-title">Sign-ups per day</h3>
      <p>
        {total} in the last 30 days, {today?.count ?? 0} today.
      </p>
      <BarChart titleId="signups-title" bars={s.signups_per_day.map((d) => ({ label: d.date, value: d.count }))} />
      <details>
        <summary>Sign-ups per day as a table</summary>
        <table className="table" data-table="signups">
          <thead><tr><th scope="col">Day (UTC)</th><th scope="col">Sign-ups</th></tr></thead>
          <tbody>
            {s.signups_per_day.map((d) => (
              <tr key={d.date}><td>{d.date}</td><td>{d.count}</td></tr>
            ))}
          </tbody>
        </table>
      </details>
      <h3 id="plans-title">Paying organizations by plan</h3>
      {s.paying_organizations.by_plan.length === 0 ? (
        <p className="muted">No paying organization yet.</p>
      ) : (
        <PlanBars titleId="plans-title" rows={s.paying_organizations.by_plan.map((p) => ({ label: p.plan || "(a price not in the catalog)", value: p.count }))} />
      )}
    </>
  );
}

/** Vertical bars, hand-written SVG (no chart library): each bar has its figure as a tooltip title. */
function BarChart({ bars, titleId }: { bars: { label: string; value: number }[]; titleId: string }) {
  const max = Math.max(1, ...bars.map((b) => b.value));
  const w = 10, h = 100, gap = 2;
  return (
    <svg className="chart" role="img" aria-labelledby={titleId} viewBox={`0 0 ${bars.length * w} ${h + 14}`} preserveAspectRatio="none">
      <line x1="0" y1={h} x2={bars.length * w} y2={h} className="axis" />
      {bars.map((b, i) => {
        const bh = (b.value / max) * (h - 4);
        return (
          <rect key={b.label} x={i * w + gap / 2} y={h - bh} width={w - gap} height={bh} className="bar-rect" data-value={b.value}>
            <title>{`${b.label}: ${b.value}`}</title>
          </rect>
        );
      })}
      <text x="0" y={h + 12} className="chart-label">{bars[0]?.label.slice(5)}</text>
      <text x={bars.length * w} y={h + 12} className="chart-label" textAnchor="end">{bars[bars.length - 1]?.label.slice(5)}</text>
    </svg>
  );
}

/** Horizontal bars with their label and figure as text beside each. */
function PlanBars({ rows, titleId }: { rows: { label: string; value: number }[]; titleId: string }) {
  const max = Math.max(1, ...rows.map((r) => r.value));
  return (
    <ul className="hbars" aria-labelledby={titleId}>
      {rows.map((r) => (
        <li key={r.label}>
          <span className="hbar-label">{r.label}</span>
          <svg className="hbar" viewBox="0 0 100 10" preserveAspectRatio="none" aria-hidden="true">
            <rect x="0" y="0" width={(r.value / max) * 100} height="10" className="bar-rect" />
          </svg>
          <span>{r.value}</span>
        </li>
      ))}
    </ul>
  );
}

/** The queue UI (asynqmon): a session cookie for /admin/queues, then the page in a new tab. */
function QueueMonitor() {
  const s = useSubmit();
  const [opened, setOpened] = useState<{ url: string; until: string } | null>(null);
  return (
    <section>
      <h2>Queues</h2>
      <p>The queue monitor shows the background queues, retries and failed tasks (secrets redacted).</p>
      <Problem error={s.error} />
      <button type="button" disabled={s.busy}
        onClick={() =>
          s.run(async () => {
            const r = await call(api.POST("/api/v1/admin/queues/session", { headers: { "Idempotency-Key": idempotencyKey() } }));
            setOpened({ url: r.queues_url, until: r.expires_at });
            const w = window.open(r.queues_url, "_blank");
            if (w) w.opener = null;
          })
        }>
        Open the queue monitor
      </button>
      {opened && (
        <p role="status">
          Its session lasts until {when(opened.until)}.{" "}
          <a href={opened.url} target="_blank" rel="noopener noreferrer">Open the queue monitor again</a>
        </p>
      )}
    </section>
  );
}

// ---- users ----

function Users() {
  const [q, setQ] = useState("");
  const [asked, setAsked] = useState("");
  const qRef = useQueryRef("");
  const list = usePaged((cursor) =>
    call(api.GET("/api/v1/admin/users", { params: { query: { q: qRef.current || undefined, cursor, limit: 20 } } })),
    toApiError, null as ApiError | null,
  );
  function search(e: FormEvent) {
    e.preventDefault();
    setAsked(q.trim());
    qRef.current = q.trim();
    void list.load();
  }
  return (
    <>
      <h2>Users</h2>
      <form className="inline-form" onSubmit={search} role="search">
        <Field label="Search users" name="q" value={q} maxLength={200} hint="Part of an email or name, or a user's ID."
          onChange={(e) => setQ(e.target.value)} />
        <button type="submit">Search</button>
      </form>
      <Problem error={list.error} />
      {list.loading && !list.rows && <Loading what="users" />}
      {list.rows && list.rows.length === 0 && <p className="empty">{asked ? `No user matches “${asked}”.` : "No users yet."}</p>}
      {list.rows && list.rows.length > 0 && (
        <ul className="list">
          {list.rows.map((u) => <UserRow key={u.id} u={u} />)}
        </ul>
      )}
      <More {...list} />
    </>
  );
}

// The query of the running search, read by the page fetcher (a ref keeps
// "Load more" on the same query while the field is being edited).
function useQueryRef(initial: string) {
  const [ref] = useState(() => ({ current: initial }));
  return ref;
}

function UserRow({ u }: { u: AdminUser }) {
  return (
    <li>
      <span className="who">
        <Link href={"/platform/users/" + u.id}>{u.email}</Link> <span className="muted">{u.name}</span>
      </span>
      {u.platform_admin && <span className="badge">platform admin</span>}
      {u.two_factor_enabled && <span className="badge">2FA</span>}
      {u.disabled_at && <span className="badge badge-danger">disabled</span>}
      <small>
        {u.organizations} org{u.organizations === 1 ? "" : "s"} · joined {day(u.created_at)}
      </small>
    </li>
  );
}

function UserView({ id }: { id: string }) {
  const user = useLoad(() => call(api.GET("/api/v1/admin/users/{id}", { params: { path: { id } } })));
  const [note, setNote] = useState("");
  if (user.loading && !user.data) return <Loading what="the user" />;
  if (!user.data) return <><p><Link href="/platform/users">← Users</Link></p><Problem error={user.error} /></>;
  const u = user.data;
  const changed = (d: UserDetail, text: string) => {
    user.setData(d);
    setNote(text);
  };
  return (
    <>
      <p><Link href="/platform/users">← Users</Link></p>
      <h2>{u.email}</h2>
      <Alert kind="ok">{note}</Alert>
      <Problem error={user.error} />
      <dl className="facts">
        <div><dt>Name</dt><dd>{u.name}</dd></div>
        <div><dt>Status</dt><dd data-field="status">{u.disabled_at ? `Disabled since ${when(u.disabled_at)}: ${u.disabled_reason ?? ""}` : "Active"}</dd></div>
        <div><dt>Joined</dt><dd>{when(u.created_at)}</dd></div>
        <div><dt>Last login</dt><dd>{when(u.last_login_at)}</dd></div>
        <div><dt>Email verified</dt><dd>{u.email_verified ? "Yes" : "No"}</dd></div>
        <div><dt>Two-factor authentication</dt><dd>{u.two_factor_enabled ? "On" : "Off"}</dd></div>
        <div><dt>Platform admin</dt><dd>{u.platform_admin ? "Yes" : "No"}</dd></div>
        <div><dt>User ID</dt><dd><code>{u.id}</code></dd></div>
      </dl>

      <h3>Organizations</h3>
      {u.memberships.length === 0 ? (
        <p className="muted">Not a member of any organization.</p>
      ) : (
        <ul className="list">
          {u.memberships.map((m) => (
            <li key={m.organization_id}>
              <span className="who"><Link href={"/platform/organizations/" + m.organization_id}>{m.name}</Link></span>
              <span className="badge">{m.role}</span>
              {m.suspended && <span className="badge badge-danger">suspended</span>}
              <small>joined {day(m.joined_at)}</small>
            </li>
          ))}
        </ul>
      )}

      <h3>Live logins</h3>
      {u.sessions.length === 0 ? (
        <p className="muted">No live login.</p>
      ) : (
        <ul className="list">
          {u.sessions.map((s) => (
            <li key={s.id}>
              <span className="who">Opened {when(s.opened_at)}, last refreshed {when(s.last_refreshed_at)}</span>
              <span className="badge">{s.second_factor === "totp" ? "authenticator code" : s.second_factor === "recovery_code" ? "recovery code" : "password only"}</span>
            </li>
          ))}
        </ul>
      )}

      {!u.platform_admin && !u.disabled_at && <SupportAccessForm u={u} />}
      {u.platform_admin && <p className="muted">Platform admins cannot be acted as through support access.</p>}
      <DisableForm u={u} onChanged={changed} />
    </>
  );
}

function SupportAccessForm({ u }: { u: UserDetail }) {
  const s = useSubmit();
  const [reason, setReason] = useState("");
  const open = u.memberships.filter((m) => !m.suspended);
  const [org, setOrg] = useState("");
  return (
    <section>
      <h3>Support access</h3>
      <p>
        See what {u.email} sees, acting as them for at most 30 minutes. The reason and everything you do are recorded
        in their organization's audit log, which its owners read. Their password, email, 2FA and API keys stay out of
        reach.
      </p>
      <form onSubmit={(e) => {
        e.preventDefault();
        void s.run(async () => {
          const r = await call(api.POST("/api/v1/admin/users/{id}/impersonate", {
            params: { path: { id: u.id } },
            body: { reason, ...(org ? { organization_id: org } : {}) },
            headers: { "Idempotency-Key": idempotencyKey() },
          }));
          session.startSupport(r.access_token, { userId: u.id, email: u.email, organizationId: r.organization_id, expiresAt: r.expires_at });
          navigate(r.organization_id ? "/resources" : "/account");
        });
      }}>
        <Reason label="Reason for support access" value={reason} onChange={setReason} error={s.fields.reason} required />
        {open.length > 1 && (
          <Select label="Organization to act in" name="organization_id" value={org} error={s.fields.organization_id} onChange={setOrg}
            options={[["", "Their oldest organization"], ...open.map((m): [string, string] => [m.organization_id, m.name])]} />
        )}
        <Problem error={s.error && !Object.keys(s.fields).length ? s.error : null} />
        <button type="submit" disabled={s.busy}>Start support access</button>
      </form>
    </section>
  );
}

function DisableForm({ u, onChanged }: { u: UserDetail; onChanged: (d: UserDetail, note: string) => void }) {
  const s = useSubmit();
  const [reason, setReason] = useState("");
  if (u.disabled_at)
    return (
      <section>
        <h3>Enable the account</h3>
        <p>The user can log in again. The logins and API keys the disable ended stay ended.</p>
        <Problem error={s.error} />
        <button type="button" disabled={s.busy}
          onClick={() => s.run(async () => {
            const d = await call(api.POST("/api/v1/admin/users/{id}/enable", { params: { path: { id: u.id } }, headers: { "Idempotency-Key": idempotencyKey() } }));
            onChanged(d, "The account is enabled.");
          })}>
          Enable account
        </button>
      </section>
    );
  return (
    <section>
      <h3>Disable the account</h3>
      <p>Ends every login and every API key the user made, in every organization, at once.</p>
      <form onSubmit={(e) => {
        e.preventDefault();
        void s.run(async () => {
          const d = await call(api.POST("/api/v1/admin/users/{id}/disable", {
            params: { path: { id: u.id } }, body: { reason }, headers: { "Idempotency-Key": idempotencyKey() },
          }));
          setReason("");
          onChanged(d, "The account is disabled.");
        });
      }}>
        <Reason label="Reason for disabling" value={reason} onChange={setReason} error={s.fields.reason} required />
        <Problem error={s.error && !s.fields.reason ? s.error : null} />
        <button type="submit" className="danger" disabled={s.busy}>Disable account</button>
      </form>
    </section>
  );
}

// ---- organizations ----

const statuses = ["trialing", "active", "past_due", "read_only", "canceled", "free"];

function Orgs() {
  const [q, setQ] = useState("");
  const [status, setStatus] = useState("");
  const [suspended, setSuspended] = useState("");
  const filters = useQueryRef("");
  const [asked, setAsked] = useState(false);
  const list = usePaged((cursor) => {
    const f = JSON.parse(filters.current || "{}") as { q?: string; status?: string; suspended?: string };
    return call(api.GET("/api/v1/admin/organizations", {
      params: {
        query: {
          q: f.q || undefined, cursor, limit: 20,
          status: (f.status || undefined) as AdminOrg["status"] | undefined,
          suspended: (f.suspended || undefined) as "true" | "false" | undefined,
        },
      },
    }));
  }, toApiError, null as ApiError | null);
  function search(e: FormEvent) {
    e.preventDefault();
    filters.current = JSON.stringify({ q: q.trim(), status, suspended });
    setAsked(true);
    void list.load();
  }
  return (
    <>
      <h2>Organizations</h2>
      <form className="inline-form" onSubmit={search} role="search">
        <Field label="Search organizations" name="q" value={q} maxLength={200} hint="Part of the name, or an organization's ID."
          onChange={(e) => setQ(e.target.value)} />
        <Select label="Billing status" name="status" value={status} onChange={setStatus}
          options={[["", "Any"], ...statuses.map((s): [string, string] => [s, s.replace("_", " ")])]} />
        <Select label="Suspended" name="suspended" value={suspended} onChange={setSuspended}
          options={[["", "Either"], ["true", "Suspended"], ["false", "Not suspended"]]} />
        <button type="submit">Search</button>
      </form>
      <Problem error={list.error} />
      {list.loading && !list.rows && <Loading what="organizations" />}
      {list.rows && list.rows.length === 0 && <p className="empty">{asked ? "No organization matches." : "No organizations yet."}</p>}
      {list.rows && list.rows.length > 0 && (
        <ul className="list">
          {list.rows.map((o) => (
            <li key={o.id}>
              <span className="who"><Link href={"/platform/organizations/" + o.id}>{o.name}</Link></span>
              <span className="badge">{o.plan.name}</span>
              <span className="badge">{o.status.replace("_", " ")}</span>
              {o.suspended_at && <span className="badge badge-danger">suspended</span>}
              <small>{o.member_count} member{o.member_count === 1 ? "" : "s"} · created {day(o.created_at)}</small>
            </li>
          ))}
        </ul>
      )}
      <More {...list} />
    </>
  );
}

const metricNames: Record<string, string> = { seats: "Seats", resources: "Resources", storage_bytes: "Storage" };

/** A usage figure: storage in bytes, KB, MB or GB (powers of 1024), the rest as counts. */
function amount(metric: string, n: number): string {
  if (metric !== "storage_bytes") return String(n);
  const units = ["bytes", "KB", "MB", "GB", "TB"];
  let i = 0;
  let v = n;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return (i === 0 ? String(v) : v.toFixed(v < 10 ? 1 : 0)) + " " + units[i];
}

function OrgView({ id }: { id: string }) {
  const org = useLoad(() => call(api.GET("/api/v1/admin/organizations/{id}", { params: { path: { id } } })));
  const [note, setNote] = useState("");
  if (org.loading && !org.data) return <Loading what="the organization" />;
  if (!org.data) return <><p><Link href="/platform/organizations">← Organizations</Link></p><Problem error={org.error} /></>;
  const o = org.data;
  const sub = o.subscription;
  return (
    <>
      <p><Link href="/platform/organizations">← Organizations</Link></p>
      <h2>{o.name}</h2>
      <Alert kind="ok">{note}</Alert>
      <dl className="facts">
        <div><dt>Status</dt><dd data-field="suspension">{o.suspended_at ? `Suspended since ${when(o.suspended_at)}: ${o.suspended_reason}` : "Not suspended"}</dd></div>
        <div><dt>Plan</dt><dd>{o.plan.name} ({sub.status.replace("_", " ")}{sub.interval ? ", " + sub.interval + "ly" : ""})</dd></div>
        {sub.trial_end && <div><dt>Trial ends</dt><dd>{when(sub.trial_end)}</dd></div>}
        {sub.current_period_end && <div><dt>Period ends</dt><dd>{when(sub.current_period_end)}{sub.cancel_at_period_end ? " (cancels then)" : ""}</dd></div>}
        {sub.past_due_since && <div><dt>Past due since</dt><dd>{when(sub.past_due_since)} (grace until {when(sub.grace_until)})</dd></div>}
        {sub.stripe_customer_id && <div><dt>Stripe customer</dt><dd><code>{sub.stripe_customer_id}</code></dd></div>}
        <div><dt>Created</dt><dd>{when(o.created_at)}</dd></div>
        <div><dt>Organization ID</dt><dd><code>{o.id}</code></dd></div>
      </dl>

      <h3>Usage</h3>
      <ul className="list">
        {o.usage.map((u) => (
          <li key={u.metric}>
            <span className="who">{metricNames[u.metric] ?? u.metric}</span>
            <small>{amount(u.metric, u.used)} of {u.limit === null ? "unlimited" : amount(u.metric, u.limit)}</small>
          </li>
        ))}
      </ul>

      <h3>Members ({o.member_count})</h3>
      <ul className="list">
        {o.members.map((m) => (
          <li key={m.user_id}>
            <span className="who"><Link href={"/platform/users/" + m.user_id}>{m.email}</Link> <span className="muted">{m.name}</span></span>
            <span className="badge">{m.role}</span>
          </li>
        ))}
      </ul>

      <SuspendForm o={o} onChanged={(d, text) => { org.setData(d); setNote(text); }} />

      <h3>Recent activity</h3>
      <AuditList rows={o.recent_audit} />
    </>
  );
}

function SuspendForm({ o, onChanged }: { o: OrgDetail; onChanged: (d: OrgDetail, note: string) => void }) {
  const s = useSubmit();
  const [reason, setReason] = useState("");
  const suspended = !!o.suspended_at;
  return (
    <section>
      <h3>{suspended ? "Lift the suspension" : "Suspend the organization"}</h3>
      <p>
        {suspended
          ? "Members and API keys work again at once."
          : "Every member and API key of the organization is refused from the next request on; their other organizations are not affected."}
      </p>
      <form onSubmit={(e) => {
        e.preventDefault();
        void s.run(async () => {
          const opts = { params: { path: { id: o.id } }, headers: { "Idempotency-Key": idempotencyKey() } };
          const d = suspended
            ? await call(api.POST("/api/v1/admin/organizations/{id}/unsuspend", { ...opts, body: reason ? { reason } : {} }))
            : await call(api.POST("/api/v1/admin/organizations/{id}/suspend", { ...opts, body: { reason } }));
          setReason("");
          onChanged(d, suspended ? "The suspension is lifted." : "The organization is suspended.");
        });
      }}>
        <Reason label={suspended ? "Reason for lifting (optional)" : "Reason for suspending"} value={reason} onChange={setReason}
          error={s.fields.reason} required={!suspended} />
        <Problem error={s.error && !s.fields.reason ? s.error : null} />
        <button type="submit" className={suspended ? "" : "danger"} disabled={s.busy}>
          {suspended ? "Lift suspension" : "Suspend organization"}
        </button>
      </form>
    </section>
  );
}

// ---- audit log ----

/** The signed-in user's ID (the token's sub), to say "you" in the log. */
function myId(): string {
  try {
    return JSON.parse(atob((session.accessToken ?? "").split(".")[1].replace(/-/g, "+").replace(/_/g, "/"))).sub ?? "";
  } catch {
    return "";
  }
}

/** A short name for an ID: its random tail (UUIDv7s of one day share their head), the whole ID as the title. */
function IdLink({ href, id, me }: { href: string; id: string; me?: string }) {
  return (
    <Link href={href} title={id}>
      {id === me ? "you" : "…" + id.slice(-8)}
    </Link>
  );
}

function AuditList({ rows }: { rows: AuditEntry[] }) {
  if (rows.length === 0) return <p className="empty">No entries.</p>;
  const me = myId();
  return (
    <ul className="list audit">
      {rows.map((r) => (
        <li key={r.id}>
          <span className="who">
            <code className="action">{r.action}</code>{" "}
            {r.actor_user_id && <>by user <IdLink href={"/platform/users/" + r.actor_user_id} id={r.actor_user_id} me={me} /></>}
            {r.actor_api_key_id && <>by API key …{r.actor_api_key_id.slice(-8)}</>}
            {r.acting_for_user_id && <> acting for user <IdLink href={"/platform/users/" + r.acting_for_user_id} id={r.acting_for_user_id} /></>}
            {r.organization_id ? <> in organization <IdLink href={"/platform/organizations/" + r.organization_id} id={r.organization_id} /></> : <> (platform)</>}
            {typeof r.details?.reason === "string" && r.details.reason !== "" && <>: “{r.details.reason as string}”</>}
          </span>
          <small>{when(r.created_at)}</small>
        </li>
      ))}
    </ul>
  );
}

function Audit() {
  const [action, setAction] = useState("");
  const [orgId, setOrgId] = useState("");
  const [actor, setActor] = useState("");
  const filters = useQueryRef("{}");
  const list = usePaged((cursor) => {
    const f = JSON.parse(filters.current) as { action?: string; organization_id?: string; actor_user_id?: string };
    return call(api.GET("/api/v1/admin/audit-log", {
      params: { query: { action: f.action || undefined, organization_id: f.organization_id || undefined, actor_user_id: f.actor_user_id || undefined, cursor, limit: 50 } },
    }));
  }, toApiError, null as ApiError | null);
  const fields = list.error?.fields() ?? {};
  return (
    <>
      <h2>Audit log</h2>
      <p className="muted">Every organization's entries and the platform's own, newest first. Reading it is recorded too.</p>
      <form className="inline-form" role="search" onSubmit={(e) => {
        e.preventDefault();
        filters.current = JSON.stringify({ action: action.trim(), organization_id: orgId.trim(), actor_user_id: actor.trim() });
        void list.load();
      }}>
        <Field label="Action" name="action" value={action} hint="Exact (user.login), or a prefix ending with a dot (admin.)."
          error={fields.action} onChange={(e) => setAction(e.target.value)} />
        <Field label="Organization ID" name="organization_id" value={orgId} error={fields.organization_id} onChange={(e) => setOrgId(e.target.value)} />
        <Field label="Actor user ID" name="actor_user_id" value={actor} error={fields.actor_user_id} onChange={(e) => setActor(e.target.value)} />
        <button type="submit">Filter</button>
      </form>
      <Problem error={list.error} />
      {list.loading && !list.rows && <Loading what="the audit log" />}
      {list.rows && <AuditList rows={list.rows} />}
      <More {...list} />
    </>
  );
}

// ---- jobs and dead tasks ----

function Jobs() {
  const jobs = useLoad(() => call(api.GET("/api/v1/admin/jobs")));
  return (
    <>
      <h2>Jobs</h2>
      <Problem error={jobs.error} />
      {jobs.loading && !jobs.data && <Loading what="the jobs" />}
      {jobs.data && (
        <>
          <h3>Dead tasks</h3>
          {jobs.data.dead_tasks.length === 0 ? (
            <p className="empty">No dead task: every task finished or is still being retried.</p>
          ) : (
            <ul className="list">
              {jobs.data.dead_tasks.map((t) => <DeadTaskRow key={t.id} t={t} />)}
            </ul>
          )}
          <h3>Periodic jobs, latest run of each</h3>
          {jobs.data.latest_runs.length === 0 ? (
            <p className="empty">No periodic job has run yet.</p>
          ) : (
            <ul className="list">
              {jobs.data.latest_runs.map((r: JobRun) => (
                <li key={r.id}>
                  <span className="who"><code>{r.job}</code>{r.error && <> — {r.error}</>}</span>
                  <span className={"badge" + (r.status === "failed" ? " badge-danger" : "")}>{r.status}</span>
                  <small>{when(r.started_at)}</small>
                </li>
              ))}
            </ul>
          )}
        </>
      )}
      {!jobs.error && <QueueMonitor />}
    </>
  );
}

function DeadTaskRow({ t }: { t: DeadTask }) {
  const s = useSubmit();
  const [replayed, setReplayed] = useState("");
  return (
    <li>
      <span className="who">
        <code>{t.type}</code> on {t.queue}, died {when(t.died_at)} after {t.retried} of {t.max_retry} retries
        <details>
          <summary>Error and payload</summary>
          <pre>{t.last_error}</pre>
          <pre>{t.payload}</pre>
        </details>
      </span>
      {replayed ? (
        <span role="status">Replayed as task <code>{replayed}</code>.</span>
      ) : (
        <button type="button" className="small" disabled={s.busy}
          onClick={() => s.run(async () => {
            const r = await call(api.POST("/api/v1/admin/jobs/dead/{id}/replay", { params: { path: { id: t.id } }, headers: { "Idempotency-Key": idempotencyKey() } }));
            setReplayed(r.task_id);
          })}>
          Replay
        </button>
      )}
      <Alert>{s.formError}</Alert>
    </li>
  );
}
