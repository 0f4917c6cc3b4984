// The organization's audit log. (issue 13: to be written)
export function AuditLog({ role }: { role?: string }) {
  void role;
  return <main><h1>Audit log</h1></main>;
}
