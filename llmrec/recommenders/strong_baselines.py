"""The strong baselines: EASE and SASRec, RecBole's models on our records, split and metric.

PROTOCOL.md section 5. Like every baseline they are fitted on a split's training records,
see only a record's 6 input items (in order, for SASRec) and rank the catalog, the inputs
excluded; their one choice is made on the split's validation records by MAP@4, and the
metrics row records it (:meth:`~llmrec.recommenders.baselines.Baseline.settings`).

==========  ==========================================================================
``ease``    Steck (2019): B = I - P diag(1 / diag P), P = (XᵀX + λI)⁻¹, diagonal zero;
            X has the training records' 10 items as rows; a record scores ``x_inputs B``.
            The L2 weight λ is the best of :attr:`EaseBaseline.l2_grid` on validation.
``sasrec``  Kang & McAuley (2018): item + position embeddings, 2 causal self-attention
            blocks (hidden 64, RecBole's defaults), trained on each training record's 10
            items in time order to predict every next item (cross-entropy over the
            catalog); a record's 6 inputs are its sequence, the catalog scored at the last
            position. Epochs by early stopping on validation MAP@4, best epoch kept.
==========  ==========================================================================

The models are RecBole's own (``recbole.model.general_recommender.EASE``,
``recbole.model.sequential_recommender.SASRec``: the field's maintained implementations;
``implicit`` has neither). RecBole's pipeline is not used, for two reasons. Its ``Config``,
which ``run_recbole``, ``create_dataset``, ``data_preparation`` and its ``Trainer`` all
need, sets ``np.float = np.float_`` and so fails on NumPy 2, which torch 2.13 and pandas 3
require here (RecBole 1.2.1, RecBole issue #2162: the maintainers' advice is NumPy 1.23).
And its evaluation scores one target item per row, so neither MAP@4 over a record's 4
targets nor early stopping on it can run inside its ``Trainer``. So each model is built
from a plain config (:class:`_Config`) and a stand-in for RecBole's dataset
(:class:`_Dataset`: the item count, the training matrix), and what the pipeline would do
is done here: the training sequences, SASRec's training loop (Adam, seeded, every
position of a sequence trained in one pass: the same loss as RecBole's prefix
augmentation, as in the paper), validation, and scoring through
:class:`~llmrec.recommenders.baselines.Baseline`.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from llmrec.data.records import WINDOW
from llmrec.errors import LlmrecError
from llmrec.evaluation.metrics import ap_at_k
from llmrec.recommenders.base import register
from llmrec.recommenders.fitted import Baseline, train_matrix

# torch, transformers, peft and accelerate are imported inside the functions that use them:
# the command line (`python -m llmrec ...`) imports this module, and they take seconds to load.

#: RecBole's field names (its ``overall.yaml`` defaults), as its models read them.
FIELDS = {"USER_ID_FIELD": "user_id", "ITEM_ID_FIELD": "item_id", "LIST_SUFFIX": "_list",
          "ITEM_LIST_LENGTH_FIELD": "item_length", "NEG_PREFIX": "neg_"}


class _Config(dict):
    """RecBole's ``Config`` as its models read it: keys, and ``device`` also an attribute."""

    def __init__(self, **values: Any):
        super().__init__(FIELDS, device="cpu", **values)
        self.device = "cpu"


class _Dataset:
    """What RecBole's models read from its dataset: id counts and the training matrix."""

    def __init__(self, n_items: int, matrix=None):
        self.n_items, self.matrix = n_items, matrix

    def num(self, field: str) -> int:
        if field == FIELDS["ITEM_ID_FIELD"]:
            return self.n_items
        return 0 if self.matrix is None else self.matrix.shape[0]

    def inter_matrix(self, form: str = "csr"):
        return self.matrix.asformat(form)


def recbole_model(name: str):
    """RecBole's model class ``name`` (``EASE`` or ``SASRec``).

    Importing RecBole's sequential models turns on torch's anomaly detection for the whole
    process (its ``sine.py`` calls ``torch.autograd.set_detect_anomaly(True)``), which makes
    every training step several times slower: the setting is put back as it was."""
    import torch  # heavy optional dependencies: torch and RecBole

    anomaly = torch.is_anomaly_enabled()
    from recbole.model import general_recommender, sequential_recommender

    torch.autograd.set_detect_anomaly(anomaly)
    return getattr(general_recommender if name == "EASE" else sequential_recommender, name)


def validation_map(b: Baseline, records: pd.DataFrame, k: int = 4) -> float:
    """MAP@k of ``b`` on validation records (the metric every choice is made by)."""
    ranked = b.recommend_many(records["input_ids"], k)
    return float(np.mean([ap_at_k(r, t, k) for r, t in zip(ranked, records["target_ids"],
                                                           strict=True)]))


class _Tuned(Baseline):
    """A baseline with one choice made on validation records (or fixed by the caller)."""

    #: what is chosen, for the error message
    choice = ""

    def __init__(self, train_records: pd.DataFrame, movies: pd.DataFrame, seed: int = 0,
                 k: int = 10, valid_records: pd.DataFrame | None = None, fixed: Any = None,
                 **names: Any):
        if fixed is None and (valid_records is None or len(valid_records) == 0):
            raise LlmrecError(f"{self.kind} chooses its {self.choice} on validation records; "
                              f"pass valid_records (the split's 'valid' part) or fix it")
        self.fixed, self.valid_map = fixed, None
        super().__init__(train_records, movies, seed, k, valid_records, **names)

    def settings(self) -> dict[str, Any]:
        return {**super().settings(), "valid_map_at_4": self.valid_map}


@register("ease")
class EaseBaseline(_Tuned):
    """EASE (RecBole's), its L2 weight chosen on validation unless ``l2`` is given."""

    choice = "L2 weight"
    #: the L2 weights tried on validation (log-spaced)
    l2_grid = (10.0, 25.0, 50.0, 100.0, 250.0, 500.0, 1000.0, 2000.0)

    def __init__(self, *args: Any, l2: float | None = None, **kwargs: Any):
        super().__init__(*args, fixed=l2, **kwargs)

    def fit(self, train_records, movies):
        x = train_matrix(self, train_records).astype(np.float32)
        self.valid_maps: dict[float, float] = {}
        for l2 in ([self.fixed] if self.fixed is not None else self.l2_grid):
            self.b = self._weights(x, float(l2))
            if self.fixed is None:
                self.valid_maps[l2] = validation_map(self, self.valid_records)
        if self.fixed is None:  # the best on validation, ties to the stronger weight
            self.l2 = max(self.valid_maps, key=lambda v: (self.valid_maps[v], v))
            self.valid_map = self.valid_maps[self.l2]
            self.b = self._weights(x, self.l2)
        else:
            self.l2 = float(self.fixed)

    @staticmethod
    def _weights(x, l2: float) -> np.ndarray:
        model = recbole_model("EASE")(_Config(reg_weight=l2), _Dataset(x.shape[1], x))
        return np.asarray(model.item_similarity)

    def scores(self, inputs, input_lists):
        return np.asarray(inputs @ self.b)

    def settings(self):
        return {**super().settings(), "l2": self.l2}


@register("sasrec")
class SasrecBaseline(_Tuned):
    """SASRec (RecBole's network), epochs by early stopping on validation unless ``epochs``
    is given; the inputs' order is its sequence."""

    choice = "epochs"
    #: RecBole's SASRec.yaml defaults (its network as the library ships it)
    network = {"n_layers": 2, "n_heads": 2, "hidden_size": 64, "inner_size": 256,
               "hidden_dropout_prob": 0.5, "attn_dropout_prob": 0.5, "hidden_act": "gelu",
               "layer_norm_eps": 1e-12, "initializer_range": 0.02, "loss_type": "CE"}
    #: training: Adam at RecBole's learning rate; sequences per batch; early stopping
    learning_rate, batch_size, max_epochs, patience = 1e-3, 128, 60, 8
    #: positions: a record's 10 items give 9 (item -> next item) steps
    max_length = WINDOW - 1

    def __init__(self, *args: Any, epochs: int | None = None,
                 item_init: tuple[np.ndarray, np.ndarray] | None = None,
                 shuffle_init: bool = False, **kwargs: Any):
        if epochs is not None and epochs < 1:
            raise LlmrecError(f"sasrec needs at least one epoch, got {epochs}")
        if shuffle_init and item_init is None:
            raise LlmrecError("shuffle_init shuffles item_init's vectors; pass item_init too")
        self.item_init, self.shuffle_init = item_init, shuffle_init
        super().__init__(*args, fixed=epochs, **kwargs)

    # -- sequences: catalog columns + 1 (RecBole keeps 0 for padding), right-padded
    def _columns(self, items: Sequence[int]) -> list[int]:
        return [self.col[int(i)] + 1 for i in items if int(i) in self.col]

    def _padded(self, lists: Sequence[Sequence[int]]):
        import torch  # heavy optional dependency

        seq = torch.zeros((len(lists), self.max_length), dtype=torch.long)
        for r, c in enumerate(lists):
            seq[r, :len(c)] = torch.tensor(c, dtype=torch.long)
        return seq, torch.tensor([len(c) for c in lists], dtype=torch.long)

    def fit(self, train_records, movies):
        import torch  # heavy optional dependency

        cols = [c for i, t in zip(train_records["input_ids"], train_records["target_ids"],
                                  strict=True) if len(c := self._columns([*i, *t])) > 1]
        seq, lengths = self._padded([c[:-1] for c in cols])  # each item -> the next one
        nxt, _ = self._padded([c[1:] for c in cols])
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(self.seed)
            config = _Config(MAX_ITEM_LIST_LENGTH=self.max_length, **self.network)
            self.model = recbole_model("SASRec")(config, _Dataset(len(self.item_ids) + 1))
            if self.item_init is not None:
                table = initial_item_table(*self.item_init, self.item_ids,
                                           self.network["hidden_size"],
                                           self.network["initializer_range"],
                                           shuffle_seed=self.seed if self.shuffle_init else None)
                with torch.no_grad():
                    self.model.item_embedding.weight[1:] = torch.from_numpy(table)
            self._train(seq, lengths, nxt)

    def _train(self, seq, lengths, nxt) -> None:
        import torch  # heavy optional dependency
        import torch.nn.functional as F

        model = self.model
        # RecBole's forward keeps the last position; the encoder's output has every one
        seen: dict[str, Any] = {}
        hook = model.trm_encoder.register_forward_hook(lambda m, a, out: seen.update(h=out[-1]))
        opt = torch.optim.Adam(model.parameters(), lr=self.learning_rate)
        order = torch.Generator().manual_seed(self.seed)
        n_epochs = self.fixed or self.max_epochs
        best, self.epochs_run, self.valid_maps = None, 0, []
        bar = tqdm(range(n_epochs), desc="sasrec epochs", leave=False)
        for epoch in bar:
            model.train()
            for idx in torch.randperm(len(seq), generator=order).split(self.batch_size):
                model(seq[idx], lengths[idx])
                logits = seen["h"] @ model.item_embedding.weight.T
                loss = F.cross_entropy(logits.flatten(0, 1), nxt[idx].flatten(), ignore_index=0)
                opt.zero_grad()
                loss.backward()
                opt.step()
            self.epochs_run = epoch + 1
            if self.fixed is not None:
                continue
            self.valid_maps.append(validation_map(self, self.valid_records))
            bar.set_postfix(loss=f"{loss.item():.3f}", valid_map=f"{self.valid_maps[-1]:.4f}")
            if best is None or self.valid_maps[-1] > self.valid_maps[best]:
                best, state = epoch, copy.deepcopy(model.state_dict())
            elif epoch - best >= self.patience:
                break
        hook.remove()
        if best is not None:
            model.load_state_dict(state)
            self.valid_map = self.valid_maps[best]
        self.epochs = self.epochs_run if best is None else best + 1
        model.eval()

    def scores(self, inputs, input_lists):
        import torch  # heavy optional dependency

        seq, lengths = self._padded([self._columns(i)[-self.max_length:] for i in input_lists])
        out = np.zeros((len(input_lists), len(self.item_ids)))
        some = lengths > 0  # a list with no catalog item keeps the popularity order
        if some.any():
            self.model.eval()
            with torch.no_grad():
                s = self.model.full_sort_predict({self.model.ITEM_SEQ: seq[some],
                                                  self.model.ITEM_SEQ_LEN: lengths[some]})
            out[some.numpy()] = s[:, 1:].double().numpy()
        return out

    def settings(self):
        init = "random" if self.item_init is None else (
            "item vectors, shuffled across items" if self.shuffle_init else "item vectors")
        return {**super().settings(), "epochs": self.epochs, "epochs_run": self.epochs_run,
                "item_init": init}


def initial_item_table(vectors: np.ndarray, vector_ids: np.ndarray, item_ids: np.ndarray,
                       dim: int, scale: float, shuffle_seed: int | None = None) -> np.ndarray:
    """SASRec's item table initialised from item vectors (Harte et al. 2023): the vectors of
    ``item_ids`` (in that order) reduced to ``dim`` columns by PCA, scaled to the standard
    deviation ``scale`` of the random initialisation they replace. ``shuffle_seed`` permutes
    the rows across items (seeded): the same numbers with the text's meaning removed, the
    control that tells the text's contribution from the scale's."""
    pos = {int(i): r for r, i in enumerate(vector_ids)}
    missing = [int(i) for i in item_ids if int(i) not in pos]
    if missing:
        raise LlmrecError(f"no item vector for catalog item {missing[0]}; encode every catalog item")
    v = np.asarray(vectors, dtype=np.float64)[[pos[int(i)] for i in item_ids]]
    v = v - v.mean(axis=0, keepdims=True)
    u, s, _ = np.linalg.svd(v, full_matrices=False)
    reduced = u[:, :dim] * s[:dim]
    if reduced.shape[1] < dim:  # fewer dimensions than the table: pad with zeros
        reduced = np.pad(reduced, ((0, 0), (0, dim - reduced.shape[1])))
    reduced *= scale / max(float(reduced.std()), 1e-12)
    if shuffle_seed is not None:
        reduced = reduced[np.random.default_rng(shuffle_seed).permutation(len(reduced))]
    return reduced.astype(np.float32)
