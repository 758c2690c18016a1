"""The `provision` command line: `main` builds the click group from one module per command group."""
