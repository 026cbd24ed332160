"""Build a node image (VNFS) from a rootfs: chunked, incremental, compressed newc cpio.

Pure library code: no NATS, no HTTP. `build_image` is the entry point.
"""

from services.builder.vnfs.build import BuildResult, build_image
from services.builder.vnfs.chunks import ChunkSettings
from services.builder.vnfs.excludes import DEFAULT_EXCLUDES
from services.builder.vnfs.progress import BuildProgress

__all__ = ["DEFAULT_EXCLUDES", "BuildProgress", "BuildResult", "ChunkSettings", "build_image"]
