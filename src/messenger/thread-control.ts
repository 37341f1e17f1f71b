/**
 * The Handover Protocol's Graph calls: pass, take, and who owns a thread. A 2xx whose body could
 * not be read (graph.ts `GraphUnreadableAnswer`) means the call went through all the same.
 */
import { GraphApiError, GraphUnreadableAnswer, type GraphClient, type PageCredentials } from "./graph.ts";

/** `POST /{page}/pass_thread_control` (the reply lane's handover items and the operator's pass). */
export function passThreadControl(graph: GraphClient, page: PageCredentials, userId: string, targetApp: string, metadata: string | null): Promise<unknown> {
  return graph
    .request(page, "POST", `/${page.pageId}/pass_thread_control`, {
      recipient: { id: userId },
      target_app_id: targetApp,
      ...(metadata !== null ? { metadata } : {}),
    })
    .catch(tookEffect);
}

/** `POST /{page}/take_thread_control`: the thread is ours again. */
export function takeThreadControl(graph: GraphClient, page: PageCredentials, userId: string, metadata: string): Promise<unknown> {
  return graph.request(page, "POST", `/${page.pageId}/take_thread_control`, { recipient: { id: userId }, metadata }).catch(tookEffect);
}

/** Graph answered 2xx with a body that could not be read: the pass or take went through all the same. */
function tookEffect(error: unknown): unknown {
  if (error instanceof GraphUnreadableAnswer) return {};
  throw error;
}

/** `GET /{page}/thread_owner`: the app owning the user's thread, or null (idle). */
export async function threadOwner(graph: GraphClient, page: PageCredentials, userId: string): Promise<string | null> {
  const answer = await graph.request<{ data?: { thread_owner?: { app_id?: string | number } }[] }>(page, "GET", `/${page.pageId}/thread_owner`, undefined, {
    recipient: userId,
  });
  const owner = answer.data?.[0]?.thread_owner?.app_id;
  return owner === undefined ? null : String(owner);
}

/** A failed call in one line, with Graph's code. */
export function describeCallError(error: unknown): string {
  if (error instanceof GraphApiError) return `${error.message} (code ${error.code}${error.subcode ? `/${error.subcode}` : ""})`;
  return error instanceof Error ? error.message : String(error);
}

/** How to fix the usual refusals (appended to the error message). */
export function refusalHint(error: unknown): string {
  if (!(error instanceof GraphApiError)) return "";
  if (/Handover Protocol APIs disabled/i.test(error.message)) {
    return ": this Page uses Conversation Routing, where only pass works; make this app the Page's default app in Meta Business Suite (Settings > Advanced messaging), or set handover.timeout_minutes = 0 and let people mark conversations Done";
  }
  if (error.code === 200 || error.code === 10)
    return ": the app lacks a role for this Page's conversations; give it the pages_messaging permission and a handover role (Page settings > Advanced messaging)";
  if (error.code === 100) return ": check the target app id (page_inbox is 263902037430900) and that the user still talks to this Page";
  return "";
}
