// Organization switcher and creation. Switching is POST /auth/switch-org,
// which answers a new token pair for the same login (cookie mode rotates
// the refresh cookie by itself).
import { useState, type FormEvent } from "react";
import { api, call, idempotencyKey, session } from "../api/client";
import { csrfHeader } from "../api/session";
import type { components } from "../api/schema";
import { navigate } from "../router";
import { Alert, Field, useSubmit } from "../ui";

export type Membership = components["schemas"]["Membership"];

export async function switchOrg(organization_id: string): Promise<void> {
  const body = await call(
    api.POST("/api/v1/auth/switch-org", { body: { organization_id }, credentials: "include", headers: csrfHeader }),
  );
  session.set(body);
}

export function OrgSwitcher(props: { orgs: Membership[]; current: string; onSwitched: () => void }) {
  const [err, setErr] = useState("");
  return (
    <div className="switcher">
      <label htmlFor="org-switch">Organization</label>
      <select
        id="org-switch"
        value={props.current}
        onChange={async (e) => {
          if (e.target.value === "new") return navigate("/organizations/new");
          try {
            setErr("");
            await switchOrg(e.target.value);
            props.onSwitched();
            navigate("/resources");
          } catch (x) {
            setErr((x as Error).message);
          }
        }}
      >
        {props.orgs.map((o) => (
          <option key={o.organization_id} value={o.organization_id}>
            {o.organization_name} ({o.role})
          </option>
        ))}
        {/* Just created or joined: until the list is reloaded, the select
            would otherwise show the first organization as the current one. */}
        {props.current && !props.orgs.some((o) => o.organization_id === props.current) && (
          <option value={props.current}>Loading the organization…</option>
        )}
        <option value="new">+ New organization…</option>
      </select>
      {err && <span className="field-error" role="alert">{err}</span>}
    </div>
  );
}

export function NewOrganization({ onCreated }: { onCreated: () => void }) {
  const s = useSubmit();
  async function submit(e: FormEvent<HTMLFormElement>) {
    e.preventDefault();
    const name = String(new FormData(e.currentTarget).get("name") ?? "");
    await s.run(async () => {
      const org = await call(api.POST("/api/v1/organizations", { body: { name }, headers: { "Idempotency-Key": idempotencyKey() } }));
      await switchOrg(org.id);
      onCreated();
      navigate("/resources");
    });
  }
  return (
    <main className="narrow">
      <h1>New organization</h1>
      <form onSubmit={submit} noValidate>
        <Alert>{s.formError}</Alert>
        <Field label="Name" name="name" required error={s.fields.name} />
        <button disabled={s.busy}>{s.busy ? "Creating…" : "Create organization"}</button>
      </form>
    </main>
  );
}
