"""Which code runs each service, picked by name from this one table (as uvicorn picks loops)."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Final, cast

if TYPE_CHECKING:
    from libs.common.service import Builder

# Service name → "module:function" of its `async def build(settings, bus) -> Service`.
SERVICES: Final[dict[str, str]] = {
    "registry": "services.registry.app:build",
    "builder": "services.builder.app:build",
    "overlayd": "services.overlayd.app:build",
    "bootd": "services.bootd.app:build",
    "tftpd": "services.tftpd.app:build",
}


def load(name: str) -> Builder:
    """Import the builder of service `name` (KeyError if the table has no such service)."""
    module_name, _, attribute = SERVICES[name].partition(":")
    return cast("Builder", getattr(importlib.import_module(module_name), attribute))
