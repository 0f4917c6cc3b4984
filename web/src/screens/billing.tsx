// Billing: plans, checkout, the portal, invoices; the trial, past-due and
// read-only banners the shell shows on every screen. (issue 13: to be written)
export function Billing({ role }: { role?: string }) {
  void role;
  return <main><h1>Billing</h1></main>;
}

export function BillingBanners({ role }: { role?: string }) {
  void role;
  return null;
}
