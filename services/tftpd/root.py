"""The TFTP root: which file a requested name may open, and nothing outside it.

A request is served from an explicit map of the iPXE binaries (name → real file; these are the
only names that may resolve outside the root, to Debian's /usr/lib/ipxe) or else from a file
under the root that still resolves inside it after every symlink is followed.
"""

from __future__ import annotations

import logging
import os
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Final

from libs.common.errors import Invalid

log = logging.getLogger("wolfpack.tftpd")

IPXE_DIR: Final = Path("/usr/lib/ipxe")
# BIOS (chainloads through the PXE stack), UEFI with its own drivers, UEFI through SNP.
IPXE_BINARIES: Final = ("undionly.kpxe", "ipxe.efi", "snponly.efi")
IPXE_PACKAGE: Final = "ipxe"

# RFC 1350 error codes used for refusals.
FILE_NOT_FOUND: Final = 1
ACCESS_VIOLATION: Final = 2


class Refused(Exception):
    """A request that gets a TFTP error: `code` goes on the wire, the message in the log."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass(frozen=True)
class TftpRoot:
    root: Path
    # Name → real file: the iPXE binaries, allowed to live outside the root.
    known: dict[str, Path]

    def resolve(self, requested: str) -> Path:
        """The real file `requested` names, or Refused saying why not."""
        if "\x00" in requested:
            raise Refused(ACCESS_VIOLATION, "file name contains a NUL byte")
        # Firmware and iPXE may ask for "/undionly.kpxe": one leading slash means the root.
        name = requested[1:] if requested.startswith("/") else requested
        if not name or name.startswith("/"):
            raise Refused(ACCESS_VIOLATION, f"absolute path {requested!r} is outside the root")
        if ".." in name.split("/"):
            raise Refused(ACCESS_VIOLATION, f"{requested!r} climbs out of the root with '..'")
        if name in self.known:
            return self.known[name]
        base = Path(os.path.realpath(self.root))
        real = Path(os.path.realpath(base / name))
        if not real.is_relative_to(base):
            raise Refused(ACCESS_VIOLATION, f"{requested!r} resolves outside the root")
        if not real.is_file():
            raise Refused(FILE_NOT_FOUND, f"{requested!r} not found")
        return real

    def open(self, requested: str) -> BinaryIO:
        """Open what `requested` names for reading; the final component is not followed
        again (O_NOFOLLOW), so a symlink swapped in after the check does not work."""
        path = self.resolve(requested)
        try:
            fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
        except FileNotFoundError:
            raise Refused(FILE_NOT_FOUND, f"{requested!r} not found") from None
        except OSError as exc:
            raise Refused(ACCESS_VIOLATION, f"{requested!r}: {exc.strerror}") from None
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            os.close(fd)
            raise Refused(ACCESS_VIOLATION, f"{requested!r} is not a regular file")
        return os.fdopen(fd, "rb")


def assemble(root: Path, ipxe_dir: Path = IPXE_DIR) -> TftpRoot:
    """The default root: `root` made and filled with symlinks to the iPXE binaries."""
    root.mkdir(parents=True, exist_ok=True)
    known: dict[str, Path] = {}
    for name in IPXE_BINARIES:
        source = ipxe_dir / name
        link = root / name
        if not source.is_file():
            continue
        known[name] = source.resolve()
        if link.is_symlink() or not link.exists():
            # Re-pointed every start, so a moved package is followed.
            link.unlink(missing_ok=True)
            link.symlink_to(source)
    _warn_missing(known, f"{ipxe_dir} (install Debian's {IPXE_PACKAGE!r} package)")
    return TftpRoot(root=root, known=known)


def configured(root: Path) -> TftpRoot:
    """A root the administrator provides: its iPXE binaries may be symlinks to anywhere."""
    if not root.is_dir():
        raise Invalid(f"TFTP root {root} is not a directory", field="tftp_root")
    known = {name: (root / name).resolve() for name in IPXE_BINARIES if (root / name).is_file()}
    _warn_missing(known, str(root))
    return TftpRoot(root=root, known=known)


def _warn_missing(known: dict[str, Path], where: str) -> None:
    missing = [name for name in IPXE_BINARIES if name not in known]
    if missing:
        log.warning(
            "iPXE binaries missing from %s: %s; nodes that ask for them will fail to boot",
            where,
            ", ".join(missing),
        )
