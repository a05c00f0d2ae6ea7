"""The decoding chapter's sliders: decoding settings and a record in, a recommendation out.

Chapter 06 calls :func:`decoding_sliders` when ``interactive = True``: a model picker (the
untuned model, and the LoRA-tuned one of chapter 04 where its adapter exists), a record
picker that shows the record's six liked titles and its four held-out ones, and sliders for
temperature, top-p, top-k, beams and the repetition penalty. A change regenerates the
completion and shows it raw, parsed into titles and matched to catalog items.

How it stays responsive: sliders report on release (``continuous_update=False``), and
generation runs in a worker thread, so the kernel keeps taking widget events while a
completion is produced. A status line says what is being generated and counts its tokens,
and the previous result is dimmed until the new one replaces it. A change made while a
generation runs cancels it between two tokens (:class:`Watch`); the worker then generates
the latest settings once. ipywidgets has no such latest-wins worker, hence this small one.

The pieces that compute (:func:`generation_settings`, :func:`recommend`,
:func:`record_html`, :func:`result_html`, :func:`find_adapter`) take data and return data;
:class:`DecodingSliders` only wires them to widgets.
"""

from __future__ import annotations

import html
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import ipywidgets as W
import pandas as pd
from transformers import LogitsProcessor, LogitsProcessorList

from llmrec.data.formats import title_map
from llmrec.llm.decoding import generate
from llmrec.llm.parsing import parse_completion
from llmrec.llm.prompts import build_prompts, shots_from_records
from llmrec.llm.train import adapter_in, load_tuned
from llmrec.paths import runs_dir
from llmrec.recommenders.generation import match_titles

#: Starting values of the sliders: the ``sample`` preset of :data:`llmrec.llm.decoding.PRESETS`.
DEFAULTS = {"temperature": 0.7, "top_p": 0.9, "top_k": 50, "num_beams": 1,
            "repetition_penalty": 1.1}
#: The labels in front of the controls (full words: the label column is wide enough for them).
LABELS = {"model": "model", "record_id": "record", "temperature": "temperature",
          "top_p": "top-p", "top_k": "top-k (0 = off)", "num_beams": "beams",
          "repetition_penalty": "repetition penalty"}
_LABEL_WIDTH = "10.5em"
_TABLE_STYLE = ("<style>.llmrec-titles th, .llmrec-titles td {text-align: left; "
                "padding: 0.1em 1.2em 0.1em 0}</style>")
_BUSY = "background:#fff3cd;border-left:4px solid #e0a800;padding:0.2em 0.6em"
_READY = "background:#e8f5e9;border-left:4px solid #43a047;padding:0.2em 0.6em"


def generation_settings(temperature: float, top_p: float, top_k: int, num_beams: int,
                        repetition_penalty: float) -> dict[str, Any]:
    """``generate`` keyword arguments for the sliders' values. Temperature 0 is no sampling:
    greedy with one beam, beam search with more (top-p and top-k then play no part)."""
    settings: dict[str, Any] = {"do_sample": temperature > 0, "num_beams": int(num_beams),
                                "repetition_penalty": float(repetition_penalty)}
    if temperature > 0:
        settings.update(temperature=float(temperature), top_p=float(top_p), top_k=int(top_k))
    return settings


def describe_settings(settings: Mapping[str, Any]) -> str:
    """One line naming the decoding ``settings`` (as :func:`generation_settings` returns them)."""
    beams = settings.get("num_beams", 1)
    if not settings.get("do_sample"):
        rule = "greedy" if beams == 1 else f"beam search, {beams} beams"
    else:
        rule = (f"sampling, temperature {settings['temperature']:.2f}, top-p {settings['top_p']:.2f}, "
                f"top-k {settings['top_k'] or 'off'}" + (f", {beams} beams" if beams > 1 else ""))
    return f"{rule}, repetition penalty {settings.get('repetition_penalty', 1.0):.2f}"


class Cancelled(Exception):
    """A generation was cancelled because newer settings arrived."""


class Watch(LogitsProcessor):
    """A logits processor that leaves the scores alone: before each new token it raises
    :class:`Cancelled` once ``stale()`` is true (the way to stop ``model.generate`` from
    outside), else reports how many tokens are done to ``on_token`` (optional)."""

    def __init__(self, stale: Callable[[], bool], on_token: Callable[[int], None] | None = None):
        self.stale = stale
        self.on_token = on_token
        self.prompt_len: int | None = None

    def __call__(self, input_ids, scores):
        if self.stale():
            raise Cancelled
        if self.prompt_len is None:
            self.prompt_len = input_ids.shape[1]
        if self.on_token is not None:
            self.on_token(input_ids.shape[1] - self.prompt_len)
        return scores


def recommend(model: Any, tokenizer: Any, prompt: str, settings: Mapping[str, Any], matcher: Any,
              max_new_tokens: int = 48, seed: int = 0,
              stale: Callable[[], bool] | None = None,
              on_token: Callable[[int], None] | None = None) -> dict[str, Any]:
    """Generate one completion for ``prompt`` with ``settings``, parse and match it.

    Returns ``completion`` (raw text), ``titles`` (parsed), ``entries`` (per title an item
    id, a list of ids, or None for a hallucination) and ``seconds``. Seeded: the same
    prompt, settings and seed give the same completion. ``stale`` (optional) cancels the
    generation by raising :class:`Cancelled` as soon as it returns True; ``on_token``
    (optional) hears the number of tokens generated so far, before each new one.
    """
    extra = {}
    if stale is not None or on_token is not None:
        watch = Watch(stale or (lambda: False), on_token)
        extra["logits_processor"] = LogitsProcessorList([watch])
    start = time.perf_counter()
    text = generate(model, tokenizer, [prompt], preset="greedy", batch_size=1,
                    max_new_tokens=max_new_tokens, seed=seed, stop_after_titles=4,
                    progress=False, **settings, **extra)[0]
    titles = parse_completion(text, max_titles=4)
    entries = match_titles(matcher, [titles])[0]
    return {"completion": text, "titles": titles, "entries": entries,
            "seconds": time.perf_counter() - start}


def _ids(entry: Any) -> list[int]:
    return [] if entry is None else [int(i) for i in (entry if isinstance(entry, list) else [entry])]


def record_html(record: Mapping[str, Any], names: Mapping[int, str]) -> str:
    """The record's six liked titles (what the prompt holds) and its four held-out ones."""
    def items(ids, cls):
        lis = "".join(f'<li style="margin:0">{html.escape(names[int(i)])}</li>' for i in ids)
        return f'<ol class="{cls}" style="margin:0.1em 0 0.5em 0;line-height:1.35">{lis}</ol>'

    return (f'<div class="llmrec-record"><b>record {html.escape(str(record["record_id"]))}</b> '
            f'(user {int(record["user_id"])})<br>'
            f'liked, in the prompt ({len(record["input_ids"])}):{items(record["input_ids"], "llmrec-liked")}'
            f'held out, what the user liked next ({len(record["target_ids"])}):'
            f'{items(record["target_ids"], "llmrec-held-out")}</div>')


def result_html(result: Mapping[str, Any], target_ids: Sequence[int], names: Mapping[int, str],
                heading: str) -> str:
    """A generation's result: the heading (model, settings, time), the raw completion, and
    one row per parsed title with its catalog match (ids and titles) and whether it is one
    of the held-out items."""
    held_out = {int(i) for i in target_ids}
    rows = []
    for rank, (title, entry) in enumerate(zip(result["titles"], result["entries"], strict=True), 1):
        ids = _ids(entry)
        rows.append({
            "rank": rank,
            "generated title": title,
            "catalog match": " / ".join(f"{i}: {names[i]}" for i in ids) if ids else "hallucinated",
            "held out": "yes" if held_out & set(ids) else "no",
        })
    table = (pd.DataFrame(rows, columns=["rank", "generated title", "catalog match", "held out"])
             .to_html(index=False, classes="llmrec-titles", escape=True, border=0)
             if rows else '<p class="llmrec-titles"><i>no title could be parsed</i></p>')
    hits = sum(r["held out"] == "yes" for r in rows)
    return (f'<div class="llmrec-result">{_TABLE_STYLE}<b>{html.escape(heading)}</b><br>'
            f'completion ({result["seconds"]:.1f} s):'
            f'<pre class="llmrec-completion" style="white-space:pre-wrap;margin:0.2em 0">'
            f'{html.escape(result["completion"])}</pre>'
            f'{len(rows)} parsed title(s), {hits} of them held out{table}</div>')


def find_adapter(run_dir: str | Path, name: str, split: str = "temporal") -> Path | None:
    """The chapter-04 LoRA adapter for ``split``: in this run's folder, else in the report's
    run of the same name (``runs/<name>``); None when neither holds one."""
    for base in (Path(run_dir), runs_dir() / name):
        if (folder := adapter_in(base, split)) is not None:
            return folder
    return None


@dataclass
class ModelChoice:
    """One entry of the model picker: its label, prompt style, and how to load it (once)."""

    label: str
    style: str
    load: Callable[[], tuple[Any, Any]]
    shots: list | None = None
    loaded: tuple[Any, Any] | None = field(default=None, repr=False)

    def get(self) -> tuple[Any, Any]:
        if self.loaded is None:
            self.loaded = self.load()
        return self.loaded


class DecodingSliders:
    """The widgets and the worker thread behind them; ``.widget`` is what to display.

    ``records``: the records frame to pick from (``record_id``, ``user_id``, ``input_ids``,
    ``target_ids``); ``models``: key -> :class:`ModelChoice`, the first one selected.
    ``generations`` counts finished generations (each result shows its number).
    """

    def __init__(self, records: pd.DataFrame, movies: pd.DataFrame, matcher: Any,
                 models: Mapping[str, ModelChoice], max_new_tokens: int = 48, seed: int = 0,
                 note: str = ""):
        if not len(records):
            raise ValueError("no records to pick from")
        self.records = records.set_index("record_id", drop=False)
        self.movies = movies
        self.names = title_map(movies)
        self.matcher = matcher
        self.models = dict(models)
        self.max_new_tokens = max_new_tokens
        self.seed = seed
        self.generations = 0
        self._lock = threading.Lock()
        self._wanted = 0  # bumped by every change
        self._done = 0  # the change whose result is shown
        self._worker: threading.Thread | None = None
        self._last = ""

        style = {"description_width": _LABEL_WIDTH}
        wide = W.Layout(width="34em")
        slider = dict(style=style, layout=W.Layout(width="30em"), continuous_update=False)
        self.controls: dict[str, W.ValueWidget] = {
            "model": W.Dropdown(options=[(m.label, k) for k, m in self.models.items()],
                                description=LABELS["model"], style=style, layout=wide),
            "record_id": W.Dropdown(
                options=[(f"{r.record_id} (user {r.user_id})", r.record_id)
                         for r in self.records.itertuples(index=False)],
                description=LABELS["record_id"], style=style, layout=wide),
            "temperature": W.FloatSlider(value=DEFAULTS["temperature"], min=0.0, max=2.0, step=0.05,
                                         readout_format=".2f", description=LABELS["temperature"],
                                         **slider),
            "top_p": W.FloatSlider(value=DEFAULTS["top_p"], min=0.05, max=1.0, step=0.05,
                                   readout_format=".2f", description=LABELS["top_p"], **slider),
            "top_k": W.IntSlider(value=DEFAULTS["top_k"], min=0, max=200, step=5,
                                 description=LABELS["top_k"], **slider),
            "num_beams": W.IntSlider(value=DEFAULTS["num_beams"], min=1, max=8,
                                     description=LABELS["num_beams"], **slider),
            "repetition_penalty": W.FloatSlider(value=DEFAULTS["repetition_penalty"], min=1.0,
                                                max=2.0, step=0.05, readout_format=".2f",
                                                description=LABELS["repetition_penalty"], **slider),
        }
        self.status = W.HTML(layout=W.Layout(margin="0.4em 0"))
        self.record_view = W.HTML(layout=W.Layout(width="34em"))
        self.result = W.HTML(layout=W.Layout(width="auto", flex="1 1 auto"))
        for key, control in self.controls.items():
            control.add_class(f"llmrec-{key.replace('_', '-')}")
            control.observe(self._changed, names="value")
        self.status.add_class("llmrec-status")
        self.record_view.add_class("llmrec-record-view")
        self.result.add_class("llmrec-result-view")
        c = self.controls
        rows = [W.HBox([c["model"], c["record_id"]]), W.HBox([c["temperature"], c["top_p"]]),
                W.HBox([c["top_k"], c["num_beams"]]), W.HBox([c["repetition_penalty"]])]
        parts = [*rows, self.status, W.HBox([self.record_view, self.result])]
        if note:
            parts.insert(1, W.HTML(f'<span style="color:#666;font-size:0.9em">{html.escape(note)}</span>'))
        self.widget = W.VBox(parts)
        self.widget.add_class("llmrec-sliders")
        self._show_record()
        self._changed()

    # -- what the controls say ---------------------------------------------------------
    def values(self) -> dict[str, Any]:
        return {key: control.value for key, control in self.controls.items()}

    def _record(self, record_id) -> dict[str, Any]:
        return self.records.loc[record_id].to_dict()

    def _show_record(self) -> None:
        self.record_view.value = record_html(self._record(self.controls["record_id"].value),
                                             self.names)

    # -- events (kernel thread) and the worker -------------------------------------------
    def _busy(self, v: Mapping[str, Any], tokens: int | None = None) -> str:
        """The status line while a generation for the controls' values ``v`` runs."""
        choice = self.models[v["model"]]
        what = "loading and generating" if choice.loaded is None else "generating"
        settings = describe_settings(generation_settings(
            v["temperature"], v["top_p"], v["top_k"], v["num_beams"], v["repetition_penalty"]))
        progress = "" if tokens is None else f" (token {tokens + 1} of at most {self.max_new_tokens})"
        return (f'<div data-state="busy" style="{_BUSY}">&#8987; {what}: {html.escape(choice.label)}, '
                f'record {html.escape(str(v["record_id"]))}, {html.escape(settings)}{progress} ...</div>')

    def _changed(self, change: Mapping[str, Any] | None = None) -> None:
        if change is not None and change.get("owner") is self.controls["record_id"]:
            self._show_record()
        with self._lock:
            self._wanted += 1
            if self._last:  # the previous result stays, dimmed, until the new one replaces it
                self.result.value = f'<div style="opacity:0.45">{self._last}</div>'
            self.status.value = self._busy(self.values())
            if self._worker is None:
                self._worker = threading.Thread(target=self._work, name="llmrec-sliders", daemon=True)
                self._worker.start()

    def _work(self) -> None:
        while True:
            with self._lock:
                ticket = self._wanted
                if ticket == self._done:
                    self._worker = None
                    return
                v = self.values()
            try:
                html_out, seconds = self._generate(v, ticket)
                state = (f'<div data-state="ready" style="{_READY}">ready: move a slider or pick a '
                         f'record to generate again (the last generation took {seconds:.1f} s)</div>')
            except Cancelled:
                continue
            except Exception as err:  # noqa: BLE001 - shown to the reader instead of lost in a thread
                html_out = (f'<pre class="llmrec-error" style="color:#b00;white-space:pre-wrap">'
                            f'generation failed: {html.escape(type(err).__name__)}: '
                            f'{html.escape(str(err))}</pre>')
                state = ('<div data-state="error" style="color:#b00">the generation failed (the '
                         'message is below); change a control to try again</div>')
            with self._lock:
                if self._wanted != ticket:
                    continue  # the controls moved meanwhile: their settings come next
                self._done = ticket
                self._last = html_out
                self.result.value = html_out
                self.status.value = state

    def _generate(self, v: Mapping[str, Any], ticket: int) -> tuple[str, float]:
        """The result HTML for the controls' values ``v`` (and its seconds); raises
        :class:`Cancelled` as soon as a change newer than ``ticket`` arrives."""
        choice = self.models[v["model"]]
        model, tokenizer = choice.get()
        record = self._record(v["record_id"])
        prompt = build_prompts(choice.style, pd.DataFrame([record]), self.movies, tokenizer=tokenizer,
                               n=4, shots=choice.shots, seed=self.seed)[0]
        settings = generation_settings(v["temperature"], v["top_p"], v["top_k"], v["num_beams"],
                                       v["repetition_penalty"])
        shown = [time.monotonic()]

        def on_token(n: int) -> None:  # the status counts tokens, a few times a second
            if time.monotonic() - shown[0] > 0.25 and self._wanted == ticket:
                shown[0] = time.monotonic()
                self.status.value = self._busy(v, n)

        result = recommend(model, tokenizer, prompt, settings, self.matcher, self.max_new_tokens,
                           self.seed, stale=lambda: self._wanted != ticket, on_token=on_token)
        self.generations += 1
        heading = (f"generation {self.generations}: {choice.label}, record {record['record_id']}, "
                   f"{describe_settings(settings)}")
        return result_html(result, record["target_ids"], self.names, heading), result["seconds"]

    def wait(self, timeout: float = 60.0) -> bool:
        """Block until the shown result matches the controls (for scripts and tests)."""
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            with self._lock:
                if self._done == self._wanted:
                    return True
            time.sleep(0.02)
        return False


def decoding_sliders(params: Mapping[str, Any], model: Any, tokenizer: Any, style: str,
                     records: pd.DataFrame, movies: pd.DataFrame, matcher: Any,
                     train_records: pd.DataFrame | None = None) -> DecodingSliders:
    """Chapter 06's sliders for the model of ``params`` (already loaded: ``model``,
    ``tokenizer``, prompted in ``style``) and, where chapter 04 left an adapter
    (:func:`find_adapter`), its LoRA-tuned version (loaded on first pick, Alpaca prompt).
    ``train_records`` give the worked examples of a few-shot prompt."""
    split = params["splits"][0]
    shots = (shots_from_records(train_records, movies, params["n_shots"], params["seed"])
             if style == "few-shot" and train_records is not None else None)
    models = {"untuned": ModelChoice(f"{params['name']}, untuned ({style} prompt)", style,
                                     lambda: (model, tokenizer), shots, (model, tokenizer))}
    adapter = find_adapter(params["run_dir"], params["name"], split)
    note = ""
    if adapter is not None:
        models["tuned"] = ModelChoice(
            f"{params['name']}, LoRA-tuned in chapter 04 (Alpaca prompt)", "alpaca",
            lambda: load_tuned(params["model"], adapter, dtype=params["dtype"],
                               quantization=params["quantization"], device=params["device"]))
    else:
        note = (f"Only the untuned model: chapter 04 has not trained {params['name']}'s LoRA adapter "
                "yet (run it, or the report, to compare the tuned model here).")
    return DecodingSliders(records, movies, matcher, models, params["max_new_tokens"],
                           params["seed"], note=note)
