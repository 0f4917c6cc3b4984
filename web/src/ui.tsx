// Form pieces every screen uses: labelled inputs with their field error
// beside them (aria-describedby), the form-level error, busy buttons.
import { useId, useState, type InputHTMLAttributes, type ReactNode } from "react";
import { ApiError, message, toApiError } from "./api/problem";

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
