"""The thin command-line edge: one module per command; each parses, calls a tool, writes."""
