// The log pane's front end (an anywidget module). The kernel sends only what
// is new; this module appends it at most once per animation frame, keeps the
// newest MAX_ROWS rows, follows the end unless the reader scrolled up,
// filters in the page, and charts the lines per second. panesearch.js, joined
// before it, adds the "Search the whole log" box.

const MAX_ROWS = 5000;          // rows kept (the kernel never sends more at once)
const NEAR_BOTTOM_PX = 40;      // closer than this to the bottom counts as "following"
const RATE_SECONDS = 60;        // the chart's window
const HELLO_FIRST_RETRY_MS = 1000;
const HELLO_MAX_RETRY_MS = 30000;

const STAMP = /^(\d{4}-\d\d-\d\d[T ][\d:.,]+(?:Z|[+-]\d\d:?\d\d)?)(\s+)/;
// A level word near the start, bare or bracketed: "INFO ...", "[ERROR] ...", "app - WARNING - ...".
const LEVEL = /\b(ERROR|FATAL|CRITICAL|WARN(?:ING)?|INFO|DEBUG|TRACE)\b/;
const LEVEL_WITHIN = 60;
const LEVEL_CLASS = { WARNING: "warn", WARN: "warn", FATAL: "error", CRITICAL: "error" };
const BUSY = ["connected", "connecting", "reconnecting"];

function node(tag, className, text) {
  const el = document.createElement(tag);
  if (className) el.className = className;
  if (text !== undefined) el.textContent = text;   // text, never parsed as HTML
  return el;
}

const nowSecond = () => Math.floor(Date.now() / 1000);

// -- one store per widget: what every view of it shows ----------------------

function createStore() {
  const listeners = new Set();
  const store = {
    items: [],            // [seq, line number, message], oldest first, at most MAX_ROWS
    lastSeq: 0,           // the kernel numbers every line it sends; each is shown once
    epoch: 0,             // bumped by every Clear, so an older backlog can't undo one
    header: null,
    buckets: new Map(),   // second -> lines received in it
    listen(fn) { listeners.add(fn); return () => listeners.delete(fn); },
    emit(event) { for (const fn of listeners) fn(event); },
  };

  function count(second, lines, merge) {
    const had = store.buckets.get(second) || 0;
    store.buckets.set(second, merge ? Math.max(had, lines) : had + lines);
    for (const key of store.buckets.keys()) {
      if (key <= second - RATE_SECONDS) store.buckets.delete(key);
    }
  }

  function setHeader(header) {
    if (header && (!store.header || header.v >= store.header.v)) {
      store.header = header;
      store.emit({ kind: "header" });
    }
  }

  function update(msg) {
    if (msg.clear) {
      store.items = [];
      store.epoch = msg.epoch;
      store.emit({ kind: "clear" });
    }
    const fresh = (msg.lines || []).filter((item) => item[0] > store.lastSeq);
    if (fresh.length) {
      count(nowSecond(), fresh.length, false);
      store.lastSeq = fresh[fresh.length - 1][0];
      store.items = store.items.concat(fresh.slice(-MAX_ROWS)).slice(-MAX_ROWS);
      store.emit({ kind: "lines", items: fresh });
    }
    setHeader(msg.header);
  }

  function backlog(msg) {
    // The kernel's kept lines, asked for when this module loaded: lines sent
    // before it listened never arrived, and updates may have overtaken this.
    const now = nowSecond();
    for (const [age, lines] of msg.rates) count(now - age, lines, true);
    if (msg.epoch >= store.epoch) {
      store.epoch = msg.epoch;
      const bySeq = new Map(store.items.map((item) => [item[0], item]));
      for (const item of msg.lines) bySeq.set(item[0], item);
      const merged = [...bySeq.values()].sort((a, b) => a[0] - b[0]).slice(-MAX_ROWS);
      if (merged.length !== store.items.length || merged.some((item, i) => item !== store.items[i])) {
        store.items = merged;
        store.lastSeq = Math.max(store.lastSeq, merged.length ? merged[merged.length - 1][0] : 0);
        store.emit({ kind: "reset" });
      }
    }
    setHeader(msg.header);
    store.emit({ kind: "rates" });
  }

  searchStore(store);
  store.receive = (msg) => {
    if (msg && msg.type === "update") update(msg);
    else if (msg && msg.type === "backlog") backlog(msg);
    else if (msg) store.receiveSearch(msg);
  };
  return store;
}

// -- one view per output where the pane is displayed ---------------------------

function lineElement(item, matcher) {
  const [, number, message] = item;
  const row = node("div", "logstream-row");
  row.dataset.line = number;
  row.message = message;   // what the filter looks at
  let rest = message;
  const stamp = STAMP.exec(rest);
  if (stamp) {
    row.append(node("span", "logstream-time", stamp[1]), stamp[2]);
    rest = rest.slice(stamp[0].length);
  }
  const level = LEVEL.exec(rest.slice(0, LEVEL_WITHIN));
  if (level) {
    const name = level[1];
    row.classList.add("level-" + (LEVEL_CLASS[name] || name.toLowerCase()));
    row.append(rest.slice(0, level.index), node("span", "logstream-level", name));
    rest = rest.slice(level.index + name.length);
  }
  row.append(rest);
  if (matcher && !matcher.test(message)) row.hidden = true;
  return row;
}

function compileFilter(text) {
  if (!text) return null;
  const regex = /^\/(.+)\/$/.exec(text);
  if (regex) {
    try { return new RegExp(regex[1], "i"); }
    catch (e) { return { test: () => true, invalid: e.message }; }
  }
  const needle = text.toLowerCase();
  return { test: (s) => s.toLowerCase().includes(needle) };
}

function drawChart(canvas, label, buckets) {
  const now = nowSecond();
  const series = [];
  for (let s = now - RATE_SECONDS + 1; s <= now; s++) series.push(buckets.get(s) || 0);
  const peak = Math.max(0, ...series);
  const total = series.reduce((a, b) => a + b, 0);
  const width = canvas.clientWidth || 120;
  const height = canvas.clientHeight || 22;
  const ratio = window.devicePixelRatio || 1;
  canvas.width = Math.round(width * ratio);
  canvas.height = Math.round(height * ratio);
  const ctx = canvas.getContext("2d");
  ctx.setTransform(ratio, 0, 0, ratio, 0, 0);
  ctx.clearRect(0, 0, width, height);
  ctx.fillStyle = getComputedStyle(canvas).color;
  const bar = width / RATE_SECONDS;
  series.forEach((n, i) => {
    if (!n) return;
    const h = Math.max(1, (n / peak) * (height - 1));
    ctx.fillRect(i * bar, height - h, Math.max(1, bar - 0.5), h);
  });
  const last = series[series.length - 2];   // the last whole second
  label.textContent = `${last.toLocaleString()} lines/s`;
  canvas.title = `lines per second over the last minute: ${total.toLocaleString()} lines, ` +
    `peak ${peak.toLocaleString()}/s`;
  canvas.dataset.total = total;
  canvas.dataset.peak = peak;
}

function renderView(model, el, store) {
  el.classList.add("logstream-pane", "tex2jax_ignore");
  const status = node("span", "logstream-status");
  const light = node("span", "logstream-light", "●");
  const statusText = node("span", "logstream-status-text");
  status.append(light, " ", statusText);
  const title = node("b", "logstream-title", model.get("deployment_id"));
  const count = node("span", "logstream-count");
  const duration = node("span", "logstream-duration");
  const rtt = node("span", "logstream-rtt");
  const chart = node("canvas", "logstream-chart");
  const rate = node("span", "logstream-rate");
  const rates = node("span", "logstream-rates");
  rates.append(chart, rate);
  const head = node("div", "logstream-header");
  head.append(status, title, count, duration, rtt, rates);

  const buttons = {};
  for (const name of ["connect", "disconnect", "ping", "clear"]) {
    const button = node("button", `logstream-button logstream-${name}`,
                        name[0].toUpperCase() + name.slice(1));
    button.type = "button";
    button.addEventListener("click", () => model.send({ type: "action", name }));
    buttons[name] = button;
  }
  const filter = node("input", "logstream-filter");
  filter.type = "search";
  filter.placeholder = "filter: text or /regex/";
  filter.setAttribute("aria-label", "Filter lines");
  const filterInfo = node("span", "logstream-filter-info");
  const note = node("span", "logstream-note");
  const controls = node("div", "logstream-controls");
  controls.append(...Object.values(buttons), filter, filterInfo, note);

  const box = node("div", "logstream-log");
  box.tabIndex = 0;
  box.style.height = model.get("height");
  const newLines = node("button", "logstream-new-lines");
  newLines.type = "button";
  newLines.hidden = true;
  const wrap = node("div", "logstream-log-wrap");
  wrap.append(box, newLines);
  const search = searchBox(model, store);
  el.replaceChildren(head, controls, wrap, search.element);

  let following = true;      // the reader is at the end (a decision, not a measurement)
  let savedTop = 0;          // where the reader was, if the box loses its scroll position
  let unseen = 0;            // rows added while the reader was scrolled up
  let pending = [];
  let rebuild = true;
  let frame = 0;
  let matcher = null;

  const laidOut = () => box.isConnected && box.clientHeight > 0;
  const nearBottom = () => box.scrollHeight - box.scrollTop - box.clientHeight < NEAR_BOTTOM_PX;

  function scrollToEnd() {
    box.scrollTop = box.scrollHeight;
    unseen = 0;
    newLines.hidden = true;
  }

  function settle() {
    // The box was attached, shown or resized (notebooks detach or skip
    // cells out of view): put the reader back where they were.
    if (!laidOut()) return;
    if (following) scrollToEnd();
    else if (box.scrollTop === 0 && savedTop > 0) box.scrollTop = savedTop;
  }

  function renderFilterInfo() {
    if (!matcher) { filterInfo.textContent = ""; return; }
    if (matcher.invalid) { filterInfo.textContent = `Not a valid regex: ${matcher.invalid}`; return; }
    let shown = 0;
    for (const row of box.children) if (!row.hidden) shown += 1;
    filterInfo.textContent = `${shown} of ${box.childElementCount} lines match`;
  }

  function renderHeader() {
    const h = store.header;
    if (!h) return;
    status.dataset.state = h.status;
    statusText.textContent = h.status;
    light.title = h.status;
    count.textContent = h.count;
    duration.textContent = h.duration;
    rtt.textContent = h.rtt;
    note.textContent = h.note;
    buttons.connect.disabled = BUSY.includes(h.status);
    buttons.disconnect.disabled = h.status === "disconnected" || h.status === "error";
    buttons.ping.disabled = h.status !== "connected";
  }

  function draw() {
    frame = 0;
    let added = 0;
    if (rebuild) {
      rebuild = false;
      pending = [];
      box.replaceChildren(...store.items.map((item) => lineElement(item, matcher)));
    } else if (pending.length) {
      const fragment = document.createDocumentFragment();
      for (const item of pending.slice(-MAX_ROWS)) {
        const row = lineElement(item, matcher);
        if (!row.hidden) added += 1;
        fragment.append(row);
      }
      pending = [];
      box.append(fragment);
      const excess = box.childElementCount - MAX_ROWS;
      if (excess > 0) {
        // One range removal instead of thousands of single ones.
        const range = document.createRange();
        range.setStartBefore(box.firstElementChild);
        range.setEndAfter(box.children[excess - 1]);
        range.deleteContents();
      }
    }
    renderFilterInfo();
    if (following) {
      scrollToEnd();
    } else if (added) {
      unseen += added;
      newLines.textContent = `${unseen.toLocaleString()} new line${unseen === 1 ? "" : "s"} ↓`;
      newLines.hidden = false;
    }
  }

  const schedule = () => { if (!frame) frame = requestAnimationFrame(draw); };
  const redrawChart = () => drawChart(chart, rate, store.buckets);

  const unlisten = store.listen((event) => {
    if (event.kind === "lines") {
      pending = pending.concat(event.items).slice(-MAX_ROWS);
      schedule();
      redrawChart();
    } else if (event.kind === "clear" || event.kind === "reset") {
      rebuild = true;
      if (event.kind === "clear") { unseen = 0; newLines.hidden = true; }
      schedule();
    } else if (event.kind === "header") {
      renderHeader();
    } else if (event.kind === "rates") {
      redrawChart();
    } else if (event.kind === "search") {
      search.render();
    }
  });

  box.addEventListener("scroll", () => {
    if (!laidOut()) return;
    following = nearBottom();
    savedTop = box.scrollTop;
    if (following && unseen) { unseen = 0; newLines.hidden = true; }
  });
  newLines.addEventListener("click", () => { following = true; scrollToEnd(); });
  filter.addEventListener("input", () => {
    matcher = compileFilter(filter.value.trim());
    filter.classList.toggle("invalid", Boolean(matcher && matcher.invalid));
    for (const row of box.children) row.hidden = Boolean(matcher) && !matcher.test(row.message);
    renderFilterInfo();
    if (following) scrollToEnd();
  });

  const resized = new ResizeObserver(settle);
  resized.observe(box);
  const seen = new IntersectionObserver((entries) => {
    if (entries.some((entry) => entry.isIntersecting)) settle();
  });
  seen.observe(box);
  // One timer per view, for the chart's moving window.
  const ticker = setInterval(redrawChart, 1000);

  renderHeader();
  redrawChart();
  search.render();
  schedule();
  return () => {
    unlisten();
    resized.disconnect();
    seen.disconnect();
    clearInterval(ticker);
    if (frame) cancelAnimationFrame(frame);
  };
}

export default () => {
  // Called once per widget: the store is shared by all views of this pane.
  const store = createStore();
  return {
    initialize({ model }) {
      // Say hello until the kernel answers with its backlog: a model that a
      // reloaded page restores may not be connected to the kernel yet, and
      // then what it sends is lost. A busy kernel answers late, so wait
      // longer each time.
      let retry = 0;
      let delay = HELLO_FIRST_RETRY_MS;
      const hello = () => {
        // Everything kept: updates that came first don't hold the older lines.
        model.send({ type: "hello", since: 0 });
        retry = setTimeout(hello, delay);
        delay = Math.min(delay * 2, HELLO_MAX_RETRY_MS);
      };
      const onMessage = (msg) => {
        if (msg && msg.type === "backlog") clearTimeout(retry);
        store.receive(msg);
      };
      model.on("msg:custom", onMessage);
      hello();
      return () => { clearTimeout(retry); model.off("msg:custom", onMessage); };
    },
    render({ model, el }) {
      return renderView(model, el, store);
    },
  };
};
