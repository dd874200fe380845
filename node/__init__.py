"""The node's entry point and process wiring: the `flagstream` CLI, the options table, the
supervisor, a worker's wiring, import and admin commands. The only package that imports all
the others (docs/ARCHITECTURE.md)."""
