"""Platforms as OCI names them (`linux/amd64`, `linux/arm64/v8`), and matching them."""

from __future__ import annotations

import platform

import msgspec

from libs.common.errors import Invalid

# Architectures as the kernel (`uname -m`) and Debian spell them → as OCI does; others agree.
_ARCH_ALIASES = {
    "x86_64": "amd64",
    "aarch64": "arm64",
    "armv7l": "arm",
    "armhf": "arm",
    "armel": "arm",
}
# The variant an architecture has when a descriptor names none (as containerd assumes).
_DEFAULT_VARIANT = {"arm64": "v8"}


class Platform(msgspec.Struct, frozen=True):
    os: str = "linux"
    architecture: str = "amd64"
    variant: str | None = None

    def __str__(self) -> str:
        return "/".join(part for part in (self.os, self.architecture, self.variant) if part)

    def matches(self, os: str, architecture: str, variant: str | None) -> bool:
        """Does an image for `os/architecture/variant` run here? A wanted variant must match
        (missing variants count as the architecture's default); none wanted takes any."""
        architecture = _ARCH_ALIASES.get(architecture, architecture)
        if (os, architecture) != (self.os, self.architecture):
            return False
        if self.variant is None:
            return True
        default = _DEFAULT_VARIANT.get(architecture)
        return (variant or default) == (self.variant or default)


def host_platform() -> str:
    """This machine's platform, as OCI names it (`linux/amd64`)."""
    machine = platform.machine()
    return f"linux/{_ARCH_ALIASES.get(machine, machine)}"


def parse_platform(text: str) -> Platform:
    """`OS/ARCH[/VARIANT]`, as in `linux/arm64` or `linux/arm/v7`."""
    parts = text.strip().lower().split("/")
    if len(parts) not in (2, 3) or not all(parts):
        raise Invalid(
            f"bad platform {text!r}; want OS/ARCH[/VARIANT], e.g. linux/arm64", field="platform"
        )
    architecture = _ARCH_ALIASES.get(parts[1], parts[1])
    return Platform(
        os=parts[0], architecture=architecture, variant=parts[2] if len(parts) == 3 else None
    )
