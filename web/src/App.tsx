// The shell: restores the session from the refresh cookie on load, routes
// anonymous visitors to the auth screens and signed-in users to the app,
// and holds the organization switcher and the logout buttons.
import { useCallback, useEffect, useState, useSyncExternalStore } from "react";
import { api, call, session } from "./api/client";
import { ForgotPassword, Login, Register, ResetPassword, VerifyEmail } from "./screens/auth";
import { NewOrganization, OrgSwitcher, type Membership } from "./screens/orgs";
import { EditResource, NewResource, ResourceList } from "./screens/resources";
import { Link, navigate, useLocation } from "./router";
import { Alert, Loading } from "./ui";

const publicPaths = ["/login", "/register", "/verify-email", "/forgot-password", "/reset-password"];

function orgOf(token: string | null): string {
  if (!token) return "";
  try {
    return JSON.parse(atob(token.split(".")[1].replace(/-/g, "+").replace(/_/g, "/"))).org ?? "";
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
  if (!token) {
    if (path !== "/login") navigate("/login", true);
    return <Login onLogin={() => navigate("/resources", true)} />;
  }
  if (path === "/login" || path === "/") {
    navigate("/resources", true);
    return null;
  }
  return <Signed path={path} org={orgOf(token)} />;
}

function Signed({ path, org }: { path: string; org: string }) {
  const [orgs, setOrgs] = useState<Membership[] | null>(null);
  const [err, setErr] = useState("");
  const reload = useCallback(() => {
    call(api.GET("/api/v1/organizations")).then(
      (p) => setOrgs(p.data),
      (e) => setErr((e as Error).message),
    );
  }, []);
  useEffect(reload, [reload, org]);

  let screen;
  if (path === "/organizations/new") screen = <NewOrganization onCreated={reload} />;
  else if (!org) screen = <NoOrganization />;
  else if (path === "/resources") screen = <ResourceList key={org} />;
  else if (path === "/resources/new") screen = <NewResource />;
  else if (path.startsWith("/resources/")) screen = <EditResource key={org + path} id={path.slice("/resources/".length)} />;
  else screen = <main><h1>Not found</h1><Link href="/resources">Go to resources</Link></main>;

  return (
    <>
      <header className="top">
        <Link href="/resources" className="brand">Keel</Link>
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
