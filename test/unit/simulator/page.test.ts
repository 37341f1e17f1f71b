/**
 * The chat page is kept as real files (src/simulator/page/chat.html, .css, .js) and served as one
 * document with the style sheet and the script inlined.
 */
import { describe, expect, test } from "bun:test";
import { SCRIPT_TAG, SIMULATOR_PAGE, STYLE_TAG, inlinePage } from "../../../src/simulator/page/page.ts";

describe("the simulator page", () => {
  test("is served as one document: the style sheet and the script inline, nothing loaded from elsewhere", async () => {
    const [css, js] = await Promise.all([
      Bun.file(new URL("../../../src/simulator/page/chat.css", import.meta.url)).text(),
      Bun.file(new URL("../../../src/simulator/page/chat.js", import.meta.url)).text(),
    ]);
    expect(SIMULATOR_PAGE).toContain(`<style>\n${css}</style>`);
    expect(SIMULATOR_PAGE).toContain(`<script>\n${js}</script>`);
    expect(SIMULATOR_PAGE).not.toContain(STYLE_TAG);
    expect(SIMULATOR_PAGE).not.toContain(SCRIPT_TAG);
    expect(SIMULATOR_PAGE).not.toMatch(/<script[^>]+src=|<link[^>]+href="(?!data:)/);
  });

  test("inlines content as it is: `$` patterns of String.replace are not interpreted", () => {
    const page = inlinePage(`<head>${STYLE_TAG}</head><body>${SCRIPT_TAG}</body>`, "a{}", "const $ = 1; '$&' + \"$'\";");
    expect(page).toBe("<head><style>\na{}</style></head><body><script>\nconst $ = 1; '$&' + \"$'\";</script></body>");
  });

  test("a missing or repeated tag, or content that would end its element early, fails at once", () => {
    expect(() => inlinePage(`<body>${SCRIPT_TAG}</body>`, "", "")).toThrow(/exactly once/);
    expect(() => inlinePage(`${STYLE_TAG}${STYLE_TAG}${SCRIPT_TAG}`, "", "")).toThrow(/exactly once/);
    expect(() => inlinePage(`${STYLE_TAG}${SCRIPT_TAG}`, "", "document.write('</SCRIPT>')")).toThrow(/must not contain <\/script>/);
  });
});
