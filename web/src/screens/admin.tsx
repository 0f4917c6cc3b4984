// Platform admin: the parts every screen needs (the header's link, the
// support-access banner) and a wrapper that loads the admin area itself
// (users, organizations, support access, stats, audit log, jobs, the queue
// UI) with a dynamic import(), so it is not in the initial chunk.
// docs/web.md, "The platform admin screens".
import { lazy, Suspense, useEffect, useState, useSyncExternalStore } from "react";
import { api, call, session } from "../api/client";
import { message } from "../api/problem";
import { Link, navigate } from "../router";
import { Alert, Loading } from "../ui";

const Area = lazy(() => import("./admin/platform"));

export function PlatformAdmin({ path }: { path: string }) {
  return (
    <Suspense fallback={<main><Loading what="the admin area" /></main>}>
      <Area path={path} />
    </Suspense>
  );
}

function subject(token: string | null): string {
  if (!token) return "";
  try {
    return JSON.parse(atob(token.split(".")[1].replace(/-/g, "+").replace(/_/g, "/"))).sub ?? "";
  } catch {
    return "";
  }
}

// Whether a user is a platform admin, from GET /me's platform_admin, asked
// once per user for the life of the page (not on every screen change or
// token refresh). The admin gate still decides on every /admin call.
const adminOf = new Map<string, Promise<boolean>>();
function isPlatformAdmin(user: string): Promise<boolean> {
  let p = adminOf.get(user);
  if (!p) {
    p = call(api.GET("/api/v1/me")).then((me) => me.platform_admin);
    p.catch(() => adminOf.delete(user)); // asked again on the next render that needs it
    adminOf.set(user, p);
  }
  return p;
}

/** The header's link to /platform, shown to platform admins only. */
export function AdminNavLink() {
  const token = useSyncExternalStore((l) => session.subscribe(l), () => session.accessToken);
  const user = subject(token);
  const [admins, setAdmins] = useState<Record<string, boolean>>({});
  useEffect(() => {
    if (!user || user in admins || session.support) return;
    let live = true;
    isPlatformAdmin(user).then(
      (yes) => live && setAdmins((a) => ({ ...a, [user]: yes })),
      () => {},
    );
    return () => {
      live = false;
    };
  }, [user, admins]);
  if (!user || !admins[user] || session.support) return null;
  return <Link href="/platform">Admin</Link>;
}

/** The banner every screen shows while a platform admin acts as a user. */
export function SupportBanner() {
  const support = useSyncExternalStore((l) => session.subscribe(l), () => session.support);
  const [err, setErr] = useState("");
  const [expired, setExpired] = useState(false);

  async function end(userId: string) {
    setErr("");
    if (!(await session.endSupport())) {
      setErr("Support access ended, but your own session could not be restored: log in again.");
      navigate("/login", true);
      return;
    }
    navigate("/platform/users/" + userId);
  }

  useEffect(() => {
    if (!support) return;
    setExpired(false);
    // The token dies at expires_at and cannot be refreshed: say so then.
    const ms = new Date(support.expiresAt).getTime() - Date.now();
    const t = setTimeout(() => setExpired(true), Math.max(0, Math.min(ms, 2 ** 31 - 1)));
    return () => clearTimeout(t);
  }, [support]);

  if (!support) return err ? <Alert>{err}</Alert> : null;
  const until = new Date(support.expiresAt).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
  return (
    <section className="support-banner" aria-label="Support access">
      <p>
        <strong>Support access:</strong> you are acting as <strong>{support.email}</strong>
        {expired ? ". The access ended at " + until + "; end it to return to your own account." : " until " + until + "."}{" "}
        Everything you do is recorded in their organization's audit log under your name.
      </p>
      <button type="button" className="small" onClick={() => void end(support.userId).catch((e) => setErr(message(e)))}>
        End support access
      </button>
    </section>
  );
}
