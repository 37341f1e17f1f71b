/**
 * One Graph request, from arrival to answer: recorded, its body read, its path split into node and
 * edge, its token and `appsecret_proof` checked like Graph checks them, and handed to the edge's
 * handler; a `GraphError` a handler throws becomes Graph's error envelope. Page nodes (`me` or the
 * Page's id) have the Page's edges; any other node is a user of the Page (a PSID).
 */
import { createHmac } from "node:crypto";
import type { Clock } from "../../core/clock.ts";
import { NETWORK_ERROR, isGarbled, type Answers, type Outcome } from "./answers.ts";
import type { FakeDirectory } from "./directory.ts";
import { DEFAULT_MESSAGES, GraphError, graphFail, unsupported } from "./graph-errors.ts";
import type { HandoverEdges } from "./handover.ts";
import type { MessengerProfileEdge } from "./messenger-profile.ts";
import { isObject, jsonish, parseBody, safeDecode } from "./params.ts";
import type { Recorder } from "./recorder.ts";
import type { SendApi } from "./send-api.ts";
import type { RecordedCall } from "./types.ts";
import type { UserProfiles } from "./user-profiles.ts";

const AUTH_KEYS = new Set(["access_token", "appsecret_proof"]);

export interface GraphRouterDeps {
  directory: FakeDirectory;
  recorder: Recorder;
  answers: Answers;
  clock: Clock;
  sendApi: SendApi;
  handover: HandoverEdges;
  users: UserProfiles;
  messengerProfile: MessengerProfileEdge;
}

export class GraphRouter {
  constructor(private readonly deps: GraphRouterDeps) {}

  /** The answer to `request`, or NETWORK_ERROR when none reaches the caller (scripted, or the caller gave up). */
  async dispatch(request: Request): Promise<Outcome> {
    const { recorder, answers } = this.deps;
    const url = new URL(request.url);
    const call = recorder.begin({
      at: performance.now(),
      time: this.deps.clock.now(),
      method: request.method.toUpperCase(),
      path: url.pathname,
      pageId: null,
      query: Object.fromEntries(url.searchParams),
      body: undefined,
      status: 0,
      response: null,
    });
    let outcome: Outcome;
    try {
      outcome = await this.#route(request, url, call);
    } catch (error) {
      if (error instanceof GraphError) outcome = answers.error(error.spec);
      else {
        console.error("FakeGraph: handler failed", error);
        outcome = answers.error({ code: 1, message: DEFAULT_MESSAGES[1]!, status: 500 });
      }
    }
    if (outcome === NETWORK_ERROR || request.signal.aborted) {
      call.status = 0;
      call.response = null;
    } else {
      call.status = outcome.status;
      // A garbled answer's body must reach the client as it is: reading a clone would consume it first.
      call.response = isGarbled(outcome)
        ? null
        : await outcome
            .clone()
            .json()
            .catch(() => null);
    }
    recorder.end(call);
    return request.signal.aborted ? NETWORK_ERROR : outcome;
  }

  async #route(request: Request, url: URL, call: RecordedCall): Promise<Outcome> {
    const { directory, recorder, answers, sendApi, handover, users, messengerProfile } = this.deps;
    const method = call.method;
    const parsed = await parseBody(request);
    call.body = parsed;
    recorder.notify(); // a call with its body is visible to waitForCalls(..., { inFlight: true })
    const body: Record<string, unknown> = isObject(parsed) ? parsed : {};

    const segments = url.pathname.split("/").filter(Boolean).map(safeDecode);
    if (segments[0] !== undefined && /^v\d+\.\d+$/.test(segments[0])) segments.shift();
    const [node, edge, ...rest] = segments;
    if (node === undefined) unsupported(method, "");
    if (rest.length > 0) graphFail(2500, `Unknown path components: /${rest.join("/")}`);

    // Parameters: the query and the body count alike (Graph's convention); JSON-looking values are parsed.
    const params: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(call.query)) params[k] = jsonish(v);
    if (method !== "GET") Object.assign(params, body);

    // Auth: the token in the query, the body or an Authorization header; the proof when given or required.
    const authorization = request.headers.get("authorization");
    const bearer = authorization?.match(/^Bearer\s+(.+)$/i)?.[1];
    const token = call.query.access_token ?? (typeof body.access_token === "string" ? body.access_token : undefined) ?? bearer;
    if (!token) graphFail(104, "An access token is required to request this resource.");
    const page = directory.pageByToken(token);
    if (!page) graphFail(190, "Invalid OAuth access token.");
    if (page.tokenExpired) graphFail(190, "Error validating access token: Session has expired.", { subcode: 463 });
    call.pageId = page.id;
    const proof = call.query.appsecret_proof ?? (typeof body.appsecret_proof === "string" ? body.appsecret_proof : undefined);
    const proofRequired = page.requireProof === true || edge === "ids_for_pages" || edge === "ids_for_apps";
    if (proof !== undefined) {
      if (!page.appSecret || proof !== proofFor(page.appSecret, token)) {
        graphFail(100, "Invalid appsecret_proof provided in the API argument", { type: "GraphMethodException" });
      }
    } else if (proofRequired) {
      graphFail(100, "API calls from the server require an appsecret_proof argument", { type: "GraphMethodException" });
    }
    for (const key of AUTH_KEYS) delete params[key];

    const isPageNode = node === "me" || node === page.id;
    if (!isPageNode && directory.hasPage(node)) unsupported(method, node); // another Page's node with this token
    if (isPageNode) {
      switch (edge) {
        case undefined:
          if (method !== "GET") unsupported(method, node);
          return answers.ok({ name: page.name ?? `Page ${page.id}`, id: page.id });
        case "messages":
          if (method !== "POST") unsupported(method, node);
          return sendApi.messages(page, params, request.signal, call);
        case "message_attachments":
          if (method !== "POST") unsupported(method, node);
          return sendApi.uploadAttachment(params);
        case "pass_thread_control":
        case "take_thread_control":
        case "request_thread_control":
        case "release_thread_control":
          if (method !== "POST") unsupported(method, node);
          return handover.control(page, edge, params);
        case "thread_owner":
          if (method !== "GET") unsupported(method, node);
          return handover.threadOwner(page, params);
        case "secondary_receivers":
          if (method !== "GET") unsupported(method, node);
          return handover.secondaryReceivers();
        case "messenger_profile":
          return messengerProfile.handle(page, method, params);
        default:
          graphFail(2500, `Unknown path components: /${edge}`);
      }
    }
    // A user node: a PSID of this Page.
    if (edge === undefined) {
      if (method !== "GET") unsupported(method, node);
      return users.profile(page, node, params);
    }
    if (edge === "ids_for_pages") {
      if (method !== "GET") unsupported(method, node);
      return users.idsForPages(page, node, params, url);
    }
    graphFail(2500, `Unknown path components: /${edge}`);
  }
}

function proofFor(appSecret: string, token: string): string {
  return createHmac("sha256", appSecret).update(token).digest("hex");
}
