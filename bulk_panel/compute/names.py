"""Readable cluster names from the model's own ImageNet predictions.

>>> suggest_names(labels, classes)          # classes = Embedder.classes_ (top-k ids, probabilities)
{0: 'tabby / tiger cat', 1: 'sports car', 2: 'sports car (2)'}

A cluster is named after the classes that carry most of its members' predicted probability
(the runner-up joins when it carries at least half as much). Clusters that end up with the
same name get a number; noise keeps its label.
"""
from __future__ import annotations

import functools
import re
from pathlib import Path
from typing import Optional, Sequence

import numpy as np

from .schema import NOISE, cluster_label


@functools.lru_cache(maxsize=1)
def imagenet_names() -> tuple[str, ...]:
    """Short ImageNet-1k class names, index-aligned ('tabby', 'tiger cat', ...), from timm."""
    from timm.data import ImageNetInfo

    info = ImageNetInfo()
    return tuple(info.index_to_description(i).split(",")[0].strip() for i in range(info.num_classes()))


def suggest_names(
    labels: np.ndarray, classes: Optional[tuple[np.ndarray, np.ndarray]], runner_up: float = 0.5
) -> dict[int, str]:
    """A name per cluster id (noise excluded); 'cluster N' when ``classes`` is None."""
    ids = sorted(int(c) for c in np.unique(labels) if c != NOISE)
    if classes is None:
        return {c: cluster_label(c) for c in ids}
    names = imagenet_names()
    out: dict[int, str] = {}
    taken: dict[str, int] = {}
    for c, top in main_classes(labels, classes, runner_up).items():
        name = " / ".join(dict.fromkeys(names[i] for i in top))
        taken[name] = taken.get(name, 0) + 1
        out[c] = name if taken[name] == 1 else f"{name} ({taken[name]})"
    return out


def main_classes(
    labels: np.ndarray, classes: tuple[np.ndarray, np.ndarray], runner_up: float = 0.5
) -> dict[int, list[int]]:
    """Per cluster (noise excluded), the ImageNet class carrying most of its members' predicted
    probability, and the runner-up when it carries at least ``runner_up`` as much."""
    idx, prob = classes
    n_classes = max(len(imagenet_names()), int(idx.max()) + 1 if idx.size else 0)
    out: dict[int, list[int]] = {}
    for c in sorted(int(c) for c in np.unique(labels) if c != NOISE):
        members = labels == c
        mass = np.bincount(idx[members].ravel().astype(np.int64), weights=prob[members].ravel().astype(np.float64),
                           minlength=n_classes)
        first, second = np.argsort(mass)[::-1][:2]
        out[c] = [int(first)] + ([int(second)] if mass[second] >= runner_up * mass[first] else [])
    return out


# ---------------------------------------------------------------------------------------------
# Do suggested names match known groups? ImageNet classes are WordNet synsets, so a name
# matches a folder when a word of the folder's name is the class or one of its hypernyms
# ("tabby" → cat → feline → … → animal matches "animals"). Debian's wordnet-base has the data.
# ---------------------------------------------------------------------------------------------
WORDNET_NOUNS = Path("/usr/share/wordnet/data.noun")
_STOP_WORDS = {"and", "or", "of", "the", "a", "an"}


def _singular(word: str) -> str:
    return word[:-1] if len(word) > 3 and word.endswith("s") and not word.endswith("ss") else word


def words_of(text: str) -> set[str]:
    """Lower-case singular words of a folder or lemma name: 'signs_and_symbols' → {'sign', 'symbol'};
    hyphenated words are kept whole too ('t-shirt_top' → {'t-shirt', 'shirt', 'top'})."""
    words = set()
    for part in re.split(r"[\s_/]+", text.lower()):
        if part and part not in _STOP_WORDS:
            words.add(_singular(part))
            words.update(_singular(w) for w in part.split("-") if w and w not in _STOP_WORDS)
    return {w for w in words if len(w) > 1}


@functools.lru_cache(maxsize=2)
def _wordnet_nouns(path: str) -> dict[int, tuple[tuple[str, ...], tuple[int, ...]]]:
    """WordNet's noun synsets: offset → (lemmas, hypernym offsets), from a ``data.noun`` file."""
    synsets = {}
    with open(path, encoding="utf-8", errors="replace") as fh:
        for line in fh:
            if line.startswith(" "):
                continue  # the licence header
            fields = line.split(" | ", 1)[0].split()
            count = int(fields[3], 16)
            lemmas = tuple(w.lower() for w in fields[4 : 4 + 2 * count : 2])
            at = 4 + 2 * count
            pointers = int(fields[at])
            ups = tuple(int(fields[at + 1 + 4 * k + 1]) for k in range(pointers)
                        if fields[at + 1 + 4 * k] in ("@", "@i"))
            synsets[int(fields[0])] = (lemmas, ups)
    return synsets


@functools.lru_cache(maxsize=1)
def imagenet_wnids() -> tuple[str, ...]:
    """The WordNet ids of the ImageNet-1k classes ('n02123045', ...), index-aligned, from timm."""
    from timm.data import ImageNetInfo

    info = ImageNetInfo()
    return tuple(info.index_to_label_name(i) for i in range(info.num_classes()))


def class_words(class_id: int, wordnet: Path = WORDNET_NOUNS, wnids: Optional[Sequence[str]] = None) -> set[str]:
    """Words of an ImageNet class's synset and of all its hypernyms ('tabby' → {..., 'cat', 'animal'})."""
    synsets = _wordnet_nouns(str(wordnet))
    wnid = (wnids or imagenet_wnids())[class_id]
    seen, todo, words = set(), [int(wnid.lstrip("n"))], set()
    while todo:
        offset = todo.pop()
        if offset in seen or offset not in synsets:
            continue
        seen.add(offset)
        lemmas, ups = synsets[offset]
        for lemma in lemmas:
            words |= words_of(lemma)
        todo.extend(ups)
    return words


def name_match_rate(
    labels: np.ndarray, classes: tuple[np.ndarray, np.ndarray], truth: np.ndarray, wordnet: Path = WORDNET_NOUNS,
) -> dict:
    """How often a cluster's suggested name matches its members' majority folder: the share of
    clusters (and of clustered images) whose main class (or runner-up) is, or is a kind of, a
    word of that folder's name. ``{"clusters", "matched", "rate", "image_rate", "pairs"}``;
    pairs lists (cluster, folder, name, matched)."""
    names = imagenet_names()
    truth = np.asarray(truth, dtype=object)
    pairs, matched_images, clustered = [], 0, 0
    for c, top in main_classes(labels, classes).items():
        members = labels == c
        folders, counts = np.unique(truth[members], return_counts=True)
        folder = str(folders[np.argmax(counts)])
        hit = bool(words_of(folder) & set().union(*(class_words(i, wordnet) for i in top)))
        pairs.append((c, folder, " / ".join(names[i] for i in top), hit))
        clustered += int(members.sum())
        matched_images += int(members.sum()) if hit else 0
    n = len(pairs)
    matched = sum(p[3] for p in pairs)
    return {"clusters": n, "matched": matched, "rate": matched / n if n else 0.0,
            "image_rate": matched_images / clustered if clustered else 0.0, "pairs": pairs}
