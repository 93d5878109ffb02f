"""The "Try it" page: search the catalogue, rate or like items as a new or existing user, and
watch every served model's top k change.

The page's script talks to the mounted services themselves (``POST /svc/<slug>/v1/events``,
``GET /svc/<slug>/v1/users/<id>/recommendations``), exactly as a client of ``recforge serve``
would; this module adds the catalogue search, the user's history and the reasons.
"""

from __future__ import annotations

from typing import Annotated, Any

import numpy as np
from fastapi import APIRouter, HTTPException, Query, Request
from fastapi.responses import JSONResponse, Response

from recforge._arrays import plain_id
from recforge.ui.state import UIState

__all__ = ["dataset_user_id", "liked_items", "router"]

_ID = r"^[^\x00-\x1f\x7f/]{1,128}$"


def _mid(state: UIState) -> float | None:
    data = state.data
    if data is None or not data.explicit:
        return None
    lo, hi = data.rating_scale()
    return (lo + hi) / 2


def liked_items(state: UIState, user_id: str) -> tuple[list[Any], list[dict[str, Any]], int]:
    """The user's liked raw item ids (recent events first, then the dataset's history, latest
    first), the recent events as entries, and the dataset history's length.

    Liked: a value at or above the middle of the rating scale (explicit data), any event otherwise.
    """
    cat = state.catalog
    mid = _mid(state)
    recent = state.served[0].state.recent(user_id) if state.served else []
    entries = []
    liked: list[Any] = []
    for item, value in recent:
        j = cat.index(item) if cat is not None else -1
        entries.append({"item_id": plain_id(cat.ids[j]) if j >= 0 else item,
                        "title": cat.titles[j] if j >= 0 else str(item), "value": value})
        if mid is None or value >= mid:
            liked.append(entries[-1]["item_id"])
    n_train = 0
    data = state.data
    if data is not None:
        u = data.users.index_one(dataset_user_id(state, user_id))
        if u >= 0:
            rows = np.flatnonzero(data.user_idx == u)
            n_train = len(rows)
            if data.timestamps is not None:
                rows = rows[np.argsort(-data.timestamps[rows], kind="stable")]
            ok = rows if mid is None else rows[data.values[rows] >= mid]
            liked.extend(plain_id(x) for x in data.items.ids[data.item_idx[ok]])
    return liked, entries, n_train


def dataset_user_id(state: UIState, user_id: str) -> Any:
    """The raw id as the dataset stores it (``7`` for ``"7"``), else the string."""
    data = state.data
    if data is not None and data.users.index_one(user_id) < 0 and user_id.lstrip("-").isdigit():
        if data.users.index_one(int(user_id)) >= 0:
            return int(user_id)
    return user_id


def router(state: UIState, render: Any) -> APIRouter:
    r = APIRouter()

    @r.get("/try")
    async def try_page(request: Request, user: Annotated[str | None, Query(pattern=_ID)] = None) -> Response:
        cat = state.catalog
        scale = state.data.rating_scale() if state.data is not None and state.data.explicit else None
        examples = [] if state.data is None else [plain_id(x) for x in state.data.users.ids[:5].tolist()]
        years = sorted({y for y in cat.years if y is not None}) if cat else []
        return render(request, "try.html", catalog=cat, genres=cat.genre_list() if cat else [], years=years,
                      api_key=state.api_key, k=state.config.k, scale=scale, user=user, examples=examples)

    @r.get("/api/search")
    async def search(q: Annotated[str, Query(max_length=200)] = "",
                     genre: Annotated[str | None, Query(max_length=100)] = None,
                     limit: Annotated[int, Query(ge=1, le=100)] = 20,
                     year_min: Annotated[int | None, Query(ge=0, le=9999)] = None,
                     year_max: Annotated[int | None, Query(ge=0, le=9999)] = None) -> Response:
        if state.catalog is None:
            raise HTTPException(404, "no dataset loaded: start recforge ui with --dataset")
        items = state.catalog.search(q, genre or None, limit, year_min=year_min, year_max=year_max)
        return JSONResponse({"items": items})

    @r.get("/api/history")
    async def history(user: Annotated[str, Query(pattern=_ID)]) -> Response:
        _, recent, n_train = liked_items(state, user)
        return JSONResponse({"user_id": user, "recent": recent, "n_train": n_train, "known": n_train > 0})

    @r.get("/api/explain")
    async def explain(user: Annotated[str, Query(pattern=_ID)],
                      items: Annotated[str, Query(max_length=20000)] = "",
                      source: Annotated[str, Query(max_length=64)] = "model") -> Response:
        if state.catalog is None:
            raise HTTPException(404, "no dataset loaded: start recforge ui with --dataset")
        ids = [x for x in items.split(",") if x][:500]
        liked, _, _ = liked_items(state, user)
        reasons = state.catalog.explain(ids, liked, source, user=dataset_user_id(state, user))
        return JSONResponse({"user_id": user, "source": source, "items": [x.to_dict() for x in reasons]})

    return r
