"""The per-user drill-down and the embedding map (both computed in the background on first use)."""

from __future__ import annotations

import json
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response

from recforge._arrays import plain_id
from recforge.ui.insights import embedding_figure, fit_holdout, holdout_ranks, item_coords, user_history
from recforge.ui.pages_try import dataset_user_id, liked_items
from recforge.ui.state import UIState

__all__ = ["router"]

_ID = r"^[^\x00-\x1f\x7f/]{1,128}$"


def router(state: UIState, render: Any) -> APIRouter:
    r = APIRouter()

    @r.get("/user")
    async def user_page(request: Request, user: Annotated[str | None, Query(pattern=_ID)] = None) -> Response:
        data, cat = state.data, state.catalog
        ctx: dict[str, Any] = {"user": user, "history": [], "job": None, "ranks": None}
        if data is not None and cat is not None:
            ctx["examples"] = [plain_id(x) for x in data.users.ids[:5].tolist()]
            if user:
                uid = dataset_user_id(state, user)
                ctx["history"] = user_history(data, cat, uid)
                if state.served:
                    models = [(m.label, m.model) for m in state.served]
                    job = state.jobs.start("holdout", "fitting the served models on the loo-full training part",
                                           lambda: fit_holdout(models, data))
                    ctx["job"] = job
                    ctx["job_state"] = job.state  # one reading: the job may finish while the page renders
                    if ctx["job_state"] == "done":
                        ctx["ranks"] = holdout_ranks(job.result, cat, uid, k=state.config.k)
        return render(request, "user.html", **ctx)

    @r.get("/embeddings")
    async def embeddings_page(request: Request, user: Annotated[str | None, Query(pattern=_ID)] = None,
                              model: Annotated[str | None, Query(max_length=100)] = None) -> Response:
        cat = state.catalog
        with_vectors = [m for m in state.served if m.model.has_embeddings]
        chosen = next((m for m in with_vectors if m.slug == model), with_vectors[0] if with_vectors else None)
        ctx: dict[str, Any] = {"user": user, "with_vectors": with_vectors, "chosen": chosen, "job": None,
                               "figure": None}
        if chosen is not None and cat is not None:
            job = state.jobs.start(f"umap:{chosen.slug}", f"UMAP of {chosen.label}'s item vectors",
                                   lambda: item_coords(chosen.model))
            ctx["job"] = job
            ctx["job_state"] = job.state  # one reading: the job may finish while the page renders
            if ctx["job_state"] == "done":
                ids, xy = job.result
                highlight: list[Any] = []
                if user:
                    liked, recent, _ = liked_items(state, user)
                    highlight = [e["item_id"] for e in recent]
                    highlight += [e["item_id"] for e in user_history(state.data, cat, dataset_user_id(state, user))]
                title = f"{chosen.label}: item embeddings (UMAP, seed 0)"
                # inside <script>: a title holding "</script>" must not end the element
                ctx["figure"] = json.dumps(embedding_figure(ids, xy, cat, highlight, title)).replace("</", "<\\/")
                ctx["n_highlight"] = len(set(map(str, highlight)))
        return render(request, "embeddings.html", **ctx)

    return r
