// Problem details (RFC 9457) as the API sends them, turned into words a
// form can show: a sentence for the whole form, and a message per field.
import type { components } from "./schema";

export type Problem = components["schemas"]["Problem"];

export class ApiError extends Error {
  constructor(readonly problem: Problem) {
    super(problem.detail || problem.title);
  }
  get code(): string {
    return this.problem.code;
  }
  get status(): number {
    return this.problem.status;
  }
  /** Field errors by field name (validation_failed). */
  fields(): Record<string, string> {
    const out: Record<string, string> = {};
    for (const e of this.problem.errors ?? []) out[e.field] = e.message;
    return out;
  }
}

/** Turns whatever a call failed with into an ApiError with a readable message. */
export function toApiError(err: unknown, status = 0): ApiError {
  if (err instanceof ApiError) return err;
  if (err && typeof err === "object" && "code" in err && "title" in err) return new ApiError(err as Problem);
  const detail = err instanceof Error ? err.message : "The server could not be reached. Check your connection and try again.";
  return new ApiError({ type: "about:blank", title: "Request failed", status, code: "network_error", detail });
}

/** The sentence to show for an error: the API's detail, else its title. */
export function message(err: unknown): string {
  const e = toApiError(err);
  const p = e.problem;
  let text = p.detail || p.title;
  if (p.code === "plan_limit_reached" && p.metric) {
    text += ` (${p.metric}: ${p.usage ?? "?"} of ${p.limit ?? "?"} on the ${p.plan ?? "current"} plan)`;
  }
  return text;
}
