"""msgspec Structs for every message and stored object."""
