"""The LLM as an encoder of movies: item vectors, similarity search, score fusion, SASRec
initialised from the vectors, and the slices where collaborative filtering is blind."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from llmrec.errors import LlmrecError
from llmrec.evaluation.slices import (
    ITEM_BUCKETS,
    bucket,
    item_slices,
    list_quality,
    training_windows,
    user_slices,
)
from llmrec.llm.embeddings import candidate_layers, item_embeddings, item_texts, nearest, prepare
from llmrec.recommenders import build
from llmrec.recommenders.encoder import ScoreFusion, Similarity, standardise_rows, tuned_fusion
from llmrec.recommenders.strong_baselines import SasrecBaseline, initial_item_table, validation_map


def _movies(n=20):
    return pd.DataFrame({
        "item_id": list(range(1, n + 1)),
        "display_title": [f"Movie {i} (199{i % 10})" for i in range(1, n + 1)],
        "genres": [["Sci-Fi"] if i <= n // 2 else ["Romance"] for i in range(1, n + 1)],
    })


def _records(lists, users=None):
    return pd.DataFrame({
        "record_id": [f"{u}-0" for u in range(len(lists))],
        "user_id": users or list(range(len(lists))),
        "input_ids": [lst[:6] for lst in lists],
        "target_ids": [lst[6:] for lst in lists],
    })


def _clusters(n, seed):
    rng = np.random.default_rng(seed)
    return _records([((1 if r % 2 == 0 else 11) + rng.permutation(10)).tolist() for r in range(n)])


def _cluster_vectors(n=20, noise=0.1, seed=0):
    """Item vectors that know the two tastes: items 1-10 near one direction, 11-20 another."""
    rng = np.random.default_rng(seed)
    base = np.array([[1.0, 0.0, 0.0]] * (n // 2) + [[0.0, 1.0, 0.0]] * (n - n // 2))
    return base + noise * rng.standard_normal(base.shape), np.arange(1, n + 1)


def test_item_texts_write_title_and_genres():
    ids, titles = item_texts(_movies(3), "title")
    assert ids.tolist() == [1, 2, 3] and titles[0] == "Movie 1 (1991)"
    _, genres = item_texts(_movies(3), "genres")
    assert genres[0] == "Movie 1 (1991) Sci-Fi"
    with pytest.raises(LlmrecError, match="unknown item text variant 'plot'"):
        item_texts(_movies(3), "plot")


def test_candidate_layers_span_the_stack():
    assert candidate_layers(30) == (8, 15, 22, 30)
    assert candidate_layers(2) == (1, 2)


def test_prepare_centres_and_normalises():
    v = prepare(np.array([[10.0, 1.0], [10.0, -1.0]]))
    assert np.allclose(v, [[0.0, 1.0], [0.0, -1.0]])
    assert np.allclose(np.linalg.norm(prepare(np.array([[3.0, 4.0]]), center=False), axis=1), 1.0)


def test_the_tiny_models_item_vectors_are_pooled_and_cached(tiny, monkeypatch, tmp_path):
    monkeypatch.setenv("LLMREC_CACHE", str(tmp_path))
    model, tokenizer = tiny
    n_layers = model.config.num_hidden_layers
    ids, vecs = item_embeddings(model, tokenizer, "tiny", _movies(5), "title", layers=[1, n_layers])
    assert set(vecs) == {(1, "mean"), (1, "last"), (n_layers, "mean"), (n_layers, "last")}
    assert all(v.shape == (5, model.config.hidden_size) for v in vecs.values())
    # a text's vector does not depend on the batch it was padded in
    _, alone = item_embeddings(model, tokenizer, "tiny", _movies(5).iloc[[2]], "title",
                               layers=[1, n_layers])
    assert np.allclose(alone[(n_layers, "last")][0], vecs[(n_layers, "last")][2], atol=1e-4)
    assert np.allclose(alone[(1, "mean")][0], vecs[(1, "mean")][2], atol=1e-4)
    cached = list((tmp_path / "embeddings").glob("tiny-*.npz"))
    assert len(cached) == 2
    # read back from the cache: the same vectors; a damaged file is computed again
    _, again = item_embeddings(model, tokenizer, "tiny", _movies(5), "title", layers=[1, n_layers])
    assert all(np.array_equal(again[k], vecs[k]) for k in vecs)
    path = max(cached, key=lambda p: p.stat().st_size)
    path.write_bytes(path.read_bytes()[:-10])
    _, rebuilt = item_embeddings(model, tokenizer, "tiny", _movies(5), "title", layers=[1, n_layers])
    assert all(np.allclose(rebuilt[k], vecs[k]) for k in vecs)


def test_similarity_finds_the_taste_the_vectors_know():
    train, valid = _clusters(40, 0), _clusters(10, 1)
    vectors, ids = _cluster_vectors()
    s = build("similarity", train_records=train, movies=_movies(), vectors=vectors, vector_ids=ids,
              system="some-llm", setting="encoder/similarity")
    assert (s.system, s.setting) == ("some-llm", "encoder/similarity")
    assert validation_map(s, valid) > 0.9
    top = s.recommend([1, 2, 3, 4, 5, 6], 4)
    assert all(i <= 10 and i not in {1, 2, 3, 4, 5, 6} for i in top)
    near = nearest(vectors, ids, [1, 15], k=3)
    assert all(i <= 10 for i in near[1]) and all(i > 10 for i in near[15])
    with pytest.raises(LlmrecError, match="no vector for catalog item 20"):
        Similarity(train, _movies(), vectors=vectors[:19], vector_ids=ids[:19])


def test_fusion_weight_zero_is_the_collaborative_list_and_the_choice_is_made_on_validation():
    train, valid = _clusters(40, 0), _clusters(10, 1)
    movies = _movies()
    pop = build("popularity", train_records=train, movies=movies)
    vectors, ids = _cluster_vectors()
    sim = build("similarity", train_records=train, movies=movies, vectors=vectors, vector_ids=ids)
    zero = ScoreFusion(pop, sim, 0.0, system="x", setting="encoder/fused-popularity")
    assert zero.recommend_many(valid["input_ids"], 4) == pop.recommend_many(valid["input_ids"], 4)
    fused, table = tuned_fusion(pop, sim, valid, system="x", setting="encoder/fused-popularity")
    assert table["weight"].iloc[0] == 0.0 and table["chosen"].sum() == 1
    assert fused.weight > 0  # the vectors know the tastes popularity does not
    assert validation_map(fused, valid) >= validation_map(pop, valid)
    assert fused.settings()["fusion_weight"] == fused.weight
    z = standardise_rows(np.array([[1.0, 2.0, 3.0], [5.0, 5.0, 5.0]]))
    assert np.allclose(z[0], [-1.2247, 0.0, 1.2247], atol=1e-4) and np.all(z[1] == 0)


def test_initial_item_table_reduces_scales_and_shuffles():
    vectors, ids = _cluster_vectors()
    order = ids[::-1]
    table = initial_item_table(vectors, ids, order, dim=4, scale=0.02)
    assert table.shape == (20, 4) and table.dtype == np.float32
    assert abs(table.std() - 0.02) < 1e-6
    # first principal direction separates the two tastes, in the order asked for
    first = table[:, 0]
    assert np.sign(first[:10]).std() == 0 and np.sign(first[:10])[0] != np.sign(first[10:])[0]
    shuffled = initial_item_table(vectors, ids, order, dim=4, scale=0.02, shuffle_seed=0)
    assert sorted(map(tuple, shuffled.round(6))) == sorted(map(tuple, table.round(6)))
    assert not np.array_equal(shuffled, table)
    with pytest.raises(LlmrecError, match="no item vector for catalog item 21"):
        initial_item_table(vectors, ids, np.arange(1, 22), dim=4, scale=0.02)


def test_sasrec_starts_from_the_item_vectors(one_thread):
    import torch

    train = _clusters(40, 0)
    vectors, ids = _cluster_vectors()
    plain = SasrecBaseline(train, _movies(), epochs=1)
    init = SasrecBaseline(train, _movies(), epochs=1, item_init=(vectors, ids),
                          system="x", setting="encoder/sasrec-init")
    assert plain.settings()["item_init"] == "random"
    assert init.settings()["item_init"] == "item vectors"
    assert not torch.equal(plain.model.item_embedding.weight, init.model.item_embedding.weight)
    with pytest.raises(LlmrecError, match="pass item_init too"):
        SasrecBaseline(train, _movies(), epochs=1, shuffle_init=True)


def _rows(lists, targets, users):
    return [{"record_id": f"r{i}", "user_id": u, "target_ids": t, "predicted_ids": p}
            for i, (p, t, u) in enumerate(zip(lists, targets, users, strict=True))]


def test_item_and_user_slices_count_hits_by_bucket_and_pair_with_the_reference():
    popularity = {1: 0, 2: 3, 3: 10, 4: 50}
    targets = [[1, 2, 3, 4], [1, 4, 5, 6]]  # items 5 and 6 were never liked in training
    system = _rows([[1, 2, 9, 9], [5, 9, 9, 9]], targets, [7, 8])
    reference = _rows([[4, 3, 9, 9], [4, 9, 9, 9]], targets, [7, 8])
    table = item_slices({"sys": system, "ref": reference}, popularity, reference="ref").set_index(
        ["system", "bucket"])
    never = table.loc[("sys", "never seen")]
    assert (never["n_targets"], never["n_records"]) == (4, 2)
    assert never["hits_at_4"] == pytest.approx(2 / 4)  # items 1 and 5 of 1, 1, 5, 6
    assert never["hits_at_4_diff"] == pytest.approx(2 / 4)  # the reference found none
    assert table.loc[("ref", "over 20"), "hits_at_4"] == 1.0
    assert "hits_at_4_diff" not in table.loc[("ref", "over 20")].dropna()
    users = user_slices({"sys": system, "ref": reference}, {7: 3}, reference="ref").set_index(
        ["system", "bucket"])
    assert users.loc[("sys", "no training window"), "n_records"] == 1
    assert users.loc[("sys", "3-5"), "map_at_4"] == pytest.approx(0.5)
    assert bucket(0, ITEM_BUCKETS) == "never seen" and bucket(21, ITEM_BUCKETS) == "over 20"
    with pytest.raises(LlmrecError, match="reference 'other' is not among the systems"):
        item_slices({"sys": system}, popularity, reference="other")


def test_list_quality_and_training_windows():
    rows = _rows([[1, 1, 2, 3], [1, 2, 3, 4]], [[5], [6]], [1, 2])
    q = list_quality({"sys": rows}, {1: 10, 2: 20, 3: 30, 4: 40}, catalog_size=10).iloc[0]
    assert q["distinct_items"] == 4 and q["coverage"] == 0.4
    assert q["lists_with_a_repeat"] == 0.5
    assert q["mean_training_likes"] == pytest.approx((10 + 10 + 20 + 30 + 10 + 20 + 30 + 40) / 8)
    assert training_windows(_records([[1] * 10, [2] * 10], users=[5, 5])) == {5: 2}
