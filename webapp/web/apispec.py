"""Declared JSON endpoints: pydantic models validate every query parameter and
describe every response, and the OpenAPI 3.1 document is built from the same
declarations, so the document cannot drift from what the code accepts.

A route is declared with :func:`endpoint`; the view receives the parsed
query model.  A bad parameter is answered ``400`` with the parameter and
pydantic's reason, never a 500.
"""
from __future__ import annotations

import functools
from collections.abc import Callable
from datetime import datetime, timezone
from typing import Annotated, Any, NamedTuple

from flask import Blueprint, request
from pydantic import BaseModel, BeforeValidator, ConfigDict, ValidationError, model_validator
from pydantic.json_schema import models_json_schema

from webapp.web.errors import ApiError

ERROR_TEXT = {400: "Bad parameter", 401: "Missing or bad API token", 404: "Not found",
              405: "Method not allowed", 409: "Conflict", 429: "Rate limited", 503: "Unhealthy"}


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

    model_config = ConfigDict(extra="forbid")

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
    auth: str | None  # "write": a token is required; "read": required if the setting says so
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
    auth_kind: str = "write",
    errors: tuple[int, ...] = (),
    bodies: dict[int, type[BaseModel]] | None = None,
    path_schemas: dict[str, dict[str, Any]] | None = None,
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Register an endpoint under ``/api`` (``path`` in Flask syntax).

    ``auth`` is called before anything else and raises ApiError(401) to refuse.
    The view gets the parsed query as ``q`` and the parsed JSON body as ``data``.
    """

    def wrap(view: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(view)
        def run(**kwargs: Any) -> Any:
            if auth is not None:
                auth()
            try:
                parsed = (query or NoQuery).model_validate(request.args.to_dict())
            except ValidationError as exc:
                raise ApiError(400, "bad_parameter", validation_message(exc)) from None
            if query is not None:
                kwargs["q"] = parsed
            if body is not None:
                payload = request.get_json(silent=True)
                if payload is None:
                    raise ApiError(400, "bad_body",
                                   "body: expected a JSON object (Content-Type: application/json)")
                try:
                    kwargs["data"] = body.model_validate(payload)
                except ValidationError as exc:
                    raise ApiError(400, "bad_body", validation_message(exc)) from None
            return view(**kwargs)

        bp.add_url_rule(path, endpoint=view.__name__, view_func=run, methods=[method])
        codes = {*errors, 400, 405, 429}  # 400: every endpoint refuses unknown parameters
        if auth is not None:
            codes.add(401)
        ENDPOINTS.append(Endpoint("/api" + path, method.lower(), summary, query, body, response,
                                  status, auth_kind if auth else None, tuple(sorted(codes)), bodies or {},
                                  path_schemas or {}))
        return run

    return wrap


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


def openapi_document() -> dict[str, Any]:
    """The OpenAPI 3.1 document for every declared endpoint."""
    models = ({e.response for e in ENDPOINTS} | {ErrorBody} | set(COMPONENTS)
              | {m for e in ENDPOINTS for m in e.bodies.values()} | {e.body for e in ENDPOINTS if e.body})
    _, schema = models_json_schema([(m, "serialization") for m in models],
                                   ref_template="#/components/schemas/{model}")
    components = schema.get("$defs", {})
    paths: dict[str, Any] = {}
    for e in ENDPOINTS:
        params = []
        for name in (p.strip("<>") for p in e.path.split("/") if p.startswith("<")):
            params.append({"name": name, "in": "path", "required": True,
                           "schema": e.path_schemas.get(name, TICKER_SCHEMA)})
        if e.query is not None:
            qs = e.query.model_json_schema()
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
        if e.auth == "write":  # a token, or a signed-in page's session with its CSRF token
            op["security"] = [{"bearerToken": []}, {"sessionCookie": [], "csrfHeader": []}]
        elif e.auth == "read":  # public unless API_READ_TOKEN_REQUIRED is set
            op["security"] = [{}, {"bearerToken": []}]
        elif e.auth == "user":  # a signed-in user's own data (watchlists, settings)
            op["security"] = [{"sessionCookie": []}] if e.method == "get" else \
                [{"sessionCookie": [], "csrfHeader": []}]
        paths.setdefault(_openapi_path(e.path), {})[e.method] = op
    return {
        "openapi": "3.1.0",
        "info": {"title": "Stock tracker API", "version": "1",
                 "description": "Read the tracker's snapshot, history and alerts as JSON. "
                                "Times are ISO 8601 UTC; prices are US dollars."},
        "paths": paths,
        "components": {"schemas": components, "securitySchemes": {
            "bearerToken": {"type": "http", "scheme": "bearer",
                            "description": "create one with `flask --app wsgi tokens create NAME`"},
            "sessionCookie": {"type": "apiKey", "in": "cookie", "name": "session",
                              "description": "sign in at /login (`flask --app wsgi users create NAME`)"},
            "csrfHeader": {"type": "apiKey", "in": "header", "name": "X-CSRFToken",
                           "description": "the page's CSRF token (its csrf-token meta), on every write"}}},
    }
