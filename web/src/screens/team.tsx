// The team screens: members and their roles, invitations, API keys, and
// the page an emailed invitation link opens (/accept-invitation?token=…).
// Controls follow the caller's role (docs/identity.md, "Organizations and
// roles"); the API checks the role again on every call (the database's,
// not the token's), so a 403 from a role changed meanwhile is shown in words.
import { useEffect, useState, type FormEvent } from "react";
import { api, call, idempotencyKey, session } from "../api/client";
import { message } from "../api/problem";
import { csrfHeader } from "../api/session";
import type { components } from "../api/schema";
import { Link, navigate, useLocation } from "../router";
import { Alert, Field, Loading, Select, usePaged, useSubmit } from "../ui";
import { Login } from "./auth";
import { switchOrg } from "./orgs";

type Role = "owner" | "admin" | "member";
type Member = components["schemas"]["Member"];
type Invitation = components["schemas"]["Invitation"];
type APIKey = components["schemas"]["APIKey"];

const rank: Record<Role, number> = { member: 0, admin: 1, owner: 2 };

/** The roles a caller may give: owners any, admins admin and member. */
function grantable(caller: Role): Role[] {
  if (caller === "owner") return ["owner", "admin", "member"];
  if (caller === "admin") return ["admin", "member"];
  return [];
}

/** Admins manage admins and members; only owners manage owners. */
function canManage(caller: Role, target: Role): boolean {
  return rank[caller] >= rank.admin && (caller === "owner" || target !== "owner");
}

function when(t?: string): string {
  return t ? new Date(t).toLocaleDateString() : "—";
}

function More({ next, loading, load }: { next?: string; loading: boolean; load: (c?: string) => Promise<void> }) {
  if (!next || loading) return null;
  return (
    <button type="button" onClick={() => load(next)}>
      Load more
    </button>
  );
}

/** A button that asks once more before it acts (no window.confirm). */
function Confirm(props: { label: string; question: string; yes: string; onYes: () => Promise<void> }) {
  const [asking, setAsking] = useState(false);
  const [busy, setBusy] = useState(false);
  if (!asking)
    return (
      <button type="button" className="small danger" onClick={() => setAsking(true)}>
        {props.label}
      </button>
    );
  return (
    <span className="confirm" role="group" aria-label={props.question}>
      <span>{props.question}</span>{" "}
      <button type="button" className="small danger" disabled={busy}
        onClick={async () => { setBusy(true); try { await props.onYes(); } finally { setBusy(false); setAsking(false); } }}>
        {props.yes}
      </button>{" "}
      <button type="button" className="small secondary" onClick={() => setAsking(false)}>
        Cancel
      </button>
    </span>
  );
}

export function Team({ role, me, onLeft }: { role: Role; me: string; onLeft: () => void }) {
  const admin = rank[role] >= rank.admin;
  // Said once: the query is dropped so a reload does not repeat it.
  const [joined] = useState(() => new URL(location.href).searchParams.get("joined"));
  useEffect(() => {
    if (joined) history.replaceState(null, "", "/team");
  }, [joined]);
  return (
    <main>
      <h1>Team</h1>
      {joined && <Alert kind="ok">You joined the organization as {joined}.</Alert>}
      <Members role={role} me={me} onLeft={onLeft} />
      {admin ? (
        <>
          <Invitations role={role} />
          <APIKeys />
        </>
      ) : (
        <p className="muted">Invitations and API keys are managed by the organization's admins and owners.</p>
      )}
    </main>
  );
}

function Members({ role, me, onLeft }: { role: Role; me: string; onLeft: () => void }) {
  const list = usePaged((cursor) =>
    call(api.GET("/api/v1/organizations/current/members", { params: { query: { limit: 50, ...(cursor ? { cursor } : {}) } } })),
    message, "",
  );
  const [notice, setNotice] = useState("");

  async function changeRole(m: Member, to: Role) {
    setNotice("");
    list.setError("");
    try {
      const r = await call(api.PATCH("/api/v1/organizations/current/members/{user_id}", { params: { path: { user_id: m.user_id } }, body: { role: to } }));
      setNotice(`${r.name || r.email} is now ${r.role}.`);
      await list.load();
    } catch (e) {
      // Reload first (load clears the error), so the select shows the
      // stored role again and the refusal stays on screen.
      await list.load();
      list.setError(message(e));
    }
  }
  async function remove(m: Member) {
    setNotice("");
    list.setError("");
    try {
      await call(api.DELETE("/api/v1/organizations/current/members/{user_id}", { params: { path: { user_id: m.user_id } } }));
      if (m.user_id === me) return onLeft();
      setNotice(`${m.name || m.email} was removed.`);
      await list.load();
    } catch (e) {
      list.setError(message(e));
    }
  }

  return (
    <section aria-labelledby="members-title">
      <div className="bar">
        <h2 id="members-title">Members</h2>
        <button type="button" className="small secondary" onClick={() => list.load()} disabled={list.loading}>
          Refresh
        </button>
      </div>
      <Alert>{list.error}</Alert>
      <Alert kind="ok">{notice}</Alert>
      {list.rows && list.rows.length > 0 && (
        <ul className="list" aria-label="Members">
          {list.rows.map((m) => {
            const self = m.user_id === me;
            const manage = canManage(role, m.role);
            return (
              <li key={m.user_id} data-email={m.email}>
                <span className="who">
                  <strong>{m.name || m.email}</strong>
                  {self && " (you)"}
                  <br />
                  <small>{m.email} · joined {when(m.joined_at)}</small>
                </span>
                {manage ? (
                  <Select label={`Role of ${m.name || m.email}`} name="role" value={m.role}
                    options={grantable(role).includes(m.role) ? grantable(role) : [m.role, ...grantable(role)]}
                    onChange={(v) => void changeRole(m, v as Role)} />
                ) : (
                  <span className={"badge badge-role"} aria-label={`Role: ${m.role}`}>{m.role}</span>
                )}
                {self ? (
                  <Confirm label="Leave" question="Leave this organization?" yes="Yes, leave" onYes={() => remove(m)} />
                ) : (
                  manage && <Confirm label="Remove" question={`Remove ${m.name || m.email}?`} yes="Yes, remove" onYes={() => remove(m)} />
                )}
              </li>
            );
          })}
        </ul>
      )}
      {list.loading && <Loading what="members" />}
      <More {...list} />
    </section>
  );
}

function Invitations({ role }: { role: Role }) {
  const list = usePaged((cursor) =>
    call(api.GET("/api/v1/organizations/current/invitations", { params: { query: { limit: 50, ...(cursor ? { cursor } : {}) } } })),
    message, "",
  );
  const s = useSubmit();
  const [email, setEmail] = useState("");
  const [invRole, setInvRole] = useState<Role>("member");
  const [notice, setNotice] = useState("");

  async function invite(e: FormEvent) {
    e.preventDefault();
    setNotice("");
    await s.run(async () => {
      const inv = await call(
        api.POST("/api/v1/organizations/current/invitations", { body: { email, role: invRole }, headers: { "Idempotency-Key": idempotencyKey() } }),
      );
      setNotice(`Invitation sent to ${inv.email} as ${inv.role}.`);
      setEmail("");
      await list.load();
    });
  }
  async function act(inv: Invitation, what: "resend" | "revoke") {
    setNotice("");
    list.setError("");
    try {
      if (what === "resend") {
        await call(api.POST("/api/v1/organizations/current/invitations/{id}/resend", {
          params: { path: { id: inv.id } }, headers: { "Idempotency-Key": idempotencyKey() },
        }));
        setNotice(`A new link was sent to ${inv.email}; the old one no longer works.`);
      } else {
        await call(api.DELETE("/api/v1/organizations/current/invitations/{id}", { params: { path: { id: inv.id } } }));
        setNotice(`The invitation to ${inv.email} was revoked.`);
      }
      await list.load();
    } catch (e) {
      list.setError(message(e));
    }
  }

  return (
    <section aria-labelledby="invitations-title">
      <h2 id="invitations-title">Invitations</h2>
      <form onSubmit={invite} noValidate className="inline-form" aria-label="Invite a teammate">
        <Alert>{s.formError && (s.error?.code === "plan_limit_reached" ? <PlanLimit text={s.formError} /> : s.formError)}</Alert>
        <Field label="Email to invite" name="email" type="email" autoComplete="off" required value={email} error={s.fields.email}
          onChange={(e) => setEmail(e.target.value)} />
        <Select label="Role" name="role" value={invRole} options={grantable(role)} error={s.fields.role} onChange={(v) => setInvRole(v as Role)} />
        <button disabled={s.busy}>{s.busy ? "Sending…" : "Send invitation"}</button>
      </form>
      <Alert kind="ok">{notice}</Alert>
      <Alert>{list.error}</Alert>
      {list.rows && list.rows.length === 0 && !list.error && <p className="empty">No pending invitations.</p>}
      {list.rows && list.rows.length > 0 && (
        <ul className="list" aria-label="Pending invitations">
          {list.rows.map((inv) => {
            const manage = canManage(role, inv.role);
            const expired = new Date(inv.expires_at).getTime() < Date.now();
            return (
              <li key={inv.id} data-email={inv.email}>
                <span className="who">
                  <strong>{inv.email}</strong>
                  <br />
                  <small>{inv.role} · {expired ? "expired" : "expires"} {when(inv.expires_at)}</small>
                </span>
                {manage && (
                  <>
                    <button type="button" className="small secondary" onClick={() => act(inv, "resend")} aria-label={`Resend to ${inv.email}`}>
                      Resend
                    </button>
                    <Confirm label="Revoke" question={`Revoke the invitation to ${inv.email}?`} yes="Yes, revoke" onYes={() => act(inv, "revoke")} />
                  </>
                )}
              </li>
            );
          })}
        </ul>
      )}
      {list.loading && <Loading what="invitations" />}
      <More {...list} />
    </section>
  );
}

function PlanLimit({ text }: { text: string }) {
  return (
    <>
      {text} Revoke a pending invitation or remove a member to free a seat.
    </>
  );
}

function APIKeys() {
  const list = usePaged((cursor) =>
    call(api.GET("/api/v1/organizations/current/api-keys", { params: { query: { limit: 50, ...(cursor ? { cursor } : {}) } } })),
    message, "",
  );
  const s = useSubmit();
  const [name, setName] = useState("");
  const [keyRole, setKeyRole] = useState<"admin" | "member">("member");
  const [expires, setExpires] = useState("");
  const [created, setCreated] = useState<{ name: string; key: string } | null>(null);
  const [notice, setNotice] = useState("");

  async function create(e: FormEvent) {
    e.preventDefault();
    setNotice("");
    await s.run(async () => {
      // A date input gives a day: the key works until the end of it, local time.
      const expires_at = expires ? new Date(expires + "T23:59:59").toISOString() : undefined;
      const k = await call(api.POST("/api/v1/organizations/current/api-keys", {
        body: { name, role: keyRole, ...(expires_at ? { expires_at } : {}) },
        headers: { "Idempotency-Key": idempotencyKey() },
      }));
      setCreated({ name: k.name, key: k.key ?? "" });
      setName("");
      setExpires("");
      await list.load();
    });
  }
  async function revoke(k: APIKey) {
    setNotice("");
    list.setError("");
    try {
      await call(api.DELETE("/api/v1/organizations/current/api-keys/{id}", { params: { path: { id: k.id } } }));
      setNotice(`The key “${k.name}” was revoked; requests with it are refused from now on.`);
      await list.load();
    } catch (e) {
      list.setError(message(e));
    }
  }

  return (
    <section aria-labelledby="keys-title">
      <h2 id="keys-title">API keys</h2>
      {created ? (
        <NewKey name={created.name} secret={created.key} onDone={() => setCreated(null)} />
      ) : (
        <form onSubmit={create} noValidate className="inline-form" aria-label="Create an API key">
          <Alert>{s.formError}</Alert>
          <Field label="Key name" name="name" required value={name} error={s.fields.name} onChange={(e) => setName(e.target.value)} />
          <Select label="Key role" name="role" value={keyRole} options={["member", "admin"]} error={s.fields.role}
            onChange={(v) => setKeyRole(v as "admin" | "member")} />
          <Field label="Expires on (optional)" name="expires_at" type="date" value={expires} error={s.fields.expires_at}
            onChange={(e) => setExpires(e.target.value)} />
          <button disabled={s.busy}>{s.busy ? "Creating…" : "Create key"}</button>
        </form>
      )}
      <Alert kind="ok">{notice}</Alert>
      <Alert>{list.error}</Alert>
      {list.rows && list.rows.length === 0 && !list.error && <p className="empty">No API keys yet.</p>}
      {list.rows && list.rows.length > 0 && (
        <ul className="list" aria-label="API keys">
          {list.rows.map((k) => (
            <li key={k.id}>
              <span className="who">
                <strong>{k.name}</strong> <code>keel_live_{k.prefix}_…</code>
                <br />
                <small>
                  {k.role} · created {when(k.created_at)} · last used {k.last_used_at ? when(k.last_used_at) : "never"}
                  {k.expires_at && ` · expires ${when(k.expires_at)}`}
                </small>
              </span>
              <Confirm label="Revoke" question={`Revoke the key “${k.name}”?`} yes="Yes, revoke" onYes={() => revoke(k)} />
            </li>
          ))}
        </ul>
      )}
      {list.loading && <Loading what="API keys" />}
      <More {...list} />
    </section>
  );
}

/** The one time the whole key is shown: the API stores only its hash. */
function NewKey({ name, secret, onDone }: { name: string; secret: string; onDone: () => void }) {
  const [copied, setCopied] = useState("");
  async function copy() {
    try {
      await navigator.clipboard.writeText(secret);
      setCopied("Copied to the clipboard.");
    } catch {
      (document.getElementById("new-key") as HTMLInputElement | null)?.select();
      setCopied("The browser did not allow copying: the key is selected, press Ctrl+C (⌘C).");
    }
  }
  return (
    <div className="newkey" role="region" aria-labelledby="newkey-title">
      <h3 id="newkey-title">Your new key “{name}”</h3>
      <p>Copy it now and keep it somewhere safe: it is shown this once and cannot be shown again.</p>
      <div className="copy">
        <label htmlFor="new-key" className="sr-only">New API key</label>
        <input id="new-key" readOnly value={secret} onFocus={(e) => e.currentTarget.select()} />
        <button type="button" onClick={copy}>Copy</button>
      </div>
      <p role="status" aria-live="polite" className="muted">{copied}</p>
      <button type="button" className="secondary" onClick={onDone}>
        I have stored it
      </button>
    </div>
  );
}

/**
 * /accept-invitation?token=…: signed in, the invitation joins the account
 * (its email must be the invited one); anonymous, the invitee picks a name
 * and password and the API creates the account with the session; an
 * address that already has an account logs in first.
 */
export function AcceptInvitation({ signedIn }: { signedIn: boolean }) {
  const token = useLocation().searchParams.get("token") ?? "";
  const s = useSubmit();
  const [login, setLogin] = useState(false);

  async function join(body: { token: string; name?: string; password?: string }) {
    await s.run(async () => {
      const r = await call(api.POST("/api/v1/invitations/accept", {
        body, credentials: "include", headers: { ...csrfHeader, "Idempotency-Key": idempotencyKey() },
      }));
      // Anonymous: the answer is the new account's session in the new
      // organization. Signed in: move the session there.
      if (r.session) session.set(r.session);
      else await switchOrg(r.organization_id);
      navigate(`/team?joined=${r.role}`, true);
    });
  }
  function register(e: FormEvent<HTMLFormElement>) {
    e.preventDefault();
    const v = Object.fromEntries(new FormData(e.currentTarget)) as Record<string, string>;
    void join({ token, name: v.name, password: v.password });
  }
  const needLogin = s.error?.code === "login_required";

  if (!token)
    return (
      <main className="narrow">
        <h1>Accept an invitation</h1>
        <Alert>This link has no invitation token. Open the link from the invitation email again.</Alert>
      </main>
    );
  if (!signedIn && (login || needLogin))
    return (
      <>
        <div className="narrow pre">
          <h1>Accept the invitation</h1>
          {needLogin ? <Alert kind="info">{s.formError} Log in, then accept.</Alert> : <p>Log in with the invited address, then accept.</p>}
        </div>
        <Login onLogin={() => { setLogin(false); s.setError(null); }} />
      </>
    );
  return (
    <main className="narrow">
      <h1>Accept the invitation</h1>
      <Alert>{s.formError}</Alert>
      {signedIn ? (
        <>
          <p>You are signed in. Join the organization with this account (it must use the invited email address).</p>
          <button type="button" disabled={s.busy} onClick={() => join({ token })}>
            {s.busy ? "Joining…" : "Join the organization"}
          </button>
          <p>
            Not your account?{" "}
            <button type="button" className="link" onClick={() => session.logout()}>
              Log out
            </button>
          </p>
        </>
      ) : (
        <>
          <p>Create your account to join. The invited email address is already confirmed by this link.</p>
          <form onSubmit={register} noValidate>
            <Field label="Your name" name="name" autoComplete="name" required error={s.fields.name} />
            <Field label="Choose a password" name="password" type="password" autoComplete="new-password" required
              hint="12 to 128 characters." error={s.fields.password} />
            <button disabled={s.busy}>{s.busy ? "Joining…" : "Create account and join"}</button>
          </form>
          <p>
            Already have an account?{" "}
            <button type="button" className="link" onClick={() => setLogin(true)}>
              Log in to accept
            </button>
          </p>
        </>
      )}
      <p>
        <Link href="/login">Back to the app</Link>
      </p>
    </main>
  );
}
