"""An endpoint of the HTTP API, declared once: the router and the OpenAPI document are both
built from the list of declarations (`api.ENDPOINTS`), so neither can name a route, a
model or an error the other lacks. Starlette's `Route(path, endpoint)` is the model."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import flask
from pydantic import BaseModel
from werkzeug.routing import Map, Rule

from shared.teams.keys import Scope

Handler = Callable[..., flask.Response]
"""`handler(request, services, **path_variables)`: parse, authorize, call, shape the reply."""

Schema = dict[str, Any]


@dataclass(frozen=True, eq=False)
class Endpoint:
    """One method on one path: how it is routed, who may call it, and how it is documented.

    Compared by identity (each declaration is one route), which also lets werkzeug use it
    as the endpoint a match answers with."""

    path: str
    """werkzeug's syntax (`<task_id>`, `<any(enable, disable):action>`); the document's
    `{task_id}` and its path parameters are derived from it."""
    method: str
    handler: Handler
    summary: str = ""
    operation_id: str | None = None
    body: type[BaseModel] | None = None
    """The JSON request body's model (the body is required)."""
    raw_body: Mapping[str, Schema] | None = None
    """A body that is not JSON (an upload's bytes): media type -> schema; the handler
    reads `request.stream` itself."""
    query: type[BaseModel] | None = None
    """The query string's model: each field is an optional query parameter."""
    schemas: Mapping[str, Schema] = field(default_factory=dict)
    """Parameter schemas: each path variable's (an `any(...)` one is its enum without one),
    and query parameters' that say more than the model's field."""
    headers: Mapping[str, Schema] = field(default_factory=dict)
    """Optional request headers, name -> schema."""
    data: type[BaseModel] | None = None
    """The model of the envelope's `data` in the 200 reply."""
    answer: str = ""
    """What the 200 reply is (its description)."""
    media: Mapping[str, Schema] | None = None
    """The 200 reply's media types -> schema when it is not the JSON envelope ({}: a reply
    the document does not describe)."""
    links: Mapping[str, Mapping[str, str]] = field(default_factory=dict)
    """Operations the 200 reply leads to: operationId -> their parameters from the reply."""
    errors: tuple[int, ...] = ()
    """Error statuses besides 401 and 403, which every endpoint that is not public has."""
    other_replies: Mapping[int, str] = field(default_factory=dict)
    """Envelope replies that are no error (healthz's 503: a state), status -> description."""
    public: bool = False
    """No token needed."""
    scope: Scope | None = None
    """The scope a key needs to call it (issue 36); every endpoint that is not public
    names one (tests/test_teams.py)."""
    documented: bool = True
    """In the OpenAPI document (the dashboard's static files are not)."""
    defaults: Mapping[str, str] = field(default_factory=dict)
    """Handler arguments the route fixes (a path without a variable for them)."""


def route_map(endpoints: Iterable[Endpoint]) -> Map:
    """The router: a match answers with the Endpoint itself and the path variables."""
    return Map([Rule(endpoint.path, endpoint=endpoint, methods=[endpoint.method],
                     defaults=dict(endpoint.defaults) or None) for endpoint in endpoints],
               strict_slashes=False)


VARIABLE = re.compile(r"<(?:(?P<converter>\w+)(?:\((?P<arguments>[^)]*)\))?:)?(?P<name>\w+)>")
"""A werkzeug path variable: `<name>` or `<converter(arguments):name>`."""


def path_variables(path: str) -> list[tuple[str, tuple[str, ...]]]:
    """The path's variables in order, each with its choices when it is `any(...)`."""
    return [(match["name"], tuple(choice.strip() for choice in match["arguments"].split(","))
             if match["converter"] == "any" else ())
            for match in VARIABLE.finditer(path)]


def openapi_path(path: str) -> str:
    """werkzeug's `/task/<task_id>` as OpenAPI's `/task/{task_id}`."""
    return VARIABLE.sub(lambda match: "{" + match["name"] + "}", path)
