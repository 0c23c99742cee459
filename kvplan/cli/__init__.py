"""Command-line interface: one module per command; each parses flags, calls stage functions
and renders their typed results."""
