"""Declared JSON endpoints: pydantic models validate every query parameter and
describe every response, and the OpenAPI 3.1 document is built from the same
declarations, so the document cannot drift from what the code accepts.

A route is declared with :func:`endpoint`; the view receives the parsed
query model.  A bad parameter is answered ``400`` with the parameter and
pydantic's reason, never a 500.  Hostile input is refused here, once for
every endpoint (the class, not the examples): a path id that is not 1-18
ASCII digits, a control character in any query value or body string, JSON
nested deeper than :data:`MAX_JSON_DEPTH`, and ``NaN``/``Infinity`` in a
query or a body.
"""
from __future__ import annotations

import functools
import json
import re
from collections.abc import Callable
from datetime import datetime, timezone
from typing import Annotated, Any, NamedTuple

from flask import Blueprint, request
from pydantic import BaseModel, BeforeValidator, ConfigDict, ValidationError, model_validator
from pydantic.json_schema import models_json_schema

from webapp.web.errors import ApiError

ERROR_TEXT = {400: "Bad parameter", 401: "Missing or bad API token", 403: "Not allowed for this caller",
              404: "Not found", 405: "Method not allowed", 409: "Conflict", 413: "Body too large",
              429: "Rate limited", 503: "Unhealthy"}
MAX_JSON_DEPTH = 32  # a rule's condition nests a few levels; nothing real comes near this
ID_PATTERN = "^[0-9]{1,18}$"  # ids are bigint: 18 ASCII digits always fit
ID_SCHEMA = {"type": "string", "pattern": ID_PATTERN}
MAX_ID = 10**18 - 1
MAX_POSITION = 2**31 - 1  # an integer column
_TEXT = r"[^\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]"  # a character that is not a control character
TEXT_PATTERN = rf"^{_TEXT}*$"  # stored free text (descriptions): no control characters
_NAME = r"[^\x00-\x1f\x7f-\x9f]"  # in a name, tab and line breaks are controls too
NAME_PATTERN = rf"^{_NAME}*[^\s\x00-\x1f\x7f-\x9f]{_NAME}*$"  # a one-line name, not all spaces
_ID = re.compile(ID_PATTERN)
# C0 and C1 controls (and DEL) but tab, newline and carriage return: refused in stored text
CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")
SURROGATE = re.compile("[\ud800-\udfff]")


def _parse_time(value: Any) -> Any:
    """ISO 8601 or unix seconds, returned in UTC; a time without zone is UTC."""
    if not isinstance(value, str):
        return value
    text = value.strip()
    try:
        if text.lstrip("-").isdigit():
            return datetime.fromtimestamp(int(text), tz=timezone.utc)
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
        if parsed.tzinfo is None:
            return parsed.replace(tzinfo=timezone.utc)
        return parsed.astimezone(timezone.utc)
    except ValueError:
        raise ValueError("expected ISO 8601 or unix seconds") from None
    except (OverflowError, OSError):
        raise ValueError("time out of range") from None


Timestamp = Annotated[datetime, BeforeValidator(_parse_time)]


class Query(BaseModel):
    """Base of query models: unknown parameters are refused, not ignored.

    An empty value (``?max_price=``, what a browser sends for an empty form
    box) means the parameter was not given: its default, usually no bound.
    """

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    @model_validator(mode="before")
    @classmethod
    def _empty_means_unset(cls, data: Any) -> Any:
        if isinstance(data, dict):
            return {k: v for k, v in data.items() if not (isinstance(v, str) and v.strip() == "")}
        return data


class NoQuery(Query):
    """The query of an endpoint that takes no parameters: any parameter is refused."""


class Endpoint(NamedTuple):
    path: str
    method: str
    summary: str
    query: type[BaseModel] | None
    body: type[BaseModel] | None
    response: type[BaseModel]
    status: int
    auth: str | None  # the door's kind (webapp.web.access): public, private, write, session
    scope: str | None  # the scope the door asks for
    errors: tuple[int, ...]
    bodies: dict[int, type[BaseModel]]  # statuses whose body is not an ErrorBody
    path_schemas: dict[str, dict[str, Any]]  # JSON schema per path parameter (default: a ticker)


TICKER_SCHEMA = {"type": "string", "pattern": "^[A-Za-z0-9.\\-]{1,10}$"}


ENDPOINTS: list[Endpoint] = []


def validation_message(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors():
        where = ".".join(str(x) for x in err["loc"]) or "query"
        msg = "unknown parameter" if err["type"] == "extra_forbidden" else err["msg"]
        parts.append(f"{where}: {msg}")
    return "; ".join(parts)


def endpoint(
    bp: Blueprint,
    path: str,
    *,
    response: type[BaseModel],
    summary: str,
    method: str = "GET",
    status: int = 200,
    query: type[BaseModel] | None = None,
    body: type[BaseModel] | None = None,
    auth: Callable[[], None] | None = None,
    errors: tuple[int, ...] = (),
    bodies: dict[int, type[BaseModel]] | None = None,
    path_schemas: dict[str, dict[str, Any]] | None = None,
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Register an endpoint under ``/api`` (``path`` in Flask syntax).

    ``auth`` is a door of :mod:`webapp.web.access`, called before anything
    else; it raises ApiError(401/403) to refuse.  A path parameter named
    ``*_id`` takes 1-18 ASCII digits.  The view gets the parsed query as
    ``q`` and the parsed JSON body as ``data``.
    """

    ids = [p.strip("<>") for p in path.split("/") if p.startswith("<") and p.endswith("_id>")]

    def wrap(view: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(view)
        def run(**kwargs: Any) -> Any:
            if auth is not None:
                auth()
            for name in ids:
                if not _ID.match(kwargs[name]):
                    raise ApiError(400, "bad_parameter", f"{name}: expected an id of 1-18 digits 0-9")
            args = request.args.to_dict()
            for name, value in args.items():
                if CONTROL.search(name + value):
                    raise ApiError(400, "bad_parameter",
                                   f"{_shown(name)}: control characters are not allowed")
            try:
                parsed = (query or NoQuery).model_validate(args)
            except ValidationError as exc:
                raise ApiError(400, "bad_parameter", validation_message(exc)) from None
            if query is not None:
                kwargs["q"] = parsed
            if body is not None:
                payload = json_body()
                try:
                    kwargs["data"] = body.model_validate(payload)
                except ValidationError as exc:
                    raise ApiError(400, "bad_body", validation_message(exc)) from None
            return view(**kwargs)

        bp.add_url_rule(path, endpoint=view.__name__, view_func=run, methods=[method])
        codes = {*errors, 400, 405, 429}  # 400: every endpoint refuses unknown parameters
        if body is not None:
            codes.add(413)
        kind, scope = getattr(auth, "kind", None), getattr(auth, "scope", None)
        if auth is not None:
            codes.add(401)
            if kind != "public" or scope not in (None, "read"):
                codes.add(403)
        if ids:
            codes.add(404)
        schemas = {**{name: ID_SCHEMA for name in ids}, **(path_schemas or {})}
        ENDPOINTS.append(Endpoint("/api" + path, method.lower(), summary, query, body, response,
                                  status, kind, scope, tuple(sorted(codes)), bodies or {}, schemas))
        return run

    return wrap


def _shown(text: str) -> str:
    return repr(text[:40])[1:-1]


def _check_strings(value: Any, where: str, depth: int) -> None:
    """Refuse nesting past MAX_JSON_DEPTH and control characters in any string (keys too)."""
    if depth > MAX_JSON_DEPTH:
        raise ApiError(400, "bad_body", f"body: nested deeper than {MAX_JSON_DEPTH} levels")
    if isinstance(value, str):
        if CONTROL.search(value):
            raise ApiError(400, "bad_body", f"{where or 'body'}: control characters are not allowed")
        if SURROGATE.search(value):  # "\ud800" alone is valid JSON but no character: UTF-8 cannot hold it
            raise ApiError(400, "bad_body", f"{where or 'body'}: a lone UTF-16 surrogate is not text")
    elif isinstance(value, dict):
        for k, v in value.items():
            _check_strings(k, where, depth + 1)
            _check_strings(v, f"{where}.{_shown(k)}" if where else _shown(k), depth + 1)
    elif isinstance(value, list):
        for i, v in enumerate(value):
            _check_strings(v, f"{where}.{i}" if where else str(i), depth + 1)


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def json_body() -> dict[str, Any]:
    """The request's JSON object, checked: strict JSON (no ``NaN`` or ``Infinity``, which are not
    JSON), nested at most MAX_JSON_DEPTH, no control characters and no lone surrogates.  Numbers
    stay exact (a huge one reaches the field's own bound, whose 400 names the field).  A body larger than
    MAX_CONTENT_LENGTH is a 413 before it is read."""
    if not request.is_json:
        raise ApiError(400, "bad_body", "body: expected a JSON object (Content-Type: application/json)")
    try:
        payload = json.loads(request.get_data(cache=True), parse_constant=_no_constant)
    except RecursionError:
        raise ApiError(400, "bad_body", f"body: nested deeper than {MAX_JSON_DEPTH} levels") from None
    except ValueError as exc:  # JSONDecodeError, bad UTF-8, a constant, an integer of 4,300+ digits
        raise ApiError(400, "bad_body", f"body: not JSON ({str(exc).split(':')[0][:80]})") from None
    if not isinstance(payload, dict):
        raise ApiError(400, "bad_body", "body: expected a JSON object")
    _check_strings(payload, "", 1)
    return payload


class ErrorBody(BaseModel):
    class Detail(BaseModel):
        code: str
        message: str

    error: Detail


def _openapi_path(path: str) -> str:
    """Flask ``<ticker>`` -> OpenAPI ``{ticker}``."""
    return path.replace("<", "{").replace(">", "}")


COMPONENTS: list[type[BaseModel]] = []  # schemas a field refers to by name (see :func:`component_ref`)


def component_ref(model: type[BaseModel]) -> dict[str, Any]:
    """A field's schema as a reference to ``model``'s, which joins the document's components: for a
    field validated by other code than pydantic, described here all the same."""
    if model not in COMPONENTS:
        COMPONENTS.append(model)
    return {"allOf": [{"$ref": f"#/components/schemas/{model.__name__}"}]}  # allOf: a description may join


def _says_no_controls(schema: Any) -> None:
    """Every free string in the document states what json_body and the query check refuse."""
    if isinstance(schema, dict):
        if schema.get("type") == "string" and not {"pattern", "enum", "const", "format"} & schema.keys():
            schema["pattern"] = TEXT_PATTERN
        for value in schema.values():
            _says_no_controls(value)
    elif isinstance(schema, list):
        for value in schema:
            _says_no_controls(value)


def openapi_document() -> dict[str, Any]:
    """The OpenAPI 3.1 document for every declared endpoint."""
    models = ({e.response for e in ENDPOINTS} | {ErrorBody} | set(COMPONENTS)
              | {m for e in ENDPOINTS for m in e.bodies.values()} | {e.body for e in ENDPOINTS if e.body})
    _, schema = models_json_schema([(m, "serialization") for m in models],
                                   ref_template="#/components/schemas/{model}")
    components = schema.get("$defs", {})
    _says_no_controls(components)
    paths: dict[str, Any] = {}
    for e in ENDPOINTS:
        params = []
        for name in (p.strip("<>") for p in e.path.split("/") if p.startswith("<")):
            params.append({"name": name, "in": "path", "required": True,
                           "schema": e.path_schemas.get(name, TICKER_SCHEMA)})
        if e.query is not None:
            qs = e.query.model_json_schema()
            _says_no_controls(qs)
            for name, prop in qs.get("properties", {}).items():
                params.append({"name": name, "in": "query", "required": name in qs.get("required", []),
                               "schema": prop, "description": prop.get("description", "")})
        responses: dict[str, Any] = {
            str(e.status): {"description": "OK" if e.status == 200 else "Created", "content": {
                "application/json": {"schema": {"$ref": f"#/components/schemas/{e.response.__name__}"}}}}
        }
        for code in sorted({*e.errors, *e.bodies} - {e.status}):
            body = e.bodies.get(code, ErrorBody).__name__
            responses[str(code)] = {"description": ERROR_TEXT.get(code, "OK"), "content": {
                "application/json": {"schema": {"$ref": f"#/components/schemas/{body}"}}}}
        op: dict[str, Any] = {
            "summary": e.summary, "operationId": e.summary.lower().replace(" ", "_"),
            "parameters": params, "responses": responses,
        }
        if e.body is not None:
            op["requestBody"] = {"required": True, "content": {"application/json": {
                "schema": {"$ref": f"#/components/schemas/{e.body.__name__}"}}}}
        session = [{"sessionCookie": []}] if e.method == "get" else [{"sessionCookie": [], "csrfHeader": []}]
        if e.auth == "public":  # market data: open unless the site is private
            op["security"] = [{}, {"bearerToken": []}, *session]
        elif e.auth == "session":  # token management: a signed-in page only
            op["security"] = session
        elif e.auth is not None:  # a token with the scope, or a signed-in page's session
            op["security"] = [{"bearerToken": []}, *session]
        if e.scope:
            op["x-scope"] = e.scope
            op["description"] = f"Needs the `{e.scope}` scope" + (
                " (and an admin)" if e.scope == "admin" else "") + "."
        paths.setdefault(_openapi_path(e.path), {})[e.method] = op
    return {
        "openapi": "3.1.0",
        "info": {"title": "Stock tracker API", "version": "1",
                 "description": "Read the tracker's snapshot, history and alerts as JSON. "
                                "Times are ISO 8601 UTC; prices are US dollars."},
        "paths": paths,
        "components": {"schemas": components, "securitySchemes": {
            "bearerToken": {"type": "http", "scheme": "bearer",
                            "description": "make one at /tokens or with "
                                           "`flask --app wsgi tokens create USER`"},
            "sessionCookie": {"type": "apiKey", "in": "cookie", "name": "session",
                              "description": "sign in at /login (`flask --app wsgi users create NAME`)"},
            "csrfHeader": {"type": "apiKey", "in": "header", "name": "X-CSRFToken",
                           "description": "the page's CSRF token (its csrf-token meta), on every write"}}},
    }
