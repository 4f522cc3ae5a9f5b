// The pane's "Search the whole log" box (joined before pane.js into one
// anywidget module). The kernel searches the server's file and answers with
// the matches; a click asks it for the lines around one, shown with that line
// highlighted below the list, apart from the live rows.

function searchStore(store) {
  // What every view of the pane shows: the newest answers, matched to the
  // newest question, so a slow older answer never replaces a newer one.
  store.asked = 0;
  store.results = null;
  store.region = null;
  store.receiveSearch = (msg) => {
    if (msg.type === "search_results" && msg.id === store.asked) {
      store.results = msg;
      store.region = null;
      store.emit({ kind: "search" });
    } else if (msg.type === "region" && store.results && msg.id === store.asked) {
      store.region = msg;
      store.emit({ kind: "search" });
    }
  };
}

function searchBox(model, store) {
  const box = node("details", "logstream-search");
  box.append(node("summary", "logstream-search-summary", "Search the whole log"));
  const form = node("form", "logstream-search-form");
  const query = node("input", "logstream-search-query");
  query.type = "search";
  query.placeholder = "text in any line of the file";
  query.setAttribute("aria-label", "Search the whole log");
  const regex = node("input", "logstream-search-regex");
  regex.type = "checkbox";
  const regexLabel = node("label", "logstream-search-regex-label");
  regexLabel.append(regex, " regex");
  const go = node("button", "logstream-button logstream-search-go", "Search");
  go.type = "submit";
  const info = node("span", "logstream-search-info");
  form.append(query, regexLabel, go, info);
  const results = node("ol", "logstream-search-results");
  const region = node("div", "logstream-search-region");
  region.hidden = true;
  box.append(form, results, region);

  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const q = query.value;
    if (!q) return;
    store.asked += 1;
    info.textContent = "Searching…";
    model.send({ type: "search", id: store.asked, q, regex: regex.checked });
  });

  function resultItem([line, message]) {
    const button = node("button", "logstream-search-match");
    button.type = "button";
    button.dataset.line = line;
    button.append(node("span", "logstream-search-number", String(line)), message);
    button.addEventListener("click", () => {
      for (const old of results.querySelectorAll(".chosen")) old.classList.remove("chosen");
      button.classList.add("chosen");
      model.send({ type: "load_region", id: store.asked, line });
    });
    const item = node("li");
    item.append(button);
    return item;
  }

  function render() {
    const r = store.results;
    if (!r) return;
    const n = r.matches.length;
    info.textContent = r.error || (n
      ? `${n.toLocaleString()} match${n === 1 ? "" : "es"}, newest first` +
        (r.truncated ? " (the newest only: narrow the search for older ones)" : "")
      : "No line matches.");
    info.classList.toggle("invalid", Boolean(r.error));
    if (results.dataset.shown !== String(r.id)) {
      results.replaceChildren(...r.matches.map(resultItem));
      results.dataset.shown = String(r.id);
    }
    const g = store.region;
    region.hidden = !g;
    if (!g) { region.replaceChildren(); return; }
    if (g.error) { region.replaceChildren(node("div", "logstream-note", g.error)); return; }
    const rows = g.lines.map((item) => {
      const row = lineElement([0, ...item], null);
      if (item[0] === g.line) row.classList.add("logstream-hit");
      return row;
    });
    region.replaceChildren(...rows);
    region.dataset.shown = String(g.line);
    const hit = region.querySelector(".logstream-hit");
    // Scroll the region only: scrollIntoView would move the notebook too.
    if (hit) region.scrollTop = hit.offsetTop - region.clientHeight / 2;
  }

  return { element: box, render };
}
