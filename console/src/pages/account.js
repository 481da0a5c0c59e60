// Accounts people open themselves: #/accept/<code> (an invitation: set a password, or join
// signed in), #/forgot (ask for a reset link), #/reset/<code> (a new password), #/signup (ask
// for an account), #/account (change your password).
import * as api from "../api.js";
import { formValues, h, mount } from "../dom.js";
import { navigate } from "../router.js";
import { session } from "../session.js";
import { field, notice } from "../ui.js";

function form(id, title, fields, submitLabel, onSubmit, intro) {
  const error = h(`p#${id}-error.form-error`, { role: "alert", hidden: true });
  const button = h(`button#${id}-submit.primary`, { type: "submit" }, submitLabel);
  const el = h(`form#${id}-form.card.narrow`, h("h1", title), intro && h("p", intro), error, fields, h("div.buttons", button));
  el.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    button.disabled = true;
    error.hidden = true;
    try {
      await onSubmit(formValues(el));
    } catch (e) {
      error.textContent = e.code === "wrong_password" ? "Your current password is not right: type it again." : e.message;
      error.hidden = false;
    } finally {
      button.disabled = false;
    }
  });
  return el;
}

const newPassword = (label = "New password") => [
  field({ name: "password", label, type: "password", required: true, autocomplete: "new-password" }),
  field({ name: "confirm", label: "The same again", type: "password", required: true, autocomplete: "new-password" }),
];

function samePasswords(v) {
  if (v.password !== v.confirm) throw new Error("The two passwords differ: type the same one twice.");
}

function message(ctx, id, title, text, link) {
  mount(ctx.main, h(`section#${id}.card.narrow`, h("h1", title), h("p", text), link));
}

export async function acceptPage(ctx) {
  document.title = "Accept an invitation · hub";
  const code = ctx.params[0];
  let info;
  try {
    info = await api.checkInvitation(code);
  } catch (e) {
    if (!ctx.left()) message(ctx, "invitation-bad", "This invitation cannot be used", e.message,
      h("a", { href: "#/login" }, "Log in"));
    return;
  }
  if (ctx.left()) return;
  const role = info.role === "admin" ? "an organization admin" : "a member";
  const joined = async () => {
    session.set(await api.me());
    notice(`Welcome to ${info.organization}.`, "ok");
    navigate("#/", { replace: true });
  };
  if (info.existing_user) {
    if (!session.me || session.me.email !== info.email) {
      message(ctx, "invitation-sign-in", `Join ${info.organization}`,
        `${info.email} already has an account: log in as ${info.email}, then open the link again.`,
        h("a", { href: `#/login?next=${encodeURIComponent(`#/accept/${code}`)}` }, "Log in"));
      return;
    }
    mount(ctx.main, form("accept", `Join ${info.organization}`, [], "Join",
      async () => {
        await api.acceptInvitation({ code });
        await joined();
      }, `You are invited to join ${info.organization} as ${role}.`));
    return;
  }
  const f = form("accept", `Join ${info.organization}`, [
    h("p", "Your email: ", h("strong#accept-email", info.email)),
    field({ name: "full_name", label: "Your name", autocomplete: "name" }),
    ...newPassword("Choose a password"),
  ], "Create my account", async (v) => {
    samePasswords(v);
    await api.acceptInvitation({ code, password: v.password, full_name: v.full_name.trim() });
    await joined();
  }, `You are invited to join ${info.organization} as ${role}. Choose a password for your account.`);
  mount(ctx.main, f);
  f.querySelector("input").focus();
}

export async function forgotPage(ctx) {
  document.title = "Forgot your password · hub";
  mount(ctx.main, form("forgot", "Forgot your password?", [
    field({ name: "email", label: "Email", type: "email", required: true, autocomplete: "username" }),
  ], "Email me a link", async (v) => {
    await api.requestPasswordReset(v.email.trim());
    message(ctx, "forgot-sent", "Check your email",
      `If ${v.email.trim()} has an account, a link to set a new password is on its way. It works once, for a short while.`,
      h("a", { href: "#/login" }, "Back to log in"));
  }, "We will email you a link to choose a new password."));
}

export async function resetPage(ctx) {
  document.title = "Set a new password · hub";
  const code = ctx.params[0];
  mount(ctx.main, form("reset", "Set a new password", newPassword(), "Set password", async (v) => {
    samePasswords(v);
    await api.completePasswordReset(code, v.password);
    session.set(null);
    navigate("#/login", { replace: true });
    notice("Your password is set, and you are signed out everywhere. Log in with the new one.", "ok");
  }, "Setting it signs you out everywhere."));
}

export async function signupPage(ctx) {
  document.title = "Ask for an account · hub";
  mount(ctx.main, form("signup", "Ask for an account", [
    field({ name: "email", label: "Email", type: "email", required: true, autocomplete: "email" }),
    field({ name: "full_name", label: "Your name", autocomplete: "name" }),
    field({ name: "organization", label: "Organization to join (its short name, if you know it)" }),
    field({ name: "message", label: "A word for the admins", type: "textarea", rows: 3 }),
  ], "Send", async (v) => {
    const body = { email: v.email.trim(), full_name: v.full_name.trim(), message: v.message.trim() };
    if (v.organization.trim()) body.organization = v.organization.trim();
    await api.requestAccount(body);
    message(ctx, "signup-sent", "Request sent",
      "An admin will look at it. If it is approved, you will get an email with a link to set your password.",
      h("a", { href: "#/login" }, "Back to log in"));
  }));
}

export async function accountPage(ctx) {
  document.title = "Your account · hub";
  const f = form("password", "Change your password", [
    field({ name: "current", label: "Current password", type: "password", required: true, autocomplete: "current-password" }),
    ...newPassword(),
  ], "Change password", async (v) => {
    samePasswords(v);
    await api.changePassword(v.current, v.password);
    f.reset();
    notice("Your password is changed; your other sessions have ended.", "ok");
  }, `Signed in as ${session.me.email}.`);
  mount(ctx.main, f);
}
