"""Punie: a local-first coding agent that learns to use tools and to stop."""
