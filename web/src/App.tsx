// The shell: restores the session from the refresh cookie on load, routes
// anonymous visitors to the auth screens and signed-in users to the app,
// and holds the organization switcher and the logout buttons.
import { useCallback, useEffect, useState, useSyncExternalStore } from "react";
import { api, call, session } from "./api/client";
import { ForgotPassword, Login, Register, ResetPassword, VerifyEmail } from "./screens/auth";
import { NewOrganization, OrgSwitcher, switchOrg, type Membership } from "./screens/orgs";
import { AcceptInvitation, Team } from "./screens/team";
import { EditResource, NewResource, ResourceList } from "./screens/resources";
import { Billing, BillingBanners } from "./screens/billing";
import { Usage } from "./screens/usage";
import { AuditLog } from "./screens/audit";
import { Account } from "./screens/account";
import { AdminNavLink, PlatformAdmin, SupportBanner } from "./screens/admin";
import { Link, navigate, useLocation } from "./router";
import { Alert, Loading } from "./ui";

const publicPaths = ["/login", "/register", "/verify-email", "/forgot-password", "/reset-password"];

/** A claim of the access token (org, sub); the API checks the token, the app only reads it. */
function claim(token: string | null, name: "org" | "sub"): string {
  if (!token) return "";
  try {
    return JSON.parse(atob(token.split(".")[1].replace(/-/g, "+").replace(/_/g, "/")))[name] ?? "";
  } catch {
    return "";
  }
}

export function App() {
  const token = useSyncExternalStore((l) => session.subscribe(l), () => session.accessToken);
  const [booted, setBooted] = useState(false);
  const loc = useLocation();
  const path = loc.pathname;

  useEffect(() => {
    // A page load has no token yet: the refresh cookie, if any, brings it back.
    if (publicPaths.includes(path) && path !== "/login") setBooted(true);
    else void session.refresh().finally(() => setBooted(true));
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, []);

  if (path === "/verify-email") return <VerifyEmail />;
  if (path === "/reset-password") return <ResetPassword />;
  if (path === "/register") return <Register />;
  if (path === "/forgot-password") return <ForgotPassword />;
  if (!booted) return <main className="narrow"><Loading what="your session" /></main>;
  if (path === "/accept-invitation") return <AcceptInvitation signedIn={!!token} />;
  if (!token) {
    if (path !== "/login") navigate("/login", true);
    return <Login onLogin={() => navigate("/resources", true)} />;
  }
  if (path === "/login" || path === "/") {
    navigate("/resources", true);
    return null;
  }
  // Keyed by the user: support access (another user) starts from an empty shell, not the admin's organization list.
  return <Signed key={claim(token, "sub")} path={path} org={claim(token, "org")} me={claim(token, "sub")} />;
}

function Signed({ path, org, me }: { path: string; org: string; me: string }) {
  const [orgs, setOrgs] = useState<Membership[] | null>(null);
  const [err, setErr] = useState("");
  const reload = useCallback(() => {
    call(api.GET("/api/v1/organizations")).then(
      (p) => setOrgs(p.data),
      (e) => setErr((e as Error).message),
    );
  }, []);
  useEffect(reload, [reload, org]);
  const role = orgs?.find((o) => o.organization_id === org)?.role;

  let screen;
  if (path === "/organizations/new") screen = <NewOrganization onCreated={reload} />;
  else if (path === "/platform" || path.startsWith("/platform/")) screen = <PlatformAdmin path={path} />; // no organization needed
  else if (!org) screen = <NoOrganization />;
  else if (path === "/team") screen = role ? <Team key={org} role={role} me={me} onLeft={() => leave(reload)} /> : <main><Loading what="your role" /></main>;
  else if (path === "/resources") screen = <ResourceList key={org} />;
  else if (path === "/resources/new") screen = <NewResource />;
  else if (path.startsWith("/resources/")) screen = <EditResource key={org + path} id={path.slice("/resources/".length)} />;
  else if (path === "/billing") screen = <Billing key={org} role={role} />;
  else if (path === "/usage") screen = <Usage key={org} />;
  else if (path === "/audit-log") screen = <AuditLog key={org} role={role} />;
  else if (path === "/account") screen = <Account me={me} />;
  else screen = <main><h1>Not found</h1><Link href="/resources">Go to resources</Link></main>;

  return (
    <>
      <header className="top">
        <Link href="/resources" className="brand">Keel</Link>
        <nav aria-label="Main">
          <Link href="/resources">Resources</Link> <Link href="/team">Team</Link>{" "}
          <Link href="/usage">Usage</Link> <Link href="/billing">Billing</Link>{" "}
          <Link href="/audit-log">Audit log</Link> <Link href="/account">Account</Link> <AdminNavLink />
        </nav>
        {orgs && <OrgSwitcher orgs={orgs} current={org} onSwitched={reload} />}
        <div className="account">
          <button type="button" className="link" onClick={() => session.logout().then(() => navigate("/login", true))}>
            Log out
          </button>{" "}
          <button type="button" className="link" title="Sign out every device and browser"
            onClick={() => session.logout(true).then(() => navigate("/login", true))}>
            Log out everywhere
          </button>
        </div>
      </header>
      <SupportBanner />
      {/* Its key must differ from the screen's, which is keyed by the org too: two equal keys among siblings left a second banner behind on a switch. */}
      {org && <BillingBanners key={"billing:" + org} role={role} />}
      <Alert>{err}</Alert>
      {screen}
    </>
  );
}

function NoOrganization() {
  return (
    <main className="narrow">
      <h1>No organization yet</h1>
      <p>Create an organization to start, or accept an invitation from a teammate.</p>
      <Link className="button" href="/organizations/new">New organization</Link>
    </main>
  );
}

/** After leaving, the token still names the old organization: move to another one, or to none. */
async function leave(reload: () => void) {
  const p = await call(api.GET("/api/v1/organizations")).catch(() => ({ data: [] as Membership[] }));
  if (p.data.length > 0) await switchOrg(p.data[0].organization_id).catch(() => {});
  else await session.refresh();
  reload();
  navigate("/resources", true);
}
