"""tgrelay Lambda code: one module per handler plus the small shared pieces."""
