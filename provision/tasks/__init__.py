"""Idempotent building blocks: each task knows one kind of resource."""
