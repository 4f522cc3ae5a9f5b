// The deployment list: keep it current over SSE as logs appear, grow and finish,
// and say how long ago each one last wrote a line.
"use strict";

(function () {
  const table = document.getElementById("deployments");
  const empty = document.getElementById("no-deployments");
  const showPaths = Boolean(table.dataset.paths);
  // Relative: the page may be served under a proxy's path prefix.
  const EVENTS_URL = "api/deployments/events";

  function ago(seconds) {
    if (seconds < 5) return "just now";
    if (seconds < 60) return `${Math.floor(seconds)} s ago`;
    if (seconds < 3600) return `${Math.floor(seconds / 60)} min ago`;
    if (seconds < 86400) return `${Math.floor(seconds / 3600)} h ago`;
    return `${Math.floor(seconds / 86400)} d ago`;
  }

  function renderTimes() {
    const now = Date.now();
    for (const time of table.querySelectorAll("time[datetime]")) {
      let note = time.nextElementSibling;
      if (!note) {
        note = document.createElement("span");
        note.className = "ago";
        time.after(note);
      }
      note.textContent = ago(Math.max(0, (now - Date.parse(time.dateTime)) / 1000));
    }
  }

  function size(bytes) {
    // The same units as the server's filesizeformat filter.
    const units = ["Bytes", "kB", "MB", "GB", "TB"];
    let value = bytes;
    let unit = 0;
    while (value >= 1000 && unit < units.length - 1) { value /= 1000; unit += 1; }
    if (!unit) return bytes === 1 ? "1 Byte" : `${bytes} Bytes`;
    return `${value.toFixed(1)} ${units[unit]}`;
  }

  function cell(className, text) {
    const td = document.createElement("td");
    td.className = className;
    if (text !== undefined) td.textContent = text;   // paths and ids are text, never HTML
    return td;
  }

  function row(d) {
    const tr = document.createElement("tr");
    tr.dataset.deploymentId = d.id;
    const name = cell("");
    const link = document.createElement("a");
    link.href = "deployments/" + encodeURIComponent(d.id);
    link.textContent = d.id;
    name.append(link);
    tr.append(name);
    if (showPaths) tr.append(cell("path", d.path));
    tr.append(cell("num lines", String(d.lines)));
    const bytes = cell("num size", size(d.bytes));
    bytes.title = `${d.bytes} bytes`;
    tr.append(bytes);
    const state = cell("state");
    const badge = document.createElement("span");
    badge.className = d.live ? "badge live" : "badge";
    badge.textContent = d.live ? "live" : "finished";
    state.append(badge);
    tr.append(state);
    const when = new Date(d.modified * 1000).toISOString().replace(/\.\d+Z$/, "+00:00");
    const modified = cell("modified");
    const time = document.createElement("time");
    time.dateTime = when;
    time.textContent = when.replace("T", " ").replace("+00:00", " UTC");
    modified.append(time);
    tr.append(modified);
    return tr;
  }

  function update(list) {
    table.tBodies[0].replaceChildren(...list.map(row));
    table.hidden = !list.length;
    empty.hidden = Boolean(list.length);
    table.dataset.updates = String(Number(table.dataset.updates || 0) + 1);
    renderTimes();
  }

  renderTimes();
  setInterval(renderTimes, 5000);
  if (window.EventSource) {
    // EventSource reconnects by itself; each message is the whole list.
    const source = new EventSource(EVENTS_URL);
    source.addEventListener("deployments", (event) => update(JSON.parse(event.data)));
  }
})();
