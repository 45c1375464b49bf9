"""Prompt templates per dataset for CLIP zero-shot heads: each class name fills the `{}` of every template.

The sets follow the ones published with CLIP for these datasets (prompt engineering per dataset); a
task picks one by name (`templates: eurosat`) or gives its own list.
"""
from __future__ import annotations

from dawe_merge.errors import ConfigError

TEMPLATES: dict[str, tuple[str, ...]] = {
    "default": ("a photo of a {}.",),
    "sun397": ("a photo of a {}.", "a photo of the {}."),
    "stanford_cars": (
        "a photo of a {}.", "a photo of the {}.", "a photo of my {}.", "i love my {}!",
        "a photo of my dirty {}.", "a photo of my clean {}.", "a photo of my new {}.", "a photo of my old {}.",
    ),  # fmt: skip
    "resisc45": (
        "satellite imagery of {}.", "aerial imagery of {}.", "satellite photo of {}.", "aerial photo of {}.",
        "satellite view of {}.", "aerial view of {}.", "satellite imagery of a {}.", "aerial imagery of a {}.",
        "satellite photo of a {}.", "aerial photo of a {}.", "satellite view of a {}.", "aerial view of a {}.",
    ),  # fmt: skip
    "eurosat": ("a centered satellite photo of {}.", "a centered satellite photo of a {}.", "a centered satellite photo of the {}."),
    "svhn": ('a photo of the number: "{}".',),
    "gtsrb": (
        'a zoomed in photo of a "{}" traffic sign.', 'a centered photo of a "{}" traffic sign.', 'a close up photo of a "{}" traffic sign.',
    ),  # fmt: skip
    "mnist": ('a photo of the number: "{}".',),
    "dtd": (
        "a photo of a {} texture.", "a photo of a {} pattern.", "a photo of a {} thing.", "a photo of a {} object.",
        "a photo of the {} texture.", "a photo of the {} pattern.", "a photo of the {} thing.", "a photo of the {} object.",
    ),  # fmt: skip
    # the offline benchmark's domains
    "fashion_mnist": ("a photo of a {}.", "a greyscale photo of a {}.", "a low resolution photo of a {}."),
    "digits": ('a photo of the number: "{}".', 'a handwritten digit "{}".'),
    "silhouettes": ("a silhouette of a {}.", "a black and white silhouette of a {}."),
}


def templates_for(choice: str | list[str] | None, task: str) -> tuple[str, ...]:
    """An explicit list, a registry name, or (None) the task's own name if registered, else "default"."""
    if isinstance(choice, list):
        chosen = tuple(choice)
    else:
        key = choice or (task if task in TEMPLATES else "default")
        if key not in TEMPLATES:
            raise ConfigError(f"Task '{task}': unknown template set '{key}'; known: {', '.join(TEMPLATES)}, or give a list.")
        chosen = TEMPLATES[key]
    bad = [t for t in chosen if t.count("{}") != 1]
    if not chosen or bad:
        raise ConfigError(f"Task '{task}': every template needs exactly one '{{}}' for the class name; got {bad or 'none'}.")
    return chosen
