"""How the HTTP service refuses what it cannot read: a body over the size limit (413, as it
arrives), a request FastAPI cannot validate (422 with one readable sentence per problem), a body
that is not UTF-8 text or that Python's JSON reader gives up on (422), a JSON object naming a key
twice (422), query parameters ``/recommend`` would not read, and a method a path does not take
(405, naming the ones it does); and how it answers its own failures (500, as JSON too). The
service's own checks of ids and histories are in :mod:`recdiff.serving.service`."""

# No ``from __future__ import annotations``, as in the service: FastAPI reads these handlers'
# annotations at runtime.

import json
from collections import Counter
from typing import Any

from fastapi import Request, Response
from fastapi.exception_handlers import http_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match

__all__ = [
    "BodySizeLimit",
    "duplicated_keys",
    "http_error",
    "internal_error",
    "invalid_request",
    "query_parameters",
    "refuse_duplicated_keys",
    "unreadable_body",
    "wrong_method",
]


class BodySizeLimit:
    """ASGI middleware: 413 for a body over ``max_bytes``, by its Content-Length or as it arrives.

    The body is read here (it is small by construction) and replayed to the app, so a client that
    sends no Content-Length, or a wrong one, cannot get more than ``max_bytes`` through.
    """

    def __init__(self, app: Any, max_bytes: int) -> None:
        self.app, self.max_bytes = app, max_bytes

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None:
            if not declared.isdigit():
                await self._refuse(scope, receive, send, 400, "Content-Length must be an integer")
                return
            if int(declared) > self.max_bytes:
                await self._too_large(scope, receive, send, f"{int(declared)} bytes")
                return
        chunks, size = [], 0
        while True:
            message = await receive()
            if message["type"] != "http.request":  # the client went away
                return
            chunks.append(message.get("body", b""))
            size += len(chunks[-1])
            if size > self.max_bytes:
                await self._too_large(scope, receive, send, f"over {self.max_bytes} bytes")
                return
            if not message.get("more_body", False):
                break
        body, replayed = b"".join(chunks), False

        async def replay() -> dict:
            nonlocal replayed
            if replayed:
                return await receive()
            replayed = True
            return {"type": "http.request", "body": body, "more_body": False}

        await self.app(scope, replay, send)

    async def _too_large(self, scope: dict, receive: Any, send: Any, size: str) -> None:
        await self._refuse(
            scope,
            receive,
            send,
            413,
            f"the request body ({size}) exceeds this service's limit of {self.max_bytes} bytes; "
            "send a shorter history (its most recent items)",
        )

    @staticmethod
    async def _refuse(scope: dict, receive: Any, send: Any, status: int, detail: str) -> None:
        # Close the connection: the rest of the refused body is never read.
        response = JSONResponse({"detail": detail}, status, headers={"connection": "close"})
        await response(scope, receive, send)


def query_parameters(request: Request) -> str:
    """Why a request's query parameters (``/recommend?user=3&k=5``) are refused."""
    names = ", ".join(sorted(set(request.query_params.keys())))
    return (
        f"/recommend reads a JSON body only, not query parameters ({names}): send them in "
        f"the body, e.g. {request.app.state.example}"
    )


def _media_type(request: Request) -> str:
    """The request's Content-Type without its parameters ("" when it sent none)."""
    return request.headers.get("content-type", "").split(";")[0].strip().lower()


def _is_json(media: str) -> bool:
    # FastAPI parses a body as JSON only when its Content-Type says so (curl -d sends a form).
    return media == "application/json" or media.endswith("+json")


def duplicated_keys(body: bytes) -> dict[str, int]:
    """The keys some object of the JSON ``body`` names more than once, with how many times
    (empty for a body that is no JSON: its own error says so)."""
    repeated: dict[str, int] = {}

    def pairs(items: list[tuple[str, Any]]) -> dict[str, Any]:
        for key, count in Counter(key for key, _ in items).items():
            if count > 1:
                repeated[key] = max(count, repeated.get(key, 0))
        return dict(items)

    try:
        json.loads(body, object_pairs_hook=pairs)
    except (ValueError, RecursionError):
        return {}
    return repeated


async def refuse_duplicated_keys(request: Request) -> None:
    """A dependency of ``POST /recommend``: a 422 for a JSON body that names a key twice.

    Python's JSON reader keeps the last of them without a word, so ``{"user": 3, "user": 4}``
    would be answered for user 4, while a proxy or a log reading the first sees user 3. FastAPI
    solves dependencies before it validates the body, so this is the error the client gets."""
    media = _media_type(request)
    if media and not _is_json(media):  # not read as JSON: the validation error says so
        return
    repeated = duplicated_keys(await request.body())
    if repeated:
        raise RequestValidationError(
            [
                {
                    "type": "duplicate_key",
                    "loc": ("body", key),
                    "msg": f"the body names the key {json.dumps(key)} "
                    f"{'twice' if count == 2 else f'{count} times'}; a JSON reader keeps only "
                    "one of them (which one differs between readers): send each key once",
                    "input": key,
                }
                for key, count in repeated.items()
            ]
        )


async def invalid_request(request: Request, error: RequestValidationError) -> JSONResponse:
    """422 with one readable sentence per problem (FastAPI's list of errors kept in ``errors``)."""
    problems, errors = [], []
    media = _media_type(request)
    is_json = _is_json(media)
    named_ids = set()
    for item in error.errors():
        where = ".".join(str(part) for part in item["loc"] if part != "body") or "body"
        if item["loc"][-1] in ("int", "str") and len(item["loc"]) > 2:
            # an id fails both branches of ``int | str``: one sentence naming what was sent
            where = where.rsplit(".", 1)[0]
            if where not in named_ids:
                named_ids.add(where)
                sent = json.dumps(item.get("input"))
                problems.append(f"{where}: {sent} is not an id (ids are integers or strings)")
        elif where == "body" and item["type"] != "missing" and not is_json:
            sent = f"as {media}" if media else "without a Content-Type"
            problems.append(
                f"the body was sent {sent}, not as JSON; send the header Content-Type: "
                "application/json (curl: -H 'content-type: application/json')"
            )
        elif item["type"] == "json_invalid":
            reason = item.get("ctx", {}).get("error", "")
            at = item["loc"][-1] if isinstance(item["loc"][-1], int) else "?"
            problems.append(f"the body is not valid JSON ({reason} at character {at})")
        elif item["type"] == "missing" and where == "body":
            problems.append("no JSON body was sent")
            if request.query_params:
                problems.append(query_parameters(request))
        elif item["type"] == "value_error":
            problems.append(item["msg"].removeprefix("Value error, "))
        elif item["type"] == "duplicate_key":
            problems.append(item["msg"])
        else:
            problems.append(f"{where}: {item['msg']}")
        errors.append({"loc": list(item["loc"]), "msg": item["msg"], "type": item["type"]})
    detail = (
        f"invalid request: {'; '.join(problems)}. "
        f"Send a JSON object such as {request.app.state.example}"
    )
    return JSONResponse({"detail": detail, "errors": errors}, status_code=422)


async def http_error(request: Request, error: StarletteHTTPException) -> Response:
    """The HTTP errors FastAPI raises itself: a wrong method (:func:`wrong_method`), a body that
    is not UTF-8 text (:func:`unreadable_body`), the others as FastAPI answers them."""
    if error.status_code == 405:
        return await wrong_method(request, error)
    if error.status_code == 404 and not _routes_of(request):
        return unknown_path(request)
    return await unreadable_body(request, error)


def _routes_of(request: Request) -> list[Any]:
    """The app's routes whose path is the request's (whatever their methods)."""
    routes = request.app.router.routes
    return [route for route in routes if route.matches(request.scope)[0] is not Match.NONE]


def unknown_path(request: Request) -> JSONResponse:
    """404 for a path the service has not, naming the ones it has (FastAPI answers only "Not
    Found"). A trailing slash is not redirected to the path without it: behind a proxy that
    ends TLS, the redirect would send the client to plain http."""
    paths = []
    for route in request.app.router.routes:
        methods = sorted((getattr(route, "methods", None) or set()) - {"HEAD"})
        if methods and getattr(route, "include_in_schema", False):
            paths.append(f"{'/'.join(methods)} {route.path}")
    path = request.url.path
    hint = ""
    if path.endswith("/") and path.rstrip("/") in {r.path for r in request.app.router.routes}:
        hint = f" (without the trailing slash: {path.rstrip('/')})"
    detail = f"no path {path} here{hint}: the service answers {', '.join(paths)}"
    return JSONResponse({"detail": detail}, status_code=404)


async def wrong_method(request: Request, error: StarletteHTTPException) -> Response:
    """405 that names the methods the path takes and shows a request it accepts (FastAPI
    answers only "Method Not Allowed"). The Allow header lists the methods of every route of the
    path: FastAPI's names the first route's only, GET where HEAD is answered too."""
    allowed: set[str] = set()
    for route in _routes_of(request):
        allowed |= getattr(route, "methods", None) or set()
    if not allowed:  # no route of this app's raised it: as FastAPI answers
        return await http_exception_handler(request, error)
    methods = sorted(allowed)
    path = request.url.path
    if "POST" in allowed:
        example = f"POST {path} takes a JSON object such as {request.app.state.example}"
    else:
        example = f"{methods[0]} {path} takes no body, e.g. curl -s {request.base_url}{path[1:]}"
    takes = " or ".join([", ".join(methods[:-1]), methods[-1]] if len(methods) > 1 else methods)
    detail = f"{request.method} {path} is not allowed: {path} takes {takes}. {example}"
    return JSONResponse({"detail": detail}, 405, headers={"Allow": ", ".join(methods)})


async def unreadable_body(request: Request, error: StarletteHTTPException) -> Response:
    """A JSON body that Python's reader cannot read gets a 422 that says why, as malformed JSON
    does (FastAPI answers only "There was an error parsing the body", with a 400): one that is
    not UTF-8 text, a number of thousands of digits (Python reads at most 4300), arrays or objects
    nested deeper than its recursion limit. Other HTTP errors as FastAPI answers them."""
    cause = error.__cause__
    if isinstance(cause, UnicodeDecodeError):
        byte = cause.object[cause.start]
        problem = (
            f"the body is not valid JSON (it is not UTF-8 text: byte {byte:#04x} at position "
            f"{cause.start}); send the JSON encoded as UTF-8"
        )
    elif isinstance(cause, RecursionError):
        problem = (
            "the body cannot be read as JSON (its arrays or objects nest too deeply); ids are "
            "integers or strings in a flat list"
        )
    elif isinstance(cause, ValueError):  # int(): "Exceeds the limit (4300 digits) ..."
        problem = (
            "the body cannot be read as JSON (a number in it has more than the 4300 digits "
            "Python reads); no id or k is that long"
        )
    else:
        return await http_exception_handler(request, error)
    detail = f"invalid request: {problem}. Send a JSON object such as {request.app.state.example}"
    return JSONResponse({"detail": detail}, status_code=422)


async def internal_error(request: Request, error: Exception) -> JSONResponse:
    """500 as JSON, as every other answer (Starlette's is the text "Internal Server Error");
    the traceback goes to the service's log, not to the client. It says ``connection: close``:
    uvicorn closes the connection after an error, and a client that kept it for its next
    request would see that one reset."""
    detail = (
        f"internal error ({type(error).__name__}) answering {request.method} {request.url.path}; "
        "the service's log holds the traceback"
    )
    return JSONResponse({"detail": detail}, status_code=500, headers={"connection": "close"})
