"""Checks of what a request names, shared by the API (refusing bad input at once) and the jobs
(which parse it again when they run, perhaps after a restart): the source and fetch options."""

from __future__ import annotations

import os

from libs.common.errors import Invalid
from services.builder.sources import FetchOptions, Source, parse_source
from services.builder.sources.platform import host_platform, parse_platform


def check_source(text: str) -> Source:
    source = parse_source(text)
    path = getattr(source, "path", None)
    if path is not None and not os.path.isabs(path):
        raise Invalid(
            f"{text!r}: a local source must be an absolute path on the builder's machine",
            field="source",
        )
    return source


def fetch_options(platform_text: str | None, insecure: bool, creds: str | None) -> FetchOptions:
    if platform_text is not None:
        parse_platform(platform_text)
    if creds is not None and ":" not in creds:
        raise Invalid("credentials must be user:password", field="creds")
    return FetchOptions(platform=platform_text or host_platform(), insecure=insecure, creds=creds)
