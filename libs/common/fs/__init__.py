"""File-system primitives: whole-file replacement, advisory locks, paths resolved inside a root."""
