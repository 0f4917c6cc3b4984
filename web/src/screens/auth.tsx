// The screens before a session: register, verify email (the link in the
// email opens /verify-email?token=…), login with its 2FA step, forgot and
// reset password (/reset-password?token=…).
import { useEffect, useRef, useState, type FormEvent } from "react";
import { api, call, session } from "../api/client";
import { csrfHeader } from "../api/session";
import { Link, navigate, useLocation } from "../router";
import { Alert, Field, Loading, useSubmit } from "../ui";

function values(e: FormEvent<HTMLFormElement>): Record<string, string> {
  e.preventDefault();
  return Object.fromEntries(new FormData(e.currentTarget)) as Record<string, string>;
}

export function Login({ onLogin }: { onLogin: () => void }) {
  const s = useSubmit();
  const [needTotp, setNeedTotp] = useState(false);
  const [resent, setResent] = useState("");
  const [email, setEmail] = useState("");
  const reset = useLocation().searchParams.has("reset");
  async function submit(e: FormEvent<HTMLFormElement>) {
    const v = values(e);
    await s.run(async () => {
      try {
        const body = await call(
          api.POST("/api/v1/auth/login", {
            body: { email: v.email, password: v.password, ...(v.totp_code ? { totp_code: v.totp_code } : {}) },
            credentials: "include",
            headers: csrfHeader,
          }),
        );
        session.set(body);
        onLogin();
      } catch (err) {
        const code = (err as { code?: string }).code;
        if (code === "totp_required") {
          setNeedTotp(true);
          return;
        }
        throw err;
      }
    });
  }
  async function resend() {
    await call(api.POST("/api/v1/auth/resend-verification", { body: { email } }));
    setResent("If the address has an unverified account, a new link is on its way.");
  }
  return (
    <main className="narrow">
      <h1>Log in</h1>
      <form onSubmit={submit} noValidate>
        {reset && <Alert kind="ok">Your password is changed and every session was signed out. Log in with the new one.</Alert>}
        <Alert>{s.formError}</Alert>
        {s.error?.code === "email_not_verified" && (
          <p>
            <button type="button" className="link" onClick={resend}>
              Send the verification email again
            </button>
          </p>
        )}
        <Alert kind="info">{resent}</Alert>
        <Field label="Email" name="email" type="email" autoComplete="username" required error={s.fields.email}
          value={email} onChange={(e) => setEmail(e.target.value)} />
        <Field label="Password" name="password" type="password" autoComplete="current-password" required error={s.fields.password} />
        {needTotp && (
          <Field label="Authentication code" name="totp_code" inputMode="numeric" autoComplete="one-time-code" autoFocus
            hint="The 6-digit code from your authenticator app, or a recovery code." error={s.fields.totp_code} />
        )}
        <button disabled={s.busy}>{s.busy ? "Logging in…" : "Log in"}</button>
      </form>
      <p>
        <Link href="/forgot-password">Forgot your password?</Link> · <Link href="/register">Create an account</Link>
      </p>
    </main>
  );
}

export function Register() {
  const s = useSubmit();
  const [done, setDone] = useState("");
  async function submit(e: FormEvent<HTMLFormElement>) {
    const v = values(e);
    await s.run(async () => {
      const r = await call(
        api.POST("/api/v1/auth/register", {
          body: { name: v.name, email: v.email, password: v.password, ...(v.organization_name ? { organization_name: v.organization_name } : {}) },
        }),
      );
      setDone(r.message);
    });
  }
  if (done)
    return (
      <main className="narrow">
        <h1>Check your email</h1>
        <Alert kind="ok">{done}</Alert>
        <p>Open the link in the email to verify your address, then log in.</p>
        <Link href="/login">Log in</Link>
      </main>
    );
  return (
    <main className="narrow">
      <h1>Create an account</h1>
      <form onSubmit={submit} noValidate>
        <Alert>{s.formError}</Alert>
        <Field label="Name" name="name" autoComplete="name" required error={s.fields.name} />
        <Field label="Email" name="email" type="email" autoComplete="email" required error={s.fields.email} />
        <Field label="Password" name="password" type="password" autoComplete="new-password" required
          hint="12 to 128 characters." error={s.fields.password} />
        <Field label="Organization name (optional)" name="organization_name" error={s.fields.organization_name} />
        <button disabled={s.busy}>{s.busy ? "Creating…" : "Create account"}</button>
      </form>
      <p>
        Already have an account? <Link href="/login">Log in</Link>
      </p>
    </main>
  );
}

export function VerifyEmail() {
  const token = useLocation().searchParams.get("token") ?? "";
  const s = useSubmit();
  const [ok, setOk] = useState(false);
  // The token is single-use: React's StrictMode runs effects twice in
  // development, and a second POST would answer an error after the success.
  const sent = useRef("");
  useEffect(() => {
    if (sent.current === token) return;
    sent.current = token;
    void s.run(async () => {
      await call(api.POST("/api/v1/auth/verify-email", { body: { token } }));
      setOk(true);
    });
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [token]);
  return (
    <main className="narrow">
      <h1>Verify your email</h1>
      {s.busy && <Loading what="verification" />}
      <Alert>{s.formError}</Alert>
      {ok && <Alert kind="ok">Your email address is verified.</Alert>}
      {!s.busy && <Link href="/login">Log in</Link>}
    </main>
  );
}

export function ForgotPassword() {
  const s = useSubmit();
  const [done, setDone] = useState("");
  async function submit(e: FormEvent<HTMLFormElement>) {
    const v = values(e);
    await s.run(async () => {
      const r = await call(api.POST("/api/v1/auth/password/forgot", { body: { email: v.email } }));
      setDone(r.message);
    });
  }
  return (
    <main className="narrow">
      <h1>Reset your password</h1>
      {done ? (
        <Alert kind="ok">{done}</Alert>
      ) : (
        <form onSubmit={submit} noValidate>
          <Alert>{s.formError}</Alert>
          <Field label="Email" name="email" type="email" autoComplete="email" required error={s.fields.email} />
          <button disabled={s.busy}>Send reset link</button>
        </form>
      )}
      <Link href="/login">Back to log in</Link>
    </main>
  );
}

export function ResetPassword() {
  const token = useLocation().searchParams.get("token") ?? "";
  const s = useSubmit();
  async function submit(e: FormEvent<HTMLFormElement>) {
    const v = values(e);
    await s.run(async () => {
      await call(api.POST("/api/v1/auth/password/reset", { body: { token, password: v.password } }));
      navigate("/login?reset=1", true);
    });
  }
  return (
    <main className="narrow">
      <h1>Choose a new password</h1>
      <form onSubmit={submit} noValidate>
        <Alert>{s.formError}</Alert>
        <Field label="New password" name="password" type="password" autoComplete="new-password" required
          hint="12 to 128 characters. Every session of your account is signed out." error={s.fields.password} />
        <button disabled={s.busy}>Set password</button>
      </form>
    </main>
  );
}
