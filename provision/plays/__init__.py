"""User-level jobs, each a sequence of phases composed from tasks."""
