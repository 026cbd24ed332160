"""`GET /api/v1/serving`: bootd's transfer slots and blob checks, beside the per-node
`/api/v1/status` (a list of nodes, so these counters get a route of their own)."""

from __future__ import annotations

from fastapi import Depends, FastAPI, Response

from libs.common import names
from libs.common.http.auth import TokenAuth
from libs.common.http.bodies import encode
from libs.common.http.openapi import body_schema
from libs.common.store.verified import BlobCorrupt
from services.bootd.guard import BlobGuard, ServingCounts, corrupt_answer


def mount(app: FastAPI, guard: BlobGuard, auth: TokenAuth) -> None:
    app.add_exception_handler(BlobCorrupt, corrupt_answer)

    @app.get(
        f"{names.API_PREFIX}/serving",
        dependencies=[Depends(auth.require_read)],
        openapi_extra=body_schema(response=ServingCounts),
    )
    async def serving() -> Response:
        return encode(guard.counts())
