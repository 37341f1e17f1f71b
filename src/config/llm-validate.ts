/**
 * What the schema cannot say about an `llm` flow (docs/flows.md): unique tool names that are not
 * the built-in tools' names, one JSON Schema of an object for the arguments of each tool, and a
 * `system_prompt` whose placeholders are all known.
 */
import { readFileSync } from "node:fs";
import { isAbsolute, resolve } from "node:path";
import { LLM_BUILTIN_TOOLS, PROMPT_FIELD_PREFIXES, PROMPT_PLACEHOLDERS, unknownPlaceholders } from "./llm-names.ts";
import type { FlowSettings, LlmToolSettings } from "./schema.ts";

type Problem = { path: (string | number)[]; message: string };

export function llmFlowProblems(flow: FlowSettings, dir: string): Problem[] {
  const found = toolProblems(flow.tools ?? [], dir).map((p) => ({ ...p, path: ["tools", ...p.path] }));
  const unknown = unknownPlaceholders(flow.system_prompt ?? "");
  if (unknown.length > 0) {
    const known = [...PROMPT_PLACEHOLDERS, ...PROMPT_FIELD_PREFIXES.map((p) => `${p}<field>`)].map((n) => `{{${n}}}`).join(", ");
    found.push({ path: ["system_prompt"], message: `unknown placeholder ${unknown.map((n) => `{{${n}}}`).join(", ")}; the placeholders are ${known}` });
  }
  return found;
}

/** An `llm` flow's tools (docs/flows.md): unique names, and one JSON Schema of an object for the arguments of each. */
function toolProblems(tools: LlmToolSettings[], dir: string): Problem[] {
  const found: Problem[] = [];
  const names = new Map<string, number>();
  tools.forEach((tool, i) => {
    const earlier = names.get(tool.name);
    if (earlier !== undefined) found.push({ path: [i, "name"], message: `"${tool.name}" is already the name of tools[${earlier}]; tool names must be unique` });
    else names.set(tool.name, i);
    if ((LLM_BUILTIN_TOOLS as readonly string[]).includes(tool.name)) {
      found.push({ path: [i, "name"], message: `"${tool.name}" is the name of a built-in tool (builtin_tools); choose another name` });
    }
    if (tool.parameters !== undefined && tool.parameters_file !== undefined) {
      found.push({ path: [i, "parameters_file"], message: "set either parameters or parameters_file, not both" });
      return;
    }
    let schema: unknown = tool.parameters;
    const key = tool.parameters_file === undefined ? "parameters" : "parameters_file";
    if (tool.parameters_file !== undefined) {
      const file = isAbsolute(tool.parameters_file) ? tool.parameters_file : resolve(dir, tool.parameters_file);
      try {
        schema = JSON.parse(readFileSync(file, "utf8"));
      } catch (error) {
        const why = (error as NodeJS.ErrnoException).code ?? (error as Error).message;
        found.push({ path: [i, key], message: `cannot read a JSON Schema from ${file}: ${why}` });
        return;
      }
    }
    if (schema === undefined) {
      found.push({
        path: [i, "parameters"],
        message: 'missing: the JSON Schema of the arguments (parameters = { type = "object", properties = { … } }), or parameters_file',
      });
    } else if (typeof schema !== "object" || schema === null || (schema as { type?: unknown }).type !== "object") {
      found.push({ path: [i, key], message: 'must be a JSON Schema with type = "object": the model passes the arguments as one object' });
    }
  });
  return found;
}
