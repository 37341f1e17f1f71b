import { describe, expect, test } from "bun:test";
import { referencesAsText, stripHtml } from "../../../src/core/html.ts";

describe("stripHtml (sanitize_input)", () => {
  test("tags go, their text stays; script and style go with their content; comments go", () => {
    expect(stripHtml("Hello <b>you</b>!")).toBe("Hello you!");
    expect(stripHtml('<a href="https://evil.example">click</a> here')).toBe("click here");
    expect(stripHtml("<script>alert(1)</script>hi<style>p{}</style>")).toBe("hi");
    expect(stripHtml("x<!-- hidden -->y")).toBe("xy");
    expect(stripHtml('<img src=x onerror="steal()">')).toBe("");
    expect(stripHtml("<SCRIPT type=text/javascript>evil()</SCRIPT>ok")).toBe("ok");
  });

  test("what is no tag stays: comparisons, arrows, plain text", () => {
    expect(stripHtml("a < b and c > d")).toBe("a < b and c > d");
    expect(stripHtml("<3 you")).toBe("<3 you");
    expect(stripHtml("no html at all")).toBe("no html at all");
  });

  test("an unclosed script tag is removed, not left to run", () => {
    expect(stripHtml("<script>evil()")).toBe("evil()");
  });
});

describe("referencesAsText (hide_external_references)", () => {
  test("links and images become text; other tags and text stay", () => {
    expect(referencesAsText('see <a href="https://x.example">this</a> and <img src="https://t.example/p.gif">')).toBe(
      'see &lt;a href="https://x.example"&gt;this&lt;/a&gt; and &lt;img src="https://t.example/p.gif"&gt;',
    );
    expect(referencesAsText("<b>bold</b> a < b")).toBe("<b>bold</b> a < b");
  });
});
