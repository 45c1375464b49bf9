"""Figures researchers look at first: accuracy during adaptation, and where the coefficients went."""
from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only; no display needed
import matplotlib.pyplot as plt  # noqa: E402

from dawe_merge.reports.atomic import atomic_path  # noqa: E402


def plot_adaptation(history: list[dict[str, float]], tasks: list[str], path: Path, title: str, split: str = "val", selected: int | None = None) -> Path:
    """Monitored accuracy per task (and their average) against the adaptation step; `selected`: the step kept."""
    steps = [row["step"] for row in history]
    fig, ax = plt.subplots(figsize=(7, 4.2))
    for task in tasks:
        ax.plot(steps, [100 * row[task] for row in history], marker="o", label=task)
    ax.plot(steps, [100 * row["average"] for row in history], color="black", linewidth=2.5, marker="s", label="average")
    if selected is not None:
        ax.axvline(selected, color="grey", linestyle="--", label=f"selected (step {selected})")
    monitored = "validation splits" if split == "val" else "test batches (diagnostic)"
    ax.set(xlabel="adaptation step", ylabel=f"accuracy (%) on monitored {monitored}", title=title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="best")
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=120)
    plt.close(fig)
    return path


def plot_coefficient_heatmap(matrix: list[list[float]], tasks: list[str], path: Path, title: str) -> Path:
    """Mean coefficient of each expert's task vector (columns) for inputs of each task (rows)."""
    fig, ax = plt.subplots(figsize=(1.4 * len(tasks) + 2.5, 1.1 * len(tasks) + 1.8))
    image = ax.imshow(matrix, cmap="viridis")
    ax.set_xticks(range(len(tasks)), tasks, rotation=30, ha="right")
    ax.set_yticks(range(len(tasks)), tasks)
    ax.set(xlabel="task vector (expert)", ylabel="input's task", title=title)
    for i, row in enumerate(matrix):
        for j, value in enumerate(row):
            ax.text(j, i, f"{value:.2f}", ha="center", va="center", color="white" if value < max(map(max, matrix)) * 0.6 else "black", fontsize=9)
    fig.colorbar(image, ax=ax, shrink=0.8)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=120)
    plt.close(fig)
    return path


def tensor_blocks(names: list[str]) -> list[tuple[int, str]]:
    """(first index, label) of each run of tensors in one block: the name up to its first layer number
    (`encoder.layer.3.attention.self.query.weight` → `layer.3`), else its first component (`embeddings`)."""
    blocks: list[tuple[int, str]] = []
    for i, name in enumerate(names):
        parts = name.split(".")
        number = next((j for j, p in enumerate(parts[:-1]) if p.isdigit()), None)
        label = ".".join(parts[max(0, number - 1) : number + 1]) if number is not None else parts[0]
        if not blocks or blocks[-1][1] != label:
            blocks.append((i, label))
    return blocks


def plot_layer_coefficients(per_tensor: list[list[float]], tasks: list[str], path: Path, title: str, names: list[str] | None = None) -> Path:
    """Coefficient of each task vector for every merged tensor, in model order, labelled by block when names are known."""
    fig, ax = plt.subplots(figsize=(10, 4.6))
    for task, values in zip(tasks, per_tensor):
        ax.plot(range(len(values)), values, label=task, linewidth=1.2)
    ax.set(ylabel="mean coefficient", title=title)
    if names:
        blocks = tensor_blocks(names)
        ends = [start for start, _ in blocks[1:]] + [len(names)]
        for start, _ in blocks[1:]:
            ax.axvline(start - 0.5, color="0.85", linewidth=0.8)
        ax.set_xticks([(start + end - 1) / 2 for (start, _), end in zip(blocks, ends)], [label for _, label in blocks], rotation=90, fontsize=7)
        ax.set_xlabel("merged tensors, grouped by block (model order)")
    else:
        ax.set_xlabel("merged tensor index (model order)")
    ax.grid(alpha=0.3, axis="y")
    ax.legend(fontsize=8)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=120)
    plt.close(fig)
    return path
