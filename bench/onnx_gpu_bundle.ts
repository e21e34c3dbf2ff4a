/**
 * Packs the onnxruntime-web side of bench/compare.ts for a machine with no npm access (the
 * GPU machine): esbuild bundles bench/onnx_decode_process.ts into one module whose
 * onnxruntime-web imports point at copies of ORT's own prebuilt bundles beside it, and ORT's
 * WebAssembly binaries are copied xz-compressed (decompress them there). The Mediator side needs no
 * bundle: compare.ts runs from source with `--no-config`.
 *
 *   deno run -A bench/onnx_gpu_bundle.ts [--out dist/ort-bench]
 *   # there: xz -dkf dist/ort-bench/*.xz &&
 *   #   deno run -A --no-config bench/compare.ts --ort-child dist/ort-bench/onnx_decode_process.js
 */
import * as esbuild from "esbuild";

const ROOT = new URL("../", import.meta.url).pathname;
const i = Deno.args.indexOf("--out");
const OUT = `${ROOT}${i >= 0 ? Deno.args[i + 1] : "dist/ort-bench"}`.replace(/\/+$/, "");
/** ORT's self-contained entry points, by the specifier the child imports. */
const ENTRIES: Record<string, string> = {
  "onnxruntime-web": "ort.bundle.min.mjs",
  "onnxruntime-web/webgpu": "ort.webgpu.bundle.min.mjs",
};
/** The Emscripten glue modules those entry points import (wasm: JSEP build; webgpu: asyncify). */
const GLUE = ["ort-wasm-simd-threaded.jsep.mjs", "ort-wasm-simd-threaded.asyncify.mjs"];
/** The WebAssembly binaries the glue loads. */
const WASM = ["ort-wasm-simd-threaded.jsep.wasm", "ort-wasm-simd-threaded.asyncify.wasm"];

/** ORT's dist folder in the project's node_modules (deno.json has nodeModulesDir "auto"). */
function ortDist(): string {
  const dir = `${ROOT}node_modules/onnxruntime-web/dist/`;
  try {
    Deno.statSync(`${dir}${ENTRIES["onnxruntime-web"]}`);
  } catch {
    throw new Error(
      `Cannot find onnxruntime-web's files in ${dir}; run \`deno install\` in ${ROOT} first`,
    );
  }
  return dir;
}

/** `from` compressed with xz (the binaries shrink about 7x; the carry limit is tight). */
async function xz(from: string, to: string): Promise<void> {
  const out = await new Deno.Command("xz", { args: ["-9", "-T1", "-c", from], stdout: "piped" })
    .output();
  if (!out.success) throw new Error(`Cannot compress ${from}: xz exited with ${out.code}`);
  await Deno.writeFile(to, out.stdout);
}

await Deno.mkdir(OUT, { recursive: true });
const dist = ortDist();
const result = await esbuild.build({
  entryPoints: [`${ROOT}bench/onnx_decode_process.ts`],
  outfile: `${OUT}/onnx_decode_process.js`,
  bundle: true,
  format: "esm",
  platform: "neutral",
  target: "es2022",
  logLevel: "warning",
  plugins: [{
    name: "ort-beside",
    setup(build) {
      build.onResolve({ filter: /^onnxruntime-web(\/webgpu)?$/ }, (args) => ({
        path: `./${ENTRIES[args.path]}`,
        external: true,
      }));
    },
  }],
});
await esbuild.stop();
if (result.errors.length) throw new Error("Cannot bundle the onnxruntime-web child: see above");
for (const file of [...Object.values(ENTRIES), ...GLUE]) {
  await Deno.copyFile(`${dist}${file}`, `${OUT}/${file}`);
}
for (const file of WASM) await xz(`${dist}${file}`, `${OUT}/${file}.xz`);
for await (const e of Deno.readDir(OUT)) {
  console.log(
    `${OUT}/${e.name}: ${((await Deno.stat(`${OUT}/${e.name}`)).size / 1048576).toFixed(1)} MiB`,
  );
}
