"""Small shared helpers: atomic file writes, checkpoints, hashing."""
