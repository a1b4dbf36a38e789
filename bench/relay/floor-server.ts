/**
 * The machine's floor for bench/relay: the least a server can do to serve a file's ranges and answer a heartbeat.
 * A range request gets that slice of the file (a `Bun.file` slice, which the kernel sends); anything else gets a
 * small JSON answer like the heartbeat's. No signing, no router, no database: what a heartbeat suffers here while
 * the file moves at full speed is what this machine does to any small request, whatever answers it.
 *
 *   bun bench/relay/floor-server.ts <file>      prints the address it listens on
 */
const [file = ""] = process.argv.slice(2);

const server = Bun.serve({
  hostname: "127.0.0.1",
  port: 0,
  fetch(request) {
    const range = /^bytes=(\d+)-(\d+)$/.exec(request.headers.get("range") ?? "");
    if (!range) return Response.json({ files: [] });
    return new Response(Bun.file(file).slice(Number(range[1]), Number(range[2]) + 1), { status: 206 });
  },
});
console.log(`${server.hostname}:${server.port}`);
