// Live tail of the journal page: resumes from the newest entry shown, prepends new ones.
(function () {
  const table = document.getElementById("journal");
  if (!table || table.dataset.live !== "1") return;
  const status = document.getElementById("tail-status");
  const body = table.querySelector("tbody");
  let after = parseInt(table.dataset.after || "0", 10);
  let delay = 1000;

  function cell(text) {
    const td = document.createElement("td");
    td.textContent = text == null ? "" : String(text);
    return td;
  }

  function show(entry) {
    const empty = body.querySelector("tr.empty");
    if (empty) empty.remove();
    const tr = document.createElement("tr");
    tr.className = "sev-" + entry.severity;
    const code = document.createElement("code");
    code.textContent = JSON.stringify(entry.payload);
    const payload = document.createElement("td");
    payload.appendChild(code);
    [entry.seq, entry.created_at.replace("T", " ").slice(0, 19), entry.kind, entry.severity,
     entry.actor.label, entry.mission_id].forEach((v) => tr.appendChild(cell(v)));
    tr.appendChild(payload);
    body.insertBefore(tr, body.firstChild);
  }

  function connect() {
    const proto = location.protocol === "https:" ? "wss:" : "ws:";
    const params = new URLSearchParams({ after: String(after) });
    if (table.dataset.mission) params.set("mission", table.dataset.mission);
    const ws = new WebSocket(`${proto}//${location.host}/ws/w/${table.dataset.slug}/journal/?${params}`);
    ws.onmessage = (event) => {
      const message = JSON.parse(event.data);
      if (message.type === "entry") {
        show(message.entry);
        after = Math.max(after, message.entry.seq);
      } else if (message.type === "caught_up") {
        after = Math.max(after, message.seq);
        if (status) status.textContent = "live";
        delay = 1000;
      }
    };
    ws.onclose = () => {
      if (status) status.textContent = "reconnecting…";
      setTimeout(connect, delay);
      delay = Math.min(delay * 2, 30000);
    };
  }
  connect();
})();
