"use strict";
// The simulator's chat page: each simulated user is a pane that draws what Messenger would show
// (typing, text, quick replies, button templates, carousels, media, the handover state) from the
// server-sent events of /simulator/api/events, and acts through /simulator/api (src/simulator/routes.ts).
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
  const response = await fetch(
    `/simulator/api/${path}`,
    body === undefined ? {} : { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(body) },
  ).catch(() => {
    throw new Error("the server did not answer: is messenger-endpoint still running? Start it again, then retry");
  });
  const data = await response.json().catch(() => ({}));
  if (!response.ok) throw new Error(data.message || response.statusText);
  return data;
};
/** Only http(s) links are followed or shown (a flow's raw output could carry anything). */
const safeUrl = (url) => (typeof url === "string" && /^https?:[/][/]/i.test(url) ? url : null);
const NAMES = ["Amelie Laurent", "Jonas Weber", "Priya Shah", "Mateo Rossi", "Yuki Tanaka", "Sara Lind"];
let setup = { endpoints: [], users: [] };
const open = new Map();

function endpoint() {
  return setup.endpoints.find((e) => e.id === $("#endpoint").value);
}

function fillPages() {
  const e = endpoint();
  $("#page").replaceChildren(...(e ? e.pages : []).map((p) => make("option", { value: p.id, text: `${p.name} (${p.id})` })));
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
  $("#users").replaceChildren(
    make("option", { value: "", text: "a user…" }),
    ...setup.users.map((u) => make("option", { value: u.user_id, text: `${u.name} (${u.endpoint_id})` })),
  );
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

/** A pane for the user; `fresh`: just made up, so Messenger would show Get Started. */
function openPane(user, fresh) {
  if (open.has(user.user_id)) return;
  $("#empty")?.remove();
  const e = setup.endpoints.find((x) => x.id === user.endpoint_id) || { menu: [], get_started: null };
  const ref = { endpoint_id: user.endpoint_id, page_id: user.page_id, user_id: user.user_id };
  const log = make("div", { class: "log", "data-testid": "log" });
  const quick = make("div", { class: "quick", "data-testid": "quick-replies" });
  const badge = make("span", { class: "thread", "data-testid": "thread", text: "bot" });
  const done = make("button", {
    class: "done",
    "data-testid": "mark-done",
    text: "Mark done",
    title: "A person marks the conversation Done in the Page Inbox",
    onclick: () => api("done", ref),
  });
  const input = make("input", { placeholder: "Aa", "data-testid": "composer", autocomplete: "off" });
  const menu = make("div", { class: "menu", "data-testid": "menu" });
  for (const item of e.menu || []) {
    menu.append(
      make("button", {
        text: item.title,
        onclick: () => {
          menu.classList.remove("open");
          if (item.type === "web_url") {
            if (safeUrl(item.url)) window.open(safeUrl(item.url), "_blank", "noopener");
          } else tap(item);
        },
      }),
    );
  }
  const pane = make(
    "section",
    { class: "pane", "data-testid": "pane", "data-user": user.user_id, "data-thread": "bot" },
    make(
      "div",
      { class: "pane-head" },
      make("span", { class: "who", text: user.name }, make("span", { class: "psid", text: `PSID ${user.user_id} · Page ${user.page_id}` })),
      badge,
      done,
    ),
    log,
    quick,
    make(
      "div",
      { class: "composer" },
      (e.menu || []).length
        ? make("button", { class: "menu-button", title: "Menu", "data-testid": "menu-button", text: "\u2630", onclick: () => menu.classList.toggle("open") })
        : null,
      menu,
      input,
      make("button", { class: "primary", "data-testid": "send", text: "Send", onclick: () => send() }),
    ),
  );
  input.addEventListener("keydown", (ev) => {
    if (ev.key === "Enter") send();
  });
  $("#panes").append(pane);
  if (e.greeting) log.append(make("div", { class: "note", text: e.greeting }));
  let start = null;
  if (e.get_started && fresh) {
    start = make("button", {
      class: "primary start",
      "data-testid": "get-started",
      text: "Get Started",
      onclick: () => tap({ title: "Get Started", payload: e.get_started.payload }),
    });
    log.append(start);
  }
  let thread = null;
  let typing = null;
  const scroll = () => {
    log.scrollTop = log.scrollHeight;
  };
  const stopTyping = () => {
    typing?.remove();
    typing = null;
  };
  /** The user's own bubble; `action` (what was sent) lets a failed one be sent again. */
  const mine = (text, action) => {
    start?.remove();
    start = null;
    const row = make("div", { class: "row me" }, make("div", { class: "bubble", "data-testid": "mine", text }));
    if (action) row.action = action;
    log.append(row);
    scroll();
    return row;
  };
  /** Messenger's "not delivered" mark: a red (!) beside the bubble, the reason, and Retry. */
  const failed = new Set();
  function markFailed(row, reason) {
    row.querySelector(".failed")?.remove();
    row.dataset.status = "failed";
    failed.add(row);
    row.append(
      make(
        "div",
        { class: "failed", "data-testid": "not-delivered", role: "alert" },
        make("span", { class: "bang", text: "!", "aria-hidden": "true" }),
        make("span", { class: "why", text: `Not delivered: ${reason}` }),
        row.action ? make("button", { type: "button", "data-testid": "retry", text: "Retry", onclick: () => deliver(row) }) : null,
      ),
    );
    scroll();
  }
  async function deliver(row) {
    row.querySelector(".failed")?.remove();
    delete row.dataset.status;
    failed.delete(row);
    try {
      await api("send", { ...ref, ...row.action });
    } catch (error) {
      markFailed(row, error.message);
    }
  }
  async function send() {
    const text = input.value.trim();
    if (!text) return;
    input.value = "";
    quick.replaceChildren();
    await deliver(mine(text, { text }));
  }
  async function tap(button) {
    if (!button) return;
    quick.replaceChildren();
    await deliver(mine(button.title, { postback: { title: button.title, payload: button.payload } }));
  }
  async function quickReply(q) {
    quick.replaceChildren();
    await deliver(mine(q.title, { quick_reply: { title: q.title, payload: q.payload } }));
  }
  const buttonsOf = (buttons) =>
    (buttons || []).map((b) =>
      make("button", {
        text: b.title,
        "data-testid": "template-button",
        onclick: () =>
          b.type === "web_url"
            ? safeUrl(b.url) && window.open(safeUrl(b.url), "_blank", "noopener")
            : b.type === "phone_number"
              ? alert(`Call ${b.payload}`)
              : tap(b),
      }),
    );
  function render(message) {
    const a = message.attachment;
    if (!a) return make("div", { class: "bubble", "data-testid": "reply", text: message.text ?? "" });
    const p = a.payload || {};
    if (a.type === "template" && p.template_type === "button")
      return make("div", { class: "template", "data-testid": "button-template" }, make("div", { class: "ttext", text: p.text }), ...buttonsOf(p.buttons));
    if (a.type === "template" && p.template_type === "generic") {
      return make(
        "div",
        { class: "carousel", "data-testid": "carousel" },
        ...(p.elements || []).map((el) =>
          make(
            "div",
            { class: "card", "data-testid": "card" },
            safeUrl(el.image_url) ? make("img", { src: safeUrl(el.image_url), alt: "" }) : null,
            make("div", { class: "title", text: el.title }),
            el.subtitle ? make("div", { class: "subtitle", text: el.subtitle }) : null,
            ...buttonsOf(el.buttons),
          ),
        ),
      );
    }
    const url = safeUrl(p.url);
    if (a.type === "image" && url) return make("div", { class: "media" }, make("img", { src: url, alt: "image", "data-testid": "image" }));
    if (a.type === "video" && url) return make("div", { class: "media" }, make("video", { src: url, controls: "" }));
    if (a.type === "audio" && url) return make("div", { class: "media" }, make("audio", { src: url, controls: "" }));
    return make(
      "div",
      { class: "bubble" },
      url
        ? make("a", { href: url, target: "_blank", rel: "noopener", text: `${a.type}: ${url}` })
        : make("span", { text: a.type + (p.attachment_id ? ` (attachment ${p.attachment_id})` : "") }),
    );
  }
  const events = new EventSource(`/simulator/api/events?${new URLSearchParams(ref)}`);
  events.onmessage = (ev) => {
    const event = JSON.parse(ev.data);
    (window.simulatorEvents ||= []).push({ at: Date.now(), user: user.user_id, event }); // for tests and the curious
    if (event.type === "thread") {
      pane.dataset.thread = event.state;
      badge.className = `thread ${event.state}`;
      badge.textContent = event.state === "handover" ? "with a person (Page Inbox)" : event.state === "paused" ? "paused: a person answered" : "bot";
      // A note for each change (the first event only tells the state the thread is in).
      if (thread !== null && thread !== event.state)
        log.append(
          make("div", {
            class: "note",
            "data-testid": "thread-note",
            text:
              event.state === "bot"
                ? "The bot has the conversation again."
                : event.state === "handover"
                  ? "The conversation is with a person in the Page Inbox."
                  : "A person answered: the bot is paused.",
          }),
        );
      thread = event.state;
    } else if (event.type === "action" && event.action === "typing_on") {
      if (!typing) {
        typing = make("div", { class: "row typing", "data-testid": "typing" }, make("div", { class: "bubble", text: "\u2022\u2022\u2022" }));
        log.append(typing);
        window.typingShown = (window.typingShown || 0) + 1; // for tests: how often the indicator was drawn
      }
    } else if (event.type === "action" && event.action === "typing_off") {
      stopTyping();
    } else if (event.type === "error") {
      stopTyping();
      // The webhook did not take the user's last message: marked on it (Retry sends it again).
      const last = [...log.querySelectorAll(".row.me")].filter((r) => r.dataset.status !== "failed").at(-1);
      if (last) markFailed(last, event.message);
      else log.append(make("div", { class: "note", "data-testid": "error", text: `Not delivered: ${event.message}` }));
    } else if (event.type === "history") {
      showHistory(event);
    } else if (event.type === "message") {
      stopTyping();
      log.append(make("div", { class: "row" }, render(event.message)));
      showQuickReplies(event.message);
    }
    scroll();
  };
  /** The conversation so far (sent first on every connection, again after a reconnect): the log drawn anew. */
  function showHistory(history) {
    stopTyping();
    log.replaceChildren();
    if (e.greeting) log.append(make("div", { class: "note", text: e.greeting }));
    if (!history.kept && !fresh)
      log.append(
        make("div", {
          class: "note",
          "data-testid": "no-history",
          text: "This endpoint keeps no transcripts (collect_conversations = false): earlier messages are not shown.",
        }),
      );
    if (history.error) log.append(make("div", { class: "note", "data-testid": "error", text: history.error }));
    let lastOut = null;
    for (const line of history.lines) {
      lastOut = null;
      if (line.direction === "out") {
        const message = line.data && typeof line.data === "object" ? line.data : { text: line.text ?? "" };
        log.append(make("div", { class: "row", "data-history": "" }, render(message)));
        lastOut = message;
      } else if (line.source === "echo") {
        // A person answered in the Page Inbox: a message of the Page.
        log.append(make("div", { class: "row", "data-history": "" }, render({ text: line.text ?? "" })));
      } else if (line.source === "user" || line.source === "standby") {
        if (line.text)
          log.append(make("div", { class: "row me", "data-history": "" }, make("div", { class: "bubble", "data-testid": "mine", text: line.text })));
      }
    }
    if (history.lines.length > 0) {
      start?.remove();
      start = null;
    } else if (start) log.append(start);
    for (const row of failed) log.append(row);
    if (lastOut) showQuickReplies(lastOut);
  }
  function showQuickReplies(message) {
    const qr = message.quick_replies || [];
    quick.replaceChildren(
      ...qr.map((q) =>
        q.content_type === "text"
          ? make("button", { text: q.title, "data-testid": "quick-reply", onclick: () => quickReply(q) })
          : // Messenger fills these from the user's account: the simulator makes one up.
            make("button", {
              text: q.content_type === "user_email" ? "Email" : "Phone",
              onclick: () => {
                const value = q.content_type === "user_email" ? `${user.name.split(" ")[0].toLowerCase()}@example.com` : "+15555550100";
                quickReply({ title: value, payload: value });
              },
            }),
      ),
    );
  }
  const offline = make("div", { class: "offline", "data-testid": "offline", role: "status", hidden: "" });
  pane.insertBefore(offline, log);
  events.onopen = () => {
    offline.hidden = true;
  };
  // EventSource tries again by itself; the history it gets then draws the log anew.
  events.onerror = () => {
    offline.textContent = "Not connected to the server: trying again… (is messenger-endpoint running?)";
    offline.hidden = false;
  };
  open.set(user.user_id, pane);
}

load().catch((error) => $("#panes").replaceChildren(make("p", { class: "empty", text: `Could not load the simulator: ${error.message}` })));
