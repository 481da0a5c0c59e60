// Log in with email (or user name) and password; the server sets the session cookie.
import * as api from "../api.js";
import { formValues, h, mount } from "../dom.js";
import { navigate } from "../router.js";
import { session } from "../session.js";
import { field, notice } from "../ui.js";

export async function loginPage(ctx) {
  document.title = "Log in · hub";
  const next = ctx.query.next && ctx.query.next.startsWith("#/") && !ctx.query.next.startsWith("#/login")
    ? ctx.query.next : "#/";
  if (session.me) {
    navigate(next, { replace: true });
    return;
  }
  const error = h("p#login-error.form-error", { role: "alert", hidden: true });
  const button = h("button#login-submit.primary", { type: "submit" }, "Log in");
  const form = h("form#login-form.card.narrow", { novalidate: false },
    h("h1", "Log in"),
    error,
    field({ name: "email", label: "Email or user name", type: "text", required: true, autocomplete: "username" }),
    field({ name: "password", label: "Password", type: "password", required: true, autocomplete: "current-password" }),
    h("div.buttons", button),
    h("p.form-links", h("a#forgot-link", { href: "#/forgot" }, "Forgot your password?"), " · ",
      h("a#signup-link", { href: "#/signup" }, "Ask for an account")),
  );
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const { email, password } = formValues(form);
    button.disabled = true;
    error.hidden = true;
    try {
      await api.login(email.trim(), password);
      session.set(await api.me());
      notice("");
      navigate(next, { replace: true });
    } catch (e) {
      error.textContent = e.status === 401 || e.status === 400
        ? "That email or user name and password do not match an account. Check them and try again."
        : e.message;
      error.hidden = false;
    } finally {
      button.disabled = false;
    }
  });
  mount(ctx.main, form);
  form.querySelector("input").focus();
}
