"""One notion of a recommender: records in, ranked predictions out.

Every system of the report (the baselines of :mod:`llmrec.recommenders.baselines`, free generation
(:mod:`llmrec.recommenders.generation`), catalog-constrained generation (:mod:`llmrec.recommenders.constrained`),
retrieve-then-rerank (:mod:`llmrec.recommenders.rerank`) and whatever comes next) is a
:class:`Recommender`: it has a ``system`` and a ``setting`` (the key of its row in the
results table) and one method, :meth:`Recommender.predict`, that turns a records frame
into one prediction per record, in order. :func:`llmrec.evaluation.spine.evaluate` is the one
function that scores any of them and writes its artefacts.

Adding a system is one class and its registration::

    @register("my_system")
    class MySystem(Recommender):
        setting = "baseline"

        def predict(self, records):
            return [{"predicted_ids": [...]} for _ in range(len(records))]

    evaluate(build("my_system", system="my_system"), test, task)

(RecBole's ``AbstractRecommender`` + ``get_model(name)`` is the model; here the inputs
differ too much between systems (prompts, a trie, a retriever) for one ``fit``/``forward``
signature, so a system is built with its own keyword arguments and shares only ``predict``.)
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, ClassVar

import pandas as pd

from llmrec.errors import LlmrecError


class Recommender:
    """Records -> one prediction per record.

    ``predict`` returns, per record and in the records' order, a dict with at least
    ``predicted_ids`` (rank order; each entry an item id, a list of ids for a title shared
    by several, or None for a generated title with no catalog match). A generating system
    adds ``completion`` (the raw text) and ``titles`` (parsed); any other key (``candidates``,
    ``llm_scores`` ...) is kept in the predictions file. The record's own fields
    (``record_id``, ``user_id``, ``input_ids``, ``target_ids``) are added by the evaluation.
    """

    #: the registry name (set by :func:`register`)
    kind: ClassVar[str] = ""
    #: the results-table key of this system: ``system`` (a baseline's name or a run's name)
    #: and ``setting`` (``baseline``, ``zero-shot/greedy``, ``lora/constrained-beam4`` ...)
    system: str = ""
    setting: str = ""
    #: titles a generating system was shown as answers (few-shot examples): copies counted
    example_titles: Sequence[str] = ()

    def predict(self, records: pd.DataFrame) -> list[dict[str, Any]]:
        raise NotImplementedError

    def settings(self) -> dict[str, Any]:
        """What the metrics row records about the system (decoding preset, batch size, the
        time its own work took ...); read after :meth:`predict`."""
        return {}


REGISTRY: dict[str, Callable[..., Recommender]] = {}


def register(kind: str) -> Callable:
    """Class decorator: make a :class:`Recommender` buildable by name with :func:`build`."""

    def wrap(cls):
        if kind in REGISTRY and REGISTRY[kind] is not cls:
            raise LlmrecError(f"two recommenders registered as {kind!r}; pick another name")
        cls.kind = kind
        REGISTRY[kind] = cls
        return cls

    return wrap


def build(kind: str, **kwargs: Any) -> Recommender:
    """The registered recommender ``kind`` built with ``kwargs``."""
    if kind not in REGISTRY:
        raise LlmrecError(f"unknown recommender {kind!r}; registered: {', '.join(sorted(REGISTRY))}")
    return REGISTRY[kind](**kwargs)


def ranked_predictions(ranked: Sequence[Sequence[int]], k: int | None = None,
                       extra: Sequence[Mapping[str, Any]] | None = None) -> list[dict[str, Any]]:
    """Predictions from ranked item-id lists (a retriever, a ranker): the first ``k`` kept."""
    if extra is not None and len(extra) != len(ranked):
        raise LlmrecError(f"{len(extra)} extra entries for {len(ranked)} ranked lists")
    return [{"predicted_ids": [int(x) for x in list(ids)[:k]], **(dict(extra[i]) if extra else {})}
            for i, ids in enumerate(ranked)]

