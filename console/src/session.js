// Who is logged in (the /me response), for every page.

class Session extends EventTarget {
  constructor() {
    super();
    this.me = null;
  }

  /** `me`: the /me response ({user, memberships, ...}) or null. */
  set(data) {
    const me = data?.user ? { ...data.user, memberships: data.memberships || [] } : null;
    const changed = (me?.id ?? me?.email) !== (this.me?.id ?? this.me?.email);
    this.me = me || null;
    if (changed) this.dispatchEvent(new Event("change"));
  }

  isAdmin() {
    return !!this.me?.is_admin;
  }

  /** Organizations the user belongs to: [{name, role}]. */
  organizations() {
    return (this.me?.memberships || []).map((m) => ({ name: m.organization, role: m.role || "member" }));
  }

  isOrgAdmin(name) {
    return this.isAdmin() || this.organizations().some((o) => o.name === name && o.role === "admin");
  }
}

export const session = new Session();
