"""Summary figures across runs: the blog's published table beside ours, and the size trend.

Each function takes the results table (``reports/results.csv`` as a frame: one row per
system x setting x split with ``map_at_4`` and its interval) and returns a matplotlib
figure drawn with seaborn, with a title and axis labels with units. :func:`summary_figures`
draws both and saves them as PNG. Chapter figures live in their notebooks; these are the
ones that need every run at once.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path

import pandas as pd

from llmrec.blog import CAVEATS, MODEL_PARAMS, blog_table

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


def blog_vs_ours(table: pd.DataFrame, split: str | None = None):
    """Horizontal bars: the blog's five models as published, then every system of ours.

    Ours: MAP@4 on ``split`` (default the primary split) with its 95% bootstrap interval,
    baselines included, one bar per system x setting.
    """
    import matplotlib.pyplot as plt
    import seaborn as sns

    split = split or primary_split(table)
    ours = table[table["split"] == split].copy()
    ours["label"] = ours["system"].astype(str) + " · " + ours["setting"].astype(str)
    ours = ours.sort_values("map_at_4", ascending=False)
    ours["source"] = f"ours ({split} split, MAP@4, 95% CI)"
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
    ax.legend(loc="lower right", fontsize=8)
    fig.text(0.01, 0.005, "Blog caveats: " + "; ".join(CAVEATS[:2]) + ".", fontsize=6, wrap=True)
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


def size_trend(table: pd.DataFrame, split: str | None = None):
    """MAP@4 against parameter count (log x) for our models that ran, with the blog's points.

    One line per setting (ours, with 95% intervals); baselines have no size and are drawn
    as dashed levels. The blog's published points are drawn in grey for scale.
    """
    import matplotlib.pyplot as plt
    import seaborn as sns

    split = split or primary_split(table)
    ours = table[table["split"] == split].copy()
    ours["n_params"] = [model_size(r) for r in ours.to_dict("records")]
    baselines = ours[ours["n_params"].isna() & (ours["setting"] == "baseline")]
    ours = ours.dropna(subset=["n_params"]).sort_values("n_params")
    blog = blog_table()
    fig, ax = plt.subplots(figsize=(8, 5))
    sns.scatterplot(data=blog, x="n_params", y="map_at_k", color="#999999", marker="s", s=60,
                    label=BLOG_LABEL, ax=ax)
    for _, r in blog.iterrows():
        ax.annotate(r["model"], (r["n_params"], r["map_at_k"]), fontsize=7,
                    xytext=(4, 4), textcoords="offset points", color="#666666")
    if len(ours):
        sns.lineplot(data=ours, x="n_params", y="map_at_4", hue="setting", marker="o", ax=ax)
        low, high = _errors(ours)
        ax.errorbar(ours["n_params"], ours["map_at_4"], yerr=[low, high], fmt="none",
                    ecolor="black", capsize=3, lw=1)
    for _, r in baselines.iterrows():  # baselines have no size: a dashed level each
        ax.axhline(r["map_at_4"], ls="--", lw=0.8, color="#2ca02c")
        ax.annotate(f"{r['system']} (baseline)", (0.01, r["map_at_4"]), xycoords=("axes fraction", "data"),
                    fontsize=7, color="#2ca02c", xytext=(0, 2), textcoords="offset points")
    if not len(ours):
        ax.text(0.5, 0.5, "none of our models with a known size has results yet",
                transform=ax.transAxes, ha="center", fontsize=9)
    ax.set_xscale("log")
    ax.set_title(f"MAP@4 against model size ({split} split; ours with 95% CI)")
    ax.set_xlabel("model size (parameters, log scale)")
    ax.set_ylabel(MAP_LABEL)
    ax.legend(fontsize=7)
    fig.tight_layout()
    return fig


def summary_figures(table: pd.DataFrame, out_dir: str | Path) -> list[Path]:
    """Draw :func:`blog_vs_ours` and :func:`size_trend` on the primary split; save as PNG."""
    import matplotlib.pyplot as plt

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, draw in (("summary_blog_vs_ours.png", blog_vs_ours), ("size_trend.png", size_trend)):
        fig = draw(table)
        path = out_dir / name
        fig.savefig(path, dpi=120)
        plt.close(fig)
        paths.append(path)
    return paths
