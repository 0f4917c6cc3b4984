// The files of a resource (docs/files.md): upload straight to S3 with a
// presigned PUT and a progress bar, then the worker checks the file; the
// list shows each file's status, a thumbnail for images and a download
// link (presigned GETs, valid 5 minutes, fetched per ready file since lists
// carry no URLs), and deletes.
import { useEffect, useRef, useState, type FormEvent, type MouseEvent } from "react";
import { api, call, idempotencyKey } from "../api/client";
import { message, toApiError, type ApiError } from "../api/problem";
import type { components } from "../api/schema";
import { Alert, Field, Loading, LimitReached, bytes, usePaged } from "../ui";

type FileRow = components["schemas"]["File"];

// How long the page polls a completed file before it says the check is slow.
const pollFor = 60_000;

export function ResourceFiles({ resourceId }: { resourceId: string }) {
  const list = usePaged((cursor) =>
    call(api.GET("/api/v1/resources/{id}/files", { params: { path: { id: resourceId }, query: { limit: 20, ...(cursor ? { cursor } : {}) } } })),
    message, "", false,
  );
  const { next, loading, error: err, load, setRows } = list;
  const rows = list.rows ?? [];
  const [notice, setNotice] = useState("");

  useEffect(() => {
    void load();
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [resourceId]);

  /** A file this page announced or saw change: newest first, once. */
  function put(f: FileRow) {
    setRows((r) => (r?.some((x) => x.id === f.id) ? r.map((x) => (x.id === f.id ? f : x)) : [f, ...(r ?? [])]));
  }

  return (
    <section className="files" aria-labelledby="files-title">
      <h2 id="files-title">Files</h2>
      <Uploader resourceId={resourceId} onFile={put} onGone={(id) => setRows((r) => r && r.filter((x) => x.id !== id))} />
      <Alert kind="ok">{notice}</Alert>
      <Alert>{err}</Alert>
      {list.rows && !loading && !err && rows.length === 0 && <p className="empty">No files yet. Upload the first one.</p>}
      {rows.length > 0 && (
        <ul className="list files-list" aria-label="Files">
          {rows.map((f) => (
            <FileItem key={f.id} file={f} onChange={put}
              onDeleted={() => { setRows((r) => r && r.filter((x) => x.id !== f.id)); setNotice(`Deleted ${f.filename}.`); }} />
          ))}
        </ul>
      )}
      {(loading || !list.rows) && !err && <Loading what="files" />}
      {next && !loading && (
        <button type="button" className="secondary" onClick={() => load(next)}>
          Load more files
        </button>
      )}
    </section>
  );
}

type Phase = "announcing" | "uploading" | "completing" | "checking" | "slow" | "done" | "failed" | "canceled";

interface Upload {
  name: string;
  size: number;
  type: string;
  phase: Phase;
  loaded: number;
  error?: ApiError | string;
  file?: FileRow;
}

/** Why S3 refused a presigned PUT, in words (its XML error body when CORS let the page read it). */
function s3Refusal(xhr: XMLHttpRequest): string {
  let code = "";
  let detail = "";
  try {
    const doc = new DOMParser().parseFromString(xhr.responseText, "application/xml");
    code = doc.querySelector("Code")?.textContent ?? "";
    detail = doc.querySelector("Message")?.textContent ?? "";
  } catch {
    /* not XML */
  }
  const said = [code, detail].filter(Boolean).join(": ");
  if (/expired/i.test(detail) || (xhr.status === 403 && /expired/i.test(xhr.responseText)))
    return "The upload link expired before the file was sent. Upload the file again.";
  if (xhr.status === 412) return "This upload link was used already. Upload the file again.";
  if (code === "SignatureDoesNotMatch")
    return "The file storage refused the upload: the file sent differs from the one announced (type or size). Upload it again.";
  return `The file storage refused the upload (HTTP ${xhr.status}${said ? ", " + said : ""}). Upload the file again.`;
}

/**
 * PUTs body to a presigned URL with the headers its signature binds (the
 * browser sets Content-Length itself from the body; scripts may not), and
 * reports progress. XMLHttpRequest, since fetch reports no upload progress.
 */
function putObject(
  url: string, headers: Record<string, string>, body: Blob, onProgress: (loaded: number) => void,
): { done: Promise<void>; abort: () => void } {
  const xhr = new XMLHttpRequest();
  const done = new Promise<void>((resolve, reject) => {
    xhr.open("PUT", url);
    for (const [k, v] of Object.entries(headers)) {
      if (!["content-length", "host"].includes(k.toLowerCase())) xhr.setRequestHeader(k, v);
    }
    xhr.upload.onprogress = (e) => onProgress(e.loaded);
    xhr.onload = () => (xhr.status >= 200 && xhr.status < 300 ? resolve() : reject(new Error(s3Refusal(xhr))));
    xhr.onerror = () =>
      reject(new Error(
        "The upload could not reach the file storage: the network failed, or the storage does not accept uploads from this site (its CORS settings). Upload the file again.",
      ));
    xhr.ontimeout = () => reject(new Error("The upload timed out. Upload the file again."));
    xhr.onabort = () => reject(new DOMException("canceled", "AbortError"));
    xhr.send(body);
  });
  return { done, abort: () => xhr.abort() };
}

function Uploader(props: { resourceId: string; onFile: (f: FileRow) => void; onGone: (id: string) => void }) {
  const { resourceId, onFile } = props;
  const [chosen, setChosen] = useState<File | null>(null);
  const [inputKey, setInputKey] = useState(0); // a new key empties the file input
  const [up, setUp] = useState<Upload | null>(null);
  const abort = useRef<(() => void) | null>(null);
  const alive = useRef(true);
  useEffect(() => () => { alive.current = false; abort.current?.(); }, []);

  const busy = !!up && ["announcing", "uploading", "completing"].includes(up.phase);
  const set = (u: Partial<Upload>) => alive.current && setUp((p) => (p ? { ...p, ...u } : p));

  async function start(e: FormEvent) {
    e.preventDefault();
    const f = chosen;
    if (!f || busy) return;
    // An unknown type is sent as such: the API names the allowed ones.
    const type = f.type || "application/octet-stream";
    setUp({ name: f.name, size: f.size, type, phase: "announcing", loaded: 0 });
    let file: FileRow | undefined;
    let sent = false;
    try {
      const r = await call(api.POST("/api/v1/resources/{id}/files", {
        params: { path: { id: resourceId } }, headers: { "Idempotency-Key": idempotencyKey() },
        body: { filename: f.name, content_type: type, size: f.size },
      }));
      file = r.file;
      onFile(file);
      set({ phase: "uploading", file });
      const put = putObject(r.upload.url, r.upload.headers, f, (loaded) => set({ loaded }));
      abort.current = put.abort;
      await put.done;
      sent = true;
      abort.current = null;
      set({ phase: "completing", loaded: f.size });
      file = await call(api.POST("/api/v1/files/{id}/complete", {
        params: { path: { id: file.id } }, headers: { "Idempotency-Key": idempotencyKey() },
      }));
      onFile(file);
      set({ phase: "checking", file });
      setInputKey((k) => k + 1);
      setChosen(null);
      await poll(file.id);
    } catch (err) {
      abort.current = null;
      const canceled = err instanceof DOMException && err.name === "AbortError";
      // A file whose bytes never arrived cannot be completed (a new upload
      // is a new file) and would wait a day for the cleanup: remove it now.
      if (file && !sent) {
        const id = file.id;
        await call(api.DELETE("/api/v1/files/{id}", { params: { path: { id } } })).catch(() => {});
        props.onGone(id);
      }
      set(canceled ? { phase: "canceled" } : { phase: "failed", error: toApiError(err) });
    }
  }

  /** Polls the worker's verdict, a little slower each time, for pollFor. */
  async function poll(id: string) {
    const until = Date.now() + pollFor;
    for (let wait = 300; alive.current; wait = Math.min(wait * 1.5, 3000)) {
      const f = await call(api.GET("/api/v1/files/{id}", { params: { path: { id } } })).catch(() => null);
      if (f) {
        onFile(f);
        if (f.status === "ready" || f.status === "rejected") {
          set({ phase: "done", file: f });
          return;
        }
      }
      if (Date.now() > until) {
        set({ phase: "slow" });
        return;
      }
      await new Promise((r) => setTimeout(r, wait));
    }
  }

  const pct = up && up.size ? Math.floor((100 * up.loaded) / up.size) : 0;
  return (
    <form className="uploader" onSubmit={start} noValidate>
      <Field key={inputKey} label="File to upload" name="file" type="file"
        onChange={(e) => { setChosen(e.target.files?.[0] ?? null); if (!busy) setUp(null); }}
        hint="Images get a thumbnail." />
      <button disabled={!chosen || busy}>{busy ? "Uploading…" : "Upload"}</button>
      {up && <UploadStatus up={up} pct={pct} onCancel={() => abort.current?.()} />}
    </form>
  );
}

function UploadStatus({ up, pct, onCancel }: { up: Upload; pct: number; onCancel: () => void }) {
  if (up.phase === "failed") return <UploadError up={up} />;
  const f = up.file;
  return (
    <div className="upload" aria-live="polite">
      {up.phase === "announcing" && <p>Preparing the upload of {up.name}…</p>}
      {(up.phase === "uploading" || up.phase === "completing") && (
        <>
          <label htmlFor="upload-progress">
            Uploading {up.name}: {bytes(up.loaded)} of {bytes(up.size)} ({pct}%)
          </label>
          <div className="progress-row">
            <progress id="upload-progress" max={up.size} value={up.loaded}>{pct}%</progress>
            {up.phase === "uploading" && (
              <button type="button" className="small secondary" onClick={onCancel}>
                Cancel upload
              </button>
            )}
          </div>
        </>
      )}
      {up.phase === "checking" && <p role="status">Uploaded {up.name}; checking it…</p>}
      {up.phase === "slow" && (
        <Alert kind="info">
          {up.name} is uploaded, but checking it is taking longer than usual. It shows as ready in the list once the
          check is done; reload the page later.
        </Alert>
      )}
      {up.phase === "canceled" && <Alert kind="info">Upload of {up.name} canceled; nothing was kept.</Alert>}
      {up.phase === "done" && f?.status === "ready" && <Alert kind="ok">{up.name} is uploaded and ready.</Alert>}
      {up.phase === "done" && f?.status === "rejected" && (
        <Alert>{up.name} was refused after the upload: {f.reject_reason || "no reason given"}.</Alert>
      )}
    </div>
  );
}

/** An upload's failure in words: the API's sentence, the fields it names, the storage limit's figures. */
function UploadError({ up }: { up: Upload }) {
  const e = up.error;
  if (typeof e === "string" || !e) return <Alert>{e || "The upload failed."}</Alert>;
  if (e.code === "plan_limit_reached") return <LimitReached error={e} />;
  const fields = e.fields();
  if (e.code === "validation_failed" && Object.keys(fields).length) {
    const type = fields.content_type;
    return (
      <Alert>
        {up.name} cannot be uploaded.{" "}
        {type && <>Its type, {up.type}, is not allowed: the type {type}. </>}
        {fields.size && <>Size {fields.size}. </>}
        {fields.filename && <>Name {fields.filename}. </>}
      </Alert>
    );
  }
  if (e.code === "file_too_large") return <Alert>{up.name} is {bytes(up.size)}, too large. {e.problem.detail}</Alert>;
  return <Alert>{message(e)}</Alert>;
}

function FileItem({ file, onChange, onDeleted }: { file: FileRow; onChange: (f: FileRow) => void; onDeleted: () => void }) {
  const [err, setErr] = useState("");
  const [asking, setAsking] = useState(false);
  const [busy, setBusy] = useState(false);
  // Lists carry no URLs: a ready file is fetched once for its download and thumbnail.
  useEffect(() => {
    if (file.status === "ready" && !file.download)
      call(api.GET("/api/v1/files/{id}", { params: { path: { id: file.id } } })).then(onChange, (e) => setErr(message(e)));
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [file.id, file.status, file.download]);

  async function download(e: MouseEvent<HTMLAnchorElement>) {
    // The presigned GET lives 5 minutes: an older one is fetched again.
    if (file.download && Date.parse(file.download.expires_at) - Date.now() > 15_000) return;
    e.preventDefault();
    try {
      const f = await call(api.GET("/api/v1/files/{id}", { params: { path: { id: file.id } } }));
      onChange(f);
      if (f.download) window.location.assign(f.download.url);
    } catch (x) {
      setErr(message(x));
    }
  }

  async function remove() {
    setBusy(true);
    setErr("");
    try {
      await call(api.DELETE("/api/v1/files/{id}", { params: { path: { id: file.id } } }));
      onDeleted();
    } catch (e) {
      setErr(message(e));
      setBusy(false);
      setAsking(false);
    }
  }

  const status = file.status === "processing" ? "checking" : file.status === "pending" ? "waiting for upload" : file.status;
  return (
    <li className="file">
      {file.thumbnail ? (
        <img className="thumb" src={file.thumbnail.url} alt={"Thumbnail of " + file.filename} />
      ) : (
        <span className="thumb thumb-none" aria-hidden="true">{file.content_type.split("/")[1]?.slice(0, 4) || "file"}</span>
      )}
      <span className="who">
        {file.download ? (
          <a href={file.download.url} onClick={download} aria-label={"Download " + file.filename}>{file.filename}</a>
        ) : (
          <span>{file.filename}</span>
        )}
        <br />
        <small className="muted">
          {bytes(file.size)} · {file.content_type} · {new Date(file.created_at).toLocaleString()}
        </small>
        {file.status === "rejected" && (
          <><br /><small className="field-error">Rejected: {file.reject_reason || "no reason given"}</small></>
        )}
      </span>
      <span className={"badge badge-file-" + file.status}>{status}</span>
      {asking ? (
        <span className="confirm" role="group" aria-label={`Delete ${file.filename}?`}>
          <span>Delete {file.filename}?</span>{" "}
          <button type="button" className="small danger" disabled={busy} onClick={remove}>Delete file</button>{" "}
          <button type="button" className="small secondary" onClick={() => setAsking(false)}>Keep</button>
        </span>
      ) : (
        <button type="button" className="small danger" onClick={() => setAsking(true)} aria-label={"Delete " + file.filename}>
          Delete
        </button>
      )}
      {err && <span className="field-error" role="alert">{err}</span>}
    </li>
  );
}
