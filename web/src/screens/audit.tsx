// The organization's audit log (/audit-log): GET
// /organizations/current/audit-log, newest first, cursor paging ("Load
// more"), filtered by action, actor and days. Admins and owners read it; a
// member is told why not (and the API's refusal is shown if it refuses).
// Each entry is a sentence: who did what to what, when, from which IP.
// Names come from the member and API key lists (a former member or a
// revoked key is named by the start of its ID).
import { useEffect, useState, type FormEvent } from "react";
import { api, call } from "../api/client";
import { ApiError, message, toApiError } from "../api/problem";
import type { components } from "../api/schema";
import { Alert, Field, Loading, Select } from "../ui";

type Entry = components["schemas"]["AuditEntry"];
type Details = Record<string, unknown>;

/** The actions the API writes (docs/identity.md), in words; "x." is a group. */
const actions: [string, string][] = [
  ["", "Every action"],
  ["user.", "Account events (all)"],
  ["user.login", "Logged in"],
  ["user.login_locked", "Login locked"],
  ["user.password_changed", "Password changed"],
  ["user.password_reset", "Password reset"],
  ["user.email_change_requested", "Email change requested"],
  ["user.email_changed", "Email changed"],
  ["user.2fa_enabled", "2FA turned on"],
  ["user.2fa_disabled", "2FA turned off"],
  ["user.sessions_revoked", "Signed out everywhere"],
  ["member.", "Members (all)"],
  ["invitation.", "Invitations (all)"],
  ["api_key.", "API keys (all)"],
  ["organization.", "Organization (all)"],
  ["resource.", "Resources (all)"],
  ["file.", "Files (all)"],
  ["billing.", "Billing (all)"],
  ["support_access.", "Support access (all)"],
];

const short = (id: string) => id.slice(0, 8);

/** Who is who: user IDs to names, API key IDs to key names. */
type Names = { users: Map<string, string>; keys: Map<string, string> };

function str(d: Details, k: string): string {
  const v = d[k];
  return typeof v === "string" ? v : "";
}

/** The entry's "what … target" part, in words. */
export function describe(e: Entry, names: Names): string {
  const d = (e.details ?? {}) as Details;
  const user = (id: string) => names.users.get(id) ?? `a former member (${short(id)})`;
  switch (e.action) {
    case "user.login": return "logged in";
    case "user.login_locked": return "was locked out of logging in after too many wrong passwords";
    case "user.password_changed": return "changed their password";
    case "user.password_reset": return "reset their password through an emailed link";
    case "user.email_change_requested": return "asked to change their email address";
    case "user.email_changed": return "changed their email address (confirmed through the link)";
    case "user.2fa_enabled": return "turned on two-factor authentication";
    case "user.2fa_disabled": return "turned off two-factor authentication";
    case "user.sessions_revoked": return "signed out everywhere";
    case "organization.created": return "created the organization" + (str(d, "name") ? ` “${str(d, "name")}”` : "");
    case "organization.updated": return `renamed the organization to “${str(d, "name")}”`;
    case "member.role_changed": return `changed ${user(e.target_id)}’s role from ${str(d, "from")} to ${str(d, "to")}`;
    case "member.removed": return `removed ${user(e.target_id)} (${str(d, "role")})`;
    case "invitation.sent": return `invited ${str(d, "email")} as ${str(d, "role")}`;
    case "invitation.resent": return `sent the invitation to ${str(d, "email")} again`;
    case "invitation.revoked": return `revoked the invitation to ${str(d, "email")}`;
    case "invitation.accepted": return "accepted an invitation and joined" + (str(d, "role") ? ` as ${str(d, "role")}` : "");
    case "api_key.created": return `created the API key “${str(d, "name")}”` + (str(d, "role") ? ` (${str(d, "role")})` : "");
    case "api_key.revoked": return `revoked the API key “${str(d, "name")}”`;
    case "resource.created": return `created the resource “${str(d, "name")}”`;
    case "resource.updated": return "changed a resource" + (Array.isArray(d.fields) ? ` (${(d.fields as string[]).join(", ")})` : "");
    case "resource.deleted": return `deleted the resource “${str(d, "name")}”`;
    case "resource.restored": return `restored the resource “${str(d, "name")}”`;
  }
  // Any other action (files, billing, support access, later ones): its
  // name, target and details as they are.
  const target = e.target_type ? ` on ${e.target_type.replace(/_/g, " ")} ${short(e.target_id)}` : "";
  const pairs = Object.entries(d).map(([k, v]) => `${k.replace(/_/g, " ")}: ${typeof v === "string" ? v : JSON.stringify(v)}`);
  return `did ${e.action}${target}${pairs.length ? ` (${pairs.join(", ")})` : ""}`;
}

function actor(e: Entry, names: Names): string {
  if (e.actor_api_key_id) {
    const k = names.keys.get(e.actor_api_key_id);
    return k ? `The API key “${k}”` : `An API key (${short(e.actor_api_key_id)})`;
  }
  if (e.actor_user_id) {
    const who = names.users.get(e.actor_user_id) ?? `A former member (${short(e.actor_user_id)})`;
    return e.acting_for_user_id
      ? `Keel support (${short(e.actor_user_id)}), acting for ${names.users.get(e.acting_for_user_id) ?? short(e.acting_for_user_id)},`
      : who;
  }
  return "Keel (automatically)";
}

/** The start of a local day as RFC 3339 (the API's since/until). */
function dayStart(day: string, plus = 0): string | undefined {
  if (!day) return undefined;
  const [y, m, d] = day.split("-").map(Number);
  return new Date(y, m - 1, d + plus).toISOString();
}

export function AuditLog({ role }: { role?: string }) {
  if (!role) return <main><h1>Audit log</h1><Loading what="your role" /></main>;
  if (role === "member")
    return (
      <main>
        <h1>Audit log</h1>
        <Alert kind="info">
          The audit log is for the organization's admins and owners: it shows who logged in, changed roles, invited
          people or created keys, from which IP. Ask an owner if you need an entry from it.
        </Alert>
      </main>
    );
  return <Log />;
}

type Filters = { action: string; actor: string; from: string; to: string };

function Log() {
  const [names, setNames] = useState<Names>({ users: new Map(), keys: new Map() });
  const [filters, setFilters] = useState<Filters>({ action: "", actor: "", from: "", to: "" });
  const [draft, setDraft] = useState<Filters>(filters);
  const [rows, setRows] = useState<Entry[] | null>(null);
  const [next, setNext] = useState<string | undefined>();
  const [loading, setLoading] = useState(true);
  const [err, setErr] = useState<ApiError | null>(null);

  // Names for the sentences: the first 100 members and API keys.
  useEffect(() => {
    void Promise.all([
      call(api.GET("/api/v1/organizations/current/members", { params: { query: { limit: 100 } } })).catch(() => ({ data: [] })),
      call(api.GET("/api/v1/organizations/current/api-keys", { params: { query: { limit: 100 } } })).catch(() => ({ data: [] })),
    ]).then(([m, k]) => {
      setNames({
        users: new Map(m.data.map((x) => [x.user_id, x.name ? `${x.name} (${x.email})` : x.email])),
        keys: new Map(k.data.map((x) => [x.id, x.name])),
      });
    });
  }, []);

  async function load(f: Filters, cursor?: string) {
    setLoading(true);
    setErr(null);
    try {
      const query = {
        limit: 20,
        ...(cursor ? { cursor } : {}),
        ...(f.action ? { action: f.action } : {}),
        ...(f.actor ? { actor_user_id: f.actor } : {}),
        ...(f.from ? { since: dayStart(f.from) } : {}),
        ...(f.to ? { until: dayStart(f.to, 1) } : {}),
      };
      const page = await call(api.GET("/api/v1/organizations/current/audit-log", { params: { query } }));
      setRows((r) => (cursor && r ? [...r, ...page.data] : page.data));
      setNext(page.next_cursor);
    } catch (e) {
      setErr(toApiError(e));
      if (!cursor) setRows(null);
    } finally {
      setLoading(false);
    }
  }
  useEffect(() => {
    void load(filters);
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [filters]);

  function apply(e: FormEvent) {
    e.preventDefault();
    setFilters({ ...draft });
  }
  function clear() {
    const none = { action: "", actor: "", from: "", to: "" };
    setDraft(none);
    setFilters(none);
  }

  const fieldErrs = err?.fields() ?? {};
  const filtered = filters.action || filters.actor || filters.from || filters.to;
  const actorOptions: [string, string][] = [["", "Anyone"], ...[...names.users].map(([id, n]): [string, string] => [id, n])];
  return (
    <main>
      <h1>Audit log</h1>
      <p className="muted">Security-relevant events in this organization, newest first.</p>
      <form className="filters audit-filters" onSubmit={apply} noValidate aria-label="Filter the audit log">
        <Select label="Action" name="action" value={draft.action} options={actions} error={fieldErrs.action}
          onChange={(v) => setDraft({ ...draft, action: v })} />
        <Select label="Done by" name="actor" value={draft.actor} options={actorOptions} error={fieldErrs.actor_user_id}
          onChange={(v) => setDraft({ ...draft, actor: v })} />
        <Field label="From (day)" name="from" type="date" value={draft.from} error={fieldErrs.since}
          onChange={(e) => setDraft({ ...draft, from: e.target.value })} />
        <Field label="To (day, included)" name="to" type="date" value={draft.to} error={fieldErrs.until}
          onChange={(e) => setDraft({ ...draft, to: e.target.value })} />
        <button>Filter</button>{" "}
        {filtered && <button type="button" className="secondary" onClick={clear}>Clear filters</button>}
      </form>
      <Alert>{err && (err.status === 403 ? `${message(err)} Only the organization's admins and owners can read its audit log.` : message(err))}</Alert>
      {rows && rows.length === 0 && (
        <p className="empty">{filtered ? "No entry matches these filters." : "Nothing has been recorded yet."}</p>
      )}
      {rows && rows.length > 0 && (
        <ul className="list audit" aria-label="Audit entries">
          {rows.map((e) => (
            <li key={e.id} data-action={e.action}>
              <span className="who">
                <span className="what">{actor(e, names)} {describe(e, names)}.</span>
                <br />
                <small>
                  <time dateTime={e.created_at}>{new Date(e.created_at).toLocaleString()}</time>
                  {e.ip && <> · IP {e.ip}</>}
                  {e.user_agent && <span className="ua" title={e.user_agent}> · {browser(e.user_agent)}</span>}
                </small>
              </span>
            </li>
          ))}
        </ul>
      )}
      {loading && <Loading what="the audit log" />}
      {next && !loading && (
        <button type="button" onClick={() => load(filters, next)}>
          Load more
        </button>
      )}
    </main>
  );
}

/** A short name for a user agent (the full one is in the tooltip). */
function browser(ua: string): string {
  for (const [re, name] of [[/Edg\//, "Edge"], [/Chrome\//, "Chrome"], [/Firefox\//, "Firefox"], [/Safari\//, "Safari"], [/curl\//, "curl"]] as const) {
    if (re.test(ua)) return name;
  }
  return ua.length > 40 ? ua.slice(0, 40) + "…" : ua;
}
