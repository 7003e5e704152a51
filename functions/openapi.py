"""The OpenAPI 3 document, generated from the endpoint declarations (`functions.routes`)
and the pydantic models the handlers validate with."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from functools import lru_cache
from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from functions.routes import Endpoint, Schema, openapi_path, path_variables
from shared.tasks.models import Envelope, ErrorEnvelope

REF = "#/components/schemas/{model}"
AUTH = [{"bearer": []}, {"apiKey": []}]
INFO = {"title": "vision-to-tag", "version": "1",
        "description": "Structured tags for videos. Every reply is the envelope "
                       "`{code, message, task_id, data}`; HTTP status = `code`."}
KEYS = ("A team's key `vtt_<id>_<secret>` (`vtt-keys create`) or an API_TOKENS admin token; "
        "each operation's `x-scope` names the scope it needs (`admin` has them all). Never "
        "in the query string (400).")
SECURITY_SCHEMES = {
    "bearer": {"type": "http", "scheme": "bearer", "description": KEYS},
    "apiKey": {"type": "apiKey", "in": "header", "name": "X-API-Key", "description": KEYS},
}
TOKEN_ERRORS = (401, 403, 429)
"""What the key check answers on every endpoint that is not public: no, unknown or revoked
key; a key without the scope; too many wrong keys from the address."""


@lru_cache(maxsize=4)
def openapi_document(endpoints: tuple[Endpoint, ...], platforms: tuple[str, ...] = (),
                     envs: tuple[str, ...] = ()) -> dict[str, Any]:
    """The document of the documented endpoints; with this deployment's PLATFORMS and ENVS,
    `platform` and `env` are enums (what the API really accepts)."""
    documented = [endpoint for endpoint in endpoints if endpoint.documented]
    paths: dict[str, dict[str, Any]] = {}
    for endpoint in documented:
        paths.setdefault(openapi_path(endpoint.path), {})[endpoint.method.lower()] = (
            _operation(endpoint, platforms, envs))
    return {
        "openapi": "3.1.0", "info": INFO, "paths": paths,
        "components": {"schemas": _schemas(documented, platforms, envs),
                       "securitySchemes": SECURITY_SCHEMES},
    }


def _schemas(endpoints: Iterable[Endpoint], platforms: tuple[str, ...],
             envs: tuple[str, ...]) -> dict[str, Any]:
    """Every request body as validated, every reply's data and the envelope as written."""
    models = [(model, mode) for endpoint in endpoints
              for model, mode in ((endpoint.body, "validation"), (endpoint.data, "serialization"))
              if model is not None]
    _, schemas = models_json_schema(
        list(dict.fromkeys([*models, (Envelope, "serialization"),
                            (ErrorEnvelope, "serialization")])), ref_template=REF)
    defs = schemas["$defs"]
    for endpoint in endpoints:
        if endpoint.data is not None:
            defs[_reply_name(endpoint.data)] = _typed_envelope(defs["Envelope"], endpoint.data)
    return _with_choices(defs, platforms, envs)


def _reply_name(data: type[BaseModel]) -> str:
    return f"{data.__name__}Reply"


def _typed_envelope(envelope: dict[str, Any], data: type[BaseModel]) -> dict[str, Any]:
    """The envelope with `data` as its model, spelled out (not `allOf` over the generic
    envelope, whose `data` is any object: client generators keep the first and lose the
    model)."""
    return {**envelope, "title": _reply_name(data),
            "description": f"The envelope; `data` is a {data.__name__}.",
            "properties": {**envelope["properties"],
                           "data": {"$ref": REF.format(model=data.__name__)}},
            "required": sorted({*envelope.get("required", []), "data"})}


def _with_choices(defs: dict[str, Any], platforms: tuple[str, ...],
                  envs: tuple[str, ...]) -> dict[str, Any]:
    for model in ("CreateTaskRequest", "SyncTagRequest"):
        properties = defs.get(model, {}).get("properties", {})
        for name, choices in (("platform", platforms), ("env", envs)):
            if choices and name in properties:
                properties[name] = {**properties[name], "enum": list(choices)}
    sync = defs.get("SyncTagRequest", {}).get("properties", {})
    if platforms and "platform" in sync:  # optional there: the first one is used
        sync["platform"] = {**sync["platform"], "default": platforms[0]}
    return defs


def _operation(endpoint: Endpoint, platforms: tuple[str, ...],
               envs: tuple[str, ...]) -> dict[str, Any]:
    operation: dict[str, Any] = {"summary": endpoint.summary, "tags": [group_of(endpoint.path)],
                                 "operationId": endpoint.operation_id or _derived_id(endpoint)}
    parameters = _parameters(endpoint, platforms, envs)
    if parameters or endpoint.query:
        operation["parameters"] = parameters
    if not endpoint.public:
        operation["security"] = AUTH
        operation["x-scope"] = str(endpoint.scope)
        operation["description"] = f"Needs a key with the `{endpoint.scope}` scope."
    if endpoint.body:
        operation["requestBody"] = {"required": True, "content": {"application/json": {
            "schema": {"$ref": REF.format(model=endpoint.body.__name__)}}}}
    elif endpoint.raw_body:
        operation["requestBody"] = {"required": True, "content": {
            media: {"schema": schema} for media, schema in endpoint.raw_body.items()}}
    errors = sorted({*endpoint.errors, *(() if endpoint.public else TOKEN_ERRORS)})
    operation["responses"] = {
        "200": _success(endpoint),
        **{str(status): _envelope(None, description)
           for status, description in endpoint.other_replies.items()},
        **{str(status): _error(status) for status in errors},
    }
    return operation


def _parameters(endpoint: Endpoint, platforms: tuple[str, ...],
                envs: tuple[str, ...]) -> list[dict[str, Any]]:
    """Path variables in path order, then headers, then the query model's fields."""
    path = [{"name": name, "in": "path", "required": True,
             "schema": {"type": "string", "enum": list(choices)} if choices
             else endpoint.schemas[name]}
            for name, choices in path_variables(endpoint.path)]
    headers = [{"name": name, "in": "header", "required": False, "schema": schema}
               for name, schema in endpoint.headers.items()]
    query = (_query_parameters(endpoint.query, endpoint.schemas, platforms, envs)
             if endpoint.query else [])
    return [*path, *headers, *query]


def _query_parameters(model: type[BaseModel], schemas: Mapping[str, Schema],
                      platforms: tuple[str, ...], envs: tuple[str, ...]
                      ) -> list[dict[str, Any]]:
    """The model's fields as query parameters; `platform` and `env` as this deployment's
    enums; a schema the endpoint declares wins."""
    parameters = []
    for name, prop in model.model_json_schema()["properties"].items():
        choices = {"platform": platforms, "env": envs}.get(name)
        if name in schemas:
            prop = schemas[name]
        elif choices:
            prop = {"type": "string", "enum": list(choices),
                    **({"description": prop["description"]} if "description" in prop else {})}
        parameters.append({"name": name, "in": "query", "required": False, "schema": prop})
    return parameters


def _success(endpoint: Endpoint) -> dict[str, Any]:
    """The 200 reply: the envelope (with its `data` model), or other media types."""
    if endpoint.media is None:
        reply = _envelope(endpoint.data, endpoint.answer)
    else:
        reply = {"description": endpoint.answer}
        if endpoint.media:
            reply["content"] = {media_type: {"schema": schema}
                                for media_type, schema in endpoint.media.items()}
    if endpoint.links:
        reply["links"] = {
            operation[0].upper() + operation[1:]: {"operationId": operation,
                                                   "parameters": dict(parameters)}
            for operation, parameters in endpoint.links.items()}
    return reply


def _envelope(data: type[BaseModel] | None, description: str) -> dict[str, Any]:
    model = _reply_name(data) if data else "Envelope"
    return {"description": description, "content": {"application/json": {"schema": {
        "$ref": REF.format(model=model)}}}}


GROUPS = (("/api/v1/task", "tasks"), ("/api/v1/batches", "batches"),
          ("/api/v1/uploads", "uploads"), ("/api/v1/search", "search"),
          ("/api/v1/accounts", "keys"), ("/api/v1/teams", "teams"))
"""Each operation's `tags` group, by its path's start (`/api/v1/task` covers `/tasks`);
everything else (stats, charts, health, pages, this document) is `operations`."""


def group_of(path: str) -> str:
    return next((group for start, group in GROUPS if path.startswith(start)), "operations")


def _derived_id(endpoint: Endpoint) -> str:
    """An operationId for a declaration without one: method + path words, camelCase."""
    words = [w for w in openapi_path(endpoint.path).replace("{", "").replace("}", "")
             .replace(".", "/").replace("_", "/").split("/") if w and w not in ("api", "v1")]
    return endpoint.method.lower() + "".join(w[:1].upper() + w[1:] for w in words)


ERROR_TEXT = {400: "a field's value cannot be used", 401: "no key, or an unknown or revoked one",
              403: "the key lacks the scope (`x-scope`)",
              404: "no such thing", 409: "its state does not allow it",
              413: "too large", 415: "not JSON", 429: "too many: see Retry-After",
              503: "a backing service is down: see Retry-After"}


def _error(status: int) -> dict[str, Any]:
    """Every error reply: `ErrorEnvelope` (`message` and, when it is about one, `field`)."""
    return {"description": f"error: {ERROR_TEXT.get(status, 'refused')}; `message` names "
                           f"the field and the reason",
            "content": {"application/json": {"schema": {
                "$ref": REF.format(model="ErrorEnvelope")}}}}
