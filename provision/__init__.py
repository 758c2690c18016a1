"""provision: provisioning and secrets for DVC data registries on NFS storage reached over SSH."""

__version__ = "0.1.0"
