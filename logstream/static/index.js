// The deployment list: say how long ago each deployment last wrote a line.
"use strict";

(function () {
  const times = document.querySelectorAll("#deployments time[datetime]");

  function ago(seconds) {
    if (seconds < 5) return "just now";
    if (seconds < 60) return `${Math.floor(seconds)} s ago`;
    if (seconds < 3600) return `${Math.floor(seconds / 60)} min ago`;
    if (seconds < 86400) return `${Math.floor(seconds / 3600)} h ago`;
    return `${Math.floor(seconds / 86400)} d ago`;
  }

  function render() {
    const now = Date.now();
    for (const time of times) {
      let note = time.nextElementSibling;
      if (!note) {
        note = document.createElement("span");
        note.className = "ago";
        time.after(note);
      }
      note.textContent = ago(Math.max(0, (now - Date.parse(time.dateTime)) / 1000));
    }
  }

  if (times.length) {
    render();
    setInterval(render, 5000);
  }
})();
