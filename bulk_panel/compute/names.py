"""Suggested cluster names from the model's own ImageNet predictions, and how many members agree.

>>> cluster_suggestions(labels, classes)   # classes = Embedder.classes_ (top-k ids, probabilities)
{0: {'name': 'tabby / tiger cat', 'classes': [281, 282], 'agreement': 0.62, 'size': 58}, ...}

A cluster's suggestion is the classes that carry most of its members' predicted probability
(the runner-up joins when it carries at least half as much); its agreement is the share of
members whose own top-1 class is one of them. Clusters with the same suggestion get a number
("sandal (2)"), so accepting suggestions never merges two clusters by itself. Noise gets none.

Labels stay neutral ("cluster 3"): a suggestion is shown beside its cluster's label, and the
user accepts it or not. The results' meta keeps them (:func:`suggestions_meta`,
:func:`read_suggestions`); ImageNet's classes often miss (docs/performance.md).
"""
from __future__ import annotations

import functools
import math
import re
from pathlib import Path
from typing import Mapping, Optional, Sequence

import numpy as np

from .schema import NOISE, cluster_label

#: the agreement thresholds the evaluation reports precision at
AGREEMENT_THRESHOLDS = (0.0, 0.3, 0.5, 0.7)


@functools.lru_cache(maxsize=1)
def imagenet_names() -> tuple[str, ...]:
    """Short ImageNet-1k class names, index-aligned ('tabby', 'tiger cat', ...), from timm."""
    from timm.data import ImageNetInfo

    info = ImageNetInfo()
    return tuple(info.index_to_description(i).split(",")[0].strip() for i in range(info.num_classes()))


def cluster_suggestions(
    labels: np.ndarray, classes: Optional[tuple[np.ndarray, np.ndarray]], runner_up: float = 0.5
) -> dict[int, dict]:
    """Per cluster id (noise excluded): ``{"name", "classes", "agreement", "size"}`` — the
    suggested name, its ImageNet class ids, the share (0..1) of the cluster's members whose own
    top-1 class is one of those, and the cluster's size. ``{}`` when ``classes`` is None (a
    model without an ImageNet head)."""
    if classes is None:
        return {}
    labels = np.asarray(labels)
    names = imagenet_names()
    top1 = np.asarray(classes[0])[:, 0] if len(labels) else np.zeros(0, np.int64)
    out: dict[int, dict] = {}
    taken: dict[str, int] = {}
    for c, top in main_classes(labels, classes, runner_up).items():
        members = labels == c
        name = " / ".join(dict.fromkeys(names[i] if i < len(names) else f"class {i}" for i in top))
        taken[name] = taken.get(name, 0) + 1
        out[c] = {
            "name": name if taken[name] == 1 else f"{name} ({taken[name]})",
            "classes": [int(i) for i in top],
            "agreement": round(float(np.isin(top1[members], top).mean()), 4),
            "size": int(members.sum()),
        }
    return out


def suggestions_meta(suggestions: Mapping[int, dict]) -> dict[str, dict]:
    """:func:`cluster_suggestions` as the results' meta keeps them (JSON: string keys)."""
    return {str(c): {k: s[k] for k in ("name", "classes", "agreement", "size") if k in s}
            for c, s in suggestions.items()}


def read_suggestions(meta: Optional[Mapping]) -> dict[int, dict]:
    """The suggestions a results' meta holds: ``{cluster id: {"name", "agreement", "size"}}``
    (``agreement`` and ``size`` None when unknown). Entries that do not parse are left out (a
    file's meta is untrusted).

    Older files hold ``cluster_names`` only — names that were the clusters' labels: they are
    read as suggestions of unknown agreement ('cluster N' names, from ``--no-suggest-names``,
    are none).
    """
    meta = meta or {}
    raw = meta.get("suggestions")
    if not isinstance(raw, Mapping):
        names = meta.get("cluster_names")
        raw = {k: {"name": v} for k, v in names.items()} if isinstance(names, Mapping) else {}
    out: dict[int, dict] = {}
    for key, entry in raw.items():
        try:
            cluster = int(key)
        except (TypeError, ValueError):
            continue
        if not isinstance(entry, Mapping) or cluster < 0:
            continue
        name = " ".join(str(entry.get("name") or "").split())[:200]
        if not name or name == cluster_label(cluster):
            continue
        out[cluster] = {"name": name, "agreement": _share(entry.get("agreement")),
                        "size": _count(entry.get("size"))}
    return out


def _share(value) -> Optional[float]:
    try:
        share = float(value)
    except (TypeError, ValueError):
        return None
    return share if math.isfinite(share) and 0.0 <= share <= 1.0 else None


def _count(value) -> Optional[int]:
    try:
        count = int(value)
    except (TypeError, ValueError, OverflowError):
        return None
    return count if count >= 0 else None


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
    thresholds: Sequence[float] = AGREEMENT_THRESHOLDS,
) -> dict:
    """How often a cluster's suggestion matches its members' majority folder: the share of
    clusters (and of clustered images) whose main class (or runner-up) is, or is a kind of, a
    word of that folder's name; and, per agreement threshold, the precision of the suggestions
    that reach it (:func:`precision_by_agreement`).

    ``{"clusters", "matched", "rate", "image_rate", "pairs", "by_agreement"}``; ``pairs``: one
    dict per cluster (cluster, folder, name, agreement, size, match)."""
    truth = np.asarray(truth, dtype=object)
    labels = np.asarray(labels)
    pairs = []
    for c, s in cluster_suggestions(labels, classes).items():
        folders, counts = np.unique(truth[labels == c], return_counts=True)
        folder = str(folders[np.argmax(counts)])
        hit = bool(words_of(folder) & set().union(*(class_words(i, wordnet) for i in s["classes"])))
        pairs.append({"cluster": c, "folder": folder, "name": s["name"], "agreement": s["agreement"],
                      "size": s["size"], "match": hit})
    n = len(pairs)
    matched = sum(p["match"] for p in pairs)
    clustered = sum(p["size"] for p in pairs)
    return {"clusters": n, "matched": matched, "rate": matched / n if n else 0.0,
            "image_rate": sum(p["size"] for p in pairs if p["match"]) / clustered if clustered else 0.0,
            "pairs": pairs, "by_agreement": precision_by_agreement(pairs, thresholds)}


def precision_by_agreement(pairs: Sequence[Mapping], thresholds: Sequence[float] = AGREEMENT_THRESHOLDS) -> list[dict]:
    """Per threshold, the suggestions whose agreement reaches it: how many (``clusters``, and
    their share of all), how many match their folder, ``precision`` (matched / clusters, None
    when none reach it) and ``images`` (their share of the clustered images). ``pairs`` as
    :func:`name_match_rate` gives them (agreement, size, match per cluster)."""
    total = len(pairs)
    clustered = sum(p["size"] for p in pairs)
    rows = []
    for t in thresholds:
        kept = [p for p in pairs if p["agreement"] >= t]
        hits = sum(bool(p["match"]) for p in kept)
        rows.append({"min_agreement": float(t), "clusters": len(kept), "share": len(kept) / total if total else 0.0,
                     "matched": hits, "precision": hits / len(kept) if kept else None,
                     "images": sum(p["size"] for p in kept) / clustered if clustered else 0.0})
    return rows
