"""What every chapter notebook does besides narrating: set-up, data, evaluate-save-show.

A chapter's first cells are its ``parameters`` (papermill fills them from a parameter
file) and ``ch = Chapter.start("02", globals())``, which validates them
(:func:`llmrec.report.params.collect`), sets torch's threads, the plotting theme and pandas'
display options, and resolves the run folder against the repository (a notebook opened
anywhere writes to the repository's ``runs/``). Then:

- ``ch.ml``, ``ch.records``, ``ch.split(name)``, ``ch.catalog``, ``ch.matcher``, ``ch.task(split)``:
  the data of PROTOCOL.md sections 1-3, built once;
- ``ch.evaluate(system, records, split)``: :func:`llmrec.evaluation.spine.evaluate_and_save`
  into the chapter's run folder, one printed line, the metrics row kept in ``ch.rows``;
- ``ch.table()``: the rows evaluated so far, the columns a reader needs;
- ``ch.references(split)``: the baselines of the model-independent run the parameters
  name (``common_dir``), for the reference lines of :func:`llmrec.report.plots.map_intervals`;
- ``ch.save(fig, stem)``: the figure as ``figures/<chapter>_<stem>.png`` in the run folder.

A chapter reads only its own run folder and that common one: what it shows never depends
on which other runs exist.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Mapping, Sequence
from functools import cached_property
from pathlib import Path
from typing import Any

import pandas as pd

from llmrec.artifacts import load_rows, read_json, read_jsonl, system_dir
from llmrec.data.movielens import MovieLens, load_movielens
from llmrec.data.records import build_records, split_records
from llmrec.data.samples import sample_label
from llmrec.errors import LlmrecError
from llmrec.evaluation.failures import FAILURE_COLUMNS, failure_frame
from llmrec.evaluation.matching import Catalog, get_matcher
from llmrec.evaluation.metrics import score_on
from llmrec.evaluation.spine import Task, evaluate_and_save
from llmrec.llm.models import load_model, model_facts, pick_threads
from llmrec.llm.train import adapter_in, load_tuned
from llmrec.paths import in_repo, reports_dir, runs_dir
from llmrec.recommenders.base import Recommender
from llmrec.recommenders.generation import FreeGeneration
from llmrec.report import plots
from llmrec.report.conclusion import BASELINES, conclusion_lines
from llmrec.report.params import collect, common_params, records_for
from llmrec.side_by_side import wait_for_common

#: The columns of a chapter's results table (those present).
SHOW = ["system", "setting", "split", "n_records", "map_at_4", "map_at_4_low", "map_at_4_high",
        "hit_rate_at_4", "validity", "hallucination_rate", "repeat_rate", "input_rate",
        "looks_like_code_rate", "non_english_rate", "article_only_rate", "year_after_catalog_rate",
        "wrong_year_rate", "copied_example_rate", "prompts_per_second", "seconds"]
#: What a chapter run with its own parameters (the quick profile) says first.
PREVIEW = ("Quick preview: {model} on a seeded sample of {n} test records and a short training. "
           "Its numbers are a preview with wide intervals; the report's come from `make report` "
           "(params/smollm2-135m.yaml, params/gemma3-270m.yaml), with the executed chapters in "
           "reports/notebooks/.")
#: The baselines drawn as reference lines on a chapter's MAP figure.
REFERENCES = ("popularity", "item_knn", "als", "ease", "sasrec")


class Chapter:
    """One chapter's parameters, data and run folder (see the module docstring)."""

    def __init__(self, number: str, params: Mapping[str, Any], threads: int | None = None):
        self.number = number
        self.P = dict(params)
        self.run_dir = Path(self.P["run_dir"])  # absolute: params.collect resolved it
        self.figures = self.run_dir / "figures"
        self.figures.mkdir(parents=True, exist_ok=True)
        # the tiny model of the smoke profile gains nothing from a second thread
        self.threads = pick_threads(threads if threads is not None or self.P["profile"] != "smoke"
                                    else 1)
        self.rows: list[dict[str, Any]] = []

    @classmethod
    def start(cls, number: str, namespace: Mapping[str, Any], threads: int | None = None) -> Chapter:
        """Validate a notebook's parameters (its globals) and set up the chapter."""
        import seaborn as sns  # the notebook's plotting theme; the package itself draws lazily

        chapter = cls(number, collect(namespace), threads)
        if chapter.P["profile"] == "quick":
            print(PREVIEW.format(n=chapter.P["eval_limit"], model=chapter.P["model"]))
        sns.set_theme(style="whitegrid", context="notebook")
        # library notices that say nothing about this chapter's results, kept out of its output:
        # bitsandbytes' optional CPU kernel (4-bit layers are not used on a CPU run) and
        # transformers' deprecation notices
        logging.getLogger("bitsandbytes").setLevel(logging.ERROR)
        warnings.filterwarnings("ignore", category=FutureWarning, module="transformers")
        pd.set_option("display.max_colwidth", 200)
        pd.set_option("display.width", 200)
        return chapter

    # -- data ---------------------------------------------------------------------------
    @cached_property
    def ml(self) -> MovieLens:
        return load_movielens(self.P["dataset"])

    @property
    def movies(self) -> pd.DataFrame:
        return self.ml.movies

    @cached_property
    def records(self) -> pd.DataFrame:
        return build_records(self.ml.ratings)

    @cached_property
    def _splits(self) -> dict[str, dict[str, pd.DataFrame]]:
        return {}

    def split(self, name: str) -> dict[str, pd.DataFrame]:
        """``{"train", "valid", "test"}`` records of split ``name`` (PROTOCOL.md section 2)."""
        if name not in self._splits:
            self._splits[name] = split_records(self.records, name, seed=self.P["seed"])
        return self._splits[name]

    def splits(self, names: Sequence[str] | None = None) -> dict[str, dict[str, pd.DataFrame]]:
        """Every split the parameters name (or ``names``)."""
        return {s: self.split(s) for s in (names or self.P["splits"])}

    def sizes(self, names: Sequence[str] | None = None) -> pd.DataFrame:
        """Records per part and split."""
        return pd.DataFrame({s: {part: len(f) for part, f in parts.items()}
                             for s, parts in self.splits(names).items()})

    @cached_property
    def catalog(self) -> Catalog:
        return Catalog.from_movies(self.movies)

    @cached_property
    def matcher(self):
        return get_matcher(self.P["matcher"], self.catalog)

    def task(self, split: str) -> Task:
        """What scoring on ``split`` needs: its training popularity, the catalog, K = 4."""
        return Task.of(self.movies, self.split(split)["train"], seed=self.P["seed"],
                       catalog=self.catalog)

    def test(self, split: str) -> pd.DataFrame:
        """The test records of ``split``: all of them, or the seeded sample of ``eval_limit``
        (PROTOCOL.md section 4; :func:`llmrec.report.params.records_for`)."""
        return records_for(self.split(split)["test"], "greedy", self.P)

    def adapter(self, split: str) -> Path | None:
        """Chapter 4's LoRA adapter of ``split`` in this run folder, or None before it ran."""
        return adapter_in(self.run_dir, split, self.P["prompt_style"])

    def load_tuned(self, split: str) -> tuple[Any, Any]:
        """The parameters' model with chapter 4's adapter of ``split`` (see :meth:`adapter`)."""
        folder = self.adapter(split)
        if folder is None:
            raise LlmrecError(f"no LoRA adapter of {split!r} in {self.run_dir}; run chapter 4 first")
        return load_tuned(self.P["model"], folder, dtype=self.P["dtype"],
                          quantization=self.P["quantization"], device=self.P["device"])

    # -- systems ------------------------------------------------------------------------
    def load_llm(self) -> tuple[Any, Any]:
        """The parameters' model and tokenizer; :attr:`llm_facts` and :attr:`instruct` describe them."""
        model, tokenizer = load_model(self.P["model"], dtype=self.P["dtype"],
                                      quantization=self.P["quantization"], device=self.P["device"])
        facts = model_facts(self.P["model"], model, tokenizer)
        self.instruct = bool(facts["chat route"])
        self.llm_facts = pd.Series(facts, name=self.P["name"]).to_frame()
        return model, tokenizer

    def generator(self, model: Any, tokenizer: Any, style: str, setting: str,
                  preset: str = "greedy", split: str | None = None, **kwargs: Any) -> FreeGeneration:
        """Free generation with this run's name, matcher, batch size, token budget and seed
        (few-shot examples drawn from ``split``'s training records)."""
        train = self.split(split)["train"] if split is not None else None
        return FreeGeneration(model, tokenizer, self.movies, self.matcher, system=self.P["name"],
                              setting=setting, style=style, preset=preset, train_records=train,
                              n_shots=self.P.get("n_shots", 2), batch_size=self.P["batch_size"],
                              max_new_tokens=self.P["max_new_tokens"], seed=self.P["seed"],
                              **kwargs)

    # -- evaluate, save, show -------------------------------------------------------------
    def evaluate(self, system: Recommender, records: pd.DataFrame, split: str,
                 extra: Mapping[str, Any] | None = None, quiet: bool = False,
                 saved_as: str | None = None) -> tuple[list[dict[str, Any]], dict[str, Any]]:
        """Score ``system`` on ``records`` of ``split``, save it in the run folder, print a line.

        ``saved_as`` names the split in the saved row when the records are not its test part
        (``temporal-valid`` for a sweep on validation records). Returns ``(prediction rows,
        the saved metrics row)``."""
        split_name = saved_as or split
        n_test = len(self.split(split)["test"])
        sample = (sample_label(n_test, len(records)) if saved_as is None
                  else f"{len(records)} records of {split_name}")
        rows, row = evaluate_and_save(system, records, self.task(split), self.run_dir, split_name,
                                      {"sample": sample, **dict(extra or {})})
        self.rows.append(row)
        if not quiet:
            speed = row.get("prompts_per_second")
            print(f"{split_name:9} {system.system} {system.setting:28} n={row['n_records']:<4} "
                  f"MAP@4 {row['map_at_4']:.4f} [{row['map_at_4_low']:.4f}, "
                  f"{row['map_at_4_high']:.4f}]  validity {row.get('validity', float('nan')):.2f}"
                  + (f"  {speed:.2f} prompts/s" if speed == speed and speed is not None else "")
                  + f"  {row['seconds']:.1f} s")
        return rows, row

    def table(self, rows: Sequence[Mapping[str, Any]] | None = None,
              columns: Sequence[str] = SHOW) -> pd.DataFrame:
        """The metrics rows (default: every one this chapter evaluated) for a reader."""
        frame = pd.DataFrame(list(self.rows if rows is None else rows))
        return frame[[c for c in columns if c in frame]].round(4)

    def saved(self, splits: Sequence[str] | None = None) -> list[dict[str, Any]]:
        """Every metrics row saved in this chapter's run folder on ``splits`` (default: the
        parameters'), by any chapter of the run."""
        wanted = set(splits or self.P["splits"])
        return [row for path in sorted(self.run_dir.glob("*/*/metrics.json"))
                if (row := read_json(path)).get("split") in wanted]

    @property
    def common_dir(self) -> Path:
        """The model-independent run this chapter compares with: parameter ``common_dir``,
        else the common run beside this run's folder (where ``report --out`` puts both), else
        the one under ``runs/``."""
        named = self.P.get("common_dir")
        if named:
            return in_repo(named)
        name = common_params(self.P)["name"]
        beside = self.run_dir.parent / name  # where the runner puts it: next to this run
        return beside if beside.is_dir() or not (runs_dir() / name).is_dir() else runs_dir() / name

    def references(self, split: str, systems: Sequence[str] = REFERENCES,
                   records: Sequence[str] | None = None) -> pd.DataFrame:
        """The baselines' rows on ``split`` from the common run (empty before it has run).

        With ``records`` (record ids), each baseline is re-scored on exactly those records
        from its predictions file, so that a reference line is comparable with rows scored
        on a sample (its ``n_records`` says so). While the report runs the common chapters
        beside this one, it first waits for them (:func:`llmrec.side_by_side.wait_for_common`)."""
        wait_for_common(self.common_dir)
        found = []
        for name in systems:
            row, rows = self.baseline(name, split)
            if row is None:
                continue
            if records is not None:
                rescored = score_on(rows or [], records)
                if rescored["n_records"] != len(set(records)):
                    raise LlmrecError(f"baseline {name} on {split} lacks some of the records to "
                                      f"re-score; rerun chapter 5 of {self.common_dir.name}")
                row = {**row, **rescored}
            found.append(row)
        return pd.DataFrame(found)

    @cached_property
    def _published_table(self) -> pd.DataFrame | None:
        """``reports/results.csv``, read once per chapter (None where there is none)."""
        path = reports_dir() / "results.csv"
        return pd.read_csv(path) if path.is_file() else None

    def baseline(self, name: str, split: str) -> tuple[dict[str, Any] | None, list[dict[str, Any]] | None]:
        """Baseline ``name``'s metrics row and prediction rows on ``split`` from the common
        run, or ``(None, None)``. Where the common run's folder lacks it (a file that runs
        chapter 4 alone, on a machine where the common chapters never ran), they come from
        the published copy of the same run: its row of ``reports/results.csv`` and the
        predictions file that row names."""
        path = system_dir(self.common_dir, name, "baseline", split)
        if (path / "metrics.json").is_file():
            return read_json(path / "metrics.json"), load_rows(self.common_dir, name, "baseline", split)
        table = self._published_table
        if table is None:
            return None, None
        hit = table[(table["run"] == self.common_dir.name) & (table["system"] == name)
                    & (table["setting"] == "baseline") & (table["split"] == split)]
        if hit.empty:
            return None, None
        row = {k: v for k, v in hit.iloc[0].items() if not (isinstance(v, float) and v != v)}
        pred = row.get("predictions")
        if not isinstance(pred, str) or not in_repo(pred).is_file():
            return None, None
        return row, read_jsonl(in_repo(pred))

    @staticmethod
    def shared_records(rows: Sequence[Mapping[str, Any]]) -> list[str] | None:
        """The record ids every row was scored on, when all rows share one set (read from
        their predictions files); None when they differ or a file is missing."""
        sets = []
        for row in rows:
            path = row.get("predictions")
            if not isinstance(path, str) or not in_repo(path).is_file():
                return None
            sets.append([r["record_id"] for r in read_jsonl(in_repo(path))])
        if not sets or any(set(s) != set(sets[0]) for s in sets[1:]):
            return None
        return sets[0]

    def save(self, fig, stem: str) -> Path:
        """Save ``fig`` as ``figures/<chapter>_<stem>.png`` in the run folder."""
        path = self.figures / f"{self.number}_{stem}.png"
        fig.savefig(path, dpi=120, bbox_inches="tight")
        return path

    def show(self, fig, stem: str) -> None:
        """:meth:`save`, then show the figure in the notebook (returns nothing, so a cell that
        ends with it shows the figure and no path)."""
        import matplotlib.pyplot as plt  # notebooks only: the package draws lazily

        self.save(fig, stem)
        plt.show()

    def map_figure(self, title: str, rows: Sequence[Mapping[str, Any]] | None = None,
                   stem: str = "map") -> None:
        """MAP@4 with intervals of ``rows`` (default: this chapter's), the baselines of the
        first split as reference lines (:func:`llmrec.report.plots.map_intervals`); saved, shown."""
        chosen = list(self.rows if rows is None else rows)
        table = self.table(chosen)
        split = self.P["splits"][0]
        # the baselines on the rows' own records when they share one sample, else on all
        same = self.shared_records([r for r in chosen if r.get("split") == split])
        fig = plots.map_intervals(table, f"{title}, {self.P['name']}",
                                  self.references(split, records=same))
        self.show(fig, stem)

    def failures(self, rows_by_setting: Mapping[Any, Sequence[Mapping[str, Any]]],
                 title: str) -> pd.DataFrame:
        """Failure modes of generated rows per setting: the figure (saved, shown) and the
        share of completions (%) with each failure."""
        fails = failure_frame(rows_by_setting)
        fig = plots.failure_shares(fails, f"{title}, {self.P['name']}", FAILURE_COLUMNS)
        self.show(fig, "failures")
        return fails.groupby("setting")[FAILURE_COLUMNS].mean().mul(100).round(1)

    def conclusion(self, rows: Sequence[Mapping[str, Any]] | None = None, heading: str = "") -> None:
        """Show the chapter's conclusion, computed from ``rows`` (default: every row it
        evaluated): one sentence per row, each on one sample, paired with the strongest
        baseline re-scored on the same records (:mod:`llmrec.report.conclusion`)."""
        from IPython.display import Markdown, display

        chosen = list(self.rows if rows is None else rows)
        scored = []
        for metrics in chosen:
            path = metrics.get("predictions")
            if isinstance(path, str) and in_repo(path).is_file():
                scored.append((metrics, read_jsonl(in_repo(path))))
        wait_for_common(self.common_dir)
        splits = {str(m["split"]) for m, _ in scored}
        baselines = {split: {name: found for name in BASELINES
                             if (found := self.baseline(name, split)[1])}
                     for split in splits}
        lines = conclusion_lines(scored, baselines)
        display(Markdown("\n".join(([heading, ""] if heading else []) + (lines or ["(no row was scored)"]))))

