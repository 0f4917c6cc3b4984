import { describe, expect, it } from "vitest";
import { Session } from "./session";

// A fake API: /auth/refresh answers after `gate` resolves, with a token
// numbered by the refresh; other requests answer 401 unless they carry the
// current token.
function fakeApi() {
  let current = "t0";
  let n = 0;
  let release!: () => void;
  const gate = new Promise<void>((r) => (release = r));
  const seen: { url: string; auth: string | null; xrw: string | null; credentials?: string }[] = [];
  const impl = async (input: RequestInfo | URL, init?: RequestInit): Promise<Response> => {
    const req = input instanceof Request ? input : new Request(String(input), init);
    seen.push({ url: req.url, auth: req.headers.get("Authorization"), xrw: req.headers.get("X-Requested-With"), credentials: init?.credentials });
    if (req.url.endsWith("/api/v1/auth/refresh")) {
      await gate;
      current = "t" + ++n;
      return Response.json({ access_token: current, expires_in: 900, token_type: "Bearer" });
    }
    if (req.headers.get("Authorization") !== "Bearer " + current) return new Response("{}", { status: 401 });
    return Response.json({ ok: true, body: req.method === "POST" ? await req.text() : null });
  };
  return { impl, seen, release, expire: () => (current = "expired") };
}

describe("Session", () => {
  it("makes one refresh however many requests get 401 at once, and replays each", async () => {
    const f = fakeApi();
    const s = new Session("http://api.test", f.impl as typeof fetch);
    s.set({ access_token: "t0" });
    f.expire();
    const calls = Array.from({ length: 8 }, (_, i) =>
      s.fetch(new Request("http://api.test/api/v1/resources?i=" + i, i % 2 ? { method: "POST", body: "b" + i } : {})),
    );
    await new Promise((r) => setTimeout(r, 10));
    f.release();
    const res = await Promise.all(calls);
    expect(res.map((r) => r.status)).toEqual(Array(8).fill(200));
    expect(s.refreshes).toBe(1);
    expect(f.seen.filter((x) => x.url.endsWith("/auth/refresh"))).toHaveLength(1);
    expect(s.accessToken).toBe("t1");
    const bodies = await Promise.all(res.map((r) => r.json()));
    expect(bodies[1].body).toBe("b1");
  });

  it("sends the refresh with the cookie and the CSRF header, never a token in the body", async () => {
    const f = fakeApi();
    f.release();
    const s = new Session("http://api.test", f.impl as typeof fetch);
    expect(await s.refresh()).toBe(true);
    const r = f.seen[0];
    expect(r.url).toBe("http://api.test/api/v1/auth/refresh");
    expect(r.xrw).toBe("keel-web");
    expect(r.credentials).toBe("include");
  });

  it("clears the token when the refresh is refused, and passes the 401 on", async () => {
    const s = new Session("http://api.test", (async (input: RequestInfo | URL) =>
      new Response(JSON.stringify({ code: "invalid_refresh_token" }), { status: 401, headers: { "X-U": String(input) } })) as typeof fetch);
    s.set({ access_token: "old" });
    const res = await s.fetch(new Request("http://api.test/api/v1/me"));
    expect(res.status).toBe(401);
    expect(s.accessToken).toBeNull();
    expect(s.refreshes).toBe(1);
  });

  it("does not refresh for a 401 of a request sent without a token (a wrong password)", async () => {
    const f = fakeApi();
    const s = new Session("http://api.test", f.impl as typeof fetch);
    const res = await s.fetch(new Request("http://api.test/api/v1/auth/login", { method: "POST", body: "{}" }));
    expect(res.status).toBe(401);
    expect(s.refreshes).toBe(0);
  });

  it("starts a new refresh after the previous one finished", async () => {
    const f = fakeApi();
    f.release();
    const s = new Session("http://api.test", f.impl as typeof fetch);
    await s.refresh();
    await s.refresh();
    expect(s.refreshes).toBe(2);
    expect(s.accessToken).toBe("t2");
  });

  it("logs out this login, or every login with everywhere, and forgets the token", async () => {
    const sent: { body: string; xrw: string | null }[] = [];
    const s = new Session("http://api.test", (async (input: RequestInfo | URL, init?: RequestInit) => {
      const req = new Request(String(input), init);
      sent.push({ body: await req.text(), xrw: req.headers.get("X-Requested-With") });
      return new Response(null, { status: 204 });
    }) as typeof fetch);
    s.set({ access_token: "a" });
    await s.logout();
    s.set({ access_token: "b" });
    await s.logout(true);
    expect(sent).toEqual([
      { body: "{}", xrw: "keel-web" },
      { body: '{"everywhere":true}', xrw: "keel-web" },
    ]);
    expect(s.accessToken).toBeNull();
  });

  it("never refreshes a refused support-access token, and ending support brings the admin's session back", async () => {
    const f = fakeApi();
    f.release();
    const s = new Session("http://api.test", f.impl as typeof fetch);
    s.set({ access_token: "t0" });
    const info = { userId: "u1", email: "u@example.com", organizationId: "o1", expiresAt: "2026-01-01T00:30:00Z" };
    s.startSupport("support", info);
    expect(s.support).toEqual(info);
    expect(s.accessToken).toBe("support");
    // The fake answers 401 to any token but its current one: the support
    // token's 401 is passed on, not traded for the admin's own token.
    const res = await s.fetch(new Request("http://api.test/api/v1/me"));
    expect(res.status).toBe(401);
    expect(s.refreshes).toBe(0);
    expect(s.accessToken).toBe("support");
    expect(f.seen.at(-1)?.auth).toBe("Bearer support");
    expect(await s.endSupport()).toBe(true);
    expect(s.support).toBeNull();
    expect(s.accessToken).toBe("t1");
    expect(s.refreshes).toBe(1);
  });
});
