// Hash routes: #/login, #/, #/r/<path>, #/permissions/<path>, #/keys, #/admin, #/admin/org/<name>.
// Each page is `async (ctx) => void`; ctx.onLeave(fn) runs fn when the page is left
// (unsubscribe from live topics, stop timers) and ctx.left() tells an await that returned late.

const routes = [];
let current = null;
let counter = 0;

export function route(pattern, page) {
  routes.push([pattern, page]);
}

export function parseHash(hash = location.hash) {
  const raw = hash.replace(/^#/, "") || "/";
  const [pathPart, queryPart = ""] = raw.split("?");
  return { path: pathPart, query: Object.fromEntries(new URLSearchParams(queryPart)) };
}

export function navigate(hash, { replace = false } = {}) {
  if (location.hash === hash) return render();
  if (replace) {
    history.replaceState(null, "", hash);
    return render();
  }
  location.hash = hash; // hashchange renders
  return undefined;
}

export function leaveCurrent() {
  if (!current) return;
  for (const fn of current.cleanups.splice(0)) {
    try {
      fn();
    } catch (e) {
      console.error(e);
    }
  }
  current = null;
}

export async function render(extra = {}) {
  leaveCurrent();
  const { path, query } = parseHash();
  const id = ++counter;
  const ctx = {
    id, path, query, ...extra,
    main: document.querySelector("#main"),
    cleanups: [],
    onLeave(fn) {
      this.cleanups.push(fn);
    },
    left: () => id !== counter,
  };
  current = ctx;
  for (const [pattern, page] of routes) {
    const m = pattern.exec(path);
    if (m) {
      ctx.params = m.slice(1).map((p) => (p === undefined ? p : decodeURIComponent(p)));
      await page(ctx);
      return;
    }
  }
  await routes.find(([p]) => p.source === "^\\/?$")?.[1](ctx);
}

export function start(extra) {
  window.addEventListener("hashchange", () => render(extra()));
  return render(extra());
}
