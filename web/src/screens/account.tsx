// Account settings (/account): name, email (changed through a link mailed
// to the new address), password, and two-factor authentication (TOTP: a QR
// code of the otpauth URI, the secret as text, a code to confirm, the
// recovery codes shown once; turning it off). Everything through PATCH
// /me and /auth/2fa/* (docs/identity.md); the QR code library is loaded
// on demand (dynamic import) so it stays out of the initial chunk.
import { useEffect, useState, type FormEvent } from "react";
import { api, call, idempotencyKey } from "../api/client";
import { message } from "../api/problem";
import type { components } from "../api/schema";
import { Alert, Field, Loading, useSubmit } from "../ui";

type Me = components["schemas"]["Me"];

function values(e: FormEvent<HTMLFormElement>): Record<string, string> {
  e.preventDefault();
  return Object.fromEntries(new FormData(e.currentTarget)) as Record<string, string>;
}

/**
 * A wrong current password is a 403 invalid_password without a field: it
 * is shown next to the password field it is about, like a field error.
 */
function passwordError(s: ReturnType<typeof useSubmit>, field: string): { field?: string; form: string } {
  if (s.error?.code === "invalid_password") return { field: s.formError, form: "" };
  return { field: s.fields[field], form: s.formError };
}

export function Account({ me }: { me: string }) {
  const [user, setUser] = useState<Me | null>(null);
  const [err, setErr] = useState("");
  async function reload() {
    try {
      setUser(await call(api.GET("/api/v1/me")));
      setErr("");
    } catch (e) {
      setErr(message(e));
    }
  }
  useEffect(() => {
    void reload();
  }, [me]);
  return (
    <main className="narrow account-page">
      <h1>Account</h1>
      <Alert>{err}</Alert>
      {!user && !err && <Loading what="your account" />}
      {user && (
        <>
          <Profile user={user} onSaved={setUser} />
          <Email user={user} onSaved={setUser} />
          <Password />
          <TwoFactor enabled={user.totp_enabled} onChanged={reload} />
        </>
      )}
    </main>
  );
}

function Profile({ user, onSaved }: { user: Me; onSaved: (u: Me) => void }) {
  const s = useSubmit();
  const [name, setName] = useState(user.name);
  const [done, setDone] = useState("");
  async function submit(e: FormEvent<HTMLFormElement>) {
    e.preventDefault();
    setDone("");
    await s.run(async () => {
      const u = await call(api.PATCH("/api/v1/me", { body: { name } }));
      onSaved(u);
      setName(u.name);
      setDone("Your name is saved.");
    });
  }
  return (
    <section aria-labelledby="profile-title">
      <h2 id="profile-title">Profile</h2>
      <form onSubmit={submit} noValidate aria-label="Profile">
        <Alert>{s.formError}</Alert>
        <Alert kind="ok">{done}</Alert>
        <Field label="Name" name="name" autoComplete="name" required value={name} error={s.fields.name}
          onChange={(e) => setName(e.target.value)} />
        <button disabled={s.busy}>{s.busy ? "Saving…" : "Save name"}</button>
      </form>
    </section>
  );
}

function Email({ user, onSaved }: { user: Me; onSaved: (u: Me) => void }) {
  const s = useSubmit();
  // GET /me does not say a change is pending (it cannot: when the new
  // address has an account no link is made, and saying so would reveal
  // that account), so the page remembers what it asked for, for this tab.
  const key = "keel-pending-email:" + user.id;
  const [pending, setPendingState] = useState(() => sessionStorage.getItem(key) ?? "");
  function setPending(v: string) {
    if (v) sessionStorage.setItem(key, v);
    else sessionStorage.removeItem(key);
    setPendingState(v);
  }
  useEffect(() => {
    if (pending && pending.toLowerCase() === user.email.toLowerCase()) setPending(""); // the link was followed
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [user.email]);
  async function submit(e: FormEvent<HTMLFormElement>) {
    const v = values(e);
    const form = e.currentTarget;
    await s.run(async () => {
      const u = await call(api.PATCH("/api/v1/me", { body: { email: v.email, current_password: v.current_password } }));
      onSaved(u);
      setPending(v.email.trim());
      form.reset();
    });
  }
  const pw = passwordError(s, "current_password");
  return (
    <section aria-labelledby="email-title">
      <h2 id="email-title">Email</h2>
      <p>
        Your address is <strong data-testid="current-email">{user.email}</strong>
        {user.email_verified ? " (verified)." : " (not verified yet)."}
      </p>
      {pending && pending.toLowerCase() !== user.email.toLowerCase() && (
        <Alert kind="info">
          We sent a confirmation link to <strong>{pending}</strong>. Your address stays {user.email} until you open
          that link (it works for 24 hours); {user.email} was told about the request. If the link does not arrive,
          check the spelling and ask again. Changing your password cancels the change.
        </Alert>
      )}
      <form onSubmit={submit} noValidate aria-label="Change email">
        <Alert>{pw.form}</Alert>
        <Field label="New email" name="email" type="email" autoComplete="email" required error={s.fields.email} />
        <Field label="Current password" name="current_password" type="password" autoComplete="current-password" required
          hint="Needed to change the email." error={pw.field} />
        <button disabled={s.busy}>{s.busy ? "Sending…" : "Send confirmation link"}</button>
      </form>
    </section>
  );
}

function Password() {
  const s = useSubmit();
  const [done, setDone] = useState("");
  async function submit(e: FormEvent<HTMLFormElement>) {
    const v = values(e);
    const form = e.currentTarget;
    setDone("");
    await s.run(async () => {
      await call(api.PATCH("/api/v1/me", { body: { current_password: v.current_password, new_password: v.new_password } }));
      form.reset();
      setDone("Your password is changed. Every other device and browser was signed out; this one stays signed in.");
    });
  }
  const pw = passwordError(s, "current_password");
  return (
    <section aria-labelledby="password-title">
      <h2 id="password-title">Password</h2>
      <form onSubmit={submit} noValidate aria-label="Change password">
        <Alert>{pw.form}</Alert>
        <Alert kind="ok">{done}</Alert>
        <Field label="Current password" name="current_password" type="password" autoComplete="current-password" required
          error={pw.field} />
        <Field label="New password" name="new_password" type="password" autoComplete="new-password" required
          hint="12 to 128 characters. Other devices are signed out." error={s.fields.new_password} />
        <button disabled={s.busy}>{s.busy ? "Changing…" : "Change password"}</button>
      </form>
    </section>
  );
}

type Setup = { secret: string; otpauth_url: string };

function TwoFactor({ enabled, onChanged }: { enabled: boolean; onChanged: () => Promise<void> }) {
  const [setup, setSetup] = useState<Setup | null>(null);
  const [codes, setCodes] = useState<string[] | null>(null);
  const [notice, setNotice] = useState("");
  const start = useSubmit();

  async function begin() {
    setNotice("");
    await start.run(async () => {
      setSetup(await call(api.POST("/api/v1/auth/2fa/setup", { headers: { "Idempotency-Key": idempotencyKey() } })));
    });
  }

  let body;
  if (codes) {
    body = (
      <RecoveryCodes codes={codes} onDone={async () => {
        setCodes(null);
        setNotice("Two-factor authentication is on. Log-ins now ask for a code from your app.");
        await onChanged();
      }} />
    );
  } else if (enabled) {
    body = (
      <>
        <p>
          <span className="badge badge-on">On</span> Logging in asks for a code from your authenticator app (or a
          recovery code).
        </p>
        <Disable onDone={async () => {
          setNotice("Two-factor authentication is off. Your recovery codes no longer work.");
          await onChanged();
        }} />
      </>
    );
  } else if (setup) {
    body = <Enable setup={setup} onEnabled={setCodes} onCancel={() => setSetup(null)} />;
  } else {
    body = (
      <>
        <p>
          <span className="badge">Off</span> Add a second step to logging in: a 6-digit code from an authenticator
          app on your phone.
        </p>
        <Alert>{start.formError}</Alert>
        <button type="button" onClick={begin} disabled={start.busy}>
          {start.busy ? "Starting…" : "Set up two-factor authentication"}
        </button>
      </>
    );
  }
  return (
    <section aria-labelledby="totp-title">
      <h2 id="totp-title">Two-factor authentication</h2>
      <Alert kind="ok">{notice}</Alert>
      {body}
    </section>
  );
}

function Enable({ setup, onEnabled, onCancel }: { setup: Setup; onEnabled: (codes: string[]) => void; onCancel: () => void }) {
  const s = useSubmit();
  async function submit(e: FormEvent<HTMLFormElement>) {
    const v = values(e);
    await s.run(async () => {
      const r = await call(api.POST("/api/v1/auth/2fa/enable", {
        body: { code: v.code.replace(/\s+/g, ""), password: v.password },
        headers: { "Idempotency-Key": idempotencyKey() },
      }));
      onEnabled(r.recovery_codes);
    });
  }
  const pw = passwordError(s, "password");
  const codeErr = s.fields.code || (s.error?.code === "invalid_totp_code" ? s.formError : undefined);
  return (
    <div className="totp-setup">
      <ol>
        <li>Scan this QR code with your authenticator app (Google Authenticator, 1Password, Aegis, …).</li>
        <li>Or type the secret key into the app by hand.</li>
        <li>Enter the 6-digit code the app shows, and your password.</li>
      </ol>
      <QRCode text={setup.otpauth_url} />
      <p>
        Secret key:{" "}
        <code className="secret" aria-label="Secret key" data-testid="totp-secret">{setup.secret}</code>
      </p>
      <form onSubmit={submit} noValidate aria-label="Turn on two-factor authentication">
        <Alert>{codeErr === s.formError || pw.field === s.formError ? "" : s.formError}</Alert>
        <Field label="Code from the app" name="code" inputMode="numeric" autoComplete="one-time-code" required
          error={codeErr} />
        <Field label="Your password" name="password" type="password" autoComplete="current-password" required
          error={pw.field} />
        <button disabled={s.busy}>{s.busy ? "Checking…" : "Turn on"}</button>{" "}
        <button type="button" className="secondary" onClick={onCancel}>Cancel</button>
      </form>
    </div>
  );
}

/** The otpauth URI as a QR code (SVG), the library loaded on demand. */
function QRCode({ text }: { text: string }) {
  const [cells, setCells] = useState<boolean[][] | null>(null);
  const [err, setErr] = useState("");
  useEffect(() => {
    let live = true;
    import("qrcode-generator").then(
      ({ default: qrcode }) => {
        const qr = qrcode(0, "M");
        qr.addData(text);
        qr.make();
        const n = qr.getModuleCount();
        const rows = Array.from({ length: n }, (_, r) => Array.from({ length: n }, (_, c) => qr.isDark(r, c)));
        if (live) setCells(rows);
      },
      () => live && setErr("The QR code could not be loaded; type the secret key into your app instead."),
    );
    return () => {
      live = false;
    };
  }, [text]);
  if (err) return <Alert>{err}</Alert>;
  if (!cells) return <Loading what="the QR code" />;
  const n = cells.length;
  const quiet = 4;
  let d = "";
  cells.forEach((row, r) => row.forEach((dark, c) => {
    if (dark) d += `M${c + quiet} ${r + quiet}h1v1h-1z`;
  }));
  return (
    <svg className="qr" role="img" aria-label="QR code for your authenticator app" viewBox={`0 0 ${n + 2 * quiet} ${n + 2 * quiet}`}
      width="220" height="220" shapeRendering="crispEdges">
      <rect width="100%" height="100%" fill="#fff" />
      <path d={d} fill="#000" />
    </svg>
  );
}

function RecoveryCodes({ codes, onDone }: { codes: string[]; onDone: () => void }) {
  const [copied, setCopied] = useState("");
  const text = codes.join("\n") + "\n";
  async function copy() {
    try {
      await navigator.clipboard.writeText(text);
      setCopied("Copied to the clipboard.");
    } catch {
      setCopied("The browser refused the clipboard: select the codes and press Ctrl+C.");
    }
  }
  function download() {
    const url = URL.createObjectURL(new Blob([text], { type: "text/plain" }));
    const a = document.createElement("a");
    a.href = url;
    a.download = "keel-recovery-codes.txt";
    document.body.appendChild(a);
    a.click();
    a.remove();
    setTimeout(() => URL.revokeObjectURL(url), 1000);
  }
  return (
    <div className="recovery">
      <Alert kind="ok">Two-factor authentication is on.</Alert>
      <p>
        <strong>Store these recovery codes now: they are shown only once.</strong> Each one logs you in once in place
        of a code, if you lose your phone.
      </p>
      <ul className="codes" aria-label="Recovery codes">
        {codes.map((c) => (
          <li key={c}><code>{c}</code></li>
        ))}
      </ul>
      <p>
        <button type="button" className="secondary" onClick={copy}>Copy</button>{" "}
        <button type="button" className="secondary" onClick={download}>Download as .txt</button>{" "}
        <button type="button" onClick={onDone}>I have stored them</button>
      </p>
      <Alert kind="info">{copied}</Alert>
    </div>
  );
}

function Disable({ onDone }: { onDone: () => Promise<void> }) {
  const s = useSubmit();
  async function submit(e: FormEvent<HTMLFormElement>) {
    const v = values(e);
    await s.run(async () => {
      await call(api.POST("/api/v1/auth/2fa/disable", {
        body: { password: v.password, code: v.code.replace(/\s+/g, "") },
        headers: { "Idempotency-Key": idempotencyKey() },
      }));
      await onDone();
    });
  }
  const pw = passwordError(s, "password");
  const codeErr = s.fields.code || (s.error?.code === "invalid_totp_code" ? s.formError : undefined);
  return (
    <form onSubmit={submit} noValidate aria-label="Turn off two-factor authentication">
      <h3>Turn it off</h3>
      <Alert>{codeErr === s.formError || pw.field === s.formError ? "" : s.formError}</Alert>
      <Field label="Your password" name="password" type="password" autoComplete="current-password" required error={pw.field} />
      <Field label="Code from the app or a recovery code" name="code" autoComplete="one-time-code" required error={codeErr} />
      <button className="danger" disabled={s.busy}>{s.busy ? "Turning off…" : "Turn off two-factor authentication"}</button>
    </form>
  );
}
