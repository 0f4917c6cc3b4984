// The product screens: a team replaces these with its own (docs/web.md).
// List with search, sort and cursor paging; create; edit with optimistic
// concurrency (If-Match: a stale version answers 412 version_conflict and
// the user picks whose values to keep); delete and restore.
import { ResourceFiles } from "./files";
import { useEffect, useMemo, useState, type FormEvent } from "react";
import { api, call, idempotencyKey } from "../api/client";
import { message, toApiError } from "../api/problem";
import type { components } from "../api/schema";
import { Link, navigate, useLocation } from "../router";
import { Alert, Field, LimitReached, Loading, Select, usePaged, useSubmit } from "../ui";

type Resource = components["schemas"]["Resource"];
type Sort = "created_at" | "-created_at" | "name" | "-name" | "updated_at" | "-updated_at";
const sorts: [Sort, string][] = [
  ["-created_at", "Newest first"],
  ["created_at", "Oldest first"],
  ["name", "Name A–Z"],
  ["-name", "Name Z–A"],
  ["-updated_at", "Recently changed"],
  ["updated_at", "Least recently changed"],
];
const statuses = ["active", "draft", "archived"] as const;
type Status = (typeof statuses)[number];

export function ResourceList() {
  const loc = useLocation();
  const deleted = loc.searchParams.get("deleted");
  const [q, setQ] = useState("");
  const [sort, setSort] = useState<Sort>("-created_at");
  // Loaded by the effect below, not on mount: typing in the search waits.
  const list = usePaged((cursor) =>
    call(api.GET("/api/v1/resources", { params: { query: { limit: 20, sort, ...(q ? { q } : {}), ...(cursor ? { cursor } : {}) } } })),
    message, "", false,
  );
  const { next, loading, error: err, setError: setErr, load } = list;
  const rows = list.rows ?? [];
  const [notice, setNotice] = useState("");

  useEffect(() => {
    const t = setTimeout(() => void load(), q ? 250 : 0);
    return () => clearTimeout(t);
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [q, sort]);

  async function restore(id: string) {
    try {
      await call(api.POST("/api/v1/resources/{id}/restore", { params: { path: { id } }, headers: { "Idempotency-Key": idempotencyKey() } }));
      setNotice("Restored.");
      navigate("/resources", true);
      await load();
    } catch (e) {
      setErr(message(e));
    }
  }

  return (
    <main>
      <div className="bar">
        <h1>Resources</h1>
        <Link className="button" href="/resources/new">
          New resource
        </Link>
      </div>
      {deleted && (
        <Alert kind="info">
          Resource deleted.{" "}
          <button type="button" className="link" onClick={() => restore(deleted)}>
            Restore it
          </button>
        </Alert>
      )}
      <Alert kind="ok">{notice}</Alert>
      <div className="filters">
        <Field label="Search by name" name="q" type="search" value={q} onChange={(e) => setQ(e.target.value)} />
        <Select label="Sort" name="sort" value={sort} options={sorts} onChange={(v) => setSort(v as Sort)} />
      </div>
      <Alert>{err}</Alert>
      {list.rows && !loading && !err && rows.length === 0 && <p className="empty">{q ? `No resource matches “${q}”.` : "No resources yet. Create the first one."}</p>}
      {rows.length > 0 && (
        <ul className="list" aria-label="Resources">
          {rows.map((r) => (
            <li key={r.id}>
              <Link href={"/resources/" + r.id}>{r.name}</Link>
              <span className={"badge badge-" + r.status}>{r.status}</span>
              <small className="muted">v{r.version} · {new Date(r.updated_at).toLocaleString()}</small>
            </li>
          ))}
        </ul>
      )}
      {(loading || !list.rows) && !err && <Loading what="resources" />}
      {next && !loading && (
        <button type="button" onClick={() => load(next)}>
          Load more
        </button>
      )}
    </main>
  );
}

interface Draft {
  name: string;
  description: string;
  status: Status;
}

function draftOf(r: Resource): Draft {
  return { name: r.name, description: r.description, status: r.status };
}

function ResourceForm(props: { initial: Draft; submitLabel: string; s: ReturnType<typeof useSubmit>; onSubmit: (d: Draft) => void }) {
  const [d, setD] = useState(props.initial);
  useEffect(() => setD(props.initial), [props.initial]);
  const f = props.s.fields;
  function submit(e: FormEvent) {
    e.preventDefault();
    props.onSubmit(d);
  }
  return (
    <form onSubmit={submit} noValidate>
      <Field label="Name" name="name" required value={d.name} error={f.name} onChange={(e) => setD({ ...d, name: e.target.value })} />
      <Field label="Description" name="description" value={d.description} error={f.description}
        onChange={(e) => setD({ ...d, description: e.target.value })} />
      <Select label="Status" name="status" value={d.status} options={[...statuses]} error={f.status}
        onChange={(v) => setD({ ...d, status: v as Status })} />
      <button disabled={props.s.busy}>{props.s.busy ? "Saving…" : props.submitLabel}</button>
    </form>
  );
}

const empty: Draft = { name: "", description: "", status: "active" };

export function NewResource() {
  const s = useSubmit();
  return (
    <main className="narrow">
      <h1>New resource</h1>
      {s.error?.code === "plan_limit_reached" ? <LimitReached error={s.error} /> : <Alert>{s.formError}</Alert>}
      <ResourceForm initial={empty} submitLabel="Create" s={s} onSubmit={(d) =>
        s.run(async () => {
          const r = await call(api.POST("/api/v1/resources", { body: d, headers: { "Idempotency-Key": idempotencyKey() } }));
          navigate("/resources/" + r.id, true);
        })
      } />
    </main>
  );
}

export function EditResource({ id }: { id: string }) {
  const s = useSubmit();
  const [res, setRes] = useState<Resource | null>(null);
  const [loadErr, setLoadErr] = useState("");
  const [saved, setSaved] = useState("");
  // A conflict keeps what the user typed and the version now stored.
  // base is the version the user edited, so resolving sends only the fields
  // they changed and keeps the other writer's changes to the rest.
  const [conflict, setConflict] = useState<{ mine: Draft; base: Draft; theirs: Resource } | null>(null);

  async function fetchCurrent(): Promise<Resource> {
    return call(api.GET("/api/v1/resources/{id}", { params: { path: { id } } }));
  }
  useEffect(() => {
    fetchCurrent().then(setRes, (e) => setLoadErr(message(e)));
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [id]);

  async function save(d: Partial<Draft>, version: number) {
    setSaved("");
    await s.run(async () => {
      try {
        const r = await call(
          api.PATCH("/api/v1/resources/{id}", { params: { path: { id }, header: { "If-Match": `"${version}"` } }, body: d }),
        );
        setRes(r);
        setConflict(null);
        setSaved(`Saved (version ${r.version}).`);
      } catch (e) {
        if (toApiError(e).code === "version_conflict") {
          setConflict({ mine: { ...draftOf(res!), ...d }, base: draftOf(res!), theirs: await fetchCurrent() });
          return;
        }
        throw e;
      }
    });
  }

  async function remove() {
    if (!res) return;
    await s.run(async () => {
      await call(api.DELETE("/api/v1/resources/{id}", { params: { path: { id }, header: { "If-Match": `"${res.version}"` } } }));
      navigate("/resources?deleted=" + id);
    });
  }

  // One object per loaded version: the form resets to it only when the
  // resource changes, never on a re-render of the shell around it (which
  // would wipe what the user is typing).
  const initial = useMemo(() => (res ? draftOf(res) : empty), [res]);

  if (loadErr)
    return (
      <main className="narrow">
        <Alert>{loadErr}</Alert>
        <Link href="/resources">Back to resources</Link>
      </main>
    );
  if (!res) return <main className="narrow"><Loading what="the resource" /></main>;
  return (
    <main className="narrow">
      <p><Link href="/resources">← Resources</Link></p>
      <h1>Edit {res.name}</h1>
      <p className="muted">Version {res.version}</p>
      {conflict ? (
        <section className="conflict" aria-labelledby="conflict-title">
          <h2 id="conflict-title">Someone else changed this resource</h2>
          <p>
            It is at version {conflict.theirs.version} now; your changes were made to version {res.version}. Choose what to keep.
          </p>
          <div className="compare">
            <div>
              <h3>Saved now</h3>
              <DraftView d={draftOf(conflict.theirs)} />
              <button type="button" onClick={() => { setRes(conflict.theirs); setConflict(null); }}>
                Keep the saved version
              </button>
            </div>
            <div>
              <h3>Your changes</h3>
              <DraftView d={conflict.mine} />
              <button type="button" onClick={() => { setRes(conflict.theirs); void save(changed(conflict.mine, conflict.base), conflict.theirs.version); }}>
                Save my changes over it
              </button>
            </div>
          </div>
        </section>
      ) : (
        <>
          <Alert>{s.formError}</Alert>
          <Alert kind="ok">{saved}</Alert>
          <ResourceForm initial={initial} submitLabel="Save" s={s} onSubmit={(d) => save(d, res.version)} />
          <hr />
          <button type="button" className="danger" disabled={s.busy} onClick={remove}>
            Delete resource
          </button>
        </>
      )}
      <ResourceFiles resourceId={res.id} />
    </main>
  );
}

function changed(mine: Draft, base: Draft): Partial<Draft> {
  const out: Partial<Draft> = {};
  for (const k of Object.keys(mine) as (keyof Draft)[]) if (mine[k] !== base[k]) Object.assign(out, { [k]: mine[k] });
  return out;
}

function DraftView({ d }: { d: Draft }) {
  return (
    <dl>
      <dt>Name</dt>
      <dd>{d.name}</dd>
      <dt>Description</dt>
      <dd>{d.description || "—"}</dd>
      <dt>Status</dt>
      <dd>{d.status}</dd>
    </dl>
  );
}

