// The live approval inbox: cards pushed over the WebSocket appear without a reload, a decision
// made in any tab (or by another reviewer) moves the card to "Decided" everywhere, and the
// decide buttons post with fetch so the page stays put. Without JavaScript the forms still work.
(function () {
  "use strict";
  var root = document.getElementById("approvals-inbox");
  if (!root) return;
  var mine = document.getElementById("pending-mine");
  var decided = document.getElementById("decided-list");
  var empty = document.getElementById("pending-empty");
  var count = document.getElementById("pending-count");
  var liveText = root.querySelector(".live-text");
  var csrf = root.dataset.csrf;
  var received = 0;
  var retry = 500;

  function refreshCounts() {
    var n = mine.querySelectorAll("article.approval[data-status='pending']").length;
    count.textContent = String(n);
    empty.hidden = n > 0;
  }

  function place(html) {
    var tpl = document.createElement("template");
    tpl.innerHTML = html.trim();
    var card = tpl.content.firstElementChild;
    if (!card || !card.id) return;
    var existing = document.getElementById(card.id);
    if (card.dataset.status === "pending") {
      if (existing && existing.parentNode === mine) {
        // Keep what the reviewer is typing if the card only gained a comment or a vote.
        var typing = existing.querySelector("textarea[name='comment']");
        var newTyping = card.querySelector("textarea[name='comment']");
        if (typing && newTyping) newTyping.value = typing.value;
        existing.replaceWith(card);
      } else {
        if (existing) existing.remove();
        mine.appendChild(card);
      }
    } else {
      if (existing) existing.remove();
      decided.insertBefore(card, decided.firstChild);
    }
    refreshCounts();
    tick();
  }

  function tick() {
    var now = Date.now();
    root.querySelectorAll("article.approval[data-deadline]").forEach(function (card) {
      var cell = card.querySelector(".time-left");
      if (!cell || card.dataset.status !== "pending") return;
      var left = Math.max(0, Math.round((Date.parse(card.dataset.deadline) - now) / 1000));
      var h = Math.floor(left / 3600), m = Math.floor((left % 3600) / 60), s = left % 60;
      cell.textContent = (h ? h + " h " : "") + (h || m ? m + " min " : "") + s + " s";
    });
  }

  function connect() {
    var scheme = location.protocol === "https:" ? "wss://" : "ws://";
    var ws = new WebSocket(scheme + location.host + root.dataset.wsPath);
    ws.onopen = function () {
      retry = 500;
      root.dataset.live = "1";
      liveText.textContent = "live";
    };
    ws.onmessage = function (event) {
      var message = JSON.parse(event.data);
      if (message.html) {
        place(message.html);
        received += 1;
        root.dataset.received = String(received);
      }
    };
    ws.onclose = function () {
      root.dataset.live = "0";
      liveText.textContent = "reconnecting…";
      setTimeout(connect, retry);
      retry = Math.min(retry * 2, 10000);
    };
  }

  document.addEventListener("submit", function (event) {
    var form = event.target;
    if (!form.matches || !form.matches("form.decide")) return;
    event.preventDefault();
    var data = new FormData(form);
    var button = event.submitter;
    data.set("decision", button ? button.value : "approve");
    var error = form.querySelector(".form-error");
    form.querySelectorAll("button").forEach(function (b) { b.disabled = true; });
    fetch(form.action, {
      method: "POST",
      body: data,
      credentials: "same-origin",
      headers: { "X-CSRFToken": csrf, "Accept": "application/json" },
    })
      .then(function (response) {
        return response.json().then(function (body) { return { ok: response.ok, body: body }; });
      })
      .then(function (result) {
        if (result.ok) {
          place(result.body.html);
        } else {
          error.textContent = result.body.error ? result.body.error.message : "The decision was not recorded.";
          error.hidden = false;
          form.querySelectorAll("button").forEach(function (b) { b.disabled = false; });
        }
      })
      .catch(function () {
        error.textContent = "Network error; the decision was not recorded.";
        error.hidden = false;
        form.querySelectorAll("button").forEach(function (b) { b.disabled = false; });
      });
  });

  setInterval(tick, 1000);
  tick();
  connect();
})();
