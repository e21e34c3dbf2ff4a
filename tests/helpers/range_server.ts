/**
 * A loopback HTTP file server with real Range support (bytes=a-b, a-, -n) and
 * fault injection, for testing the remote storages' retries and checks.
 */

/** What the server does to one request instead of answering normally. */
export type Fault =
  | { kind: "status"; status: number } // answer with this status and a short body
  | { kind: "reset"; afterBytes: number } // send headers, then drop the connection mid-body
  | { kind: "hang" }; // answer nothing until the server closes

/** How the server behaves apart from faults. */
export interface RangeServerOptions {
  /** Answer HEAD with 405 (forces the 1-byte-range size fallback). */
  refuseHead?: boolean;
  /** Ignore Range headers and answer 200 with the whole file. */
  ignoreRange?: boolean;
}

/** One request the server received. */
export interface SeenRequest {
  /** HTTP method. */
  method: string;
  /** URL path, decoded. */
  path: string;
  /** The Range header, if any. */
  range: string | null;
  /** The fault applied, if any. */
  fault?: Fault["kind"];
}

/** A running server; `close()` it at the end of the test. */
export interface RangeServer {
  /** "http://127.0.0.1:PORT". */
  url: string;
  /** Files by path (without leading '/'); edit freely while running. */
  files: Map<string, Uint8Array>;
  /** Faults applied to the next requests, in order. */
  faults: Fault[];
  /** Every request received, in order. */
  seen: SeenRequest[];
  /** Release hung requests and stop the server. */
  close(): Promise<void>;
}

/** Parse one "bytes=..." range against a size: [start, end] inclusive, "unsatisfiable" or null. */
function parseRange(header: string, size: number): [number, number] | "unsatisfiable" | null {
  const m = /^bytes=(\d*)-(\d*)$/.exec(header.trim());
  if (!m || (m[1] === "" && m[2] === "")) return null; // multi-range or malformed: whole file
  if (m[1] === "") {
    const n = Number(m[2]);
    if (n === 0) return "unsatisfiable";
    return [Math.max(0, size - n), size - 1];
  }
  const start = Number(m[1]);
  const end = m[2] === "" ? size - 1 : Math.min(Number(m[2]), size - 1);
  if (start >= size || end < start) return "unsatisfiable";
  return [start, end];
}

/** Start a server on 127.0.0.1 with an OS-chosen port. */
export function startRangeServer(options: RangeServerOptions = {}): RangeServer {
  const files = new Map<string, Uint8Array>();
  const faults: Fault[] = [];
  const seen: SeenRequest[] = [];
  const releases = new Set<() => void>();

  const handler = async (req: Request): Promise<Response> => {
    const path = decodeURIComponent(new URL(req.url).pathname.slice(1));
    const fault = faults.shift();
    seen.push({ method: req.method, path, range: req.headers.get("range"), fault: fault?.kind });
    if (fault?.kind === "hang") {
      await new Promise<void>((resolve) => {
        const release = () => {
          releases.delete(release);
          resolve();
        };
        releases.add(release);
      });
      return new Response("released", { status: 503 });
    }
    if (fault?.kind === "status") {
      return new Response(`injected ${fault.status}`, { status: fault.status });
    }
    const data = files.get(path);
    if (!data) return new Response("not found", { status: 404 });
    if (req.method === "HEAD" && options.refuseHead) {
      return new Response(null, { status: 405 });
    }
    const common = { "accept-ranges": "bytes", "content-type": "application/octet-stream" };
    const header = req.headers.get("range");
    const range = header && !options.ignoreRange ? parseRange(header, data.length) : null;
    if (range === "unsatisfiable") {
      return new Response(null, {
        status: 416,
        headers: { ...common, "content-range": `bytes */${data.length}` },
      });
    }
    const [start, end] = range ?? [0, data.length - 1];
    const body = data.slice(start, end + 1);
    const headers: Record<string, string> = { ...common, "content-length": String(body.length) };
    if (range) headers["content-range"] = `bytes ${start}-${end}/${data.length}`;
    const status = range ? 206 : 200;
    if (req.method === "HEAD") return new Response(null, { status, headers });
    if (fault?.kind === "reset") {
      return new Response(brokenStream(body, fault.afterBytes), { status, headers });
    }
    return new Response(body, { status, headers });
  };

  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, handler);
  return {
    url: `http://127.0.0.1:${server.addr.port}`,
    files,
    faults,
    seen,
    async close() {
      for (const release of [...releases]) release();
      await server.shutdown();
    },
  };
}

/**
 * A body stream that ends after `afterBytes` bytes although Content-Length
 * promised more, so the server drops the connection mid-body.
 */
function brokenStream(body: Uint8Array, afterBytes: number): ReadableStream<Uint8Array> {
  return new ReadableStream<Uint8Array>({
    start(controller) {
      controller.enqueue(body.slice(0, Math.min(afterBytes, body.length)));
      controller.close();
    },
  });
}
