// Cookie-mode session (AUTH_REFRESH_COOKIE=true, docs/identity.md): the
// access token lives in this object only, never in storage a script or an
// extension could read later; the refresh token is the HttpOnly keel_refresh
// cookie, which only POST /api/v1/auth/refresh and /auth/logout receive, and
// only with the X-Requested-With header the API's CSRF check asks for.
import type { components, paths } from "./schema";

export type SessionBody = components["schemas"]["Session"];
type LogoutBody = paths["/api/v1/auth/logout"]["post"]["requestBody"]["content"]["application/json"];

/** The header the API requires on every request that uses the refresh cookie. */
export const csrfHeader = { "X-Requested-With": "keel-web" } as const;

type Listener = () => void;

/**
 * Support access: a platform admin acting as a user with the 30-minute
 * token POST /admin/users/{id}/impersonate answers. It has no refresh
 * token, so it lives here only; the admin's own refresh cookie is never
 * touched and brings the admin's session back when support access ends.
 */
export type Support = { userId: string; email: string; organizationId: string | null; expiresAt: string };

export class Session {
  private token: string | null = null;
  private inflight: Promise<boolean> | null = null;
  private listeners = new Set<Listener>();
  private supportAccess: { token: string; info: Support } | null = null;

  /** refreshes counts the refresh calls made, for tests and diagnostics. */
  refreshes = 0;

  constructor(
    private readonly base: string,
    private readonly fetchImpl: typeof fetch = (...a) => fetch(...a),
  ) {}

  get accessToken(): string | null {
    return this.token;
  }

  /** Stores the token of a login, refresh or switch-org answer (which ends any support access). */
  set(body: Pick<SessionBody, "access_token"> | null): void {
    this.token = body ? body.access_token : null;
    this.supportAccess = null;
    this.listeners.forEach((l) => l());
  }

  /** The support access under way, or null. */
  get support(): Support | null {
    return this.supportAccess?.info ?? null;
  }

  /** Acts as a user with a support-access token until endSupport (or a reload, or a refresh). */
  startSupport(token: string, info: Support): void {
    this.token = token;
    this.supportAccess = { token, info };
    this.listeners.forEach((l) => l());
  }

  /** Drops the support-access token; the refresh cookie brings the admin's own session back. */
  endSupport(): Promise<boolean> {
    this.supportAccess = null;
    this.token = null;
    this.listeners.forEach((l) => l());
    return this.refresh();
  }

  subscribe(l: Listener): () => void {
    this.listeners.add(l);
    return () => this.listeners.delete(l);
  }

  /**
   * Trades the refresh cookie for a new token pair. However many callers ask
   * at once, one request is made and all of them await it: the API rotates
   * the refresh token on every use, and a second refresh presenting the
   * already-rotated cookie would count as reuse and end the whole login.
   * Resolves false when there is no valid session (then the token is cleared).
   */
  refresh(): Promise<boolean> {
    if (!this.inflight) {
      this.inflight = this.doRefresh().finally(() => {
        this.inflight = null;
      });
    }
    return this.inflight;
  }

  private async doRefresh(): Promise<boolean> {
    this.refreshes++;
    let res: Response;
    try {
      res = await this.fetchImpl(this.base + "/api/v1/auth/refresh", {
        method: "POST",
        credentials: "include",
        headers: { "Content-Type": "application/json", ...csrfHeader },
        body: "{}",
      });
    } catch {
      return false;
    }
    if (!res.ok) {
      this.set(null);
      return false;
    }
    this.set((await res.json()) as SessionBody);
    return true;
  }

  /**
   * Ends this login (its refresh-token family), or with everywhere every
   * login of the user on every device, and forgets the token.
   */
  async logout(everywhere = false): Promise<void> {
    const body: LogoutBody = everywhere ? { everywhere: true } : {};
    try {
      await this.fetchImpl(this.base + "/api/v1/auth/logout", {
        method: "POST",
        credentials: "include",
        headers: { "Content-Type": "application/json", ...csrfHeader },
        body: JSON.stringify(body),
      });
    } finally {
      this.set(null);
    }
  }

  /**
   * The fetch the API client uses: adds the bearer token and, when a request
   * that carried one gets 401, refreshes (once for all concurrent callers)
   * and replays it with the new token. A request that was sent with an
   * older token than the current one is replayed without a new refresh.
   */
  fetch = async (input: Request): Promise<Response> => {
    const replay = input.clone();
    const sent = this.token;
    const res = await this.fetchImpl(withToken(input, sent));
    if (res.status !== 401 || sent === null) return res;
    // A refused support-access token is not refreshed: the cookie is the
    // admin's, and a refresh would swap the admin in under the user's screen.
    if (sent === this.supportAccess?.token) return res;
    if (this.token === sent && !(await this.refresh())) return res;
    if (this.token === null) return res;
    return this.fetchImpl(withToken(replay, this.token));
  };
}

function withToken(req: Request, token: string | null): Request {
  if (token) req.headers.set("Authorization", "Bearer " + token);
  return req;
}
