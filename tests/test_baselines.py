"""Baselines: hand-made records with known answers, then the real ml-100k splits."""

from __future__ import annotations

import time

import numpy as np
import pandas as pd
import pytest

from llmrec.data.records import build_records, item_popularity, split_records
from llmrec.errors import LlmrecError
from llmrec.evaluation.matching import Catalog
from llmrec.evaluation.metrics import score
from llmrec.evaluation.spine import Task, evaluate
from llmrec.recommenders.baselines import BASELINES, fit_baseline, train_matrix
from llmrec.recommenders.strong_baselines import EaseBaseline, validation_map
from llmrec.report.params import BASELINE_OPTIONS


def _movies(n=20):
    return pd.DataFrame({
        "item_id": list(range(1, n + 1)),
        "display_title": [f"Movie {i} (199{i % 10})" for i in range(1, n + 1)],
        "genres": [["Sci-Fi"] if i <= n // 2 else ["Romance"] for i in range(1, n + 1)],
    })


def _records(lists):
    return pd.DataFrame({
        "record_id": [f"{u}-0" for u in range(len(lists))],
        "user_id": list(range(len(lists))),
        "input_ids": [lst[:6] for lst in lists],
        "target_ids": [lst[6:] for lst in lists],
    })


def _clusters(n, seed):
    rng = np.random.default_rng(seed)
    return _records([((1 if r % 2 == 0 else 11) + rng.permutation(10)).tolist() for r in range(n)])


@pytest.fixture(scope="module")
def clusters():
    """Two taste clusters: items 1-10 liked together, items 11-20 liked together."""
    return _clusters(60, 0)


@pytest.fixture(scope="module")
def clusters_valid():
    """Validation records of the same two tastes."""
    return _clusters(20, 1)


def test_item_popularity_counts_inputs_and_targets():
    rec = _records([[1, 2, 3, 4, 5, 6, 7, 8, 9, 10], [1, 2, 3, 4, 5, 6, 11, 12, 13, 14]])
    pop = item_popularity(rec)
    assert pop[1] == 2 and pop[7] == 1 and pop[14] == 1 and 15 not in pop


def test_popularity_excludes_inputs_and_breaks_ties_by_id():
    rec = _records([[5, 6, 7, 8, 9, 10, 1, 2, 3, 4], [5, 6, 7, 8, 9, 11, 1, 2, 12, 13],
                    [5, 6, 7, 14, 15, 16, 1, 17, 18, 19]])
    b = fit_baseline("popularity", rec, _movies())
    # counts: 5,6,7: 3; 1: 3; 8,9: 2; 2: 2; rest 1
    assert b.recommend([5, 6, 7, 8, 9, 10], 4) == [1, 2, 3, 4]
    assert b.recommend([1, 2, 3, 4, 11, 12], 5) == [5, 6, 7, 8, 9]


def test_item_knn_hand_computed():
    rec = _records([[1, 2, 3, 4, 5, 6, 7, 8, 9, 10]] * 3 + [[1, 11, 12, 13, 14, 15, 16, 17, 18, 19]])
    b = fit_baseline("item_knn", rec, _movies())
    # item 2 co-occurs with 1 in 3 records: cos(1,2) = 3 / sqrt(4 * 3); cos(1,11) = 1 / sqrt(4 * 1)
    assert b.sim[b.col[1], b.col[2]] == pytest.approx(3 / np.sqrt(12))
    assert b.sim[b.col[1], b.col[11]] == pytest.approx(1 / 2)
    assert b.sim[b.col[1], b.col[1]] == 0.0
    recs = b.recommend([1, 2, 3, 4, 5, 6], 4)
    assert recs == [7, 8, 9, 10]  # the items of the same taste, not the inputs


@pytest.mark.parametrize("name", ["item_knn", "als", "ease", "sasrec"])
def test_collaborative_baselines_follow_taste(clusters, clusters_valid, one_thread, name):
    b = fit_baseline(name, clusters, _movies(), seed=0, valid_records=clusters_valid)
    recs = b.recommend_many([[1, 2, 3, 4, 5, 6], [11, 12, 13, 14, 15, 16]], 4)
    assert set(recs[0]) == {7, 8, 9, 10}
    assert set(recs[1]) == {17, 18, 19, 20}


def test_ease_is_the_closed_form_with_its_l2_chosen_on_validation(clusters, clusters_valid):
    b = fit_baseline("ease", clusters, _movies(), valid_records=clusters_valid)
    assert b.l2 in b.l2_grid and set(b.valid_maps) == set(b.l2_grid)
    assert b.valid_map == max(b.valid_maps.values()) == b.settings()["valid_map_at_4"]
    assert b.settings()["l2"] == b.l2
    x = train_matrix(b, clusters).toarray()
    p = np.linalg.inv(x.T @ x + b.l2 * np.eye(x.shape[1]))
    expected = np.eye(x.shape[1]) - p / np.diag(p)  # B = I - P diag(1 / diag P)
    np.testing.assert_allclose(b.b, expected, atol=1e-5)
    assert np.all(np.diag(b.b) == 0)
    fixed = fit_baseline("ease", clusters, _movies(), l2=7.0)  # a fixed weight needs no validation
    assert fixed.l2 == 7.0 and fixed.settings()["valid_map_at_4"] is None


def _cycle(n, seed):
    """Likes in a fixed order: item i is always followed by item i + 1 (20 wraps to 1)."""
    starts = np.random.default_rng(seed).integers(0, 20, n)
    return _records([[(s + j) % 20 + 1 for j in range(10)] for s in starts])


def test_sasrec_learns_the_order_the_order_blind_baselines_cannot(one_thread):
    train, valid = _cycle(200, 0), _cycle(40, 1)
    every_start = _records([[(s + j) % 20 + 1 for j in range(10)] for s in range(20)])
    b = fit_baseline("sasrec", train, _movies(), valid_records=valid)
    assert validation_map(b, every_start) > 0.8
    # the same items before and after the inputs are equally "co-liked": order-blind models
    # cannot tell which come next
    for name in ("item_knn", "ease"):
        order_blind = fit_baseline(name, train, _movies(), valid_records=valid)
        assert validation_map(order_blind, every_start) < 0.5
    # early stopping kept the best validation epoch and says so
    s = b.settings()
    assert 1 <= s["epochs"] <= s["epochs_run"] <= b.max_epochs
    assert s["epochs_run"] == b.max_epochs or s["epochs_run"] - s["epochs"] == b.patience
    assert s["valid_map_at_4"] == max(b.valid_maps) == b.valid_maps[s["epochs"] - 1]
    # seeded: the same fit gives the same lists; a fixed number of epochs needs no validation
    again = fit_baseline("sasrec", train, _movies(), epochs=3)
    queries = every_start["input_ids"]
    assert again.recommend_many(queries, 10) == fit_baseline(
        "sasrec", train, _movies(), epochs=3).recommend_many(queries, 10)
    assert again.settings()["epochs"] == 3 and again.settings()["valid_map_at_4"] is None


def test_random_is_seeded_and_valid(clusters):
    b = fit_baseline("random", clusters, _movies(), seed=3)
    a1 = b.recommend([1, 2, 3, 4, 5, 6], 10)
    assert a1 == fit_baseline("random", clusters, _movies(), seed=3).recommend([1, 2, 3, 4, 5, 6], 10)
    assert a1 != fit_baseline("random", clusters, _movies(), seed=4).recommend([1, 2, 3, 4, 5, 6], 10)
    assert len(set(a1)) == 10 and not set(a1) & {1, 2, 3, 4, 5, 6}
    # a record's list does not depend on which batch it is in
    assert b.recommend_many([[11, 12, 13, 14, 15, 16], [1, 2, 3, 4, 5, 6]], 10)[1] == a1


def test_content_follows_genres(clusters):
    b = fit_baseline("content", clusters, _movies())
    recs = b.recommend([1, 2, 3, 4, 5, 6], 4)
    assert set(recs) <= {7, 8, 9, 10}  # the other Sci-Fi titles


def test_bad_input(clusters):
    with pytest.raises(LlmrecError, match="unknown baseline"):
        fit_baseline("svd", clusters, _movies())
    with pytest.raises(LlmrecError, match="training records"):
        fit_baseline("popularity", clusters.iloc[:0], _movies())
    with pytest.raises(ValueError):
        fit_baseline("popularity", clusters, _movies()).recommend([1], 0)
    for name, what in (("ease", "L2 weight"), ("sasrec", "epochs")):
        with pytest.raises(LlmrecError, match=f"{what} on validation records"):
            fit_baseline(name, clusters, _movies())
    with pytest.raises(LlmrecError, match="at least one epoch"):
        fit_baseline("sasrec", clusters, _movies(), epochs=0)


def test_ml100k_temporal_ordering_and_speed(ml100k):
    parts = split_records(build_records(ml100k.ratings), "temporal")
    n_items = len(Catalog.from_movies(ml100k.movies))
    pop = item_popularity(parts["train"])
    task = Task.of(ml100k.movies, parts["train"])
    maps = {}
    for name in ["random", "popularity", "item_knn"]:
        start = time.perf_counter()
        b = fit_baseline(name, parts["train"], ml100k.movies)
        rows, metrics = evaluate(b, parts["test"], task)
        assert time.perf_counter() - start < 20
        assert b.system == name and b.setting == "baseline"
        assert all(len(r["predicted_ids"]) == 10 for r in rows)
        assert all(not set(r["predicted_ids"]) & set(r["input_ids"]) for r in rows)
        m = score(rows, catalog_size=n_items, item_popularity=pop)
        assert m["n_records"] == 897 and m["input_rate"] == 0.0 and m["validity"] == 1.0
        assert {k: metrics[k] for k in m} == m  # the spine scores a baseline exactly so
        maps[name] = m["map_at_4"]
    assert maps["random"] < 0.01 < maps["popularity"] < maps["item_knn"] < 0.1


def test_ml100k_temporal_strong_baselines_beat_popularity(ml100k, one_thread):
    parts = split_records(build_records(ml100k.ratings), "temporal")
    task = Task.of(ml100k.movies, parts["train"])
    pop = evaluate(fit_baseline("popularity", parts["train"], ml100k.movies), parts["test"], task)
    # EASE as the report fits it (L2 weight on validation); SASRec for a fixed 8 epochs (its
    # early stopping runs in the hand-made test above), to stay fast
    for name, options in (("ease", {}), ("sasrec", {"epochs": 8})):
        start = time.perf_counter()
        b = fit_baseline(name, parts["train"], ml100k.movies, valid_records=parts["valid"],
                         **options)
        rows, metrics = evaluate(b, parts["test"], task)
        assert time.perf_counter() - start < 60
        assert metrics["n_records"] == 897 and metrics["input_rate"] == 0.0
        assert all(len(r["predicted_ids"]) == 10 for r in rows)
        assert metrics["map_at_4"] > pop[1]["map_at_4"]
        assert metrics["fit_seconds"] > 0
    assert metrics["epochs"] == 8


def test_baselines_list():
    assert BASELINES == ["random", "popularity", "item_knn", "content", "als", "ease", "sasrec"]


# ----------------------------------------------------------------------------- results table
def _save_two(run_dir):
    from llmrec.artifacts import save_system_run

    rows = [{"record_id": "1-0", "input_ids": [9], "target_ids": [1, 2, 3, 4],
             "predicted_ids": [1, 5, 2, 6]},
            {"record_id": "2-0", "input_ids": [9], "target_ids": [5, 6, 7, 8],
             "predicted_ids": [1, 2, 3, 4]}]
    for system in ("popularity", "random"):
        m = score(rows, catalog_size=20, n_boot=100)
        save_system_run(run_dir, system, "baseline", "temporal", rows, m)
    return rows


def test_results_collect_write_upsert_recompute(tmp_path):
    from llmrec.report.results import FIRST_COLUMNS, collect, recompute, write_results

    run_dir = tmp_path / "run"
    rows = _save_two(run_dir)
    df = collect([run_dir])
    assert len(df) == 2 and list(df.columns[:len(FIRST_COLUMNS)]) == FIRST_COLUMNS
    out = tmp_path / "reports"
    write_results(df, out)
    csv = pd.read_csv(out / "results.csv")
    assert set(csv["system"]) == {"popularity", "random"}
    md = (out / "results.md").read_text()
    m4 = (1 + 2 / 3) / 4 / 2
    table = md[md.index("| system |"):]  # after the column and setting definitions
    assert "`hallucination_rate`:" in md and "`zero-shot-chat/<preset>`:" in md
    assert f"{m4:.3f} [" in table and table.count("\n") == 4
    # upsert: a newer row with the same key replaces the old one, other rows stay
    newer = df[df["system"] == "random"].assign(map_at_4=0.5)
    write_results(newer, out)
    csv = pd.read_csv(out / "results.csv")
    assert len(csv) == 2
    assert csv.set_index("system").loc["random", "map_at_4"] == 0.5
    assert csv.set_index("system").loc["popularity", "map_at_4"] == pytest.approx(m4)
    # every number recomputes from its predictions file
    row = df.iloc[0].to_dict()
    again = recompute(row, n_boot=100)
    for key in ("map_at_4", "map_at_4_low", "ndcg_at_10", "coverage", "hit_rate_at_4"):
        assert again[key] == pytest.approx(row[key])
    assert again["n_records"] == len(rows)


def test_results_bad_paths(tmp_path):
    from llmrec.report.results import collect, recompute

    with pytest.raises(LlmrecError, match="neither"):
        collect([tmp_path / "nowhere"])
    with pytest.raises(LlmrecError, match="not found"):
        recompute({"predictions": str(tmp_path / "missing.jsonl.gz"), "map_at_4": 0.1})


# ----------------------------------------------------------------------------- notebook 05
def test_notebook_05_runs_and_its_numbers_recompute(smoke_report):
    """Chapter 5 as the smoke report ran it (the session's ``smoke_report``, its
    model-independent run): every baseline on all 897 temporal test records."""
    from llmrec.artifacts import read_json
    from llmrec.paths import repo_root
    from llmrec.report.params import load_params
    from llmrec.report.results import collect, recompute

    smoke = load_params(repo_root() / "params" / "smoke.yaml")
    run_dir = smoke_report.common
    table = collect([run_dir]).set_index(["system", "split"])
    assert len(table) == len(BASELINES)  # the preview profiles' common run: the temporal split
    assert (table["setting"] == "baseline").all()
    assert (table.xs("temporal", level="split")["n_records"] == 897).all()
    pop = table.loc[("popularity", "temporal")]
    assert 0.01 < pop["map_at_4"] < 0.04
    assert pop["map_at_4_low"] < pop["map_at_4"] < pop["map_at_4_high"]
    assert table.loc[("random", "temporal"), "map_at_4"] < pop["map_at_4"]
    for row in (pop, table.loc[("sasrec", "temporal")]):
        again = recompute(row.to_dict(), n_boot=1000)
        for key in ("map_at_4", "map_at_4_low", "map_at_4_high", "ndcg_at_10", "coverage"):
            assert again[key] == pytest.approx(row[key])
    # the strong baselines: above popularity, their validation choice in their row
    ease, sasrec = table.loc[("ease", "temporal")], table.loc[("sasrec", "temporal")]
    assert ease["l2"] in EaseBaseline.l2_grid and 1 <= sasrec["epochs"] <= sasrec["epochs_run"]
    for row in (ease, sasrec):
        assert row["map_at_4"] > pop["map_at_4"]
        assert row["fit_seconds"] > 0
    assert 0 < ease["valid_map_at_4"] < 1
    # a preview profile fixes SASRec's epochs instead of searching them
    assert sasrec["epochs"] == sasrec["epochs_run"] == BASELINE_OPTIONS[smoke["profile"]]["sasrec"]["epochs"]
    matching = read_json(run_dir / "matching.json")
    acc = {r["matcher"]: r["accuracy"] for r in matching["test"]}
    assert acc["normalized"] > acc["levenshtein"]
    assert (run_dir / "results.csv").is_file() and (run_dir / "results.md").is_file()
    assert {p.name for p in (run_dir / "figures").glob("*.png") if not p.name.startswith("01_")} == {
        "matcher_thresholds.png", "baselines_map_at_4.png"}  # beside chapter 1's, in the same run
