/**
 * Bundle the Deno Deploy entry (src/deploy.ts) and its npm dependencies into
 * one ES module, dist/deploy.js, with esbuild. Node built-ins (`node:*`) stay
 * imports: Deno provides them. The bundle needs no npm download where it runs.
 *
 *   deno run -A scripts/build_deploy.ts [--outfile dist/deploy.js] [--minify] [--wasm]
 *
 * esbuild's npm package runs a native binary from its platform package; when
 * that binary cannot run (or with --wasm), the WebAssembly build (esbuild-wasm)
 * is used.
 */
import { parseArgs } from "node:util";

const ROOT = new URL("../", import.meta.url).pathname;

/** The part of esbuild's API this script uses (same in esbuild and esbuild-wasm). */
interface Esbuild {
  build(options: Record<string, unknown>): Promise<{
    errors: unknown[];
    warnings: { text: string }[];
    metafile?: { outputs: Record<string, { bytes: number }> };
  }>;
  stop?(): void | Promise<void>;
}

async function loadEsbuild(forceWasm: boolean): Promise<{ esbuild: Esbuild; flavour: string }> {
  if (!forceWasm) {
    try {
      const esbuild = await import("esbuild") as unknown as Esbuild;
      // A trivial build proves the native binary runs here.
      await esbuild.build({ stdin: { contents: "export {}" }, write: false });
      return { esbuild, flavour: "esbuild (native)" };
    } catch (e) {
      console.error(`Native esbuild unavailable (${(e as Error).message}); using esbuild-wasm`);
    }
  }
  // Loaded only when needed (a non-literal specifier keeps it out of the module graph).
  const name = "esbuild-wasm";
  const esbuild = await import(name) as unknown as Esbuild;
  return { esbuild, flavour: "esbuild-wasm" };
}

/** Build the bundle; returns its path and size. */
export async function buildDeploy(
  outfile: string,
  opts: { minify?: boolean; wasm?: boolean } = {},
): Promise<{ path: string; bytes: number }> {
  const { esbuild, flavour } = await loadEsbuild(opts.wasm ?? false);
  try {
    const result = await esbuild.build({
      absWorkingDir: ROOT,
      entryPoints: ["src/deploy.ts"],
      outfile,
      bundle: true,
      format: "esm",
      platform: "browser",
      target: "es2022",
      conditions: ["deno", "worker", "import"],
      external: ["node:*"],
      minify: opts.minify ?? false,
      sourcemap: "linked",
      metafile: true,
      logLevel: "warning",
      banner: { js: "// Mediator server for Deno Deploy, bundled by scripts/build_deploy.ts" },
    });
    for (const w of result.warnings) console.error(`warning: ${w.text}`);
    const bytes = Object.entries(result.metafile?.outputs ?? {})
      .filter(([p]) => p.endsWith(".js"))
      .reduce((s, [, o]) => s + o.bytes, 0);
    console.error(`${flavour}: wrote ${outfile} (${(bytes / 1024).toFixed(0)} KiB)`);
    return { path: outfile.startsWith("/") ? outfile : `${ROOT}${outfile}`, bytes };
  } finally {
    await esbuild.stop?.();
  }
}

if (import.meta.main) {
  const { values } = parseArgs({
    args: Deno.args,
    options: {
      outfile: { type: "string", default: "dist/deploy.js" },
      minify: { type: "boolean", default: false },
      wasm: { type: "boolean", default: false },
    },
  });
  await buildDeploy(values.outfile!, { minify: values.minify, wasm: values.wasm });
}
