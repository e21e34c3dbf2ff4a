/**
 * A TCP forwarder on loopback, so a test can "stop" a server that other tests
 * share: clients talk to the proxy's port, and `stop` closes the listener and
 * every forwarded connection, after which the port refuses connections.
 */

/** Forwards 127.0.0.1:<port> to a target port until stopped. */
export class TcpProxy {
  readonly #listener: Deno.TcpListener;
  readonly #conns = new Set<Deno.Conn>();
  readonly #pipes = new Set<Promise<unknown>>();
  readonly #accepting: Promise<void>;
  #stopped = false;

  /** @param targetPort port on 127.0.0.1 to forward to */
  constructor(readonly targetPort: number) {
    this.#listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
    this.#accepting = this.#accept();
  }

  /** The proxy's port. */
  get port(): number {
    return this.#listener.addr.port;
  }

  async #accept(): Promise<void> {
    try {
      for await (const client of this.#listener) {
        if (this.#stopped) {
          client.close();
          break;
        }
        this.#conns.add(client);
        let upstream: Deno.Conn;
        try {
          upstream = await Deno.connect({ hostname: "127.0.0.1", port: this.targetPort });
        } catch {
          this.#close(client);
          continue;
        }
        this.#conns.add(upstream);
        for (const [from, to] of [[client, upstream], [upstream, client]]) {
          const pipe = from.readable.pipeTo(to.writable).catch(() => undefined)
            .finally(() => {
              this.#close(from);
              this.#close(to);
            });
          this.#pipes.add(pipe);
        }
      }
    } catch {
      // The listener was closed.
    }
  }

  #close(conn: Deno.Conn): void {
    if (!this.#conns.delete(conn)) return;
    try {
      conn.close();
    } catch {
      // Already closed by its stream.
    }
  }

  /** Close the listener and every connection; later connections are refused. */
  async stop(): Promise<void> {
    if (this.#stopped) return;
    this.#stopped = true;
    this.#listener.close();
    for (const c of [...this.#conns]) this.#close(c);
    await this.#accepting;
    await Promise.allSettled([...this.#pipes]);
  }
}
