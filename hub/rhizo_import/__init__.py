"""Moving a rhizo-server installation into the hub (`run.py --import-rhizo`).

- `source`: reading rhizo-server's PostgreSQL tables (and refusing a database that is not one);
- `mapping`: rhizo's types, names, attributes, values and permissions in the hub's terms;
- `writer`: users, the tree, memberships, permissions, keys, controller status;
- `history`: every revision, with values from rhizo's bulk storage (S3);
- `keys`: checking rhizo's key and password hashes (used by the HTTP API and the broker);
- `importer`: the command, in one transaction.

This module imports nothing: `keys` is loaded by the storage layer and the broker plugin.
"""
