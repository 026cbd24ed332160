"""Running wolfpack: the `wolfpack` command, the process supervisor, the table of services."""
