// The top of the tree: the organizations the user can read.
import * as api from "../api.js";
import { h, mount } from "../dom.js";
import { session } from "../session.js";
import { breadcrumbs, emptyRow, resourceHref, showError, typeBadge } from "../ui.js";

export async function homePage(ctx) {
  document.title = "Browse · hub";
  mount(ctx.main, breadcrumbs(""), h("h1", "Organizations"), h("p.muted", "Loading…"));
  let data;
  try {
    data = await api.roots();
  } catch (e) {
    if (!ctx.left()) mount(ctx.main, breadcrumbs(""), h("h1", "Organizations"));
    showError(e);
    return;
  }
  if (ctx.left()) return;
  const rows = data.children.map((c) => h("tr",
    h("td", h("a", { href: resourceHref(c.path) }, c.name)),
    h("td", typeBadge(c.type)),
  ));
  mount(ctx.main,
    breadcrumbs(""),
    h("div.page-head", h("h1", "Organizations"),
      session.isAdmin() && h("a.button", { href: "#/admin" }, "Manage organizations and users")),
    h("table#children.listing",
      h("thead", h("tr", h("th", "Name"), h("th", "Type"))),
      h("tbody", rows.length ? rows : emptyRow(2,
        "You cannot see any organization yet. Ask an administrator to add you to one or to grant you access to a folder."))),
  );
}
