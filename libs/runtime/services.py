"""Which code runs each service, picked by name from this one table (as uvicorn picks loops)."""

from __future__ import annotations

import importlib
from typing import Final, cast

from libs.common import names
from libs.common.service import Builder
from libs.runtime.host import StartupFailed

# Service name → "module:function" of its `async def build(settings, bus) -> Service`: every
# service of libs.common.names, each in its folder's app.py.
SERVICES: Final[dict[str, str]] = {name: f"services.{name}.app:build" for name in names.SERVICES}


def load(name: str) -> Builder:
    """Import the builder of service `name` (KeyError if the table has no such service);
    StartupFailed if its code cannot be loaded."""
    module_name, _, attribute = SERVICES[name].partition(":")
    try:
        return cast(Builder, getattr(importlib.import_module(module_name), attribute))
    except (ImportError, AttributeError) as exc:
        raise StartupFailed(f"cannot load the {name} service: {exc}") from None
