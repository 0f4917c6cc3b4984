// The one API client of the app: openapi-fetch typed by schema.d.ts, which
// `npm run gen` generates from the API's OpenAPI document. A path, a field
// or a response shape the API no longer has fails `tsc` in `npm run build`.
import createClient from "openapi-fetch";
import type { paths } from "./schema";
import { Session } from "./session";
import { ApiError, toApiError } from "./problem";

// Same origin: the api serves the built app (WEB_DIR) and the Vite dev
// server proxies /api to it, so no CORS and the SameSite=Strict cookie flows.
export const session = new Session("");
export const api = createClient<paths>({ baseUrl: "", fetch: session.fetch });

/** Unwraps an openapi-fetch result: the data, or an ApiError to show. */
export async function call<T>(p: Promise<{ data?: T; error?: unknown; response: Response }>): Promise<T> {
  let r;
  try {
    r = await p;
  } catch (e) {
    throw toApiError(e);
  }
  if (r.error !== undefined || !r.response.ok) throw toApiError(r.error, r.response.status);
  return r.data as T;
}

/** A fresh Idempotency-Key, so a retried POST does its work once. */
export function idempotencyKey(): string {
  return crypto.randomUUID();
}

export { ApiError };
