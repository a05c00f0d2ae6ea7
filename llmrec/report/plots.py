"""Every figure of the report: the chapters' and the summaries across runs.

Each function takes frames of results (rows of ``reports/results.csv``: one per system x
setting x split with ``map_at_4``, its interval and ``n_records``) and returns a
matplotlib figure drawn with seaborn, with a title, axis labels with units and the number
of records behind it. Chapter figures: :func:`map_intervals` (MAP@4 with intervals, the
baselines as reference lines), :func:`paired_differences`, :func:`failure_shares`,
:func:`loss_curves`, :func:`learning_curve`. Summaries: :func:`blog_vs_ours`, :func:`size_trend`
(:func:`summary_figures` saves both).

matplotlib and seaborn are imported inside the functions: this module is imported by the
command line (through :mod:`llmrec.report.results`), which should not pay for them.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pandas as pd

from llmrec.evaluation.metrics import zero_hit_bound
from llmrec.report.published import MODEL_PARAMS, blog_table

#: The settings the size-trend figure shows (one per way of asking), when a model has them.
BLOG_LABEL = "blog, as published (LoRA + 4 beams, MAP@K, no interval)"
MAP_LABEL = "MAP@4 (0 to 1; higher is better)"


def primary_split(table: pd.DataFrame) -> str:
    """``temporal`` when the table has it (PROTOCOL.md section 2), else its first split."""
    splits = list(dict.fromkeys(table["split"])) if len(table) else []
    return "temporal" if "temporal" in splits or not splits else splits[0]


def _errors(df: pd.DataFrame) -> tuple[list[float], list[float]]:
    low = (df["map_at_4"] - df.get("map_at_4_low", df["map_at_4"])).clip(lower=0).fillna(0)
    high = (df.get("map_at_4_high", df["map_at_4"]) - df["map_at_4"]).clip(lower=0).fillna(0)
    return list(low), list(high)


def _pyplot():
    import matplotlib.pyplot as plt
    import seaborn as sns

    return plt, sns


def _zero_hit_bar(ax, x: float, n_records: int, color: Any = "black") -> float:
    """A dotted bar from 0 up to the rule-of-three bound 3/n at ``x``, for a rate with no hit
    in ``n_records`` (instead of a zero-width interval); returns the bound."""
    bound = zero_hit_bound(int(n_records))
    ax.vlines(x, 0, bound, linestyles=":", colors=[color], lw=1)
    return bound


def map_intervals(rows: pd.DataFrame, title: str, references: pd.DataFrame | None = None,
                  label: str = "setting"):
    """MAP@4 per row with its 95% bootstrap interval, one line per row (``label`` column,
    with split and records), and each reference row (a baseline) as a dashed vertical line.

    A row with no hit at all has a degenerate interval [0, 0]: it is drawn as a dotted bar
    up to the rule-of-three bound 3/n (MAP@4 is at most the hit rate), marked "0 hits"."""
    plt, sns = _pyplot()
    rows = rows.reset_index(drop=True)
    labels = [f"{r[label]} ({r['split']}, n={int(r['n_records'])})" for _, r in rows.iterrows()]
    with_refs = references is not None and len(references) > 0
    # the baselines' legend sits beside the plot: a wider figure keeps the plot's own width
    fig, ax = plt.subplots(figsize=(11.5 if with_refs else 8, max(2.6, 1.3 + 0.42 * len(rows))))
    colour = sns.color_palette()[0]
    right = 0.0
    for i, r in rows.iterrows():
        if r["map_at_4_high"] > 0:
            ax.errorbar(r["map_at_4"], i, xerr=[[r["map_at_4"] - r["map_at_4_low"]],
                                                [r["map_at_4_high"] - r["map_at_4"]]],
                        fmt="o", capsize=4, color=colour)
            right = max(right, r["map_at_4_high"])
        else:
            bound = zero_hit_bound(int(r["n_records"]))
            ax.plot([0, bound], [i, i], ls=":", color=colour, marker="|", markersize=10)
            ax.plot([0], [i], "o", mfc="white", color=colour)
            ax.annotate(f"0 hits (< {bound:.3f})", (bound, i), xytext=(4, 0),
                        textcoords="offset points", va="center", fontsize=8)
            right = max(right, bound)
    if references is not None and len(references):
        palette = sns.color_palette("Dark2", len(references))
        for c, (_, r) in zip(palette, references.iterrows(), strict=True):
            ax.axvline(r["map_at_4"], ls="--", lw=1, color=c,
                       label=f"{r['system']} {r['map_at_4']:.3f} (n={int(r['n_records'])})")
            right = max(right, r["map_at_4"])
        n_ref = sorted({int(n) for n in references["n_records"]})
        on = f"n={n_ref[0]}" if len(n_ref) == 1 else "n as labelled"
        ax.legend(title=f"baselines, same split ({on})", fontsize=8, loc="upper left",
                  bbox_to_anchor=(1.01, 1.0), borderaxespad=0)
    ax.set_yticks(range(len(rows)), labels)
    ax.set_xlim(0, max(right * 1.25, 1e-3))
    ax.set_title(title)
    ax.set_xlabel("MAP@4 (0 to 1; mean over records, 95% bootstrap interval)")
    ax.set_ylabel("")
    fig.tight_layout()
    return fig


def paired_differences(paired: pd.DataFrame, title: str, metric: str = "MAP@4"):
    """Each system's paired-bootstrap difference from the reference (``diff`` with its 95%
    interval, from :func:`llmrec.evaluation.comparison.paired_table`), a grey line at no difference."""
    plt, _ = _pyplot()
    paired = paired.reset_index(drop=True)
    fig, ax = plt.subplots(figsize=(8, 1.3 + 0.5 * len(paired)))
    ax.errorbar(paired["diff"], range(len(paired)),
                xerr=[paired["diff"] - paired["diff_low"], paired["diff_high"] - paired["diff"]],
                fmt="o", color="tab:blue", capsize=4)
    ax.axvline(0, color="grey", lw=1)
    split = f"{paired['split'].iloc[0]}, " if "split" in paired else ""
    sizes = paired["n_records"].astype(int)
    if sizes.nunique() == 1:
        ax.set_yticks(range(len(paired)), list(paired["system"]))
        ax.set_title(f"{title}\n({split}paired on the same {sizes.iloc[0]} records)")
    else:  # rows on different samples: each row says its n
        ax.set_yticks(range(len(paired)), [f"{s} (n={n})" for s, n in zip(paired["system"], sizes, strict=True)])
        ax.set_title(f"{title}\n({split}each row paired on its own records, n on the left)")
    ax.set_xlabel(f"difference in {metric} (absolute, 0-1 scale; 95% paired bootstrap)")
    ax.set_ylabel("")
    fig.tight_layout()
    return fig


def decoding_sweep(grid: pd.DataFrame, title: str):
    """MAP@4 (with its 95% interval), validity and hallucination against temperature, one
    line per top-p: the rows of chapter 6's grid (``temperature``, ``top_p``, the metrics)."""
    plt, sns = _pyplot()
    panels = {"map_at_4": "MAP@4 (0 to 1; 95% interval)",
              "validity": "validity (share of completions, 0 to 1)",
              "hallucination_rate": "hallucination rate (share of titles, 0 to 1)"}
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.2))
    palette = dict(zip(sorted(grid["top_p"].unique()),
                       sns.color_palette("viridis", grid["top_p"].nunique()), strict=True))
    for ax, (measure, label) in zip(axes, panels.items(), strict=True):
        for p, rows in grid.sort_values("temperature").groupby("top_p"):
            yerr = None
            if measure == "map_at_4":
                yerr = [rows["map_at_4"] - rows["map_at_4_low"], rows["map_at_4_high"] - rows["map_at_4"]]
            ax.errorbar(rows["temperature"], rows[measure], yerr=yerr, marker="o", capsize=3,
                        color=palette[p], label=f"top-p {p}")
        top = float((grid.get(f"{measure}_high", grid[measure])).max())
        if measure == "map_at_4" and "n_records" in grid:
            for _, r in grid[grid["map_at_4_high"] == 0].iterrows():
                top = max(top, _zero_hit_bar(ax, r["temperature"], r["n_records"], palette[r["top_p"]]))
            n = sorted({int(v) for v in grid["n_records"]})
            ax.set_title(f"MAP@4 against temperature (n={', '.join(map(str, n))};\n"
                         "no hit: dotted bar up to 3/n)", fontsize=10)
        else:
            ax.set_title(label.split(" (")[0] + " against temperature")
        ax.set_ylim(bottom=0, top=max(1e-3, top * 1.15))
        ax.set_xlabel("temperature (unitless; 1 = the model's own)")
        ax.set_ylabel(label)
        ax.legend(fontsize=8)
    fig.suptitle(title)
    fig.tight_layout()
    return fig


def learning_curve(points: pd.DataFrame, title: str, references: pd.DataFrame | None = None):
    """MAP@4 (95% interval) against training records (log x), and validity and hallucination
    rate on a second panel: one point per adapter of the curve (rows with ``train_records``,
    ``n_records`` and the metrics); the baselines as dashed horizontal lines."""
    plt, sns = _pyplot()
    points = points.sort_values("train_records").reset_index(drop=True)
    fig, (left, right) = plt.subplots(1, 2, figsize=(13, 4.4))
    x = points["train_records"]
    low, high = _errors(points)
    left.errorbar(x, points["map_at_4"], yerr=[low, high], marker="o", capsize=4,
                  label="LoRA-tuned (95% interval)")
    top = float(points["map_at_4_high"].max())
    for _, r in points.iterrows():
        note = f"{r['train_epochs']:g} ep, {r['train_wall_seconds'] / 60:.0f} min"
        if r["map_at_4_high"] == 0:  # no hit: the rule-of-three bound, not a zero-width interval
            bound = _zero_hit_bar(left, r["train_records"], r["n_records"], "grey")
            note = f"0 hits (< {bound:.3f})\n{note}"
            top = max(top, bound)
        left.annotate(note, (r["train_records"], r["map_at_4"]), xytext=(6, 6),
                      textcoords="offset points", fontsize=7)
    if references is not None and len(references):
        palette = sns.color_palette("Dark2", len(references))
        for c, (_, r) in zip(palette, references.iterrows(), strict=True):
            left.axhline(r["map_at_4"], ls="--", lw=1, color=c,
                         label=f"{r['system']} {r['map_at_4']:.3f} (n={int(r['n_records'])})")
            top = max(top, float(r["map_at_4"]))
    for ax in (left, right):
        ax.set_xscale("log")
        ax.set_xticks(list(x), [f"{int(v):,}" for v in x])
        ax.xaxis.set_minor_formatter(plt.NullFormatter())
    left.set_ylim(0, max(top * 1.2, 1e-3))
    n = sorted(set(points["n_records"].astype(int)))
    left.set_title(f"MAP@4 against training records (n={', '.join(map(str, n))} test records)")
    left.set_xlabel("training records (log scale)")
    left.set_ylabel(MAP_LABEL)
    left.legend(fontsize=8, loc="upper left")
    for measure, name in (("validity", "validity (share of completions)"),
                          ("hallucination_rate", "hallucination rate (share of titles)")):
        if measure in points:
            right.plot(x, points[measure], marker="o", label=name)
    right.set_ylim(0, 1.05)
    right.set_title("Format: valid answers and titles outside the catalog")
    right.set_xlabel("training records (log scale)")
    right.set_ylabel("share (0 to 1)")
    right.legend(fontsize=8)
    fig.suptitle(title)
    fig.tight_layout()
    return fig


def bar_chart(data: pd.DataFrame, x: str, y: str, hue: str, title: str, xlabel: str,
              ylabel: str, size: tuple[float, float] = (7, 3.6)):
    """Bars of ``y`` per ``x`` and ``hue`` (one value each: no error bars)."""
    plt, sns = _pyplot()
    fig, ax = plt.subplots(figsize=size)
    sns.barplot(data=data, x=x, y=y, hue=hue, ax=ax, errorbar=None)
    ax.set(title=title, xlabel=xlabel, ylabel=ylabel)
    fig.tight_layout()
    return fig


def failure_shares(fails: pd.DataFrame, title: str, columns: list[str]):
    """Share of completions showing each failure mode, per ``setting`` (with its count)."""
    plt, sns = _pyplot()
    counts = fails.groupby("setting").size()
    fails = fails.assign(setting=fails["setting"].map(lambda s: f"{s} (n={counts[s]})"))
    long = fails.melt(id_vars=["setting"], value_vars=columns, var_name="failure", value_name="share")
    long["share"] = long["share"].astype(float) * 100
    fig, ax = plt.subplots(figsize=(8, 4))
    sns.barplot(data=long, y="failure", x="share", hue="setting", ax=ax, errorbar=None)
    ax.set_title(title)
    ax.set_xlabel("completions with this failure (%)")
    ax.set_ylabel("failure mode")
    ax.set_xlim(0, 100)
    return fig


def loss_curves(curves: pd.DataFrame, title: str):
    """Training and validation loss per epoch (``epoch``, ``loss``, ``part``, ``split``)."""
    plt, sns = _pyplot()
    fig, ax = plt.subplots(figsize=(7, 4))
    sns.lineplot(data=curves, x="epoch", y="loss", hue="part", style="split", markers=True, ax=ax)
    ax.set_title(title)
    ax.set_xlabel("epoch (passes over the training records)")
    ax.set_ylabel("cross-entropy (nats per response token)")
    return fig


def blog_vs_ours(table: pd.DataFrame, split: str | None = None):
    """Horizontal bars: the blog's five models as published, then every system of ours.

    Ours: MAP@4 on ``split`` (default the primary split) with its 95% bootstrap interval,
    baselines included, one bar per system x setting.
    """
    plt, sns = _pyplot()
    split = split or primary_split(table)
    ours = table[table["split"] == split].copy()
    ours = ours[ours["n_records"] == ours["n_records"].max()]  # every test record: comparable
    ours["label"] = ours["system"].astype(str) + " · " + ours["setting"].astype(str)
    # a fusion whose chosen weight is 0 is its retriever's own list, not an LLM result
    zero = pd.Series(False, index=ours.index)
    for col in ("weight", "fusion_weight"):
        if col in ours:
            zero |= ours[col].fillna(-1) == 0
    if zero.any():
        retriever = ours["retriever"] if "retriever" in ours else pd.Series("its retriever", index=ours.index)
        ours.loc[zero, "label"] += " (weight 0: " + retriever[zero].astype(str) + "'s own list)"
    ours = ours.sort_values("map_at_4", ascending=False)
    n = int(ours["n_records"].max()) if len(ours) else 0
    ours["source"] = f"ours ({split} split, all {n} test records, MAP@4, 95% CI)"
    blog = blog_table().rename(columns={"map_at_k": "map_at_4"})
    blog["label"] = blog["model"] + " (blog)"
    blog["source"] = BLOG_LABEL
    data = pd.concat([blog[["label", "map_at_4", "source"]],
                      ours[["label", "map_at_4", "source"]]], ignore_index=True)
    fig, ax = plt.subplots(figsize=(9, 1.2 + 0.32 * len(data)))
    sns.barplot(data=data, y="label", x="map_at_4", hue="source", dodge=False, ax=ax,
                palette=["#999999", "#1f77b4"][: data["source"].nunique()])
    if len(ours):
        low, high = _errors(ours)
        ax.errorbar(ours["map_at_4"], range(len(blog), len(data)), xerr=[low, high],
                    fmt="none", ecolor="black", capsize=3, lw=1)
    ax.set_title(f"Are LLMs good movie recommenders?\nThe blog's published MAP@K beside ours ({split} split)")
    ax.set_xlabel(MAP_LABEL)
    ax.set_ylabel("system · setting")
    ax.legend(loc="lower right", fontsize=9)
    fig.text(0.01, 0.005, "The blog's numbers: its own split, K and title matching, no interval "
             "(caveats in reports/headline.md).", fontsize=9)
    fig.tight_layout(rect=(0, 0.03, 1, 1))
    return fig


def model_size(row: Mapping, sizes: Mapping[str, float] = MODEL_PARAMS) -> float | None:
    """A row's parameter count: its ``n_params`` column, else the known size of its model."""
    value = row.get("n_params")
    if value is not None and not (isinstance(value, float) and math.isnan(value)):
        return float(value)
    for key in (row.get("model"), row.get("system")):
        if isinstance(key, str) and key in sizes:
            return sizes[key]
    return None


def size_trend(points: pd.DataFrame, band: Mapping[str, Any] | None = None):
    """MAP@4 against parameter count (log x), one panel per question (:data:`llmrec.report.sizes.PANELS`).

    ``points``: :func:`llmrec.report.sizes.size_points` (ours, with 95% intervals, every point
    on the same records); ``band``: the strongest baseline on those records
    (:func:`llmrec.report.sizes.baseline_band`), a shaded band on every panel. The blog's
    published points (LoRA, its own split, matching and K) are drawn on the tuned panel only,
    in grey and marked as published. A panel without a point says so.
    """
    from llmrec.report.sizes import PANELS

    plt, sns = _pyplot()
    fig, axes = plt.subplots(1, len(PANELS), figsize=(4.0 * len(PANELS), 4.6), sharey=True)
    blog = blog_table()
    families = sorted(points["family"].unique()) if len(points) else []
    colors = dict(zip(families, sns.color_palette("Set1", max(len(families), 1)), strict=False))
    top = 0.0
    for ax, question in zip(axes, PANELS, strict=True):
        sub = points[points["question"] == question].sort_values("n_params") if len(points) else points
        if band is not None:
            ax.axhspan(band["map_at_4_low"], band["map_at_4_high"], color="tab:green", alpha=0.15, lw=0)
            ax.axhline(band["map_at_4"], color="tab:green", lw=1, ls="--",
                       label=f"{band['system']} (strongest baseline), 95% CI")
            top = max(top, band["map_at_4_high"])
        if question == "tuned (LoRA)":
            ax.scatter(blog["n_params"], blog["map_at_k"], marker="s", color="#999999", s=36,
                       label="blog, as published (other split, matching, K)")
            for i, r in enumerate(blog.itertuples()):
                ax.annotate(r.model.replace("LLaMA ", "L-"), (r.n_params, r.map_at_k), fontsize=7,
                            color="#666666", xytext=(3, 6 if i % 2 else -10), textcoords="offset points")
            top = max(top, float(blog["map_at_k"].max()))
        for family, fam in (sub.groupby("family") if len(sub) else []):
            low, high = _errors(fam)
            ax.errorbar(fam["n_params"], fam["map_at_4"], yerr=[low, high], fmt="o-", capsize=3,
                        color=colors[family], label=family, lw=1, ms=6)
            top = max(top, float(fam["map_at_4_high"].max()))
        # the records behind the panel in its title (one n when its points share them, as the
        # size axis's do), so that the points carry only what differs: a tuned point's training
        # records, placed above and below in turn so that neighbours' labels do not overlap
        ns = sorted({int(x) for x in sub["n_records"]}) if len(sub) else []
        same_n = len(ns) == 1
        for i, r in enumerate(sub.itertuples() if len(sub) else []):
            parts = [] if same_n else [f"n={int(r.n_records)}"]
            if question == "tuned (LoRA)" and r.train_records == r.train_records:
                parts.append(f"{int(r.train_records):,} train")
            if parts:
                ax.annotate(", ".join(parts), (r.n_params, r.map_at_4), fontsize=7,
                            xytext=(5, 7 if i % 2 == 0 else -12), textcoords="offset points")
        if not len(sub):
            ax.text(0.5, 0.5, "no model of ours has this row yet", transform=ax.transAxes,
                    ha="center", fontsize=8, color="#666666")
        ax.set_xscale("log")
        ax.set_xlim(8e7, 1e11 if question == "tuned (LoRA)" else 3e9)
        ax.set_title(f"{question} (n={ns[0]})" if same_n else question, fontsize=10)
        ax.set_xlabel("parameters (log scale)")
    axes[0].set_ylabel(MAP_LABEL)
    axes[0].set_ylim(0, max(top * 1.15, 0.01))
    handles = {}
    for ax in axes:
        for h, label in zip(*ax.get_legend_handles_labels(), strict=True):
            handles.setdefault(label, h)
    n = sorted({int(x) for x in points["n_records"]}) if len(points) else []
    fig.legend(handles.values(), handles.keys(), loc="lower center", ncol=min(len(handles), 4),
               fontsize=8, frameon=False)
    fig.suptitle("Does size help? MAP@4 by model size, every point on the same "
                 f"{'/'.join(str(x) for x in n) or '?'} seeded test records (temporal split), "
                 "95% bootstrap intervals", fontsize=11)
    fig.tight_layout(rect=(0, 0.09, 1, 0.95))
    return fig


def summary_figures(table: pd.DataFrame, out_dir: str | Path) -> list[Path]:
    """Draw :func:`blog_vs_ours` and :func:`size_trend` on the primary split; save as PNG."""
    plt, _ = _pyplot()
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    from llmrec.report.sizes import baseline_band, size_points

    def trend(table: pd.DataFrame):
        points = size_points(table)
        return size_trend(points, baseline_band(table, points))

    for name, draw in (("summary_blog_vs_ours.png", blog_vs_ours), ("size_trend.png", trend)):
        fig = draw(table)
        path = out_dir / name
        fig.savefig(path, dpi=120, bbox_inches="tight")
        plt.close(fig)
        paths.append(path)
    return paths


def slice_intervals(table: pd.DataFrame, metric: str, title: str, metric_label: str):
    """One panel per bucket (``bucket`` column), each system's ``metric`` with its 95%
    interval (``<metric>_low``/``_high``), the bucket's record or target count in its title.

    A system with no hit at all in a bucket is drawn as a dotted bar up to the rule-of-three
    bound on its ``n_records`` (a degenerate [0, 0] interval says less than that)."""
    plt, sns = _pyplot()
    buckets = list(dict.fromkeys(table["bucket"]))
    systems = list(dict.fromkeys(table["system"]))
    fig, axes = plt.subplots(1, len(buckets), figsize=(3.6 * len(buckets) + 2.4,
                                                        1.4 + 0.38 * len(systems)),
                             sharey=True, squeeze=False)
    colour = sns.color_palette()[0]
    right = 0.0
    for ax, b in zip(axes[0], buckets, strict=True):
        part = table[table["bucket"] == b].set_index("system")
        for y, name in enumerate(systems):
            if name not in part.index:
                continue
            r = part.loc[name]
            if r[f"{metric}_high"] > 0:
                ax.errorbar(r[metric], y, xerr=[[r[metric] - r[f"{metric}_low"]],
                                                [r[f"{metric}_high"] - r[metric]]],
                            fmt="o", capsize=3, color=colour)
                right = max(right, r[f"{metric}_high"])
            else:
                right = max(right, _zero_hit_bar(ax, 0, int(r["n_records"]), colour))
                ax.plot([0], [y], "o", mfc="white", color=colour)
        count = (f"{int(part['n_targets'].max())} targets" if "n_targets" in part
                 else f"n={int(part['n_records'].max())}")
        ax.set_title(f"{b} ({count})", fontsize=10)
        ax.set_xlabel("")
    axes[0][0].set_yticks(range(len(systems)), systems)
    for ax in axes[0]:  # a share: never past 1, whatever a rule-of-three bound on few records says
        ax.set_xlim(0, min(max(right * 1.15, 1e-3), 1.0))
    axes[0][0].invert_yaxis()  # the first system on top (the axes share it)
    fig.suptitle(title)
    fig.supxlabel(metric_label, fontsize=10)
    fig.tight_layout()
    return fig


def heatmap(data: pd.DataFrame, rows: str, columns: str, values: str, title: str, xlabel: str,
            ylabel: str):
    """``values`` for each ``rows`` x ``columns`` pair as an annotated heat map (one value a
    cell: a grid of choices and the validation score of each)."""
    plt, sns = _pyplot()
    grid = data.pivot_table(index=rows, columns=columns, values=values, aggfunc="first")
    fig, ax = plt.subplots(figsize=(1.6 + 1.0 * grid.shape[1], 1.2 + 0.45 * grid.shape[0]))
    sns.heatmap(grid, annot=True, fmt=".4f", cmap="viridis", ax=ax,
                cbar_kws={"label": values})
    ax.set_title(title)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    fig.tight_layout()
    return fig


def list_quality_map(table: pd.DataFrame, title: str):
    """Each system's lists: distinct movies recommended (x, log scale) against how popular they
    are (mean training likes, y), a point per system labelled with its name."""
    plt, sns = _pyplot()
    fig, ax = plt.subplots(figsize=(9, 5.5))
    sns.scatterplot(data=table, x="distinct_items", y="mean_training_likes", ax=ax)
    for _, r in table.iterrows():
        ax.annotate(r["system"], (r["distinct_items"], r["mean_training_likes"]), fontsize=7,
                    xytext=(3, 2), textcoords="offset points")
    ax.set_xscale("log")
    ax.set_xlabel("distinct movies in the first 4 entries of every list (log scale)")
    ax.set_ylabel("mean training likes of a recommended movie")
    ax.set_title(title)
    fig.tight_layout()
    return fig
