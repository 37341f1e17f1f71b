/**
 * An in-test flow answering "re: <text>" that counts its calls per input text; `hold()` makes it
 * wait (for every input, or those `which` picks) until `release()`.
 */
import type { Flow } from "../../src/flows/flow.ts";
import type { FlowRegistry } from "../../src/flows/index.ts";
import type { FlowInput } from "../../src/flows/schema.ts";

export interface CountingFlow {
  /** For `startConversation({ flows })`: the flow is named "agent", as the conversation's settings want. */
  flows: FlowRegistry;
  calls: Map<string, number>;
  hold(which?: (text: string) => boolean): void;
  release(): void;
}

export function countingFlow(): CountingFlow {
  const calls = new Map<string, number>();
  let gate: Promise<void> | null = null;
  let held: (text: string) => boolean = () => true;
  let openGate = () => {};
  const flow: Flow = {
    name: "agent",
    kind: "script",
    timeoutMs: 10_000,
    async run(input: FlowInput) {
      calls.set(input.text, (calls.get(input.text) ?? 0) + 1);
      if (gate && held(input.text)) await gate;
      return { outputs: [{ text: `re: ${input.text}` }] };
    },
  };
  return {
    flows: new Map([["agent", flow]]),
    calls,
    hold(which = () => true) {
      held = which;
      gate = new Promise((resolve) => (openGate = resolve));
    },
    release() {
      gate = null;
      openGate();
    },
  };
}
