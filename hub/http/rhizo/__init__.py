"""rhizo-server's dialect of the HTTP API and its message websocket, in front of the hub's
own API (docs/rhizo-compat.md): the same storage, access rule, limits and parser.

- `dialect`: the rule that picks the dialect for a request, and the middleware that
  serves rhizo requests (the hub's own routes never see them);
- `form`: rhizo's request values (query string + form body, also on GET);
- `shapes`: rhizo's answers (numeric types, leading-slash paths, `' Z'` timestamps);
- `access`: who is calling, as rhizo-server saw it;
- `resources`, `pins`, `keys`: the handlers; `reads`, `writes`: their work, in one transaction;
- `websocket`, `bridge`, `recheck`: `/api/v1/websocket`, bridged to the broker, and what the
  change log means for the open sockets.
"""
