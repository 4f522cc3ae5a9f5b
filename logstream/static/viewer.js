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
  const healthUrl = root.dataset.healthUrl;
  // The app's root as this page's address reaches it: behind a proxy that
  // serves the app at /proxy/PORT/ the root is there, not at "/".
  const rootUrl = new URL(root.dataset.rootUrl || "/", window.location.href);
  const $ = (id) => document.getElementById(id);
  const ui = {
    status: $("status"), note: $("status-note"), error: $("error"),
    connect: $("connect"), disconnect: $("disconnect"), ping: $("ping"), clear: $("clear"),
    transport: $("transport"), filter: $("filter"), filterInfo: $("filter-info"),
    count: $("message-count"), duration: $("duration"), rtt: $("rtt"), lastLine: $("last-line"),
    log: $("log"), newLines: $("new-lines"),
  };

  let socket = null;        // Socket.IO connection, when that transport is chosen
  let source = null;        // EventSource, when SSE is chosen
  let lastLine = 0;         // highest line number shown: resume after it, never repeat it
  let messageCount = 0;     // lines received since the last Clear, each counted once
  let connectedAt = null;
  let pending = [];         // lines received but not yet rendered
  let frameRequested = false;
  let unseen = 0;           // lines added while the reader was scrolled up
  let matcher = null;       // the filter, or null for "show everything"

  // -- status -----------------------------------------------------------------

  // "reconnecting" still reads Disconnected: the server is away, and the
  // note says that the page is trying again by itself.
  const STATUS_TEXT = { connected: "Connected", reconnecting: "Disconnected",
                        disconnected: "Disconnected" };

  function setStatus(state, note) {
    ui.status.textContent = STATUS_TEXT[state];
    ui.status.className = "status " + state;
    ui.status.dataset.state = state;
    ui.note.textContent = note || "";
    ui.connect.disabled = state === "connected";
    ui.disconnect.disabled = state === "disconnected";
    ui.ping.disabled = state !== "connected";
    if (state !== "connected") {
      connectedAt = null;
      delete root.dataset.streaming;
    }
    else if (connectedAt === null) connectedAt = Date.now();
    renderDuration();
  }

  function showError(message) {
    ui.error.textContent = message || "";
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

  function scheduleRender() {
    if (!frameRequested) {
      frameRequested = true;
      requestAnimationFrame(render);
    }
  }

  function receive(lines) {
    for (const item of lines) {
      if (item.line <= lastLine) continue;   // already shown: a resend after a reconnect
      lastLine = item.line;
      messageCount += 1;
      pending.push(item);
    }
    // Lines that would be dropped by the next render are never built at all.
    if (pending.length > MAX_LINES) pending = pending.slice(-MAX_LINES);
    scheduleRender();
  }

  function restartNumbering(reason) {
    // The file was truncated or replaced: its numbering starts again at 1.
    lastLine = 0;
    addMarker(`— log ${reason}: numbering restarts —`);
  }

  function addMarker(text) {
    pending.push({ line: null, message: text, marker: true });
    scheduleRender();
  }

  function onStatus(status) {
    // Marks the moment live lines are guaranteed to follow (tests wait for it).
    if (status.type === "streaming_started") root.dataset.streaming = "true";
    if (status.type === "streaming_started" && lastLine > 0 && status.first_line <= lastLine) {
      // We asked for lines after lastLine and got earlier ones: a new file.
      restartNumbering("replaced while the page was away");
    } else if (["truncated", "rotated", "deleted"].includes(status.type)) {
      restartNumbering(status.type);
    } else if (status.type === "lagging") {
      // The server stopped sending to this slow tab after status.last_line,
      // and every line up to it has arrived: ask for the rest from disk.
      // (Over SSE the stream ends and EventSource resumes by itself.)
      addMarker(`— this tab fell ${status.skipped} lines behind; catching up —`);
      if (socket) socket.emit("start_streaming", streamRequest());
    }
  }

  // -- rendering, at most once per animation frame ----------------------------

  const STAMP = /^(\d{4}-\d\d-\d\d[T ][\d:.,]+(?:Z|[+-]\d\d:?\d\d)?)(\s+)/;
  // A level word near the start, bare or bracketed: "INFO ...", "[ERROR] ...", "app - WARNING - ...".
  const LEVEL = /\b(ERROR|FATAL|CRITICAL|WARN(?:ING)?|INFO|DEBUG|TRACE)\b/;
  const LEVEL_WITHIN = 60;
  const LEVEL_CLASS = { WARNING: "warn", WARN: "warn", FATAL: "error", CRITICAL: "error" };

  function span(className, text) {
    const el = document.createElement("span");
    el.className = className;
    el.textContent = text;   // log text is text: never parsed as HTML
    return el;
  }

  function lineElement(item) {
    const li = document.createElement("li");
    li.message = item.message;   // what the filter looks at
    if (item.marker) {
      li.className = "marker";
      li.textContent = item.message;
      return li;
    }
    li.dataset.line = item.line;
    let rest = item.message;
    const stamp = STAMP.exec(rest);
    if (stamp) {
      li.append(span("time", stamp[1]), stamp[2]);
      rest = rest.slice(stamp[0].length);
    }
    const level = LEVEL.exec(rest.slice(0, LEVEL_WITHIN));
    if (level) {
      const name = level[1];
      li.className = "level-" + (LEVEL_CLASS[name] || name.toLowerCase());
      li.append(rest.slice(0, level.index), span("level", name));
      rest = rest.slice(level.index + name.length);
    }
    li.append(rest);
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
    let added = 0;
    for (const item of pending) {
      const li = lineElement(item);
      if (!li.hidden && !item.marker) added += 1;
      fragment.append(li);
    }
    const addedLines = matcher && matcher.worker !== undefined ? [...fragment.children] : null;
    pending = [];
    ui.log.append(fragment);
    if (addedLines) filterInWorker(matcher, addedLines);
    const excess = ui.log.childElementCount - MAX_LINES;
    if (excess > 0) {
      // One range removal instead of thousands of single ones.
      const range = document.createRange();
      range.setStartBefore(ui.log.firstElementChild);
      range.setEndAfter(ui.log.children[excess - 1]);
      range.deleteContents();
    }
    ui.count.textContent = messageCount;
    ui.lastLine.textContent = lastLine || "–";
    if (matcher) renderFilterInfo();
    if (following) {
      ui.log.scrollTop = ui.log.scrollHeight;
    } else if (added) {
      unseen += added;
      ui.newLines.textContent = `${unseen} new line${unseen === 1 ? "" : "s"} ↓`;
      ui.newLines.hidden = false;
    }
  }

  function scrollToEnd() {
    ui.log.scrollTop = ui.log.scrollHeight;
    unseen = 0;
    ui.newLines.hidden = true;
  }

  ui.log.addEventListener("scroll", () => {
    if (unseen && isNearBottom()) { unseen = 0; ui.newLines.hidden = true; }
  });
  ui.newLines.addEventListener("click", scrollToEnd);

  // -- filtering ----------------------------------------------------------------

  // A regex runs on a worker with a time budget: a pattern such as
  // /(a+)+$/ can take minutes on one long line, and would freeze the tab.
  const FILTER_BUDGET_MS = 1000;
  const FILTER_WORKER = "onmessage = (e) => { const re = new RegExp(e.data.source, 'i'); " +
    "postMessage({ id: e.data.id, results: e.data.messages.map((m) => re.test(m)) }); };";
  let filterWorkerUrl = null;

  function compileFilter(text) {
    if (!text) return null;
    const regex = /^\/(.+)\/$/.exec(text);
    if (regex) {
      try { new RegExp(regex[1], "i"); }
      catch (e) { return { test: () => true, invalid: e.message }; }
      // Lines show until the worker says they don't match.
      return { test: () => true, source: regex[1], worker: null, jobs: new Map(), slow: false };
    }
    const needle = text.toLowerCase();
    return { test: (s) => s.toLowerCase().includes(needle) };
  }

  function filterInWorker(m, lis) {
    if (m.slow || !lis.length) return;
    if (!m.worker) {
      filterWorkerUrl = filterWorkerUrl ||
        URL.createObjectURL(new Blob([FILTER_WORKER], { type: "text/javascript" }));
      m.worker = new Worker(filterWorkerUrl);
      m.worker.onmessage = (e) => {
        const job = m.jobs.get(e.data.id);
        if (!job) return;
        clearTimeout(job.timer);
        m.jobs.delete(e.data.id);
        if (matcher !== m) return;
        e.data.results.forEach((ok, i) => {
          job.lis[i].hidden = !ok && !job.lis[i].classList.contains("marker");
        });
        renderFilterInfo();
      };
    }
    const id = m.nextId = (m.nextId || 0) + 1;
    m.jobs.set(id, { lis, timer: setTimeout(() => filterTooSlow(m), FILTER_BUDGET_MS) });
    m.worker.postMessage({ id, source: m.source, messages: lis.map((li) => li.message) });
  }

  function filterTooSlow(m) {
    m.slow = true;
    stopFilter(m);
    if (matcher !== m) return;
    for (const li of ui.log.children) li.hidden = false;
    renderFilterInfo();
  }

  function stopFilter(m) {
    if (!m || !m.worker) return;
    m.worker.terminate();
    for (const job of m.jobs.values()) clearTimeout(job.timer);
    m.jobs.clear();
  }

  function matches(li) {
    return li.classList.contains("marker") || matcher.test(li.message);
  }

  function renderFilterInfo() {
    if (!matcher) { ui.filterInfo.textContent = ""; return; }
    if (matcher.invalid) { ui.filterInfo.textContent = `Not a valid regex: ${matcher.invalid}`; return; }
    if (matcher.slow) {
      ui.filterInfo.textContent = `This regex is too slow on these lines (over ${FILTER_BUDGET_MS} ms), ` +
        "so it is not applied; try a simpler one.";
      return;
    }
    let shown = 0;
    let total = 0;
    for (const li of ui.log.children) {
      if (li.classList.contains("marker")) continue;
      total += 1;
      if (!li.hidden) shown += 1;
    }
    ui.filterInfo.textContent = `${shown} of ${total} lines match`;
  }

  ui.filter.addEventListener("input", () => {
    const following = isNearBottom();
    stopFilter(matcher);
    matcher = compileFilter(ui.filter.value.trim());
    ui.filter.classList.toggle("invalid", Boolean(matcher && matcher.invalid));
    for (const li of ui.log.children) li.hidden = Boolean(matcher) && !matches(li);
    if (matcher && matcher.worker !== undefined) filterInWorker(matcher, [...ui.log.children]);
    renderFilterInfo();
    if (following) scrollToEnd();
  });

  // -- Socket.IO ------------------------------------------------------------

  function streamRequest() {
    // Resume after the last line shown; the first time, take the recent history.
    const request = { deployment_id: deploymentId, batch: true };
    if (lastLine > 0) request.since = lastLine;
    return request;
  }

  function connectSocketIO(transport) {
    socket = io({
      path: rootUrl.pathname + "socket.io/",
      transports: [transport],
      // A token server's HttpOnly cookie goes with every same-origin
      // request, the handshake included: the page never holds the token.
      // Come back quickly after a server restart, without hammering it.
      reconnectionDelay: 500,
      reconnectionDelayMax: 3000,
      // Tell the server when the tab goes away, rather than leave a
      // long-polling session to time out.
      closeOnBeforeunload: true,
    });
    socket.on("connect", () => {
      setStatus("connected");
      showError("");
      socket.emit("start_streaming", streamRequest());
    });
    socket.on("log_batch", (batch) => receive(batch.lines));
    socket.on("new_log", (line) => receive([line]));
    socket.on("status", onStatus);
    socket.on("stream_error", (error) => showError(error.message));
    socket.on("disconnect", (reason) => {
      if (socket.active) setStatus("reconnecting", "Reconnecting…");
      else setStatus("disconnected", "the server closed the connection");
    });
    socket.on("connect_error", (error) => {
      if (socket.active) {
        setStatus("reconnecting", "Reconnecting… (server unreachable)");
      } else {
        // Refused by the server itself (a bad token, say): retrying won't help.
        setStatus("disconnected");
        showError(error.message);
      }
    });
  }

  // -- Server-Sent Events -------------------------------------------------------

  function connectSSE() {
    const params = new URLSearchParams();
    if (lastLine > 0) params.set("since", lastLine);
    const query = params.toString();
    source = new EventSource(eventsUrl + (query ? "?" + query : ""));
    source.onopen = () => { setStatus("connected"); showError(""); };
    source.onmessage = (event) => receive([JSON.parse(event.data)]);
    source.addEventListener("status", (event) => onStatus(JSON.parse(event.data)));
    source.onerror = () => {
      // EventSource reconnects by itself and resumes with Last-Event-ID,
      // unless the server answered with an error status.
      if (source.readyState === EventSource.CLOSED) {
        setStatus("disconnected");
        showError("The server refused the event stream; press Connect to try again.");
      } else {
        setStatus("reconnecting", "Reconnecting…");
      }
    };
  }

  // -- controls -----------------------------------------------------------------

  function connect() {
    disconnect();
    setStatus("reconnecting", "Connecting…");
    if (ui.transport.value === "sse") connectSSE();
    else connectSocketIO(ui.transport.value);
  }

  function disconnect() {
    if (socket) { socket.removeAllListeners(); socket.disconnect(); socket = null; }
    if (source) { source.close(); source = null; }
    setStatus("disconnected");
  }

  function showRtt(started, suffix) {
    ui.rtt.textContent = `${(performance.now() - started).toFixed(1)} ms${suffix}`;
  }

  function ping() {
    const started = performance.now();
    if (socket) {
      socket.timeout(PING_TIMEOUT_MS).emit("ping", { sent_at: Date.now() }, (err) => {
        if (err) ui.rtt.textContent = "timed out";
        else showRtt(started, "");
      });
    } else {
      // SSE is one-way: time a plain HTTP request instead.
      fetch(healthUrl, { cache: "no-store" }).then(
        (response) => { if (response.ok) showRtt(started, " (HTTP)"); else ui.rtt.textContent = "failed"; },
        () => { ui.rtt.textContent = "failed"; });
    }
  }

  function clear() {
    // lastLine is kept, so cleared lines are not sent again.
    ui.log.replaceChildren();
    pending = [];
    messageCount = 0;
    ui.count.textContent = "0";
    renderFilterInfo();
    scrollToEnd();
  }

  ui.connect.addEventListener("click", connect);
  ui.disconnect.addEventListener("click", disconnect);
  ui.ping.addEventListener("click", ping);
  ui.clear.addEventListener("click", clear);
  ui.transport.addEventListener("change", connect);

  // A little state for tests and curious readers (try it in the console).
  window.logstreamViewer = {
    get lastLine() { return lastLine; },
    get messageCount() { return messageCount; },
    get transport() { return source ? "sse" : socket ? socket.io.engine?.transport?.name ?? null : null; },
  };

  connect();
})();
