/**
 * The simulator's chat page: one HTML document with its style and script inline, compiled into
 * the binary (no CDN, nothing fetched but this server's /simulator/api). It draws what Messenger
 * would show for each simulated user — typing indicator, text, quick replies, button templates,
 * carousels, media — and the handover state, side by side for several users.
 */
export const SIMULATOR_PAGE = /* html */ `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>messenger-endpoint simulator</title>
<link rel="icon" href="data:,">
<style>
  :root { --blue: #0866ff; --grey: #f0f0f0; --text: #050505; --muted: #65676b; }
  * { box-sizing: border-box; }
  body { margin: 0; font: 15px/1.35 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: var(--text); background: #e9ebee; }
  header { display: flex; gap: 12px; align-items: center; flex-wrap: wrap; padding: 10px 16px; background: #fff; border-bottom: 1px solid #ddd; }
  header h1 { font-size: 17px; margin: 0 12px 0 0; }
  header label { color: var(--muted); font-size: 13px; }
  select, input, button { font: inherit; }
  header input { padding: 5px 8px; border: 1px solid #ccc; border-radius: 6px; width: 140px; }
  button { cursor: pointer; }
  .primary { background: var(--blue); color: #fff; border: 0; border-radius: 6px; padding: 6px 12px; }
  #panes { display: flex; gap: 14px; padding: 14px; overflow-x: auto; align-items: flex-start; }
  .pane { width: 380px; flex: 0 0 auto; height: calc(100vh - 90px); min-height: 420px; background: #fff; border-radius: 12px; display: flex; flex-direction: column; box-shadow: 0 1px 3px rgba(0,0,0,.15); }
  .pane-head { padding: 10px 12px; border-bottom: 1px solid #eee; display: flex; align-items: center; gap: 8px; }
  .pane-head .who { font-weight: 600; flex: 1; }
  .pane-head .psid { display: block; font-weight: 400; color: var(--muted); font-size: 12px; }
  .thread { font-size: 12px; border-radius: 10px; padding: 2px 8px; background: #e7f3ff; color: #0a5bd3; }
  .thread.handover { background: #fff3cd; color: #7a5b00; }
  .thread.paused { background: #fde2e1; color: #9b1c1c; }
  .done { display: none; font-size: 12px; border: 1px solid #ccc; background: #fff; border-radius: 6px; padding: 2px 6px; }
  .pane[data-thread="handover"] .done { display: inline-block; }
  .log { flex: 1; overflow-y: auto; padding: 12px; display: flex; flex-direction: column; gap: 6px; }
  .row { display: flex; }
  .row.me { justify-content: flex-end; }
  .bubble { max-width: 78%; padding: 8px 12px; border-radius: 18px; background: var(--grey); white-space: pre-wrap; word-wrap: break-word; }
  .row.me .bubble { background: var(--blue); color: #fff; }
  .template { max-width: 78%; border: 1px solid #ddd; border-radius: 18px; overflow: hidden; background: #fff; }
  .template .ttext { padding: 8px 12px; background: var(--grey); white-space: pre-wrap; }
  .template button, .card button { display: block; width: 100%; border: 0; border-top: 1px solid #ddd; background: #fff; color: var(--blue); padding: 8px; font-weight: 600; }
  .carousel { display: flex; gap: 8px; overflow-x: auto; max-width: 100%; padding-bottom: 4px; }
  .card { flex: 0 0 220px; border: 1px solid #ddd; border-radius: 14px; overflow: hidden; background: #fff; }
  .card img { width: 100%; height: 110px; object-fit: cover; display: block; background: #ddd; }
  .card .title { font-weight: 600; padding: 8px 10px 0; }
  .card .subtitle { color: var(--muted); font-size: 13px; padding: 2px 10px 8px; }
  .media img, .media video { max-width: 240px; border-radius: 14px; display: block; }
  .typing .bubble { color: var(--muted); letter-spacing: 2px; }
  .quick { display: flex; flex-wrap: wrap; gap: 6px; justify-content: flex-end; padding: 4px 12px 8px; }
  .quick button { border: 1px solid var(--blue); color: var(--blue); background: #fff; border-radius: 16px; padding: 4px 12px; }
  .note { align-self: center; color: var(--muted); font-size: 12px; }
  .composer { display: flex; gap: 6px; padding: 8px; border-top: 1px solid #eee; position: relative; }
  .composer input { flex: 1; border: 0; background: var(--grey); border-radius: 18px; padding: 8px 12px; }
  .composer .menu-button { border: 0; background: none; font-size: 20px; color: var(--blue); }
  .menu { position: absolute; bottom: 48px; left: 8px; background: #fff; border: 1px solid #ddd; border-radius: 10px; box-shadow: 0 2px 8px rgba(0,0,0,.15); display: none; min-width: 200px; }
  .menu.open { display: block; }
  .menu button { display: block; width: 100%; text-align: left; border: 0; background: #fff; padding: 8px 12px; }
  .menu button:hover { background: var(--grey); }
  .start { align-self: center; margin-top: auto; }
  .empty { color: var(--muted); padding: 40px 16px; }
</style>
</head>
<body>
<header>
  <h1>Messenger simulator</h1>
  <label>Endpoint <select id="endpoint" data-testid="endpoint"></select></label>
  <label>Page <select id="page" data-testid="page"></select></label>
  <input id="name" data-testid="new-user-name" placeholder="Name of a new user" value="">
  <button class="primary" id="add" data-testid="add-user">Add user</button>
  <label>or open <select id="users" data-testid="users"></select></label>
</header>
<div id="panes"><p class="empty" id="empty">Add a user to start a conversation: each user is a pane, side by side.</p></div>
<script>
"use strict";
const $ = (sel, el = document) => el.querySelector(sel);
const make = (tag, props = {}, ...children) => {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(props)) {
    if (k === "class") el.className = v;
    else if (k === "text") el.textContent = v;
    else if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
    else el.setAttribute(k, v);
  }
  for (const child of children) if (child) el.append(child);
  return el;
};
const api = async (path, body) => {
  const response = await fetch("/simulator/api/" + path, body === undefined ? {} : { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(body) });
  const data = await response.json().catch(() => ({}));
  if (!response.ok) throw new Error(data.message || response.statusText);
  return data;
};
/** Only http(s) links are followed or shown (a flow's raw output could carry anything). */
const safeUrl = (url) => (typeof url === "string" && /^https?:[/][/]/i.test(url) ? url : null);
const NAMES = ["Amelie Laurent", "Jonas Weber", "Priya Shah", "Mateo Rossi", "Yuki Tanaka", "Sara Lind"];
let setup = { endpoints: [], users: [] };
const open = new Map();

function endpoint() { return setup.endpoints.find((e) => e.id === $("#endpoint").value); }

function fillPages() {
  const e = endpoint();
  $("#page").replaceChildren(...(e ? e.pages : []).map((p) => make("option", { value: p.id, text: p.name + " (" + p.id + ")" })));
}

async function load() {
  setup = await api("setup");
  $("#endpoint").replaceChildren(...setup.endpoints.map((e) => make("option", { value: e.id, text: e.id })));
  fillPages();
  $("#name").value = NAMES[setup.users.length % NAMES.length];
  fillUsers();
  for (const user of setup.users.slice(-3)) openPane(user, false);
}

function fillUsers() {
  $("#users").replaceChildren(make("option", { value: "", text: "a user…" }), ...setup.users.map((u) => make("option", { value: u.user_id, text: u.name + " (" + u.endpoint_id + ")" })));
}
$("#users").addEventListener("change", () => {
  const user = setup.users.find((u) => u.user_id === $("#users").value);
  if (user) openPane(user, false);
  $("#users").value = "";
});

$("#endpoint").addEventListener("change", fillPages);
$("#add").addEventListener("click", async () => {
  const name = $("#name").value.trim() || NAMES[open.size % NAMES.length];
  const user = await api("users", { endpoint_id: $("#endpoint").value, page_id: $("#page").value, name });
  setup.users.push(user);
  $("#name").value = NAMES[setup.users.length % NAMES.length];
  fillUsers();
  openPane(user, true);
});

/** A pane for the user; \`fresh\`: just made up, so Messenger would show Get Started. */
function openPane(user, fresh) {
  if (open.has(user.user_id)) return;
  $("#empty")?.remove();
  const e = setup.endpoints.find((x) => x.id === user.endpoint_id) || { menu: [], get_started: null };
  const ref = { endpoint_id: user.endpoint_id, page_id: user.page_id, user_id: user.user_id };
  const log = make("div", { class: "log", "data-testid": "log" });
  const quick = make("div", { class: "quick", "data-testid": "quick-replies" });
  const badge = make("span", { class: "thread", "data-testid": "thread", text: "bot" });
  const done = make("button", { class: "done", "data-testid": "mark-done", text: "Mark done", title: "A person marks the conversation Done in the Page Inbox", onclick: () => api("done", ref) });
  const input = make("input", { placeholder: "Aa", "data-testid": "composer", autocomplete: "off" });
  const menu = make("div", { class: "menu", "data-testid": "menu" });
  for (const item of e.menu || []) {
    menu.append(make("button", { text: item.title, onclick: () => { menu.classList.remove("open"); if (item.type === "web_url") { if (safeUrl(item.url)) window.open(safeUrl(item.url), "_blank", "noopener"); } else tap(item); } }));
  }
  const pane = make("section", { class: "pane", "data-testid": "pane", "data-user": user.user_id, "data-thread": "bot" },
    make("div", { class: "pane-head" },
      make("span", { class: "who", text: user.name }, make("span", { class: "psid", text: "PSID " + user.user_id + " · Page " + user.page_id })),
      badge, done),
    log, quick,
    make("div", { class: "composer" },
      (e.menu || []).length ? make("button", { class: "menu-button", title: "Menu", "data-testid": "menu-button", text: "\\u2630", onclick: () => menu.classList.toggle("open") }) : null,
      menu, input,
      make("button", { class: "primary", "data-testid": "send", text: "Send", onclick: () => send() })));
  input.addEventListener("keydown", (ev) => { if (ev.key === "Enter") send(); });
  $("#panes").append(pane);
  if (e.greeting) log.append(make("div", { class: "note", text: e.greeting }));
  let start = null;
  if (e.get_started && fresh) {
    start = make("button", { class: "primary start", "data-testid": "get-started", text: "Get Started", onclick: () => tap({ title: "Get Started", payload: e.get_started.payload }) });
    log.append(start);
  }
  let thread = null;
  let typing = null;
  const scroll = () => { log.scrollTop = log.scrollHeight; };
  const stopTyping = () => { typing?.remove(); typing = null; };
  const mine = (text) => { start?.remove(); start = null; log.append(make("div", { class: "row me" }, make("div", { class: "bubble", "data-testid": "mine", text }))); scroll(); };
  async function send() {
    const text = input.value.trim();
    if (!text) return;
    input.value = "";
    quick.replaceChildren();
    mine(text);
    await api("send", { ...ref, text });
  }
  async function tap(button) {
    if (!button) return;
    quick.replaceChildren();
    mine(button.title);
    await api("send", { ...ref, postback: { title: button.title, payload: button.payload } });
  }
  async function quickReply(q) {
    quick.replaceChildren();
    mine(q.title);
    await api("send", { ...ref, quick_reply: { title: q.title, payload: q.payload } });
  }
  const buttonsOf = (buttons) => (buttons || []).map((b) => make("button", { text: b.title, "data-testid": "template-button",
    onclick: () => b.type === "web_url" ? (safeUrl(b.url) && window.open(safeUrl(b.url), "_blank", "noopener")) : b.type === "phone_number" ? alert("Call " + b.payload) : tap(b) }));
  function render(message) {
    const a = message.attachment;
    if (!a) return make("div", { class: "bubble", "data-testid": "reply", text: message.text ?? "" });
    const p = a.payload || {};
    if (a.type === "template" && p.template_type === "button") return make("div", { class: "template", "data-testid": "button-template" }, make("div", { class: "ttext", text: p.text }), ...buttonsOf(p.buttons));
    if (a.type === "template" && p.template_type === "generic") {
      return make("div", { class: "carousel", "data-testid": "carousel" }, ...(p.elements || []).map((el) =>
        make("div", { class: "card", "data-testid": "card" }, safeUrl(el.image_url) ? make("img", { src: safeUrl(el.image_url), alt: "" }) : null,
          make("div", { class: "title", text: el.title }), el.subtitle ? make("div", { class: "subtitle", text: el.subtitle }) : null, ...buttonsOf(el.buttons))));
    }
    const url = safeUrl(p.url);
    if (a.type === "image" && url) return make("div", { class: "media" }, make("img", { src: url, alt: "image", "data-testid": "image" }));
    if (a.type === "video" && url) return make("div", { class: "media" }, make("video", { src: url, controls: "" }));
    if (a.type === "audio" && url) return make("div", { class: "media" }, make("audio", { src: url, controls: "" }));
    return make("div", { class: "bubble" }, url ? make("a", { href: url, target: "_blank", rel: "noopener", text: a.type + ": " + url }) : make("span", { text: a.type + (p.attachment_id ? " (attachment " + p.attachment_id + ")" : "") }));
  }
  const events = new EventSource("/simulator/api/events?" + new URLSearchParams(ref));
  events.onmessage = (ev) => {
    const event = JSON.parse(ev.data);
    (window.simulatorEvents ||= []).push({ at: Date.now(), user: user.user_id, event }); // for tests and the curious
    if (event.type === "thread") {
      pane.dataset.thread = event.state;
      badge.className = "thread " + event.state;
      badge.textContent = event.state === "handover" ? "with a person (Page Inbox)" : event.state === "paused" ? "paused: a person answered" : "bot";
      // A note for each change (the first event only tells the state the thread is in).
      if (thread !== null && thread !== event.state) log.append(make("div", { class: "note", "data-testid": "thread-note", text: event.state === "bot" ? "The bot has the conversation again." : event.state === "handover" ? "The conversation is with a person in the Page Inbox." : "A person answered: the bot is paused." }));
      thread = event.state;
    } else if (event.type === "action" && event.action === "typing_on") {
      if (!typing) {
        typing = make("div", { class: "row typing", "data-testid": "typing" }, make("div", { class: "bubble", text: "\\u2022\\u2022\\u2022" }));
        log.append(typing);
        window.typingShown = (window.typingShown || 0) + 1; // for tests: how often the indicator was drawn
      }
    } else if (event.type === "action" && event.action === "typing_off") {
      stopTyping();
    } else if (event.type === "error") {
      stopTyping();
      log.append(make("div", { class: "note", "data-testid": "error", text: "Not delivered: " + event.message }));
    } else if (event.type === "message") {
      stopTyping();
      log.append(make("div", { class: "row" }, render(event.message)));
      const qr = event.message.quick_replies || [];
      quick.replaceChildren(...qr.map((q) => q.content_type === "text"
        ? make("button", { text: q.title, "data-testid": "quick-reply", onclick: () => quickReply(q) })
        // Messenger fills these from the user's account: the simulator makes one up.
        : make("button", { text: q.content_type === "user_email" ? "Email" : "Phone", onclick: () => {
            const value = q.content_type === "user_email" ? user.name.split(" ")[0].toLowerCase() + "@example.com" : "+15555550100";
            quickReply({ title: value, payload: value });
          } })));
    }
    scroll();
  };
  open.set(user.user_id, pane);
}

load().catch((error) => $("#panes").replaceChildren(make("p", { class: "empty", text: "Could not load the simulator: " + error.message })));
</script>
</body>
</html>
`;
