/** The fake Graph API (fake-graph/fake-graph.ts and its parts), at the path the tests and benchmarks import it from. */
export { FakeGraph } from "./fake-graph/fake-graph.ts";
export { DEFAULT_APP_ID } from "./fake-graph/types.ts";
export type {
  FailureOptions,
  FakeGraphOptions,
  FakePage,
  FakeUser,
  RecordedCall,
  RecordedSend,
  ScriptedFailure,
  SendFilter,
  WebhookDelivery,
} from "./fake-graph/types.ts";
