"""The command layer: one module per command (options in, one pipeline call, one reporter out)."""
