"""Suggested cluster names and how often they match known groups (WordNet hypernyms)."""
import numpy as np
import pytest

from bulk_panel.compute.names import (WORDNET_NOUNS, class_words, imagenet_names, main_classes, name_match_rate,
                                      suggest_names, words_of)

needs_wordnet = pytest.mark.skipif(not WORDNET_NOUNS.exists(), reason="Debian's wordnet-base is not installed")
TABBY, SANDAL, PIZZA = 281, 774, 963


def _classes(per_row):
    """Top-2 predictions per row: (the given class, p 0.8) and (class 0, p 0.1)."""
    idx = np.array([[c, 0] for c in per_row])
    prob = np.tile([0.8, 0.1], (len(per_row), 1))
    return idx, prob


def test_folder_words():
    assert words_of("signs_and_symbols") == {"sign", "symbol"}
    assert words_of("t-shirt_top") == {"t-shirt", "shirt", "top"}
    assert words_of("Animals") == {"animal"} and words_of("glass") == {"glass"}


def test_main_classes_and_names():
    labels = np.array([0, 0, 0, 1, 1, -1])
    classes = _classes([TABBY, TABBY, PIZZA, SANDAL, SANDAL, PIZZA])
    top = main_classes(labels, classes)
    assert top[0][0] == TABBY and PIZZA in top[0] and top[1] == [SANDAL] and -1 not in top
    names = suggest_names(labels, classes)
    assert names[0] == f"{imagenet_names()[TABBY]} / {imagenet_names()[PIZZA]}" and names[1] == "sandal"


@needs_wordnet
def test_class_words_climb_the_hypernyms():
    assert {"tabby", "cat", "feline", "animal"} <= class_words(TABBY)
    assert {"sandal", "shoe", "footwear"} <= class_words(SANDAL) and "animal" not in class_words(SANDAL)
    assert "food" in class_words(PIZZA)


@needs_wordnet
def test_name_match_rate_counts_clusters_and_images():
    labels = np.array([0] * 6 + [1] * 3 + [-1])
    truth = np.array(["animals"] * 5 + ["food"] + ["food"] * 3 + ["animals"], dtype=object)
    result = name_match_rate(labels, _classes([TABBY] * 6 + [SANDAL] * 3 + [TABBY]), truth)
    assert result["clusters"] == 2 and result["matched"] == 1 and result["rate"] == 0.5
    assert result["image_rate"] == pytest.approx(6 / 9)
    assert [(c, folder, hit) for c, folder, _, hit in result["pairs"]] == [(0, "animals", True), (1, "food", False)]
