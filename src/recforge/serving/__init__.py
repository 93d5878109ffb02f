"""Serving: candidate retrieval, ranking and post-processing; batch recommendations into a
database; a real-time FastAPI service.

- :class:`~recforge.serving.pipeline.Pipeline`: retrieval (faiss ANN over item embeddings,
  item co-occurrence, popularity) -> ranker (any recforge model) -> post-processing -> top k;
  built from a config file by :mod:`recforge.serving.pipeline_config`.
- :func:`~recforge.serving.batch.run_batch`: every user's top k into a SQL table, atomically.
- :func:`~recforge.serving.app.create_app`: the HTTP service (``recforge serve``); its config in
  :mod:`recforge.serving.config`, shared state in :mod:`recforge.serving.state`, the process
  runner in :mod:`recforge.serving.run`.

The heavy dependencies (faiss, SQLAlchemy, FastAPI) come with the ``serve`` extra and are imported
only by the modules that need them.
"""

from recforge.serving.pipeline import ModelView, Pipeline, Recommendation, UserContext
from recforge.serving.retrieval import EmbeddingIndex, IndexConfig

__all__ = ["EmbeddingIndex", "IndexConfig", "ModelView", "Pipeline", "Recommendation", "UserContext"]
