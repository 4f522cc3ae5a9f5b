// Search the whole log file on the server, list the matches newest first, and
// on a click show the lines around one with it highlighted.
"use strict";

(function () {
  const CONTEXT = 20;   // lines shown before and after a match
  const PAGE = 100;     // matches asked for at a time

  const root = document.getElementById("viewer");
  const deploymentId = root.dataset.deploymentId;
  const $ = (id) => document.getElementById(id);
  const ui = {
    form: $("search-form"), query: $("search-query"), regex: $("search-regex"),
    info: $("search-info"), results: $("search-results"), more: $("search-more"),
    region: $("search-region"), log: $("log"),
  };
  // Relative to this page (/deployments/<id>), so a proxy's path prefix is kept.
  const api = "../api/deployments/" + encodeURIComponent(deploymentId) + "/";

  let current = null;   // {q, regex, before} of the search being shown

  function url(route, params) {
    const query = new URLSearchParams(params);
    return api + route + "?" + query.toString();
  }

  async function getJSON(address) {
    const response = await fetch(address, { cache: "no-store" });
    const body = await response.json().catch(() => ({}));
    if (!response.ok) throw new Error(body.message || `The server answered ${response.status}.`);
    return body;
  }

  function resultItem(match) {
    const li = document.createElement("li");
    const button = document.createElement("button");
    button.type = "button";
    button.dataset.line = match.line;
    const number = document.createElement("span");
    number.className = "number";
    number.textContent = match.line;
    button.append(number, match.message);   // log text is text: never parsed as HTML
    button.addEventListener("click", () => showRegion(match.line));
    li.append(button);
    return li;
  }

  async function run(more) {
    const params = { q: current.q, limit: PAGE };
    if (current.regex) params.regex = "1";
    if (more && current.before) params.before = current.before;
    ui.info.textContent = "Searching…";
    ui.more.hidden = true;
    try {
      const body = await getJSON(url("search", params));
      ui.results.append(...body.matches.map(resultItem));
      current.before = body.truncated ? body.next_before : null;
      ui.more.hidden = !body.truncated;
      const count = ui.results.childElementCount;
      ui.info.textContent = count
        ? `${count} match${count === 1 ? "" : "es"}${body.truncated ? " so far" : ""}, newest first`
        : "No line matches.";
    } catch (error) {
      ui.info.textContent = error.message;
    }
  }

  async function showRegion(line) {
    const since = Math.max(0, line - CONTEXT - 1);
    try {
      const body = await getJSON(url("lines", { since, limit: 2 * CONTEXT + 1 }));
      const items = body.lines.map((item) => {
        const li = document.createElement("li");
        li.dataset.line = item.line;
        li.textContent = item.message;
        if (item.line === line) li.className = "hit";
        return li;
      });
      ui.region.replaceChildren(...items);
      ui.region.hidden = false;
      ui.region.dataset.shown = String(line);
      const hit = ui.region.querySelector("li.hit");
      if (hit) hit.scrollIntoView({ block: "center" });
      // The same line in the live view, when it is still on the page.
      for (const old of ui.log.querySelectorAll("li.hit")) old.classList.remove("hit");
      const live = ui.log.querySelector(`li[data-line="${line}"]`);
      if (live) live.classList.add("hit");
    } catch (error) {
      ui.info.textContent = error.message;
    }
  }

  ui.form.addEventListener("submit", (event) => {
    event.preventDefault();
    const q = ui.query.value;
    if (!q) return;
    current = { q, regex: ui.regex.checked, before: null };
    ui.results.replaceChildren();
    ui.region.hidden = true;
    run(false);
  });
  ui.more.addEventListener("click", () => run(true));
})();
