"""overlayd: renders overlays and boot manifests (shell: filled in by a later issue)."""
