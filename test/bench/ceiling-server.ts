/**
 * The ceiling for the webhook benchmark: a bare Bun.serve that reads the body and answers 200,
 * doing nothing else. Prints its port on stdout.
 */
const server = Bun.serve({
  hostname: "127.0.0.1",
  port: 0,
  async fetch(request) {
    await request.arrayBuffer();
    return new Response("EVENT_RECEIVED");
  },
});
console.log(JSON.stringify({ msg: "listening", url: `http://127.0.0.1:${server.port}` }));
process.on("SIGTERM", () => {
  server.stop(true);
  process.exit(0);
});
