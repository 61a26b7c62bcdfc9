"""The HTTP service of a run: ``GET /health``, ``GET /model``, ``POST /recommend`` (FastAPI).

Needs the ``serve`` extra (``pip install 'recdiff[serve]'``); the rest of recdiff never imports
this module. :func:`create_app` loads the model once; requests are checked on the event loop
(cheap: id lookups and one sparse row) and scored by one worker thread that batches concurrent
requests into one model call (:mod:`recdiff.serving.batching`), so no request blocks the loop.

Every error answers ``{"detail": "<what is wrong and what to send instead>"}``:

=====  =====================================================================================
400    empty history
404    unknown user id
413    body larger than ``max_body_bytes``, history longer than ``max_history``
422    malformed JSON (a body that is not UTF-8 text too), missing or extra fields, wrong
       types, ``k`` outside 1..max_k, unknown history items (unless ``ignore_unknown``), ids of
       the wrong type or not Unicode text (a lone surrogate escape), a user id for a run whose
       data hold no user ids
=====  =====================================================================================

``GET`` endpoints answer ``HEAD`` too (monitors probe ``/health`` with it).

Surrounding whitespace is stripped from ids sent as text, string and integer ids alike; an error
names an id as it was sent. A valid request that leaves fewer than ``k`` items to recommend (a
history that covers the catalogue, say) is still answered 200 with the items there are, and the
answer's ``note`` says why.
"""

# No ``from __future__ import annotations``: FastAPI reads the endpoint's annotations at runtime,
# and the request model is built inside create_app (its k bound depends on max_k).

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

try:
    from fastapi import FastAPI, HTTPException, Request, Response
    from fastapi.exception_handlers import http_exception_handler
    from fastapi.exceptions import RequestValidationError
    from fastapi.responses import JSONResponse
    from starlette.exceptions import HTTPException as StarletteHTTPException
except ImportError as error:  # pragma: no cover - depends on the installed extras
    raise ImportError(
        f"the HTTP service needs FastAPI and uvicorn ({error}): pip install 'recdiff[serve]'"
    ) from error
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    StrictInt,
    StrictStr,
    create_model,
    field_validator,
    model_validator,
)

from recdiff.data.errors import UnknownIdError
from recdiff.serving.batching import MicroBatcher
from recdiff.serving.predictor import DEFAULT_K, Predictor
from recdiff.serving.recommendations import Query
from recdiff.serving.run_files import with_name

__all__ = ["RecommendRequest", "RecommendResponse", "create_app"]

Id = StrictInt | StrictStr


def _example(max_k: int) -> str:
    """A valid request body to show in errors: its ``k`` within this service's limit."""
    k = min(DEFAULT_K, max_k)
    return f'{{"user": 3, "k": {k}}} or {{"history": [12, 7, 40], "k": {k}}}'


#: How a short list's note tells an HTTP client to rank the seen items too.
HTTP_SEEN_REMEDY = 'send "exclude_seen": false'


class RecommendRequest(BaseModel):
    """A known user's id or a new user's history, and how many items to return."""

    model_config = ConfigDict(extra="forbid")

    user: Id | None = Field(None, description="a known user's external id")
    history: list[Id] | None = Field(None, description="a new user's item ids, oldest first")
    k: StrictInt = Field(10, ge=1, description="how many items")
    exclude_seen: StrictBool = Field(True, description="never return the user's own items")
    ignore_unknown: StrictBool = Field(
        False, description="drop history items the model does not know (else: 422)"
    )
    exclude_items: list[Id] | None = Field(
        None,
        description="item ids never to return, e.g. out of stock (ids the catalogue lacks are "
        "skipped)",
    )
    candidates: list[Id] | None = Field(
        None,
        description="rank only these item ids, a shortlist (ids the catalogue lacks are "
        "skipped; 422 when it holds none of them)",
    )

    @field_validator("user", "history", "exclude_items", "candidates")
    @classmethod
    def _unicode_text(cls, value: Any, info: Any) -> Any:
        """JSON can escape a lone UTF-16 surrogate ("\\ud800"): no Unicode text, it could not
        be sent back (among ``unknown_items``) and the client would get a bare 500."""
        what = "user" if info.field_name == "user" else "history item"
        if info.field_name in ("exclude_items", "candidates"):
            what = f"{info.field_name} item"
        for id_ in value if isinstance(value, list) else [value]:
            if isinstance(id_, str) and not id_.isascii():
                try:
                    id_.encode("utf-8")
                except UnicodeEncodeError:
                    raise ValueError(
                        f"{what} id {id_!r} is not Unicode text (it holds a lone surrogate, "
                        "written \\ud800 to \\udfff in JSON); send ids as the data writes them"
                    ) from None
        return value

    @model_validator(mode="after")
    def _user_or_history(self) -> "RecommendRequest":
        if (self.user is None) == (self.history is None):
            raise ValueError(
                'give exactly one of "user" (a known user id) or "history" (item ids, oldest first)'
            )
        return self


class RecommendResponse(BaseModel):
    """Top-k item ids, best first, their scores, the history ids that were dropped, and a note
    when fewer than k items came back."""

    items: list[Id]
    scores: list[float]
    unknown_items: list[Id]
    note: str | None = Field(
        None,
        description='why fewer than k items came back, e.g. "every catalogue item is already '
        'in the history; send "exclude_seen": false to rank them"; null when k came back',
    )


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


def create_app(
    predictor_or_run_dir: Predictor | str | Path,
    max_history: int = 10_000,
    max_k: int = 1_000,
    max_body_bytes: int = 1_000_000,
    max_batch: int = 32,
    max_wait_ms: float = 10.0,
) -> FastAPI:
    """The FastAPI app serving one run (a run directory, loaded now, or a loaded Predictor).

    Args:
        max_history: the most history items a request may send (413 beyond).
        max_k: the largest ``k`` (capped at the catalogue size; 422 beyond).
        max_body_bytes: the largest request body (413 beyond).
        max_batch: the most requests scored in one model call (1: no batching).
        max_wait_ms: how long a batch may wait for as many requests as the previous one had.
    """
    for name, value in [("max_history", max_history), ("max_k", max_k)]:
        if value < 1:
            raise ValueError(f"{name} must be >= 1, got {value}")
    if max_body_bytes < 64:
        raise ValueError(f"max_body_bytes must be at least 64 bytes, got {max_body_bytes}")
    predictor = (
        predictor_or_run_dir
        if isinstance(predictor_or_run_dir, Predictor)
        else Predictor.load(predictor_or_run_dir)
    )
    max_k = min(max_k, len(predictor.items))
    request_model = create_model(
        "RecommendRequest",
        __base__=RecommendRequest,
        k=(StrictInt, Field(min(DEFAULT_K, max_k), ge=1, le=max_k, description="how many items")),
    )
    batcher = MicroBatcher(
        predictor, max_rows=max_batch, max_wait_ms=max_wait_ms, seen_remedy=HTTP_SEEN_REMEDY
    )
    info = _model_info(predictor, max_k, max_history)

    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        yield
        await asyncio.get_running_loop().run_in_executor(None, batcher.close)

    app = FastAPI(title=f"recdiff: {info['run']}", lifespan=lifespan)
    app.add_middleware(BodySizeLimit, max_bytes=max_body_bytes)
    app.add_exception_handler(RequestValidationError, _invalid_request)
    app.add_exception_handler(StarletteHTTPException, _unreadable_body)
    app.state.predictor, app.state.batcher = predictor, batcher
    app.state.example = _example(max_k)

    @app.get("/health")
    def health() -> dict[str, Any]:
        calls, rows = batcher.model_calls, batcher.rows_scored
        return {"status": "ok", "scored": {"requests": rows, "model_calls": calls}}

    @app.get("/model")
    def model() -> dict[str, Any]:
        return info

    for path, endpoint in (("/health", health), ("/model", model)):
        # monitors probe with HEAD (curl -I); FastAPI's GET routes do not answer it
        app.add_api_route(path, endpoint, methods=["HEAD"], include_in_schema=False)

    @app.post(
        "/recommend",
        response_model=RecommendResponse,
        responses={code: {"description": text} for code, text in _ERRORS.items()},
    )
    async def recommend(request: request_model, http: Request) -> RecommendResponse:  # type: ignore[valid-type]
        if http.query_params:  # ?k=5 beside a body would be ignored without a word
            raise HTTPException(422, _query_parameters(http))
        query = _query(predictor, request, max_history)
        try:
            query = predictor.rule_out(query, request.exclude_items, request.candidates)
        except (TypeError, ValueError) as error:  # e.g. candidates the catalogue lacks all of
            raise HTTPException(422, str(error)) from None
        result = await asyncio.wrap_future(batcher.submit(query, request.k))
        return RecommendResponse(
            items=result.items,
            scores=result.scores,
            unknown_items=result.unknown_items,
            note=result.note,
        )

    return app


_ERRORS = {
    400: "empty history",
    404: "unknown user",
    413: "body or history too large",
    422: "invalid request, or unknown history items",
}


def _query(predictor: Predictor, request: RecommendRequest, max_history: int) -> Query:
    """The request's model input; HTTP errors that say what to fix."""
    if request.user is not None:
        try:
            user = predictor.parse_user(request.user)
            return predictor.query(user=user, exclude_seen=request.exclude_seen)
        except UnknownIdError:
            raise HTTPException(
                404,
                f"user {request.user!r} is not among the {len(predictor.users)} users of this "
                'model; send their items instead: {"history": [...]}',
            ) from None
        except ValueError as error:  # not an id of this run's type, or a run without user ids
            raise HTTPException(422, str(error)) from None
    history = request.history or []
    if not history:
        raise HTTPException(400, "history is empty: give at least one item id, oldest first")
    if len(history) > max_history:
        raise HTTPException(
            413,
            f"history has {len(history)} items, more than this service's limit of {max_history}; "
            f"send the most recent {max_history}",
        )
    try:
        return predictor.query(
            history=history,
            exclude_seen=request.exclude_seen,
            ignore_unknown=request.ignore_unknown,
        )
    except UnknownIdError as error:
        why = f" ({error.why})" if error.why else ""
        raise HTTPException(
            422,
            f"{error.n_unknown} history item id(s) not in the catalogue: {error.listed}"
            f'{why}; remove them, or send "ignore_unknown": true to drop them',
        ) from None
    except ValueError as error:
        raise HTTPException(422, str(error)) from None


def _model_info(predictor: Predictor, max_k: int, max_history: int) -> dict[str, Any]:
    metrics = predictor.metrics
    directory = predictor.directory
    return {
        "model": metrics.get("model", predictor.config.model.name),
        "name": predictor.config.name,
        "run": with_name(directory).name if directory is not None else predictor.config.name,
        "n_items": len(predictor.items),
        "n_users": len(predictor.users),
        "metrics": {
            "averaging": metrics.get("averaging"),
            "best_epoch": metrics.get("best_epoch"),
            "valid": metrics.get("valid", {}),
            "test": metrics.get("test", {}),
        },
        "limits": {"max_k": max_k, "max_history": max_history},
        "index": {
            "kind": "exact" if predictor.index is None else predictor.index.kind,
            # its top-k against the exact one's, on a sample of the run's users (None: unmeasured)
            f"recall@{predictor.index_recall_k}": predictor.index_recall,
        },
    }


def _query_parameters(request: Request) -> str:
    """Why a request's query parameters (``/recommend?user=3&k=5``) are refused."""
    names = ", ".join(sorted(set(request.query_params.keys())))
    return (
        f"/recommend reads a JSON body only, not query parameters ({names}): send them in "
        f"the body, e.g. {request.app.state.example}"
    )


async def _invalid_request(request: Request, error: RequestValidationError) -> JSONResponse:
    """422 with one readable sentence per problem (FastAPI's list of errors kept in ``errors``)."""
    problems, errors = [], []
    # FastAPI parses a body as JSON only when its Content-Type says so (curl -d sends a form).
    media = request.headers.get("content-type", "").split(";")[0].strip().lower()
    is_json = media == "application/json" or media.endswith("+json")
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
                problems.append(_query_parameters(request))
        elif item["type"] == "value_error":
            problems.append(item["msg"].removeprefix("Value error, "))
        else:
            problems.append(f"{where}: {item['msg']}")
        errors.append({"loc": list(item["loc"]), "msg": item["msg"], "type": item["type"]})
    detail = (
        f"invalid request: {'; '.join(problems)}. "
        f"Send a JSON object such as {request.app.state.example}"
    )
    return JSONResponse({"detail": detail, "errors": errors}, status_code=422)


async def _unreadable_body(request: Request, error: StarletteHTTPException) -> Response:
    """A JSON body that is not UTF-8 text gets a 422 that says so (FastAPI answers only "There
    was an error parsing the body", with a 400); other HTTP errors as FastAPI answers them."""
    cause = error.__cause__
    if not isinstance(cause, UnicodeDecodeError):
        return await http_exception_handler(request, error)
    byte = cause.object[cause.start]
    detail = (
        f"invalid request: the body is not valid JSON (it is not UTF-8 text: byte {byte:#04x} at "
        f"position {cause.start}); send the JSON encoded as UTF-8. Send a JSON object such as "
        f"{request.app.state.example}"
    )
    return JSONResponse({"detail": detail}, status_code=422)
