"""Demo data for the example site, one module per area (each `load(stdout)` is idempotent)."""
