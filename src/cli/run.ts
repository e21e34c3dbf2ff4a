/** Shared CLI wrapper: runs a command, prints errors as one clear line, sets the exit code. */

/**
 * Run `main`; on failure print "error: message" (and the usage for argument
 * errors) to stderr and exit with status 1 (2 for bad arguments).
 */
export async function runCli(usage: string, main: () => Promise<void>): Promise<void> {
  try {
    await main();
  } catch (e) {
    const err = e as Error;
    const badArgs = err instanceof TypeError &&
      /^Cannot \w+: --|Unknown option|Option '/.test(err.message);
    console.error(`error: ${err.message}`);
    if (badArgs) console.error(usage);
    if (Deno.env.get("MEDIATOR_DEBUG")) console.error(err.stack);
    Deno.exit(badArgs ? 2 : 1);
  }
}
