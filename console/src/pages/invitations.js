// The admin side of accounts: an organization's invite form and pending invitations
// (#/admin/org/<name>), and the account requests (#/admin) when the hub takes them.
import * as api from "../api.js";
import { formValues, formatTime, h, mount } from "../dom.js";
import { busy, emptyRow, field, notice } from "../ui.js";

export function invitationsSection(ctx, org) {
  const tbody = h("tbody#invitations");
  const load = async () => {
    try {
      const data = await api.invitations(org);
      if (ctx.left()) return;
      mount(tbody, data.invitations.length ? data.invitations.map((i) => h("tr", { dataset: { email: i.email } },
        h("td", i.email), h("td", i.role === "admin" ? "organization admin" : "member"),
        h("td", formatTime(i.expires_at)),
        h("td", h("button.small", {
          type: "button",
          onclick: async (ev) => {
            if ((await busy(ev.target, () => api.cancelInvitation(org, i.id))) !== undefined) load();
          },
        }, "Cancel")),
      )) : emptyRow(4, "No pending invitations."));
    } catch (e) {
      if (!ctx.left()) mount(tbody, emptyRow(4, e.message));
    }
  };
  const form = h("form#invite-form.inline-form",
    field({ name: "email", label: "Email", type: "email", required: true }),
    field({ name: "role", label: "Role", options: [["member", "member"], ["admin", "organization admin"]], value: "member" }),
    h("div.buttons", h("button#invite-submit.primary", { type: "submit" }, "Invite")),
  );
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const v = formValues(form);
    const done = await busy(form.querySelector("button"), () => api.invite(org, v.email.trim(), v.role));
    if (done) {
      notice(`Invited ${done.email}: they get an email with a link.`, "ok");
      form.reset();
      load();
    }
  });
  load();
  return h("section#invitations-card.card", h("h2", "Invite by email"), form,
    h("table.listing", h("thead", h("tr", h("th", "Email"), h("th", "Role"), h("th", "Link works until"), h("th", ""))), tbody));
}

export function accountRequestsSection(ctx) {
  const tbody = h("tbody#account-requests");
  const section = h("section#account-requests-card.card", { hidden: true }, h("h2", "Account requests"),
    h("table.listing", h("thead", h("tr", h("th", "Email"), h("th", "Name"), h("th", "Organization"), h("th", "Message"),
      h("th", "Asked"), h("th", ""))), tbody));
  const load = async () => {
    let data;
    try {
      data = await api.accountRequests();
    } catch {
      return; // off on this hub (404), or nothing for this user: the section stays hidden
    }
    if (ctx.left()) return;
    section.hidden = false;
    mount(tbody, data.requests.length ? data.requests.map((r) => h("tr", { dataset: { email: r.email } },
      h("td", r.email), h("td", r.full_name), h("td", r.organization || ""), h("td", r.message), h("td", formatTime(r.created_at)),
      h("td",
        h("button.small.approve", { type: "button", onclick: (ev) => decide(ev, r, true) }, "Approve"), " ",
        h("button.small.danger.refuse", { type: "button", onclick: (ev) => decide(ev, r, false) }, "Refuse")),
    )) : emptyRow(6, "No pending requests."));
  };
  const decide = async (ev, r, approve) => {
    let body = {};
    if (approve && !r.organization) {
      const org = prompt(`Invite ${r.email} to which organization?`);
      if (!org) return;
      body = { organization: org.trim() };
    }
    const done = await busy(ev.target, () => (approve ? api.approveAccountRequest(r.id, body) : api.refuseAccountRequest(r.id)));
    if (done) {
      notice(approve ? `Approved: ${r.email} gets an invitation.` : `Refused ${r.email}.`, "ok");
      load();
    }
  };
  load();
  return section;
}
