"""tftpd: serves iPXE binaries over TFTP (shell: filled in by a later issue; no UDP yet)."""
