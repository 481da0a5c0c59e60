"""Extensions that ship with the hub as examples (docs/extensions.md)."""
