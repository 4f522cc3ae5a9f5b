// The live log page: connect over Socket.IO (WebSocket or long-polling) or SSE,
// show every line exactly once, and keep the page responsive at any rate.
"use strict";

(function () {
  const MAX_LINES = 5000;          // lines kept in the page; older ones are dropped
  const NEAR_BOTTOM_PX = 40;       // closer than this to the bottom counts as "following"
  const PING_TIMEOUT_MS = 5000;

  const root = document.getElementById("viewer");
  const deploymentId = root.dataset.deploymentId;
  const eventsUrl = root.dataset.eventsUrl;
  const token = root.dataset.token || null;
  const $ = (id) => document.getElementById(id);
  const ui = {
    status: $("status"), note: $("status-note"), error: $("error"),
    connect: $("connect"), disconnect: $("disconnect"), ping: $("ping"), clear: $("clear"),
    transport: $("transport"), filter: $("filter"),
    count: $("message-count"), duration: $("duration"), rtt: $("rtt"), lastLine: $("last-line"),
    log: $("log"), newLines: $("new-lines"),
  };

  let socket = null;        // Socket.IO connection, when that transport is chosen
  let source = null;        // EventSource, when SSE is chosen
  let lastLine = 0;         // highest line number shown: resume after it, never repeat it
  let messageCount = 0;
  let connectedAt = null;
  let pending = [];         // lines received but not yet rendered
  let frameRequested = false;
  let unseen = 0;           // lines added while the reader was scrolled up
  let matcher = null;       // the filter, or null for "show everything"

  // -- status -----------------------------------------------------------------

  function setStatus(state, note) {
    const text = { connected: "Connected", reconnecting: "Disconnected", disconnected: "Disconnected" };
    ui.status.textContent = text[state];
    ui.status.className = "status " + state;
    ui.note.textContent = note || "";
    ui.connect.disabled = state === "connected";
    ui.disconnect.disabled = state === "disconnected";
    ui.ping.disabled = state !== "connected";
    if (state === "connected") {
      if (connectedAt === null) connectedAt = Date.now();
    } else {
      connectedAt = null;
    }
    renderDuration();
  }

  function showError(message) {
    ui.error.textContent = message;
    ui.error.hidden = !message;
  }

  function renderDuration() {
    if (connectedAt === null) { ui.duration.textContent = "–"; return; }
    const s = Math.floor((Date.now() - connectedAt) / 1000);
    ui.duration.textContent = s < 60 ? `${s} s` : `${Math.floor(s / 60)} min ${s % 60} s`;
  }
  // One timer for the page's whole life: reconnects never add another.
  setInterval(renderDuration, 1000);

  // -- receiving lines --------------------------------------------------------

  function receive(lines) {
    for (const item of lines) {
      messageCount += 1;
      if (item.line <= lastLine) continue;   // already shown: a resend after a reconnect
      lastLine = item.line;
      pending.push(item);
    }
    if (pending.length > MAX_LINES) pending = pending.slice(-MAX_LINES);
    if (!frameRequested) {
      frameRequested = true;
      requestAnimationFrame(render);
    }
  }

  function restartNumbering(reason) {
    // The file was truncated or rotated: its numbering starts again at 1.
    lastLine = 0;
    addMarker(`— log ${reason}: numbering restarts —`);
  }

  function addMarker(text) {
    pending.push({ line: null, message: text, marker: true });
    if (!frameRequested) { frameRequested = true; requestAnimationFrame(render); }
  }

  // -- rendering, at most once per animation frame ----------------------------

  const LEVEL = /\b(ERROR|WARN(?:ING)?|INFO|DEBUG)\b/;
  const STAMP = /^(\d{4}-\d\d-\d\dT[\d:.]+Z?)\s+/;

  function lineElement(item) {
    const li = document.createElement("li");
    if (item.marker) {
      li.className = "marker";
      li.textContent = item.message;
      return li;
    }
    li.dataset.line = item.line;
    let text = item.message;
    const stamp = STAMP.exec(text);
    if (stamp) {
      const time = document.createElement("span");
      time.className = "time";
      time.textContent = stamp[1];
      li.append(time, " ");
      text = text.slice(stamp[0].length);
    }
    const level = LEVEL.exec(text);
    if (level) li.className = "level-" + level[1].toLowerCase().replace("warning", "warn");
    // Log text is text: never parsed as HTML.
    li.append(document.createTextNode(text));
    if (matcher && !matches(li)) li.hidden = true;
    return li;
  }

  function isNearBottom() {
    return ui.log.scrollHeight - ui.log.scrollTop - ui.log.clientHeight < NEAR_BOTTOM_PX;
  }

  function render() {
    frameRequested = false;
    if (!pending.length) return;
    const following = isNearBottom();
    const fragment = document.createDocumentFragment();
    for (const item of pending) fragment.append(lineElement(item));
    const added = pending.length;
    pending = [];
    ui.log.append(fragment);
    let excess = ui.log.childElementCount - MAX_LINES;
    while (excess-- > 0) ui.log.firstElementChild.remove();
    ui.count.textContent = messageCount;
    ui.lastLine.textContent = lastLine || "–";
    if (following) {
      ui.log.scrollTop = ui.log.scrollHeight;
    } else {
      unseen += added;
      ui.newLines.textContent = `${unseen} new line${unseen === 1 ? "" : "s"} ↓`;
      ui.newLines.hidden = false;
    }
  }

  ui.log.addEventListener("scroll", () => {
    if (isNearBottom()) { unseen = 0; ui.newLines.hidden = true; }
  });
  ui.newLines.addEventListener("click", () => {
    ui.log.scrollTop = ui.log.scrollHeight;
    unseen = 0;
    ui.newLines.hidden = true;
  });

  // -- filtering ----------------------------------------------------------------

  function compileFilter(text) {
    if (!text) return null;
    const regex = /^\/(.+)\/$/.exec(text);
    if (regex) {
      try { return new RegExp(regex[1], "i"); }
      catch (e) { return { test: () => false, invalid: e.message }; }
    }
    const needle = text.toLowerCase();
    return { test: (s) => s.toLowerCase().includes(needle) };
  }

  function matches(li) {
    return li.classList.contains("marker") || matcher.test(li.textContent);
  }

  ui.filter.addEventListener("input", () => {
    matcher = compileFilter(ui.filter.value.trim());
    ui.filter.classList.toggle("invalid", Boolean(matcher && matcher.invalid));
    for (const li of ui.log.children) li.hidden = Boolean(matcher) && !matches(li);
  });

  // -- Socket.IO ------------------------------------------------------------

  function connectSocketIO(transport) {
    socket = io({ transports: [transport], auth: token ? { token } : undefined });
    socket.on("connect", () => {
      setStatus("connected");
      showError("");
      // On every (re)connect: resume after the last line shown.
      const request = { deployment_id: deploymentId, batch: true };
      if (lastLine > 0) request.since = lastLine;
      socket.emit("start_streaming", request);
    });
    socket.on("log_batch", (batch) => receive(batch.lines));
    socket.on("new_log", (line) => receive([line]));
    socket.on("status", (status) => {
      if (status.type === "streaming_started" && lastLine > 0 && status.first_line <= lastLine) {
        restartNumbering("replaced while you were away");
      } else if (["truncated", "rotated", "deleted"].includes(status.type)) {
        restartNumbering(status.type);
      } else if (status.type === "lagging") {
        addMarker(`— ${status.skipped} lines skipped: this tab fell behind —`);
      }
    });
    socket.on("stream_error", (error) => showError(error.message));
    socket.on("disconnect", (reason) => {
      if (reason === "io client disconnect") setStatus("disconnected");
      else setStatus("reconnecting", "reconnecting automatically…");
    });
    socket.on("connect_error", (error) => {
      if (!socket.active) { setStatus("disconnected"); showError(error.message); }
      else setStatus("reconnecting", "server unreachable, retrying…");
    });
  }

  // -- Server-Sent Events -------------------------------------------------------

  function connectSSE() {
    const params = new URLSearchParams();
    if (lastLine > 0) params.set("since", lastLine);
    if (token) params.set("token", token);
    source = new EventSource(eventsUrl + (params.size ? "?" + params : ""));
    source.onopen = () => { setStatus("connected"); showError(""); };
    source.onmessage = (event) => receive([JSON.parse(event.data)]);
    source.addEventListener("status", (event) => {
      const status = JSON.parse(event.data);
      if (["truncated", "rotated", "deleted"].includes(status.type)) restartNumbering(status.type);
    });
    source.addEventListener("stream_error", (event) => showError(JSON.parse(event.data).message));
    source.onerror = () => {
      // EventSource reconnects by itself and sends Last-Event-ID.
      if (source.readyState === EventSource.CLOSED) setStatus("disconnected");
      else setStatus("reconnecting", "reconnecting automatically…");
    };
  }

  // -- controls -----------------------------------------------------------------

  function connect() {
    disconnect();
    setStatus("reconnecting", "connecting…");
    if (ui.transport.value === "sse") connectSSE();
    else connectSocketIO(ui.transport.value);
  }

  function disconnect() {
    if (socket) { socket.removeAllListeners(); socket.disconnect(); socket = null; }
    if (source) { source.close(); source = null; }
    setStatus("disconnected");
  }

  function ping() {
    const started = performance.now();
    if (socket) {
      socket.timeout(PING_TIMEOUT_MS).emit("ping", { sent_at: Date.now() }, (err) => {
        ui.rtt.textContent = err ? "timed out" : `${(performance.now() - started).toFixed(1)} ms`;
      });
    } else {
      // SSE is one-way: measure a round trip with a plain HTTP request instead.
      fetch("/healthz", { cache: "no-store" }).then(() => {
        ui.rtt.textContent = `${(performance.now() - started).toFixed(1)} ms (HTTP)`;
      }, () => { ui.rtt.textContent = "failed"; });
    }
  }

  function clear() {
    // lastLine is kept, so cleared lines are not sent again.
    ui.log.replaceChildren();
    pending = [];
    messageCount = 0;
    unseen = 0;
    ui.newLines.hidden = true;
    ui.count.textContent = "0";
  }

  ui.connect.addEventListener("click", connect);
  ui.disconnect.addEventListener("click", disconnect);
  ui.ping.addEventListener("click", ping);
  ui.clear.addEventListener("click", clear);
  ui.transport.addEventListener("change", connect);

  // Expose a little state for tests and curious readers.
  window.logstreamViewer = {
    get lastLine() { return lastLine; },
    get messageCount() { return messageCount; },
    get socket() { return socket; },
  };

  connect();
})();
