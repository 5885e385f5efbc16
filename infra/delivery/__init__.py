"""Day-to-day delivery commands: the state backend, preflight checks, and cleanup before a destroy."""
