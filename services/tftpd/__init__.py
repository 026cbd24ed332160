"""tftpd: serves the iPXE binaries over TFTP, read-only and confined to its root."""
