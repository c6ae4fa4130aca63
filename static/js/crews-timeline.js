// The mission page's live timeline: the journal's WebSocket tail filtered to this mission
// (/ws/w/<slug>/journal/?after=<seq>&mission=<id>), resumed from the last entry seen after a
// reconnect. Model turns, tool calls, waits and costs appear as they are journaled.
(function () {
  "use strict";
  const root = document.getElementById("mission");
  const list = document.getElementById("timeline");
  if (!root || !list) return;
  const liveText = document.getElementById("live-text");
  const statusBadge = document.getElementById("mission-status");
  const costCell = document.getElementById("mission-cost");
  const stepsCell = document.getElementById("mission-steps");
  let agents = {};
  try { agents = JSON.parse(root.dataset.agents || "{}"); } catch (e) { agents = {}; }
  const base = new URL(root.dataset.wsPath, location.href);
  let after = 0;
  let delay = 1000;
  let cost = 0;
  const seen = new Set();

  const STATUS = {
    "mission.created": "Queued", "mission.forked": "Queued", "mission.started": "Running",
    "mission.resumed": "Queued", "mission.waiting": "Waiting for approval", "mission.paused": "Paused",
    "mission.released": "Queued", "mission.retried": "Queued", "mission.completed": "Completed",
    "mission.failed": "Failed", "mission.cancelled": "Cancelled",
  };

  function usd(micros) { return "$" + (micros / 1e6).toFixed(4); }
  function short(value, limit) {
    const text = typeof value === "string" ? value : JSON.stringify(value);
    return text && text.length > limit ? text.slice(0, limit - 1) + "…" : (text || "");
  }
  function agentName(entry) { return agents[entry.agent_id] || (entry.actor && entry.actor.label) || ""; }

  // [css class, title, detail text or null]
  function describe(entry) {
    const p = entry.payload || {};
    switch (entry.kind) {
      case "mission.created": return ["k-done", "Mission created", p.goal];
      case "mission.forked": return ["k-done", `Forked from mission ${p.source_mission_id} after step ${p.from_step}`, null];
      case "fork.created": return ["k-done", `Fork of ${p.source_mission_id} at journal #${p.from_seq}`, null];
      case "mission.started": return ["", p.resumed ? `Resumed by ${p.worker} after step ${p.from_step}` : `Started by ${p.worker || "a worker"}`, null];
      case "routing.decided": return ["k-llm", `Routing → ${p.model}`, p.reason];
      case "routing.failed": return ["k-bad", "No model could be chosen", p.reason];
      case "llm.completed":
        cost += p.cost_microusd || 0;
        return ["k-llm", `${agentName(entry)}: model turn on ${p.model} (${p.input_tokens} in / ${p.output_tokens} out, ${usd(p.cost_microusd || 0)})`,
          (p.tool_calls || []).length ? "asks for " + p.tool_calls.map((c) => c.name || c).join(", ") : null];
      case "llm.failed": return ["k-bad", "Model call failed", short(p.errors, 400)];
      case "mission.step":
        if (stepsCell) stepsCell.textContent = String(p.step);
        if (p.node === "agent") return ["k-llm", `Step ${p.step} · ${p.agent} said`, p.content || ((p.tool_calls || []).length ? "→ " + p.tool_calls.join(", ") : "")];
        return ["k-tool", `Step ${p.step} · ${p.tool_name} → ${p.status}`, null];
      case "tool.called": return ["k-tool", `${agentName(entry)} calls ${p.tool_name}`, short(p.arguments, 600)];
      case "tool.executed": return ["k-tool", `${p.tool_name} ran${p.late ? " (after review)" : ""} in ${p.duration_ms} ms`, short(p.result, 800)];
      case "tool.failed": return ["k-bad", `${p.tool_name} ${p.outcome || "failed"}`, p.error];
      case "tool.queued": return ["k-wait", `${p.tool_name} queued for review; the agent goes on`, null];
      case "mission.waiting": return ["k-wait", `Waiting for approval of ${p.tool_name}`, `request ${p.approval_request_id}`];
      case "mission.handoff": return ["", `${p.from_agent} hands over to ${p.to_agent}`, p.note];
      case "mission.message": return ["", "Update for the agent", p.content];
      case "mission.control_requested": return ["k-wait", `${p.control} requested (takes effect at the next step)`, null];
      case "mission.paused": return ["k-wait", "Paused", null];
      case "mission.resumed": return ["", "Resumed: " + p.reason, p.decision ? short(p.decision.message || p.decision, 300) : null];
      case "mission.released": return ["", `Released by ${p.worker} (${p.reason})`, null];
      case "mission.retried": return ["", `Retried (was ${p.previous_status})`, null];
      case "mission.completed": return ["k-done", `Completed in ${p.step} steps (${usd(p.cost_microusd || 0)})`, p.output];
      case "mission.failed": return ["k-bad", `Failed: ${p.reason || ""}`, p.error];
      case "mission.cancelled": return ["k-bad", "Cancelled", p.reason];
      default:
        if (entry.kind.startsWith("approval.")) {
          const who = p.decided_by ? ` by ${p.decided_by}` : "";
          return ["k-approval", `${entry.kind.replace("approval.", "Approval ")}${p.decision ? ": " + p.decision : ""}${who}`, p.reason || p.comment || null];
        }
        if (entry.kind.startsWith("budget.") || entry.kind === "reservation") return ["", entry.kind, short(p, 300)];
        return ["", entry.kind, short(p, 300)];
    }
  }

  function show(entry) {
    if (seen.has(entry.seq)) return;
    seen.add(entry.seq);
    const [css, title, detail] = describe(entry);
    const li = document.createElement("li");
    li.className = css;
    li.dataset.seq = String(entry.seq);
    li.dataset.kind = entry.kind;
    const when = document.createElement("span");
    when.className = "when";
    when.textContent = "#" + entry.seq + " " + entry.created_at.slice(11, 19);
    const what = document.createElement("span");
    what.className = "what";
    what.textContent = title;
    li.append(when, what);
    if (detail) {
      const pre = document.createElement("pre");
      pre.textContent = typeof detail === "string" ? detail : JSON.stringify(detail, null, 2);
      li.appendChild(pre);
    }
    list.appendChild(li);
    if (STATUS[entry.kind] && statusBadge) {
      statusBadge.textContent = STATUS[entry.kind];
      statusBadge.className = "badge status-badge " + entry.kind.split(".")[1];
    }
    if (costCell && cost) costCell.textContent = usd(cost);
  }

  function connect() {
    const url = new URL(base);
    url.protocol = location.protocol === "https:" ? "wss:" : "ws:";
    url.searchParams.set("after", String(after));
    const ws = new WebSocket(url);
    ws.onmessage = (event) => {
      const message = JSON.parse(event.data);
      if (message.type === "entry") {
        show(message.entry);
        after = Math.max(after, message.entry.seq);
      } else if (message.type === "caught_up") {
        after = Math.max(after, message.seq);
        root.dataset.live = "1";
        if (liveText) liveText.textContent = "live";
        delay = 1000;
      }
    };
    ws.onclose = () => {
      root.dataset.live = "0";
      if (liveText) liveText.textContent = "reconnecting…";
      setTimeout(connect, delay);
      delay = Math.min(delay * 2, 30000);
    };
  }
  connect();
})();
