// Form pieces every screen uses: labelled inputs with their field error
// beside them (aria-describedby), the form-level error, busy buttons.
import { useEffect, useId, useState, type InputHTMLAttributes, type ReactNode } from "react";
import { ApiError, message, toApiError } from "./api/problem";
import { Link } from "./router";

export function Field(
  props: InputHTMLAttributes<HTMLInputElement> & { label: string; name: string; error?: string; hint?: string },
) {
  const { label, error, hint, ...input } = props;
  const id = useId();
  const described = [error && id + "-err", hint && id + "-hint"].filter(Boolean).join(" ") || undefined;
  return (
    <div className="field">
      <label htmlFor={id}>{label}</label>
      <input id={id} aria-invalid={error ? true : undefined} aria-describedby={described} {...input} />
      {hint && <small id={id + "-hint"}>{hint}</small>}
      {error && (
        <span className="field-error" id={id + "-err"}>
          {error}
        </span>
      )}
    </div>
  );
}

export function Select(props: {
  label: string;
  name: string;
  value: string;
  options: string[] | [string, string][];
  error?: string;
  onChange: (v: string) => void;
}) {
  const id = useId();
  return (
    <div className="field">
      <label htmlFor={id}>{props.label}</label>
      <select id={id} name={props.name} value={props.value} onChange={(e) => props.onChange(e.target.value)}>
        {props.options.map((o) => {
          const [value, text] = typeof o === "string" ? [o, o] : o;
          return (
            <option key={value} value={value}>
              {text}
            </option>
          );
        })}
      </select>
      {props.error && <span className="field-error">{props.error}</span>}
    </div>
  );
}

export function Alert({ children, kind = "error" }: { children: ReactNode; kind?: "error" | "info" | "ok" }) {
  if (!children) return null;
  return (
    <div className={"alert alert-" + kind} role={kind === "error" ? "alert" : "status"}>
      {children}
    </div>
  );
}

export function Loading({ what }: { what: string }) {
  return (
    <p className="muted" role="status" aria-live="polite">
      Loading {what}…
    </p>
  );
}

/** State of a form submission: busy flag, form error, field errors. */
export function useSubmit() {
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<ApiError | null>(null);
  async function run(fn: () => Promise<void>) {
    setBusy(true);
    setError(null);
    try {
      await fn();
    } catch (e) {
      setError(toApiError(e));
    } finally {
      setBusy(false);
    }
  }
  const fields = error?.fields() ?? {};
  const formError = error ? message(error) : "";
  return { busy, error, setError, fields, formError, run };
}

/** 1536 → "1.5 KiB": binary units, as the API's sentences write them. */
export function bytes(n: number): string {
  if (n < 1024) return `${n} byte${n === 1 ? "" : "s"}`;
  const units = ["KiB", "MiB", "GiB", "TiB"];
  let v = n / 1024;
  let i = 0;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return `${v >= 10 || Number.isInteger(v) ? Math.round(v) : v.toFixed(1)} ${units[i]}`;
}

const limitNames: Record<string, string> = { resources: "Resources", storage_bytes: "Storage", seats: "Seats" };

/**
 * A 402 plan_limit_reached in words: the API's sentence, the figures from
 * its metric, usage and limit fields, and where to see usage or change plan.
 */
export function LimitReached({ error }: { error: ApiError }) {
  const p = error.problem;
  const fmt = (n?: number) => (n === undefined ? "?" : p.metric === "storage_bytes" ? bytes(n) : n.toLocaleString());
  return (
    <div className="alert alert-error limit" role="alert">
      <p>{p.detail || p.title}</p>
      {p.metric && (
        <p>
          <strong>{limitNames[p.metric] ?? p.metric}:</strong> {fmt(p.usage)} used of {fmt(p.limit)} on this plan.
        </p>
      )}
      <p>
        <Link href="/usage">See usage</Link> · <Link href="/billing">Change plan</Link>
      </p>
    </div>
  );
}

/**
 * A paged list: the first page on mount (when enabled; else when the
 * caller first calls load()), more from next_cursor with load(cursor).
 * error is what the last load threw, as toError makes it (a sentence, an
 * ApiError), or empty. rows is null until a page came; setRows lets the
 * screen add and remove rows it changed itself.
 */
export function usePaged<T, E>(fetchPage: (cursor?: string) => Promise<{ data: T[]; next_cursor?: string }>,
  toError: (e: unknown) => E, empty: E, enabled = true) {
  const [rows, setRows] = useState<T[] | null>(null);
  const [next, setNext] = useState<string | undefined>();
  const [loading, setLoading] = useState(enabled);
  const [error, setError] = useState<E>(empty);
  async function load(cursor?: string) {
    setLoading(true);
    setError(empty);
    try {
      const page = await fetchPage(cursor);
      setRows((r) => (cursor && r ? [...r, ...unseen(r, page.data)] : page.data));
      setNext(page.next_cursor);
    } catch (e) {
      setError(toError(e));
    } finally {
      setLoading(false);
    }
  }
  useEffect(() => {
    if (enabled) void load();
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [enabled]);
  return { rows, next, loading, error, setError, load, setRows };
}

/**
 * The rows of a later page not already shown: a screen that added a row
 * itself (an upload) meets it again further down. Rows without an id are
 * all kept.
 */
function unseen<T>(shown: T[], page: T[]): T[] {
  const id = (x: T) => (x as { id?: unknown }).id;
  const seen = new Set(shown.map(id));
  return page.filter((x) => id(x) === undefined || !seen.has(id(x)));
}
