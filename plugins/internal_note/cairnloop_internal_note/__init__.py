"""The internal_note tool: an operator-only note appended to a conversation."""
