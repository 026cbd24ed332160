"""bootd: serves iPXE scripts, blobs and runtime overlays (shell: filled in by a later issue)."""
