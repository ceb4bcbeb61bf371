"""The analysis maths on small fixed inputs, against values computed by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest

from rsdistill.analysis.compare import changed_most, confusion_matrix, per_class_accuracy
from rsdistill.analysis.curves import data_wait_share, epoch_curves, seconds_per_iteration
from rsdistill.analysis.embeddings import default_perplexity, subsample, tsne_2d
from rsdistill.analysis.fidelity import class_correlation, correlation_difference, softmax
from rsdistill.analysis.similarity import class_centres, inter_class_similarity, mean_off_diagonal
from rsdistill.analysis.soft_labels import easiest_and_hardest, target_scatter


# ------------------------------------------------------------------ inter-class similarity (Fig. 4)
def test_identical_logits_give_a_similarity_matrix_of_ones():
    logits = np.tile([2.0, -1.0, 0.5], (6, 1))
    labels = np.array([0, 1, 2, 0, 1, 2])
    sim = inter_class_similarity(logits, labels, 3)
    np.testing.assert_allclose(sim, np.ones((3, 3)), atol=1e-12)
    assert mean_off_diagonal(sim) == pytest.approx(1.0)


def test_one_hot_logits_give_the_identity():
    labels = np.array([0, 1, 2, 2])
    sim = inter_class_similarity(np.eye(3)[labels] * 5.0, labels, 3)
    np.testing.assert_allclose(sim, np.eye(3), atol=1e-12)
    assert mean_off_diagonal(sim) == pytest.approx(0.0)


def test_similarity_by_hand():
    # class 0: [1, 0] and [1, 1] -> centre [1, 0.5]; class 1: [0, 1] -> centre [0, 1]
    logits = np.array([[1.0, 0.0], [1.0, 1.0], [0.0, 1.0]])
    labels = np.array([0, 0, 1])
    np.testing.assert_allclose(class_centres(logits, labels, 2), [[1.0, 0.5], [0.0, 1.0]])
    c0 = np.array([1.0, 0.5]) / math.sqrt(1.25)
    s00 = (c0 @ [1, 0] + c0 @ (np.array([1, 1]) / math.sqrt(2))) / 2
    s01 = (0.0 + 1 / math.sqrt(2)) / 2
    s10 = c0 @ [0, 1]
    np.testing.assert_allclose(inter_class_similarity(logits, labels, 2), [[s00, s01], [s10, 1.0]])
    assert mean_off_diagonal(np.array([[1.0, 0.2], [0.4, 1.0]])) == pytest.approx(0.3)


def test_a_class_without_test_samples_is_nan_and_left_out_of_the_mean():
    sim = inter_class_similarity(np.eye(3)[[0, 1]], np.array([0, 1]), 3)
    assert np.isnan(sim[2]).all() and np.isnan(sim[:, 2]).all()
    assert mean_off_diagonal(sim) == pytest.approx(0.0)


# ------------------------------------------------------------------ fidelity (Fig. 7)
TEACHER = np.eye(3)  # 3 samples x 3 classes, one-hot rows
STUDENT = np.array([[0.5, 0.5, 0.0], [0.5, 0.5, 0.0], [0.0, 0.0, 1.0]])


def test_class_correlation_by_hand():
    # columns e_i of length 3: deviations (2/3, -1/3, -1/3) ..., covariance -1/3, variance 2/3
    np.testing.assert_allclose(class_correlation(TEACHER), [[1, -.5, -.5], [-.5, 1, -.5], [-.5, -.5, 1]])
    # columns (.5, .5, 0) twice and (0, 0, 1): the first two are equal, the third their mirror
    np.testing.assert_allclose(class_correlation(STUDENT), [[1, 1, -1], [1, 1, -1], [-1, -1, 1]])


def test_correlation_difference_max_and_mean_by_hand():
    d = correlation_difference(TEACHER, STUDENT)
    np.testing.assert_allclose(d.matrix, [[0, 1.5, .5], [1.5, 0, .5], [.5, .5, 0]], atol=1e-12)
    assert d.max == pytest.approx(1.5)
    assert d.mean == pytest.approx((1.5 + .5 + .5) / 3)  # the off-diagonal pairs


def test_a_student_equal_to_its_teacher_has_no_difference():
    p = softmax(np.random.default_rng(0).normal(size=(20, 4)))
    d = correlation_difference(p, p)
    assert d.max == pytest.approx(0.0, abs=1e-12) and d.mean == pytest.approx(0.0, abs=1e-12)


def test_a_constant_class_column_correlates_zero_instead_of_nan():
    p = np.array([[0.5, 0.5, 0.0], [0.7, 0.3, 0.0], [0.1, 0.9, 0.0]])
    corr = class_correlation(p)
    assert not np.isnan(corr).any()
    np.testing.assert_allclose(corr[2], [0, 0, 1])
    np.testing.assert_allclose(corr[0, 1], -1.0)


def test_softmax_rows_sum_to_one_and_follow_the_logits():
    p = softmax(np.array([[0.0, 0.0], [1000.0, 0.0]]))
    np.testing.assert_allclose(p, [[0.5, 0.5], [1.0, 0.0]])


# ------------------------------------------------------------------ per-class comparison
def test_confusion_accuracy_and_the_classes_that_changed_most():
    labels = np.array([0, 0, 1, 1, 2, 2])
    cm_a = confusion_matrix(labels, np.array([0, 1, 1, 1, 0, 0]), 3)
    cm_b = confusion_matrix(labels, np.array([0, 0, 1, 0, 2, 0]), 3)
    np.testing.assert_array_equal(cm_a, [[1, 1, 0], [0, 2, 0], [2, 0, 0]])
    acc_a, acc_b = per_class_accuracy(cm_a), per_class_accuracy(cm_b)
    np.testing.assert_allclose(acc_a, [50, 100, 0])
    np.testing.assert_allclose(acc_b, [100, 50, 50])
    changes = changed_most(acc_a, acc_b, ["a", "b", "c"], k=2)
    assert [(c.name, c.delta) for c in changes] == [("a", 50.0), ("b", -50.0)]  # ties keep class order
    assert changed_most(acc_a, acc_a, ["a", "b", "c"]) == []
    assert np.isnan(per_class_accuracy(np.zeros((2, 2))) ).all()


# ------------------------------------------------------------------ logs: curves and cost (Fig. 8)
RECORDS = [
    {"epoch": 2, "train/ce": 0.5, "train/align": 2.0, "train/loss": 2.5, "train/top1": 60.0, "test/top1": 55.0,
     "test/loss": 1.0, "diag/a": 0.1, "time/epoch_s": 4.0},
    {"epoch": 1, "train/ce": 1.0, "train/align": 3.0, "train/loss": 4.0, "train/top1": 40.0, "test/top1": 45.0,
     "test/loss": 1.2, "time/epoch_s": 2.0},
]


def test_epoch_curves_hold_test_top1_and_each_loss_term_in_epoch_order():
    curves = epoch_curves(RECORDS)
    assert list(curves) == ["test/top1", "train/loss", "train/align", "train/ce"]
    assert curves["test/top1"] == [(1, 45.0), (2, 55.0)]
    assert curves["train/align"] == [(1, 3.0), (2, 2.0)]


def test_seconds_per_iteration_by_hand():
    # 40 images in batches of 16: 3 iterations per epoch; epochs of 2 s and 4 s -> 3 s / 3
    assert seconds_per_iteration(RECORDS, 40, 16) == pytest.approx(1.0)
    assert math.isnan(seconds_per_iteration([{"epoch": 1}], 40, 16))
    # the training steps' own time, where logged, rather than the epoch's with its test pass
    assert seconds_per_iteration([{"time/train_s": 1.5, "time/epoch_s": 9.0}], 40, 16) == pytest.approx(0.5)


def test_the_data_waits_share_is_over_the_epochs_that_logged_it():
    records = [{"time/train_s": 4.0, "time/data_wait_s": 1.0}, {"time/train_s": 6.0, "time/data_wait_s": 0.5},
               {"time/train_s": 9.0}]  # an epoch without the wait (an older run) is left out
    assert data_wait_share(records) == pytest.approx(1.5 / 10.0)
    assert math.isnan(data_wait_share(RECORDS))


# ------------------------------------------------------------------ soft labels (Fig. 5)
def test_easiest_and_hardest_by_teacher_gap():
    samples = [{"index": i, "gap": g, "p_t_y": p, "q_y": q}
               for i, (g, p, q) in enumerate([(1.0, .5, .6), (3.0, .9, .8), (-2.0, .1, .3)])]
    easy, hard = easiest_and_hardest(samples)
    assert (easy["index"], hard["index"]) == (1, 2)
    assert target_scatter(samples) == ([.5, .9, .1], [.6, .8, .3])


# ------------------------------------------------------------------ t-SNE (Fig. 6)
def test_tsne_is_reproducible_with_its_seed_and_copes_with_tiny_sets():
    x = np.random.default_rng(0).normal(size=(12, 5))
    a, b = tsne_2d(x, seed=3), tsne_2d(x, seed=3)
    assert a.shape == (12, 2) and np.isfinite(a).all()
    np.testing.assert_array_equal(a, b)
    assert default_perplexity(12) == pytest.approx(11 / 3)
    assert default_perplexity(1000) == 30.0
    assert tsne_2d(x[:2]).shape == (2, 2)


def test_subsample_keeps_everything_below_the_cap_and_draws_sorted_indices_above_it():
    np.testing.assert_array_equal(subsample(5, 10), np.arange(5))
    np.testing.assert_array_equal(subsample(5, None), np.arange(5))
    idx = subsample(100, 7, seed=1)
    assert len(idx) == 7 and len(set(idx.tolist())) == 7 and list(idx) == sorted(idx)
    np.testing.assert_array_equal(idx, subsample(100, 7, seed=1))
