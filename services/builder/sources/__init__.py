"""Image sources: any image reference (registry, OCI layout or archive, docker-archive,
Docker engine, chroot directory, rootfs tarball) turned into a verified rootfs directory."""

from services.builder.sources.fetch import FetchOptions, inspect_digest
from services.builder.sources.importer import ImportOptions, ImportResult, import_rootfs
from services.builder.sources.oci_types import RuntimeConfig
from services.builder.sources.progress import ImportProgress, ProgressCallback
from services.builder.sources.reference import RegistrySource, Source, parse_source

__all__ = [
    "FetchOptions",
    "ImportOptions",
    "ImportProgress",
    "ImportResult",
    "ProgressCallback",
    "RegistrySource",
    "RuntimeConfig",
    "Source",
    "import_rootfs",
    "inspect_digest",
    "parse_source",
]
