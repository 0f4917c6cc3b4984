// Platform admin: users, organizations, support access, stats, the queue UI.
// (issue 13: to be written)
export function PlatformAdmin({ path }: { path: string }) {
  void path;
  return <main><h1>Platform admin</h1></main>;
}

/** The header's link to /platform, shown to platform admins only. */
export function AdminNavLink() {
  return null;
}

/** The banner every screen shows while a platform admin acts as a user. */
export function SupportBanner() {
  return null;
}
