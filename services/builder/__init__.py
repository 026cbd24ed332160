"""builder: imports and builds images (shell: filled in by a later issue)."""
