"""Pure builders: one module per kind, each `build_<kind>(spec, ref, ...) -> dict` with no I/O."""
