// The console's entry point: session, top bar, live-feed indicator and routes.
import * as api from "./api.js";
import { $, h, mount } from "./dom.js";
import { onUnauthenticated } from "./http.js";
import { live } from "./live.js";
import { navigate, parseHash, render, route, start } from "./router.js";
import { session } from "./session.js";
import { busy, notice } from "./ui.js";
import { acceptPage, accountPage, forgotPage, resetPage, signupPage } from "./pages/account.js";
import { adminPage, organizationPage } from "./pages/admin.js";
import { homePage } from "./pages/home.js";
import { keysPage } from "./pages/keys.js";
import { loginPage } from "./pages/login.js";
import { permissionsPage } from "./pages/permissions.js";
import { resourcePage } from "./pages/resource.js";

let extensionPanels = []; // [{title, url}] from the loaded extensions, linked in the top bar
// pages for people who are not signed in
const PUBLIC = /^\/(login|forgot|signup|accept\/.+|reset\/.+)$/;
const LIVE_LABELS = { off: "offline", connecting: "connecting…", live: "live", offline: "offline" };

function authed(page) {
  return async (ctx) => {
    if (!session.me) {
      navigate(`#/login?next=${encodeURIComponent(location.hash || "#/")}`, { replace: true });
      return;
    }
    await page(ctx);
  };
}

route(/^\/login$/, loginPage);
route(/^\/?$/, authed(homePage));
route(/^\/r\/(.+)$/, authed(resourcePage));
route(/^\/permissions\/(.+)$/, authed(permissionsPage));
route(/^\/keys$/, authed(keysPage));
route(/^\/admin$/, authed(adminPage));
route(/^\/admin\/org\/(.+)$/, authed(organizationPage));
route(/^\/accept\/([A-Za-z0-9_-]+)$/, acceptPage);
route(/^\/forgot$/, forgotPage);
route(/^\/reset\/([A-Za-z0-9_-]+)$/, resetPage);
route(/^\/signup$/, signupPage);
route(/^\/account$/, authed(accountPage));

function renderTopBar() {
  const me = session.me;
  const state = h("span#live-state.live-state", { title: live.detail || "", dataset: { state: live.state } },
    h("span.dot"), LIVE_LABELS[live.state]);
  mount($("#topbar"),
    h("a.brand", { href: "#/" }, "hub"),
    me && h("nav.main-nav",
      h("a", { href: "#/" }, "Browse"),
      h("a", { href: "#/keys" }, "Keys"),
      h("a#account-link", { href: "#/account" }, "Account"),
      h("a", { href: "/api/v1/docs", target: "_blank", rel: "noopener" }, "API"),
      (session.isAdmin() || session.organizations().some((o) => o.role === "admin")) && h("a", { href: "#/admin" }, "Admin"),
      extensionPanels.map((p) => h("a.ext-panel", { href: p.url }, p.title)),
    ),
    h("span.spacer"),
    me && state,
    me && h("span#whoami.whoami", me.email),
    me && h("button#logout.link", { type: "button", onclick: (e) => busy(e.target, logout) }, "Log out"),
  );
}

async function logout() {
  try {
    await api.logout();
  } finally {
    live.stop();
    session.set(null);
    renderTopBar();
    navigate("#/login");
    notice("You have logged out.", "ok");
  }
}

live.addEventListener("state", () => {
  const el = $("#live-state");
  if (!el) return;
  el.dataset.state = live.state;
  el.title = live.detail || "";
  el.lastChild.textContent = LIVE_LABELS[live.state];
});

onUnauthenticated(() => {
  if (!session.me) return;
  live.stop();
  session.set(null);
  renderTopBar();
  const here = location.hash || "#/";
  navigate(`#/login?next=${encodeURIComponent(here)}`, { replace: true });
  notice("Your session has ended. Please log in again.", "info");
});

session.addEventListener("change", () => {
  renderTopBar();
  if (session.me) live.start();
});

async function boot() {
  try {
    extensionPanels = (await api.extensions()).extensions.flatMap((e) => e.panels);
  } catch {
    extensionPanels = [];
  }
  try {
    session.set(await api.me());
  } catch (e) {
    session.set(null);
    if (e.status !== 401) notice(e.message);
  }
  renderTopBar();
  if (!session.me && !PUBLIC.test(parseHash().path)) {
    const next = location.hash && location.hash !== "#/" ? `?next=${encodeURIComponent(location.hash)}` : "";
    history.replaceState(null, "", `#/login${next}`);
  }
  await start(() => ({}));
}

window.hubConsole = { live, session, render };
boot();
