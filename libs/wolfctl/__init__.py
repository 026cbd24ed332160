"""wolfctl: the admin CLI of wolfpack (Warewulf's wwctl verb tree over the registry API)."""
