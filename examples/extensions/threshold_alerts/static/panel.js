// The threshold alerts panel: the rules the signed-in user may read (GET ../rules).
(async () => {
  const state = document.getElementById("state");
  const table = document.getElementById("rules");
  let resp;
  try {
    resp = await fetch("/ext/threshold_alerts/rules", { credentials: "same-origin" });
  } catch (e) {
    state.textContent = "The hub is not reachable.";
    return;
  }
  if (resp.status === 401) {
    state.textContent = "Log in to the hub first.";
    return;
  }
  const body = await resp.json();
  if (!resp.ok) {
    state.textContent = body.error ? body.error.message : `Error ${resp.status}`;
    return;
  }
  const tbody = table.querySelector("tbody");
  for (const rule of body.rules) {
    const tr = document.createElement("tr");
    for (const v of [rule.sequence, rule.min ?? "–", rule.max ?? "–", rule.to.join(", ")]) {
      const td = document.createElement("td");
      td.textContent = String(v);
      tr.append(td);
    }
    tbody.append(tr);
  }
  state.textContent = body.rules.length ? `${body.rules.length} rule(s) on sequences you may read.`
    : "No rules on sequences you may read.";
  table.hidden = false;
})();
