/**
 * An example transformer module (docs/transformers.md). Switch each function on in the settings:
 *
 *   [endpoints.transformers]
 *   module = "transformers/support.ts"
 *   input = true
 *   output = true
 *   execution_finished = true
 *   inject = true
 *   notify = true
 *
 * Globals in every function: httpRequest (one per run), getSessionStorage, console.
 */
declare function httpRequest(options: { uri: string; method?: string; headers?: Record<string, string>; body?: unknown; json?: boolean }): Promise<any>;
declare function getSessionStorage(userId: string, sessionId: string): Promise<Record<string, any>>;

/** Before the flow: normalise the text, count the user's messages, drop empty ones. */
export async function handleInput({ endpoint, event }: { endpoint: { id: string }; request: unknown; event: any }) {
  const text = String(event.message?.text ?? event.postback?.payload ?? "").trim();
  if (!text && !event.message?.attachments) return null; // nothing to say: no flow run
  const storage = await getSessionStorage(event.sender.id, "stats");
  storage.messages = (storage.messages ?? 0) + 1; // kept in the database
  return { text, data: { messagesSoFar: storage.messages, endpoint: endpoint.id } };
}

/** Before each message goes out: sign long texts, drop internal notes. */
export function handleOutput({ output, processedOutput }: { output: any; processedOutput: any; userId: string; sessionId: string }) {
  if (output?.text?.startsWith("#internal")) return null; // not for the user
  if (typeof processedOutput.text === "string" && processedOutput.text.length > 200) {
    return { ...processedOutput, text: `${processedOutput.text}\n— Support team` };
  }
  return processedOutput;
}

/** After each turn: a line in the log. */
export function handleExecutionFinished({ userId, sessionId }: { userId: string; sessionId: string }) {
  console.info(`turn finished for ${userId} in ${sessionId}`);
}

/** POST /webhooks/{endpoint}/inject from a CRM: { "customer": { "psid": "…" }, "note": "…" } */
export function handleInject({ request }: { request: { body: any } }) {
  const body = request.body;
  if (!body?.customer?.psid) return null;
  return { user_id: String(body.customer.psid), text: "CRM_NOTE", data: { note: body.note } };
}

/** POST /webhooks/{endpoint}/notify from a shop: { "order": { "psid": "…", "id": "…", "status": "shipped" } } */
export async function handleNotify({ request }: { request: { body: any } }) {
  const order = request.body?.order;
  if (!order?.psid) return null;
  // One outbound request per run: look up the tracking link.
  const tracking = await httpRequest({ uri: `https://shop.example.com/api/orders/${encodeURIComponent(order.id)}/tracking`, json: true }).catch(() => null);
  const link = tracking?.url ? ` Track it: ${tracking.url}` : "";
  return { user_id: String(order.psid), text: `Your order ${order.id} is ${order.status}.${link}` };
}
