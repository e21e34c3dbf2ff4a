/**
 * `deno task verify DIR|URL [--json]`: re-hash every byte of a bundle (each
 * file whole, each dense tensor and each sparse block by range) against
 * manifest.json. Progress goes to stderr, the summary to stdout; the exit
 * status is 0 when everything matches and 1 with every problem listed when not.
 */
import { parseArgs } from "node:util";
import { verifyBundle, type VerifyReport } from "../bundle/reader.ts";
import { BundleFormatError } from "../errors.ts";
import { openStorage } from "../storage/open.ts";
import { fmtBytes } from "./progress.ts";
import { runCli } from "./run.ts";

const USAGE = `Usage: deno task verify DIR|URL [--json]
  DIR|URL   bundle folder, http(s):// or s3:// location
  --json    print the report as one JSON object (progress stays on stderr)`;

/**
 * A progress callback for `verifyBundle`: a redrawn line on a terminal, one
 * line per finished file otherwise (logs stay short and greppable).
 */
export function verifyProgress(
  write: (line: string) => void,
  isTerminal: boolean,
): (file: string, done: number, total: number) => void {
  let last = 0;
  return (file, done, total) => {
    if (isTerminal) {
      const now = performance.now();
      if (done < total && now - last < 100) return;
      last = now;
      const pct = total > 0 ? ((100 * done) / total).toFixed(0) : "100";
      write(`\rverify ${file} ${fmtBytes(done)}/${fmtBytes(total)} (${pct}%)`.padEnd(79));
      if (done >= total) write("\n");
    } else if (done >= total) {
      write(`verified ${file} (${fmtBytes(total)})\n`);
    }
  };
}

/** The text summary of a verification. */
export function formatVerifyReport(location: string, r: VerifyReport): string {
  const head = `${location}: ${r.files} files, ${
    fmtBytes(r.bytes)
  } hashed, ${r.ranges} ranges checked`;
  if (r.problems.length === 0) return `ok ${head}`;
  return [
    `FAILED ${head}; ${r.problems.length} problem${r.problems.length === 1 ? "" : "s"}:`,
    ...r.problems.map((p) => `  ${p.file}: ${p.message}`),
  ].join("\n");
}

if (import.meta.main) {
  await runCli(USAGE, async () => {
    const { values, positionals } = parseArgs({
      args: Deno.args,
      allowPositionals: true,
      options: {
        json: { type: "boolean", default: false },
        help: { type: "boolean", default: false },
      },
    });
    if (values.help) return console.log(USAGE);
    if (positionals.length !== 1) {
      console.error(`error: Cannot verify: give one bundle DIR|URL, got ${positionals.length}`);
      console.error(USAGE);
      Deno.exit(2);
    }
    const location = positionals[0];
    const enc = new TextEncoder();
    const progress = verifyProgress(
      (line) => Deno.stderr.writeSync(enc.encode(line)),
      Deno.stderr.isTerminal(),
    );
    const report = await verifyBundle(openStorage(location), progress);
    console.log(
      values.json
        ? JSON.stringify({ location, ...report }, null, 2)
        : formatVerifyReport(location, report),
    );
    if (report.problems.length > 0) {
      const files = [...new Set(report.problems.map((p) => p.file))].join(", ");
      throw new BundleFormatError(
        `Cannot verify bundle at ${location}: ${report.problems.length} problem(s) in ${files}; ` +
          `the bundle is corrupt, rebuild or re-upload it`,
      );
    }
  });
}
