"""/api/v1/openapi.json and the docs page /api/v1/docs."""

from __future__ import annotations

from aiohttp import web

from hub.http import openapi
from hub.http.routes import API
from hub.http.typedefs import SETTINGS

routes = web.RouteTableDef()

DOCS_HTML = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>hub API</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>
body{font:14px/1.4 system-ui,sans-serif;margin:0 auto;max-width:70em;padding:1em}
details{border:1px solid #ccc;border-radius:4px;margin:.3em 0;padding:.3em .6em}
summary{cursor:pointer}.m{display:inline-block;width:4.5em;font-weight:bold;text-transform:uppercase}
textarea,input{font:13px monospace;width:100%;box-sizing:border-box}pre{background:#f4f4f4;padding:.5em;
overflow:auto;max-height:30em}label{display:block;margin:.3em 0}.d{color:#555}
</style></head><body>
<h1>hub HTTP API</h1>
<p class="d">The document: <a href="openapi.json">openapi.json</a> (OpenAPI 3.1). Requests below are sent
with your session cookie (log in with POST /api/v1/login) or the API key you paste here.</p>
<label>API key (optional) <input id="key" placeholder="hk_..."></label>
<div id="ops">loading...</div>
<script>
"use strict";
const esc = s => String(s).replace(/[&<>"]/g, c => ({"&":"&amp;","<":"&lt;",">":"&gt;",'"':"&quot;"}[c]));
function csrf() { const m = document.cookie.match(/(?:^|; )hub_csrf=([^;]*)/); return m ? m[1] : ""; }
async function send(form, method, template) {
  let url = template, query = new URLSearchParams();
  for (const el of form.querySelectorAll("input[data-in]")) {
    if (!el.value) continue;
    if (el.dataset.in === "path") url = url.replace("{" + el.name + "}", el.name === "path" ? el.value
        : encodeURIComponent(el.value));
    else query.set(el.name, el.value);
  }
  const headers = {"X-CSRF-Token": csrf()}, key = document.getElementById("key").value.trim();
  if (key) headers["Authorization"] = "Bearer " + key;
  const body = form.querySelector("textarea");
  const init = {method, headers, credentials: "same-origin"};
  if (body && body.value.trim()) { init.body = body.value; headers["Content-Type"] = "application/json"; }
  const out = form.querySelector("pre");
  try {
    const r = await fetch(url + (query.toString() ? "?" + query : ""), init);
    const text = await r.text();
    let shown = text; try { shown = JSON.stringify(JSON.parse(text), null, 2); } catch (e) {}
    out.textContent = r.status + " " + r.statusText + "\\n" + shown;
  } catch (e) { out.textContent = String(e); }
}
fetch("openapi.json").then(r => r.json()).then(doc => {
  const box = document.getElementById("ops"); box.innerHTML = "";
  for (const [path, item] of Object.entries(doc.paths)) for (const [method, op] of Object.entries(item)) {
    const d = document.createElement("details");
    const params = (op.parameters || []).map(p => `<label>${esc(p.name)} (${p.in}${p.required ? ", required"
      : ""}) <input data-in="${p.in}" name="${esc(p.name)}" placeholder="${esc(p.description || "")}"></label>`);
    const hasBody = op.requestBody && op.requestBody.content["application/json"];
    d.innerHTML = `<summary><span class="m">${method}</span> ${esc(path)} <span class="d">${esc(op.summary)}
      </span></summary><p class="d">${esc(op.description || "")}</p><form>${params.join("")}
      ${hasBody ? '<label>JSON body <textarea rows="4"></textarea></label>' : ""}
      <button type="submit">Send</button><pre></pre></form>`;
    d.querySelector("form").addEventListener("submit", ev => { ev.preventDefault();
      send(ev.target, method.toUpperCase(), path); });
    box.appendChild(d);
  }
});
</script></body></html>
"""


@routes.get(API + "/openapi.json")
async def openapi_json(request: web.Request) -> web.Response:
    return web.json_response(openapi.document(request.app[SETTINGS].MIN_PASSWORD_LENGTH))


@routes.get(API + "/docs")
async def docs(request: web.Request) -> web.Response:
    return web.Response(text=DOCS_HTML, content_type="text/html",
                        headers={"Content-Security-Policy": "default-src 'self'; script-src 'unsafe-inline'; "
                                                            "style-src 'unsafe-inline'"})
