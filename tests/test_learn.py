"""Learning labels from a person's: the learner (compute/learn.py) and the simulated labelling
loop (compute/evaluate.py), on synthetic groups whose truth is known."""
import numpy as np
import pytest

from bulk_panel.compute.evaluate import actions_to_reach, evaluate_labelling, simulate_labelling
from bulk_panel.compute.learn import METHODS, LabelLearner, Reduced, least_certain


def groups(n_per=60, k=4, dims=32, spread=0.35, seed=0):
    """k Gaussian groups on the unit sphere: (vectors, truth names, centres)."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(k, dims))
    truth = np.repeat(np.arange(k), n_per)
    x = centres[truth] + rng.normal(scale=spread * np.linalg.norm(centres, axis=1).mean() / np.sqrt(dims),
                                    size=(len(truth), dims))
    return x.astype(np.float32), np.array([f"group {t}" for t in truth], dtype=object), centres


@pytest.mark.parametrize("method", METHODS)
def test_learns_from_a_few_person_labels_only(method):
    x, truth, centres = groups()
    space = Reduced.of(x, dims=16).vectors
    given = np.concatenate([np.flatnonzero(truth == name)[:3] for name in np.unique(truth)])  # 3 per group
    learner = LabelLearner(method=method).fit(space[given], truth[given])
    predicted, confidence = learner.predict(space)
    rest = np.setdiff1d(np.arange(len(x)), given)
    assert np.mean(predicted[rest] == truth[rest]) >= 0.95
    assert set(learner.classes_) == set(truth[given]) and confidence.dtype == np.float32
    assert ((confidence >= 0) & (confidence <= 1)).all()
    # a point halfway between two groups is less certain than one at a group's centre
    probe = Reduced.of(np.vstack([x, centres[0], (centres[0] + centres[1]) / 2]), dims=16).vectors[-2:]
    learner = LabelLearner(method=method).fit(Reduced.of(np.vstack([x, centres[0], (centres[0] + centres[1]) / 2]),
                                                         dims=16).vectors[given], truth[given])
    _, sure = learner.predict(probe)
    assert sure[0] > sure[1]


def test_labels_a_person_never_gave_are_never_predicted():
    x, truth, _ = groups()
    given = np.flatnonzero(np.isin(truth, ["group 0", "group 1"]))[::10]
    predicted, _ = LabelLearner().fit(x[given], truth[given]).predict(x)
    assert set(predicted) <= {"group 0", "group 1"}


def test_one_label_predicts_it_everywhere_less_sure_far_away():
    x, truth, _ = groups()
    space = Reduced.of(x, dims=16).vectors
    given = np.flatnonzero(truth == "group 2")[:5]
    predicted, confidence = LabelLearner().fit(space[given], truth[given]).predict(space)
    assert set(predicted) == {"group 2"}
    assert confidence[truth == "group 2"].mean() > confidence[truth != "group 2"].mean()


def test_bad_method_and_no_labels_are_clear_errors():
    with pytest.raises(ValueError, match="unknown learning method 'svm'"):
        LabelLearner(method="svm")
    with pytest.raises(ValueError, match="no image has a label a person gave"):
        LabelLearner().fit(np.zeros((0, 4)), [])


def test_least_certain_orders_candidates_by_confidence():
    confidence = np.array([0.9, 0.2, 0.5, 0.2, 0.1], dtype=np.float32)
    assert least_certain(confidence, np.array([0, 1, 2, 3])).tolist() == [1, 3, 2, 0]  # ties keep row order


def test_reduced_vectors_are_unit_length_and_fewer():
    x, _, _ = groups(dims=200)
    vectors = Reduced.of(x, dims=16).vectors
    assert vectors.shape == (len(x), 16)
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1, atol=1e-4)


def impure_clusters(truth, seed=0, impurity=0.3):
    """Clusters that follow the groups but hold a share of other groups' images, plus noise."""
    rng = np.random.default_rng(seed)
    codes = np.unique(truth, return_inverse=True)[1]
    clusters = codes.copy()
    swap = rng.random(len(codes)) < impurity
    clusters[swap] = rng.integers(0, codes.max() + 1, swap.sum())
    clusters[rng.random(len(codes)) < 0.1] = -1
    return clusters


@pytest.mark.parametrize("method", METHODS)
def test_learning_beats_naming_clusters_alone(method):
    x, truth, _ = groups(n_per=80, k=5)
    space = Reduced.of(x, dims=16).vectors
    clusters = impure_clusters(truth)
    alone = simulate_labelling(space, truth, clusters, learn=False, actions=12, page=10)
    learning = simulate_labelling(space, truth, clusters, learn=True, actions=12, page=10, method=method)
    for curve in (alone, learning):
        assert [row["action"] for row in curve] == list(range(13)) and curve[0]["accuracy"] == 0.0
        assert all(0.0 <= row["accuracy"] <= 1.0 for row in curve)
    # naming clusters cannot fix their impurity or the noise; learning and pages can
    assert max(row["accuracy"] for row in alone) <= 1 - np.mean(clusters == -1) + 1e-9
    assert learning[-1]["accuracy"] > alone[-1]["accuracy"]
    kinds = [row["kind"] for row in learning[1:]]
    assert {"name a cluster", "a page of suggestions"} <= set(kinds) <= {"name a cluster", "a page of suggestions",
                                                                         "nothing left"}
    assert kinds.count("name a cluster") == 5  # one per group: a cluster of a name already given stays unnamed
    pages = [row for row in learning if row["kind"] == "a page of suggestions"]
    assert all(0 <= row["corrected"] <= 10 for row in pages)


def test_evaluate_labelling_reports_the_ceiling_and_actions_to_reach_it():
    x, truth, _ = groups(n_per=50, k=3)
    report = evaluate_labelling(x, truth, impure_clusters(truth), actions=6, page=10, methods=("knn",))
    assert 0.9 <= report["ceiling"] <= 1.0  # well separated groups
    assert set(report["approaches"]) == {"clusters alone", "clusters + learning (knn)"}
    for run in report["approaches"].values():
        assert len(run["curve"]) == 7 and run["final"] == run["curve"][-1]["accuracy"]
        reach = run["to_0.8"]
        assert reach is None or run["curve"][reach]["accuracy"] >= 0.8 * report["ceiling"]
    assert actions_to_reach([{"action": 0, "accuracy": 0.1}, {"action": 1, "accuracy": 0.5}], 0.4) == 1
    assert actions_to_reach([{"action": 0, "accuracy": 0.1}], 0.4) is None
