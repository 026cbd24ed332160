"""The builder's folders under DATA, as `wolfpack gc` must know them too: DATA/images/NAME
holds an image's rootfs, its chunk index and its registry credentials; jobs work in a staging
folder on the same file system; accepted requests keep their credentials until their job ends.
"""

from __future__ import annotations

from typing import Final

IMAGES_DIR: Final = "images"
STAGING_DIR: Final = ".staging"
# Image names start with a letter or digit: no image folder is called this.
REQUESTS_DIR: Final = ".requests"
ROOTFS: Final = "rootfs"
CHUNK_INDEX: Final = "chunks.json"
# `user:password` for the registry an image came from (not in KV: every NATS client reads KV).
CREDS: Final = "creds"
