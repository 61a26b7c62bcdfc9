"""The HTTP service of a run: ``GET /health``, ``GET /model``, ``POST /recommend`` (FastAPI).

Needs the ``serve`` extra (``pip install 'recdiff[serve]'``); the rest of recdiff never imports
this module. :func:`create_app` loads the model once; requests are checked on the event loop
(cheap: id lookups and one sparse row) and scored by one worker thread that batches concurrent
requests into one model call (:mod:`recdiff.serving.batching`), so no request blocks the loop.

``GET /model`` describes the run: ``model``, ``name``, ``run`` (its folder's name), ``n_items``,
``n_users``, ``metrics``, ``limits`` (``max_k``, ``max_history``) and ``index`` (``kind``, and its
recall against exact ranking, ``recall@k``). ``metrics`` holds the run's ``valid`` and ``test``
means, its ``best_epoch``, and how the means were averaged: ``averaging`` is ``"all_users"``
(users without test items count as 0) or ``"test_users"`` (over the users with test items) for
runs that score interaction rows, and ``"examples"`` for next-item runs (SASRec, DreamRec), which
average over examples, one target each, so both averagings give the same numbers;
``averaging_description`` says which in words (null when the run recorded none).

Every error answers ``{"detail": "<what is wrong and what to send instead>"}``:

=====  =====================================================================================
400    empty history
404    unknown user id
405    a method the path does not take (``GET /recommend``); names the ones it takes
413    body larger than ``max_body_bytes``, history longer than ``max_history``
422    malformed JSON (a body that is not UTF-8 text, or that Python's reader gives up on,
       too), a key named twice in an object, missing or extra fields, wrong types, ``k``
       outside 1..max_k, unknown history items (unless ``ignore_unknown``), ids of the
       wrong type or not Unicode text (a lone surrogate escape), a user id for a run whose
       data hold no user ids, candidates none of which the catalogue holds, query parameters
       (``/recommend`` reads its JSON body only)
500    the service's own failure (e.g. a model that scores NaN); its log holds the traceback
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
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

try:
    from fastapi import Depends, FastAPI, HTTPException, Request
    from fastapi.exceptions import RequestValidationError
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
from recdiff.serving.http_errors import (
    BodySizeLimit,
    http_error,
    internal_error,
    invalid_request,
    query_parameters,
    refuse_duplicated_keys,
)
from recdiff.serving.item_info import ItemInfo
from recdiff.serving.predictor import DEFAULT_K, Predictor
from recdiff.serving.recommendations import Query
from recdiff.serving.report import OVER_EXAMPLES
from recdiff.serving.run_files import with_name
from recdiff.serving.sequence_predictor import SequencePredictor

__all__ = ["ErrorBody", "RecommendRequest", "RecommendResponse", "create_app"]

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
    info: list[dict[str, Any] | None] | None = Field(
        None,
        description="each item's fields from the service's item file (recdiff serve "
        "--item-info), null for an item the file lacks; absent without one",
    )


class ErrorBody(BaseModel):
    """What every error answers: what is wrong and what to send instead."""

    detail: str
    errors: list[dict[str, Any]] | None = Field(
        None, description="422s of a body that fails validation: each problem's loc, msg, type"
    )


def create_app(
    predictor_or_run_dir: Predictor | str | Path,
    max_history: int = 10_000,
    max_k: int = 1_000,
    max_body_bytes: int = 1_000_000,
    max_batch: int = 32,
    max_wait_ms: float = 10.0,
    item_info: ItemInfo | None = None,
) -> FastAPI:
    """The FastAPI app serving one run (a run directory, loaded now, or a loaded Predictor).

    Args:
        max_history: the most history items a request may send (413 beyond).
        max_k: the largest ``k`` (capped at the catalogue size; 422 beyond).
        max_body_bytes: the largest request body (413 beyond).
        max_batch: the most requests scored in one model call (1: no batching).
        max_wait_ms: how long a batch may wait for as many requests as the previous one had.
        item_info: item metadata whose fields every answer carries as ``info``.
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

    app = FastAPI(title=f"recdiff: {info['run']}", lifespan=lifespan, redirect_slashes=False)
    app.add_middleware(BodySizeLimit, max_bytes=max_body_bytes)
    app.add_exception_handler(RequestValidationError, invalid_request)
    app.add_exception_handler(StarletteHTTPException, http_error)
    app.add_exception_handler(Exception, internal_error)
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
        response_model_exclude_unset=True,  # "info" only from a service with an item file
        responses={
            code: {"model": ErrorBody, "description": text} for code, text in _ERRORS.items()
        },
        dependencies=[Depends(refuse_duplicated_keys)],
    )
    async def recommend(request: request_model, http: Request) -> RecommendResponse:  # type: ignore[valid-type]
        if http.query_params:  # ?k=5 beside a body would be ignored without a word
            raise HTTPException(422, query_parameters(http))
        query = _query(predictor, request, max_history)
        try:
            query = predictor.rule_out(query, request.exclude_items, request.candidates)
        except (TypeError, ValueError) as error:  # e.g. candidates the catalogue lacks all of
            raise HTTPException(422, str(error)) from None
        result = await asyncio.wrap_future(batcher.submit(query, request.k))
        shown = {} if item_info is None else {"info": item_info.lookup(result.items)}
        return RecommendResponse(
            items=result.items,
            scores=result.scores,
            unknown_items=result.unknown_items,
            note=result.note,
            **shown,
        )

    return app


_ERRORS = {
    400: "empty history",
    404: "unknown user",
    413: "body or history too large",
    422: "invalid request (malformed JSON, a key named twice, wrong fields or types, k out of "
    "range), a user id of the wrong type, or unknown history items",
    500: "the service failed (its log holds the traceback)",
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
            # 422, not 404 (unknown user): such a request cannot name any user of this run
            instead = (
                f"; send the id of one of its {len(predictor.users)} users, or their items "
                'instead: {"history": [...]}'
                if len(predictor.users)
                else ""  # the error says what to send instead
            )
            raise HTTPException(422, f"{error}{instead}") from None
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
        raise HTTPException(
            422,
            error.restated(
                "history item", 'remove them, or send "ignore_unknown": true to drop them'
            ),
        ) from None
    except ValueError as error:
        raise HTTPException(422, str(error)) from None


#: ``GET /model``'s ``metrics.averaging``, in words.
AVERAGING_DESCRIPTIONS = {
    "all_users": "over every user, those without test items counted as 0",
    "test_users": "over the users with test items",
    "examples": f"{OVER_EXAMPLES} (all_users and test_users agree)",
}


def _model_info(predictor: Predictor, max_k: int, max_history: int) -> dict[str, Any]:
    metrics = predictor.metrics
    directory = predictor.directory
    averaging = metrics.get("averaging")
    if isinstance(predictor, SequencePredictor):  # one target an example: the averagings agree
        averaging = "examples"
    return {
        "model": metrics.get("model", predictor.config.model.name),
        "name": predictor.config.name,
        "run": with_name(directory).name if directory is not None else predictor.config.name,
        "n_items": len(predictor.items),
        "n_users": len(predictor.users),
        "metrics": {
            "averaging": averaging,
            "averaging_description": AVERAGING_DESCRIPTIONS.get(averaging),
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
