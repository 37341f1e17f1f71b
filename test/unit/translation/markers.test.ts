/** The no-translation marker (src/translation/markers.ts): what is kept, what the provider gets, what comes back. */
import { describe, expect, test } from "bun:test";
import { decodeHtml, fromMarkup, needsTranslation, segments, toMarkup, withoutMarkers } from "../../../src/translation/markers.ts";

describe("segments and markers", () => {
  test("text between two markers is kept; the markers go", () => {
    expect(segments("Welcome to **Acme Store**!", "**")).toEqual([
      { text: "Welcome to ", keep: false },
      { text: "Acme Store", keep: true },
      { text: "!", keep: false },
    ]);
    expect(withoutMarkers("Willkommen, **Moin**!", "**")).toBe("Willkommen, Moin!");
    expect(withoutMarkers("**A** and **B**", "**")).toBe("A and B");
  });

  test("an unpaired marker is ordinary text; a text without markers is one segment", () => {
    expect(withoutMarkers("5 ** 2 is 25", "**")).toBe("5 ** 2 is 25");
    expect(withoutMarkers("**A** then 2 ** 3", "**")).toBe("A then 2 ** 3");
    expect(segments("plain", "**")).toEqual([{ text: "plain", keep: false }]);
  });

  test("another marker", () => {
    expect(withoutMarkers("Order ##SKU-12## shipped", "##")).toBe("Order SKU-12 shipped");
    expect(withoutMarkers("Order **x** shipped", "##")).toBe("Order **x** shipped");
  });

  test("only kept text, spaces or punctuation: nothing for the provider", () => {
    expect(needsTranslation(segments("**Acme**", "**"))).toBe(false);
    expect(needsTranslation(segments("**Acme** !", "**"))).toBe(false);
    expect(needsTranslation(segments("👍 123", "**"))).toBe(false);
    expect(needsTranslation(segments("**Acme** rocks", "**"))).toBe(true);
  });
});

describe("the provider's HTML", () => {
  test("escaped, kept parts in no-translate spans, line breaks as <br>", () => {
    expect(toMarkup(segments('Fish & "chips" <3\nat **Joe\'s**', "**"))).toBe(
      'Fish &amp; &quot;chips&quot; &lt;3<br>at <span translate="no" class="notranslate">Joe\'s</span>',
    );
  });

  test("back to text: the kept parts from the original (exact, whatever the provider did to them), breaks and entities decoded", () => {
    const parts = segments("Hello **Ünïcode & Co**\nbye", "**");
    const answer = 'Hallo <span translate="no" class="notranslate">Unicode &amp;amp; Co</span><br/>tschüss &#39;x&#39; &#x263A;';
    expect(fromMarkup(answer, parts)).toBe("Hallo Ünïcode & Co\ntschüss 'x' ☺");
  });

  test("a provider that dropped or added a span: what it returned is used", () => {
    const parts = segments("**A** and **B**", "**");
    expect(fromMarkup('<span translate="no">A</span> und B', parts)).toBe("A und B");
  });

  test("other tags a provider adds are dropped; unknown entities stay", () => {
    expect(fromMarkup("<p>Hallo</p> &bogus; &#0;", segments("Hello", "**"))).toBe("Hallo &bogus; &#0;");
    expect(decodeHtml("&lt;b&gt; &AMP; &nbsp;")).toBe("<b> & \u00a0");
  });
});
