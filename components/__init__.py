"""Reusable ComponentResources, one per module, and the pure functions they are built from."""
