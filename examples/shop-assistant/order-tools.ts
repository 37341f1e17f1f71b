/**
 * The shop's side of the shop assistant (settings.toml beside this file, docs/flows.md "A complete
 * example"): one tool the `llm` flow calls when the model asks where an order is.
 *
 *   bun examples/shop-assistant/order-tools.ts        # listens on 127.0.0.1:5006 (PORT to change)
 *
 * The endpoint POSTs `{ "arguments": { "order_id": "A-1001" }, "user": { "id", "page_id",
 * "endpoint_id", "session_id", "contact" } }` with `Authorization: Bearer <SHOP_TOOL_KEY>`; the
 * answer's JSON is what the model reads. A real shop would look the order up in its database and
 * check that it belongs to this user (here: the contact's `email`, when the contact has one).
 */

const ORDERS: Record<string, { status: string; carrier?: string; eta?: string; email: string }> = {
  "A-1001": { status: "shipped", carrier: "DHL", eta: "2026-12-04", email: "amelie@example.com" },
  "A-1002": { status: "being packed", eta: "2026-12-07", email: "amelie@example.com" },
  "A-1003": { status: "delivered", carrier: "UPS", email: "sam@example.com" },
};

export function startOrderTools(options: { port?: number; key?: string } = {}) {
  const key = options.key ?? process.env.SHOP_TOOL_KEY ?? "shop-tool-key-change-me";
  return Bun.serve({
    hostname: "127.0.0.1",
    port: options.port ?? Number(process.env.PORT ?? 5006),
    async fetch(request) {
      const path = new URL(request.url).pathname;
      if (request.method !== "POST" || path !== "/tools/order-status") return Response.json({ error: "not found" }, { status: 404 });
      if (request.headers.get("authorization") !== `Bearer ${key}`) return Response.json({ error: "wrong key" }, { status: 401 });
      const body = (await request.json().catch(() => null)) as { arguments?: { order_id?: unknown }; user?: { contact?: { email?: unknown } } } | null;
      const id = String(body?.arguments?.order_id ?? "")
        .trim()
        .toUpperCase();
      const order = ORDERS[id];
      // The model reads this answer: say plainly what is wrong, so it can ask the user.
      if (!order) return Response.json({ found: false, message: `There is no order ${id || "without a number"}; order numbers look like A-1001.` });
      const email = body?.user?.contact?.email;
      if (typeof email === "string" && email !== order.email)
        return Response.json({ found: false, message: `Order ${id} is not one of this customer's orders.` });
      const { email: _, ...shown } = order;
      return Response.json({ found: true, order_id: id, ...shown });
    },
  });
}

if (import.meta.main) {
  const server = startOrderTools();
  console.log(`order tools on http://127.0.0.1:${server.port}/tools/order-status`);
}
