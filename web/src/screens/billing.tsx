// Billing: the organization's plan and status, the plans to choose
// (Checkout or a plan change), the Stripe Billing Portal, invoices; and the
// trial, past-due, read-only and canceled banners the shell shows under the
// header on every screen. Stripe's webhooks move the state (docs/billing.md):
// after Checkout the page polls GET /billing until they have been applied.
import { useCallback, useEffect, useRef, useState } from "react";
import { api, call } from "../api/client";
import { message, toApiError } from "../api/problem";
import type { components } from "../api/schema";
import { Link, useLocation, navigate } from "../router";
import { Alert, Loading, Select, useSubmit } from "../ui";

export type BillingState = components["schemas"]["Billing"];
type Plan = components["schemas"]["BillingPlan"];
type Invoice = components["schemas"]["Invoice"];

// --- shared billing state: one fetch per organization, refreshed on focus,
// on navigation (throttled) and whenever a screen says it changed.

const changedEvent = "keel:billing-changed";

/** Tells the banners (and the billing page) that the billing state may have changed. */
export function billingChanged(): void {
  window.dispatchEvent(new Event(changedEvent));
}

function useBillingState(opts: { throttleMs: number }) {
  const [state, setState] = useState<BillingState | null>(null);
  const [error, setError] = useState("");
  const last = useRef(0);
  const inflight = useRef(false);
  const load = useCallback(
    (force: boolean) => {
      if (inflight.current || (!force && Date.now() - last.current < opts.throttleMs)) return;
      inflight.current = true;
      last.current = Date.now();
      call(api.GET("/api/v1/billing")).then(
        (b) => {
          setState(b);
          setError("");
        },
        (e) => setError(message(e)),
      ).finally(() => {
        inflight.current = false;
      });
    },
    [opts.throttleMs],
  );
  useEffect(() => {
    load(true);
    const onFocus = () => load(false);
    const onChanged = () => load(true);
    const onVisible = () => document.visibilityState === "visible" && load(false);
    window.addEventListener("focus", onFocus);
    window.addEventListener(changedEvent, onChanged);
    document.addEventListener("visibilitychange", onVisible);
    return () => {
      window.removeEventListener("focus", onFocus);
      window.removeEventListener(changedEvent, onChanged);
      document.removeEventListener("visibilitychange", onVisible);
    };
  }, [load]);
  return { state, error, load };
}

// --- formatting

export function formatDate(iso: string | null | undefined): string {
  if (!iso) return "";
  return new Date(iso).toLocaleDateString(undefined, { year: "numeric", month: "short", day: "numeric" });
}

/** Whole days from now to iso, a part day counting as one (never below 0). */
export function daysLeft(iso: string): number {
  return Math.max(0, Math.ceil((new Date(iso).getTime() - Date.now()) / 86400000));
}

/** An amount in the currency's smallest unit, as money (JPY has no cents). */
export function formatMoney(amount: number, currency: string): string {
  try {
    const f = new Intl.NumberFormat(undefined, { style: "currency", currency: currency.toUpperCase() });
    const digits = f.resolvedOptions().maximumFractionDigits ?? 2;
    return f.format(amount / 10 ** digits);
  } catch {
    return `${(amount / 100).toFixed(2)} ${currency.toUpperCase()}`;
  }
}

export function formatBytes(n: number): string {
  const units = ["bytes", "KiB", "MiB", "GiB", "TiB"];
  let i = 0;
  let v = n;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return i === 0 ? `${n} bytes` : `${Number.isInteger(v) ? v : v.toFixed(1)} ${units[i]}`;
}

const statusWords: Record<BillingState["status"], string> = {
  trialing: "Trial",
  active: "Active",
  past_due: "Payment failed (past due)",
  read_only: "Read-only (payment overdue)",
  canceled: "Canceled",
  free: "Free",
};

/** Whether the organization has a Stripe subscription that a plan change applies to. */
function liveSubscription(b: BillingState): boolean {
  return b.interval !== null && (b.status === "trialing" || b.status === "active" || b.status === "past_due");
}

/** The signup trial: trialing without a Stripe subscription (no interval). */
function signupTrial(b: BillingState): boolean {
  return b.status === "trialing" && b.interval === null;
}

const ownersOnly = "Only an owner of the organization can choose a plan or manage payment; ask one of them.";

/** Opens the Stripe Billing Portal (owners). */
async function openPortal(): Promise<void> {
  const r = await call(api.POST("/api/v1/billing/portal"));
  window.location.assign(r.portal_url);
}

// --- the banners

export function BillingBanners({ role }: { role?: string }) {
  const loc = useLocation();
  const { state: b, load } = useBillingState({ throttleMs: 15000 });
  // Navigating (after a create, a save) is when a state change matters;
  // throttled, and never in the way of the screen (the fetch is async).
  useEffect(() => load(false), [loc.pathname, load]);
  const portal = useSubmit();
  if (!b) return null;
  const owner = role === "owner";
  const onBilling = loc.pathname === "/billing";
  const fix = owner ? (
    <button type="button" className="small" disabled={portal.busy} onClick={() => portal.run(openPortal)}>
      {portal.busy ? "Opening the portal…" : "Fix payment in the billing portal"}
    </button>
  ) : (
    <span> Ask an owner of the organization to update the payment method.</span>
  );
  let body = null;
  let kind = "info";
  if (signupTrial(b) && b.trial_end) {
    const d = daysLeft(b.trial_end);
    body = (
      <p>
        <strong>Your {b.plan.name} trial ends in {d} {d === 1 ? "day" : "days"}</strong> ({formatDate(b.trial_end)}).
        Then the organization moves to the free plan and its lower limits; your data is kept.{" "}
        {!onBilling && <Link href="/billing">Choose a plan</Link>}
      </p>
    );
  } else if (b.status === "past_due") {
    kind = "warn";
    body = (
      <p>
        <strong>A payment failed.</strong> Everything keeps working until {formatDate(b.grace_until)}; after that
        the organization becomes read-only until the invoice is paid. {fix}
      </p>
    );
  } else if (b.status === "read_only") {
    kind = "error";
    body = (
      <p>
        <strong>This organization is read-only: its payment is overdue.</strong> You can still see, download and
        delete everything, but creating or changing resources, uploading files and inviting people are refused
        until the open invoice is paid. Access comes back as soon as Stripe confirms the payment. {fix}
      </p>
    );
  } else if (b.status === "canceled") {
    body = (
      <p>
        <strong>The subscription was canceled.</strong> The organization is on the {b.plan.name} plan and its
        limits; your data is kept, but creating beyond those limits is refused.{" "}
        {!onBilling && <Link href="/billing">Subscribe again</Link>}
      </p>
    );
  }
  // data-billing-state says which state the banners reflect (tests wait on it).
  if (!body) return <span hidden data-billing-state={b.status} />;
  return (
    <div className={"billing-banner billing-banner-" + kind} role={kind === "info" ? "status" : "alert"}
      aria-label="Billing notice" data-billing-state={b.status}>
      {body}
      {portal.formError && <p className="field-error">{portal.formError}</p>}
    </div>
  );
}

// --- the billing page

export function Billing({ role }: { role?: string }) {
  const loc = useLocation();
  const checkout = loc.searchParams.get("checkout");
  const [b, setB] = useState<BillingState | null>(null);
  const [plans, setPlans] = useState<Plan[] | null>(null);
  const [loadErr, setLoadErr] = useState("");
  const [interval, setInterval_] = useState<"month" | "year">("month");
  const [notice, setNotice] = useState<{ kind: "info" | "ok" | "error"; text: string } | null>(null);
  const [waiting, setWaiting] = useState<null | ((b: BillingState) => boolean)>(null);
  const s = useSubmit();
  const owner = role === "owner";

  const reload = useCallback(async () => {
    const next = await call(api.GET("/api/v1/billing"));
    setB(next);
    return next;
  }, []);

  useEffect(() => {
    reload().catch((e) => setLoadErr(message(e)));
    call(api.GET("/api/v1/billing/plans")).then((p) => setPlans(p.data), (e) => setLoadErr(message(e)));
  }, [reload]);

  useEffect(() => {
    if (b?.interval) setInterval_(b.interval);
  }, [b?.interval]);

  // Back from Checkout: Stripe took the payment, but Keel learns of it
  // through the webhooks; poll until the subscription shows up.
  useEffect(() => {
    if (checkout === "success") {
      setNotice({ kind: "info", text: "Checkout is complete. Waiting for Stripe to confirm the subscription…" });
      setWaiting(() => (x: BillingState) => x.interval !== null && x.status !== "canceled" && x.status !== "free");
    } else if (checkout === "canceled") {
      setNotice({ kind: "info", text: "Checkout was canceled: nothing was charged and your plan is unchanged." });
    }
    if (checkout) navigate("/billing", true);
  }, [checkout]);

  useEffect(() => {
    if (!waiting) return;
    let stopped = false;
    const started = Date.now();
    let timer = 0;
    const tick = async () => {
      try {
        const next = await reload();
        if (stopped) return;
        if (waiting(next)) {
          setWaiting(null);
          billingChanged();
          setNotice({ kind: "ok", text: confirmed(next) });
          return;
        }
      } catch (e) {
        if (stopped) return;
        setNotice({ kind: "error", text: message(e) });
      }
      if (Date.now() - started > 120000) {
        setWaiting(null);
        setNotice({ kind: "info", text: "Stripe has not confirmed yet. This can take a few minutes; reload this page later." });
        return;
      }
      timer = window.setTimeout(tick, 1000);
    };
    timer = window.setTimeout(tick, 500);
    return () => {
      stopped = true;
      clearTimeout(timer);
    };
  }, [waiting, reload]);

  function choose(p: Plan) {
    void s.run(async () => {
      const { data, error, response } = await api.POST("/api/v1/billing/subscribe", { body: { plan: p.id, interval } });
      if (error !== undefined || !response.ok) throw toApiError(error, response.status);
      if (data && "checkout_url" in data) {
        window.location.assign(data.checkout_url);
        return;
      }
      const change = data!.change;
      const name = plans?.find((x) => x.id === change.plan)?.name ?? change.plan;
      if (change.effective === "now") {
        setNotice({ kind: "info", text: `Changing to ${name} (${change.interval}ly) now. Waiting for Stripe to confirm…` });
        setWaiting(() => (x: BillingState) => x.plan.id === change.plan && x.interval === change.interval);
      } else {
        setNotice({
          kind: "ok",
          text: `${name} (${change.interval}ly) starts at the end of the current period` +
            (b?.current_period_end ? `, on ${formatDate(b.current_period_end)}.` : ".") + " Until then nothing changes.",
        });
      }
    });
  }

  if (loadErr) return <main><h1>Billing</h1><Alert>{loadErr}</Alert></main>;
  if (!b || !plans) return <main><h1>Billing</h1><Loading what="billing" /></main>;
  const live = liveSubscription(b);

  return (
    <main className="billing">
      <h1>Billing</h1>
      {notice && <Alert kind={notice.kind}>{notice.text}</Alert>}
      {waiting && <p className="muted" role="status">Checking with Stripe…</p>}

      <section aria-labelledby="plan-h">
        <h2 id="plan-h">Your plan</h2>
        <dl className="billing-status">
          <dt>Plan</dt>
          <dd data-testid="billing-plan">
            {b.plan.name}
            {b.interval && b.status !== "canceled" && b.status !== "free" ? `, billed ${b.interval}ly` : ""}
          </dd>
          <dt>Status</dt>
          <dd>
            <span className={"badge badge-billing-" + b.status} data-testid="billing-status">{statusWords[b.status]}</span>
          </dd>
          {b.status === "trialing" && b.trial_end && (
            <>
              <dt>Trial ends</dt>
              <dd>
                {formatDate(b.trial_end)} ({daysLeft(b.trial_end)} days left)
                {signupTrial(b) ? ", then the free plan unless you subscribe" : ", then the first payment"}
              </dd>
            </>
          )}
          {b.current_period_end && b.status !== "trialing" && b.status !== "canceled" && (
            <>
              <dt>{b.cancel_at_period_end ? "Ends on" : "Renews on"}</dt>
              <dd>{formatDate(b.current_period_end)}</dd>
            </>
          )}
          {b.status === "past_due" && b.grace_until && (
            <>
              <dt>Read-only from</dt>
              <dd>{formatDate(b.grace_until)}, unless the invoice is paid before</dd>
            </>
          )}
        </dl>
        {b.status === "read_only" && (
          <p>
            Creating and changing data is refused until the open invoice is paid. Reading, downloading and deleting
            still work. Pay the invoice or change the card in the billing portal; access comes back as soon as Stripe
            confirms the payment.
          </p>
        )}
        {b.cancel_at_period_end && b.current_period_end && (
          <p>The subscription ends on {formatDate(b.current_period_end)}; then the organization moves to the free plan.</p>
        )}
        {owner ? (
          <>
            <button type="button" className="secondary" disabled={s.busy} onClick={() => s.run(openPortal)}>
              Manage payment
            </button>
            <p className="muted">Cards, invoices and cancelling are handled by Stripe's billing portal.</p>
          </>
        ) : (
          <p className="muted">{ownersOnly}</p>
        )}
        <Alert>{s.formError}</Alert>
        <p>
          <Link href="/usage">See the usage against the limits</Link>
        </p>
      </section>

      <section aria-labelledby="plans-h">
        <h2 id="plans-h">Plans</h2>
        {owner && (
          <div className="billing-interval">
            <Select label="Billing period" name="interval" value={interval}
              options={[["month", "Monthly"], ["year", "Yearly"]]} onChange={(v) => setInterval_(v as "month" | "year")} />
          </div>
        )}
        <ul className="plans">
          {plans.map((p) => {
            const currentLive = live && b.plan.id === p.id && b.interval === interval;
            const buyable = p.intervals.includes(interval);
            return (
              <li key={p.id} className={"plan" + (b.plan.id === p.id ? " plan-current" : "")} aria-label={p.name + " plan"}>
                <h3>
                  {p.name} {b.plan.id === p.id && <span className="badge">Current plan</span>}
                </h3>
                <ul className="limits">
                  <li>{limitText(p.limits.seats, "seat")}{p.per_seat ? ", billed per member" : ""}</li>
                  <li>{limitText(p.limits.resources, "resource")}</li>
                  <li>{p.limits.storage_bytes < 0 ? "Unlimited storage" : formatBytes(p.limits.storage_bytes) + " of files"}</li>
                  <li>{limitText(p.limits.api_requests_per_minute, "API request")} per minute</li>
                </ul>
                <p className="muted">
                  {p.intervals.length === 0
                    ? p.fallback ? "Free: where an organization goes after a trial or a cancellation." : "Free."
                    : `Billed ${p.intervals.map((i) => i + "ly").join(" or ")}; the price is shown at checkout.` +
                      (p.trial_days && !live && b.status !== "canceled" ? ` Includes the rest of your trial.` : "")}
                </p>
                {owner && buyable && !currentLive && (
                  <button type="button" disabled={s.busy} onClick={() => choose(p)}>
                    {live ? `Change to ${p.name}` : `Subscribe to ${p.name}`}
                  </button>
                )}
              </li>
            );
          })}
        </ul>
      </section>

      <Invoices first={b.invoices} />
    </main>
  );
}

function limitText(n: number, noun: string): string {
  if (n < 0) return `Unlimited ${noun}s`;
  return `${n.toLocaleString()} ${noun}${n === 1 ? "" : "s"}`;
}

function confirmed(b: BillingState): string {
  if (b.status === "trialing" && b.trial_end) {
    return `You are subscribed to ${b.plan.name}. The trial runs until ${formatDate(b.trial_end)}; the first payment is taken then.`;
  }
  if (b.status === "active") return `You are subscribed to ${b.plan.name}, billed ${b.interval}ly.`;
  return `The subscription to ${b.plan.name} is ${statusWords[b.status].toLowerCase()}.`;
}

const invoiceStatus: Record<string, string> = {
  paid: "Paid",
  open: "Open (not paid)",
  draft: "Draft",
  void: "Void",
  uncollectible: "Uncollectible",
};

function Invoices({ first }: { first: Invoice[] }) {
  const [items, setItems] = useState<Invoice[] | null>(null);
  const [cursor, setCursor] = useState<string | undefined>();
  const [err, setErr] = useState("");
  const [busy, setBusy] = useState(false);
  const load = useCallback(async (after?: string) => {
    setBusy(true);
    setErr("");
    try {
      const p = await call(api.GET("/api/v1/billing/invoices", { params: { query: { limit: 10, cursor: after } } }));
      setItems((prev) => (after && prev ? [...prev, ...p.data] : p.data));
      setCursor(p.next_cursor);
    } catch (e) {
      setErr(message(e));
    } finally {
      setBusy(false);
    }
  }, []);
  // The overview's invoices changing (a webhook applied) reloads the list.
  const key = first.map((i) => i.id + i.status).join();
  useEffect(() => {
    void load();
  }, [load, key]);
  return (
    <section aria-labelledby="invoices-h">
      <h2 id="invoices-h">Invoices</h2>
      <Alert>{err}</Alert>
      {items === null ? (
        <Loading what="invoices" />
      ) : items.length === 0 ? (
        <p className="empty">No invoices yet. They appear here once Stripe bills the organization.</p>
      ) : (
        <ul className="list invoices">
          {items.map((i) => (
            <li key={i.id} data-invoice={i.id}>
              <span className="who">
                <strong>{i.number || i.id}</strong> · {formatDate(i.created_at)}
                {i.period_start && i.period_end && (
                  <small className="period"> for {formatDate(i.period_start)} to {formatDate(i.period_end)}</small>
                )}
              </span>
              <span>{formatMoney(i.status === "paid" ? i.amount_paid : i.amount_due, i.currency)}</span>
              <span className={"badge badge-invoice-" + i.status}>
                {invoiceStatus[i.status] ?? i.status}
                {i.status === "open" && i.first_failed_at ? `, payment failed (${i.attempt_count} ${i.attempt_count === 1 ? "attempt" : "attempts"})` : ""}
              </span>
              {i.hosted_invoice_url && (
                <a href={i.hosted_invoice_url} target="_blank" rel="noreferrer">
                  View<span className="sr-only"> invoice {i.number}</span>
                </a>
              )}
              {i.invoice_pdf && (
                <a href={i.invoice_pdf} target="_blank" rel="noreferrer">
                  PDF<span className="sr-only"> of invoice {i.number}</span>
                </a>
              )}
            </li>
          ))}
        </ul>
      )}
      {cursor && (
        <button type="button" className="secondary" disabled={busy} onClick={() => load(cursor)}>
          {busy ? "Loading…" : "Load more invoices"}
        </button>
      )}
    </section>
  );
}
