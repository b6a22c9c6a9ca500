"""The test suite (layout mirrors the handoffkit package)."""
