"""Benchmarks of provision against its peers on labs of real OpenSSH hosts (see bench/README.md)."""
