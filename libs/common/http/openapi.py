"""The OpenAPI document of msgspec bodies: `body_schema` declares a route's bodies (FastAPI
cannot see msgspec types), and `install_openapi` folds them in, with `ErrorBody` as every
route's error answer."""

from __future__ import annotations

import copy
from types import UnionType
from typing import Any, Final, Union, get_args, get_origin

import msgspec
from fastapi import FastAPI

from libs.common.http.bodies import BINARY, JSON, YAML
from libs.common.models.api import ErrorBody

SCHEMA_REF: Final = "#/components/schemas/{name}"
# Key under which `body_schema` hands its schema components to the OpenAPI builder.
_COMPONENTS_KEY: Final = "x-wolfpack-components"


def openapi_schema_for(*models: Any) -> dict[str, Any]:
    """OpenAPI `components` for msgspec types: `{"schemas": {Name: JSON schema}}`."""
    _, components = msgspec.json.schema_components(models, ref_template=SCHEMA_REF)
    return {"schemas": components}


def _schema(model: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    """JSON schema of `model` plus the components it refers to.

    A union of untagged Structs (`Node | MergedNode`, chosen by a query flag) cannot be
    decoded by msgspec, so it has no schema of its own: it becomes `anyOf` its members.
    """
    members = get_args(model) if get_origin(model) in (Union, UnionType) else (model,)
    schemas, components = msgspec.json.schema_components(members, ref_template=SCHEMA_REF)
    schema = schemas[0] if len(schemas) == 1 else {"anyOf": list(schemas)}
    return schema, components


def _raw_schema(media: str) -> dict[str, Any]:
    """The schema of a raw body: nodes.conf YAML is a mapping, a file is bytes, text a string."""
    if media == YAML:
        return {"type": "object"}
    if media == BINARY:
        return {"type": "string", "format": "binary"}
    return {"type": "string"}


def body_schema(
    *,
    request: Any = None,
    response: Any = None,
    status: int | tuple[int, ...] = 200,
    request_yaml: bool = False,
    request_raw: str | None = None,
    response_raw: tuple[str, ...] = (),
) -> dict[str, Any]:
    """`openapi_extra` for a route whose bodies are msgspec types (FastAPI can't see them).

    `status` may name several success codes (a PUT answers 201 when it creates).
    `request_raw` and `response_raw` document bodies that are not JSON by media type: YAML
    (nodes.conf), application/octet-stream (a file), text/plain (a script);
    `request_yaml` is `request_raw=YAML`.
    """
    extra: dict[str, Any] = {}
    components: dict[str, Any] = {}
    if request is not None:
        schema, more = _schema(request)
        components |= more
        extra["requestBody"] = {"required": True, "content": {JSON: {"schema": schema}}}
    raw = YAML if request_yaml else request_raw
    if raw is not None:
        content = {raw: {"schema": _raw_schema(raw)}}
        extra["requestBody"] = {"required": True, "content": content}
    answers: dict[str, Any] = {media: {"schema": _raw_schema(media)} for media in response_raw}
    if response is not None:
        schema, more = _schema(response)
        components |= more
        answers[JSON] = {"schema": schema}
    if answers:
        codes = (status,) if isinstance(status, int) else status
        extra["responses"] = {
            str(code): {"description": "OK", "content": copy.deepcopy(answers)} for code in codes
        }
    extra[_COMPONENTS_KEY] = components
    return extra


def install_openapi(app: FastAPI) -> None:
    """Post-process FastAPI's schema: msgspec components in, its 422 bodies out, ErrorBody in."""
    default = app.openapi
    error_schema, error_components = _schema(ErrorBody)
    error_answer = {"description": "Error", "content": {JSON: {"schema": error_schema}}}

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is not None:
            return app.openapi_schema
        schema = default()
        schemas = schema.setdefault("components", {}).setdefault("schemas", {})
        for name in ("HTTPValidationError", "ValidationError"):
            schemas.pop(name, None)
        schemas.update(error_components)
        for path_item in schema.get("paths", {}).values():
            for operation in path_item.values():
                schemas.update(operation.pop(_COMPONENTS_KEY, {}))
                responses = operation.setdefault("responses", {})
                responses.pop("422", None)
                responses.setdefault("default", error_answer)
        app.openapi_schema = schema
        return schema

    app.openapi = openapi  # type: ignore[method-assign]
