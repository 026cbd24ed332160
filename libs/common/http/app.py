"""The app factory every wolfpack service's HTTP API starts from.

Domain code never imports FastAPI; a service's `api.py` decodes with `decode_body`
(libs.common.http.bodies), calls the domain, and answers with `encode`. Typed errors from
libs.common.errors become JSON `ErrorBody` answers in libs.common.http.errors, and only there.
"""

from __future__ import annotations

import logging

from fastapi import FastAPI, Response

from libs.common.http.bodies import DEFAULT_BODY_LIMIT, BodyLimit, encode
from libs.common.http.errors import CatchAll, add_error_handlers
from libs.common.http.openapi import body_schema, install_openapi


def create_app(
    service: str, *, title: str, version: str, body_limit: int = DEFAULT_BODY_LIMIT
) -> FastAPI:
    """A FastAPI app with `/healthz`, wolfpack's error mapping, a body limit and msgspec docs."""
    app = FastAPI(title=title, version=version)

    @app.get("/healthz", openapi_extra=body_schema(response=dict[str, str]))
    async def healthz() -> Response:
        return encode({"service": service, "status": "ok"})

    add_error_handlers(app)
    app.add_middleware(BodyLimit, limit=body_limit)
    # Added last, so outermost of ours: it also sees what the body limit lets through.
    app.add_middleware(CatchAll, log=logging.getLogger(f"wolfpack.{service}.http"))
    install_openapi(app)
    return app
