/* A bot's admin page (templates/admin/bots/bot/change_form.html): no library, no CDN.
 *
 * - Polls the page's JSON (BotAdmin.live_view) and updates every [data-live] field.
 * - Asks before Start, Stop and Restart (without JavaScript the server asks on a page).
 * - The test chat posts to the API's chat endpoint with the admin's session and CSRF
 *   token, reads its server-sent events as they arrive and shows the time to the first
 *   token and the total latency.
 */
(function () {
  "use strict";

  const panel = document.getElementById("bot-live");
  if (!panel) {
    return;
  }
  const DATE_FIELDS = new Set(["started_at", "last_heartbeat", "next_start_at"]);
  const csrfInput = document.querySelector("input[name=csrfmiddlewaretoken]");
  const csrfToken = csrfInput ? csrfInput.value : "";
  let chatReady = false;

  function shown(key, value) {
    if (value === null || value === undefined || value === "") {
      return "—";
    }
    if (DATE_FIELDS.has(key)) {
      return new Date(value).toISOString().replace("T", " ").slice(0, 19);
    }
    return String(value);
  }

  function clock() {
    return new Date().toISOString().slice(11, 19) + " UTC";
  }

  // --- live status ---------------------------------------------------------------------
  const problem = document.getElementById("bot-live-problem");
  const updated = document.getElementById("bot-live-updated");

  function render(data) {
    panel.querySelectorAll("[data-live]").forEach(function (element) {
      element.textContent = shown(element.dataset.live, data[element.dataset.live]);
    });
    document.getElementById("bot-status").dataset.status = data.status;
    chatReady = Boolean(data.chat_ready);
    updateChatButton();
  }

  function say(text) {
    problem.hidden = !text;
    problem.textContent = text || "";
  }

  async function poll() {
    if (document.visibilityState === "hidden") {
      return;
    }
    try {
      const response = await fetch(panel.dataset.liveUrl, {
        credentials: "same-origin",
        headers: { Accept: "application/json" },
      });
      const type = response.headers.get("Content-Type") || "";
      if (response.redirected || !type.startsWith("application/json")) {
        say("Signed out: sign in again to see live updates.");
        return;
      }
      const data = await response.json();
      if (!response.ok) {
        say("No live updates: " + (data.detail || response.status));
        return;
      }
      render(data);
      say("");
      updated.textContent = "updated " + clock();
    } catch (error) {
      say("No live updates (" + error + "); retrying.");
    }
  }

  function schedule() {
    window.setTimeout(function () {
      poll().finally(schedule);
    }, Number(panel.dataset.pollMs) || 2000);
  }

  // --- Start, Stop, Restart --------------------------------------------------------------
  document.querySelectorAll("#bot-operate form").forEach(function (form) {
    form.addEventListener("submit", function (event) {
      if (!window.confirm(form.dataset.confirm)) {
        event.preventDefault();
        return;
      }
      const confirmed = document.createElement("input");
      confirmed.type = "hidden";
      confirmed.name = "confirm";
      confirmed.value = "yes";
      form.appendChild(confirmed);
    });
  });

  // --- test chat ---------------------------------------------------------------------
  const input = document.getElementById("bot-chat-input");
  const sendButton = document.getElementById("bot-chat-send");
  const reply = document.getElementById("bot-chat-reply");
  const timing = document.getElementById("bot-chat-timing");
  let conversation = null;
  let sending = false;

  function updateChatButton() {
    if (!sendButton) {
      return;
    }
    sendButton.disabled = sending || !chatReady;
    sendButton.title = chatReady ? "" : "The bot must be running to chat.";
  }

  function detailOf(data) {
    const detail = data.detail === undefined ? "" : data.detail;
    return typeof detail === "string" ? detail : JSON.stringify(detail);
  }

  function fail(text) {
    reply.dataset.state = "error";
    reply.textContent = text;
  }

  function parseEvent(raw) {
    let name = "message";
    const data = [];
    raw.split("\n").forEach(function (line) {
      if (line.startsWith("event:")) {
        name = line.slice(6).trim();
      } else if (line.startsWith("data:")) {
        data.push(line.slice(5).replace(/^ /, ""));
      }
    });
    return { name: name, data: data.length ? JSON.parse(data.join("\n")) : {} };
  }

  async function send() {
    const message = input.value.trim();
    if (!message) {
      fail("Type a message first.");
      return;
    }
    sending = true;
    updateChatButton();
    reply.textContent = "";
    reply.dataset.state = "waiting";
    timing.textContent = "waiting for the first token…";
    const started = performance.now();
    let firstToken = null;
    const ms = function (from) {
      return Math.round(performance.now() - from) + " ms";
    };
    const body = { message: message, stream: true };
    if (conversation) {
      body.conversation = conversation;
    }
    function handle(event) {
      if (event.name === "chunk") {
        if (firstToken === null) {
          firstToken = ms(started);
          reply.dataset.state = "streaming";
        }
        reply.textContent += event.data.content;
        timing.textContent = "first token " + firstToken + " · streaming…";
      } else if (event.name === "done") {
        conversation = event.data.conversation || conversation;
        if (!reply.textContent) {
          reply.textContent = event.data.reply || "";
        }
        reply.dataset.state = "done";
        timing.textContent =
          "first token " + (firstToken || "—") + " · total " + ms(started) +
          " (the bot: " + event.data.latency_ms + " ms, " + event.data.completion_tokens + " tokens)";
      } else if (event.name === "error") {
        fail((event.data.status || "") + " " + (event.data.error || "error") + ": " + detailOf(event.data));
        timing.textContent = "failed after " + ms(started);
      }
    }
    try {
      const response = await fetch(panel.dataset.chatUrl, {
        method: "POST",
        credentials: "same-origin",
        headers: {
          "Content-Type": "application/json",
          Accept: "text/event-stream",
          "X-CSRFToken": csrfToken,
        },
        body: JSON.stringify(body),
      });
      const type = response.headers.get("Content-Type") || "";
      if (!response.ok || !type.startsWith("text/event-stream")) {
        const data = await response.json().catch(function () {
          return {};
        });
        fail(response.status + " " + (data.error || response.statusText) + ": " + detailOf(data));
        timing.textContent = "failed after " + ms(started);
        return;
      }
      const reader = response.body.getReader();
      const decoder = new TextDecoder();
      let buffer = "";
      for (;;) {
        const part = await reader.read();
        if (part.done) {
          break;
        }
        buffer = (buffer + decoder.decode(part.value, { stream: true })).replace(/\r\n/g, "\n");
        let cut = buffer.indexOf("\n\n");
        while (cut >= 0) {
          handle(parseEvent(buffer.slice(0, cut)));
          buffer = buffer.slice(cut + 2);
          cut = buffer.indexOf("\n\n");
        }
      }
      if (reply.dataset.state === "waiting" || reply.dataset.state === "streaming") {
        fail("The stream ended without its final event.");
      }
    } catch (error) {
      fail("The chat failed: " + error);
    } finally {
      sending = false;
      updateChatButton();
    }
  }

  if (sendButton) {
    sendButton.addEventListener("click", send);
    input.addEventListener("keydown", function (event) {
      if (event.key === "Enter" && (event.ctrlKey || event.metaKey)) {
        event.preventDefault();
        send();
      }
    });
  }

  render(JSON.parse(document.getElementById("bot-live-initial").textContent));
  schedule();
})();
