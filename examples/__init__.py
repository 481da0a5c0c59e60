"""Examples of what the hub can be extended with (docs/extensions.md)."""
