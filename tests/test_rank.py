"""Market-1501 rank metrics: torchreid/fast-reid conformance, protocol rules, ties, the torchmetrics
wrapper (including under DDP with 2 gloo processes)."""

from __future__ import annotations

import os
import socket

import numpy as np
import pytest
import torch

from reid_gan.metrics.rank import (
    NoValidQueryError,
    compute_distance_matrix,
    evaluate_rank,
    evaluate_rank_reference,
)
from reid_gan.metrics.rank_metric import RankMetrics
from tests.helpers import DATA

KEYS = ("distmat", "q_pids", "g_pids", "q_camids", "g_camids")


@pytest.fixture(scope="module")
def vec():
    return torch.load(DATA / "eval_small.pt", weights_only=True)


def _assert_matches(res, cmc, mAP, mINP, tol=1e-6):
    assert res["cmc"].shape == np.asarray(cmc).shape
    np.testing.assert_allclose(res["cmc"], np.asarray(cmc), rtol=0, atol=tol)
    assert abs(res["mAP"] - mAP) <= tol
    assert abs(res["mINP"] - mINP) <= tol


@pytest.mark.parametrize("as_numpy", [False, True])
def test_conformance_torchreid_fastreid(vec, as_numpy):
    args = [vec[k].numpy() if as_numpy else vec[k] for k in KEYS]
    res = evaluate_rank(*args, max_rank=vec["max_rank"])
    _assert_matches(res, vec["cmc"].numpy(), vec["mAP"], vec["mINP"])
    assert res["num_valid_q"] == vec["num_valid_q"] == 47
    assert res["cmc"].dtype == np.float32


def test_conformance_small_chunks_and_reference(vec):
    args = [vec[k] for k in KEYS]
    res = evaluate_rank(*args, chunk_elems=1)  # one query per chunk
    _assert_matches(res, vec["cmc"].numpy(), vec["mAP"], vec["mINP"])
    ref = evaluate_rank_reference(*[a.numpy() for a in args])
    _assert_matches(ref, vec["cmc"].numpy(), vec["mAP"], vec["mINP"])


def test_junk_is_ignored_not_a_negative(vec):
    """Relabelling junk (-1) as an ordinary pid that matches nothing must give the reference's
    junk-as-negative numbers, and those differ from the real ones: so junk really is dropped."""
    g_pids = vec["g_pids"].clone()
    assert (g_pids == -1).sum() > 0
    g_pids[g_pids == -1] = -7
    res = evaluate_rank(vec["distmat"], vec["q_pids"], g_pids, vec["q_camids"], vec["g_camids"])
    _assert_matches(res, vec["cmc_junk_as_negative"].numpy(), vec["mAP_junk_as_negative"],
                    vec["mINP_junk_as_negative"])
    assert abs(res["mAP"] - vec["mAP"]) > 0.05


def test_hand_computed_protocol():
    # query pid 1, camera 0. Gallery (distance): same pid+camera (ignored), junk (ignored),
    # distractor pid 0 (a non-match), matches from cameras 1 and 2, another person.
    d = np.array([[0.1, 0.05, 0.2, 0.3, 0.4, 0.5]], dtype=np.float32)
    g_pids = np.array([1, -1, 0, 1, 2, 1])
    g_cams = np.array([0, 1, 3, 1, 0, 2])
    res = evaluate_rank(d, np.array([1]), g_pids, np.array([0]), g_cams, max_rank=5)
    # valid ranking: pid0 (neg), pid1 (match, rank 2), pid2 (neg), pid1 (match, rank 4)
    assert res["mAP"] == pytest.approx((1 / 2 + 2 / 4) / 2)
    assert res["mINP"] == pytest.approx(2 / 4)
    # max_rank is clamped to the non-junk gallery size (5), as torchreid clamps it to the gallery size
    np.testing.assert_array_equal(res["cmc"], np.array([0, 1, 1, 1, 1], dtype=np.float32))
    assert res["first_match_rank"].tolist() == [1]


def test_query_without_match_is_skipped_and_none_valid_explains_camera_rule():
    d = np.random.default_rng(0).random((3, 4)).astype(np.float32)
    q_pids, q_cams = np.array([1, 2, 3]), np.array([0, 0, 0])
    g_pids, g_cams = np.array([1, 1, 2, 4]), np.array([0, 1, 0, 0])
    res = evaluate_rank(d, q_pids, g_pids, q_cams, g_cams)
    assert res["num_valid_q"] == 1 and np.isnan(res["AP"][1]) and np.isnan(res["AP"][2])
    # one camera only: every match is same-camera → nothing to evaluate, and the error says why
    with pytest.raises(NoValidQueryError, match=r"DIFFERENT camera.*2 of the\s+3 query pids appear"):
        evaluate_rank(d, q_pids, g_pids, q_cams, np.zeros(4, dtype=int))


def test_bad_inputs_are_named():
    with pytest.raises(ValueError, match="g_pids has 3 entries"):
        evaluate_rank(np.zeros((2, 4)), [1, 2], [1, 2, 3], [0, 0], [1, 1, 1, 1])
    d = np.ones((2, 3))
    d[1, 2] = np.nan
    with pytest.raises(ValueError, match="non-finite value at query 1, gallery 2"):
        evaluate_rank(d, [1, 2], [1, 2, 2], [0, 0], [1, 1, 1])


@pytest.mark.parametrize("seed", range(6))
def test_random_against_reference_loop_with_ties(seed):
    """Random problems (float32/float64, integer distances = many ties, -0.0, junk, distractors, small
    chunks): identical to the per-query argsort loop, with numpy's quicksort tie order (torchreid's) by
    default and gallery order with ties='stable'."""
    rng = np.random.default_rng(seed)
    checked = 0
    for t in range(40):
        nq, ng = int(rng.integers(1, 30)), int(rng.integers(1, 120))
        if t % 2:
            d = rng.integers(-2, 6, (nq, ng)).astype(np.float32)
            d[d == 0] = -0.0
        else:
            d = rng.standard_normal((nq, ng)).astype(np.float32)
        if t % 3 == 0:
            d = d.astype(np.float64)
        qp, gp = rng.integers(-1, 5, nq), rng.integers(-1, 5, ng)
        qc, gc = rng.integers(0, 3, nq), rng.integers(0, 3, ng)
        max_rank = int(rng.integers(1, 60))
        for ties, kind in (("numpy", "quicksort"), ("stable", "stable")):
            try:
                ref = evaluate_rank_reference(d, qp, gp, qc, gc, max_rank=max_rank, kind=kind)
            except NoValidQueryError:
                with pytest.raises(NoValidQueryError):
                    evaluate_rank(d, qp, gp, qc, gc, max_rank=max_rank, ties=ties)
                continue
            res = evaluate_rank(d, qp, gp, qc, gc, max_rank=max_rank, ties=ties,
                                chunk_elems=int(rng.integers(1, 400)))
            assert res["num_valid_q"] == ref["num_valid_q"]
            np.testing.assert_array_equal(res["cmc"], ref["cmc"])
            assert res["mAP"] == pytest.approx(ref["mAP"], abs=1e-12)
            assert res["mINP"] == pytest.approx(ref["mINP"], abs=1e-12)
            checked += 1
    assert checked > 40


def test_ties_follow_numpy_argsort_of_the_row():
    # a match tied with non-matches: torchreid's order is whatever np.argsort does on the row
    d = np.array([[0.5, 0.5, 0.5, 0.5, 0.2]], dtype=np.float32)
    g_pids = np.array([2, 1, 3, 4, 5])
    args = (d, np.array([1]), g_pids, np.array([0]), np.array([1, 1, 1, 1, 1]))
    order = np.argsort(d[0])
    expected_rank = int(np.flatnonzero(g_pids[order] == 1)[0])
    res = evaluate_rank(*args)
    assert res["num_tie_queries"] == 1
    assert res["first_match_rank"].tolist() == [expected_rank]
    assert evaluate_rank(*args, ties="stable")["first_match_rank"].tolist() == [2]  # gallery order


def _features(n_ids=12, per_id=5, dim=16, seed=0):
    g = torch.Generator().manual_seed(seed)
    centres = torch.randn(n_ids, dim, generator=g)
    pids = torch.arange(n_ids).repeat_interleave(per_id) + 1
    feats = centres[pids - 1] + 0.9 * torch.randn(pids.numel(), dim, generator=g)
    camids = torch.randint(0, 4, (pids.numel(),), generator=g)
    is_query = torch.zeros(pids.numel(), dtype=torch.bool)
    is_query[::per_id] = True
    pids[torch.randperm(pids.numel(), generator=g)[:6]] = 0  # a few distractors
    is_query &= pids > 0
    return feats, pids, camids, is_query


@pytest.mark.parametrize("distance", ["cosine", "euclidean"])
def test_metric_equals_function(distance):
    feats, pids, camids, isq = _features()
    m = RankMetrics(distance=distance)
    for sl in torch.arange(feats.shape[0]).split(7):
        m.update(feats[sl], pids[sl], camids[sl], isq[sl])
    out = m.compute()
    dist = compute_distance_matrix(feats[isq], feats[~isq], distance)
    ref = evaluate_rank(dist, pids[isq], pids[~isq], camids[isq], camids[~isq])
    assert float(out["mAP"]) == pytest.approx(ref["mAP"], abs=1e-12)
    assert float(out["rank1"]) == pytest.approx(float(ref["cmc"][0]))
    assert float(out["rank5"]) == pytest.approx(float(ref["cmc"][4]))
    assert float(out["mINP"]) == pytest.approx(ref["mINP"], abs=1e-12)
    if distance == "cosine":  # cosine distance = 1 - cos
        qn = torch.nn.functional.normalize(feats[isq], dim=1)
        gn = torch.nn.functional.normalize(feats[~isq], dim=1)
        torch.testing.assert_close(dist, 1 - qn @ gn.T)


def test_metric_index_drops_repeats_and_restores_order():
    feats, pids, camids, isq = _features(seed=1)
    n = feats.shape[0]
    plain = RankMetrics()
    plain.update(feats, pids, camids, isq)
    expected = plain.compute()
    m = RankMetrics()
    perm = torch.cat([torch.randperm(n, generator=torch.Generator().manual_seed(3)), torch.arange(3)])
    for sl in perm.split(9):
        m.update(feats[sl], pids[sl], camids[sl], isq[sl], index=sl)
    got = m.compute()
    for k in expected:
        assert float(got[k]) == float(expected[k]), k


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _ddp_worker(rank, world, port, path):
    import torch.distributed as dist

    os.environ["MASTER_ADDR"], os.environ["MASTER_PORT"] = "127.0.0.1", str(port)
    torch.set_num_threads(1)
    dist.init_process_group("gloo", rank=rank, world_size=world)
    try:
        feats, pids, camids, isq = _features(seed=2)
        n = feats.shape[0]
        # what torch's DistributedSampler(shuffle=False) does: pad by repeating, then interleave
        per = -(-n // world)
        idx = torch.cat([torch.arange(n), torch.arange(per * world - n)])[rank::world]
        m = RankMetrics()
        for sl in idx.split(4):
            m.update(feats[sl], pids[sl], camids[sl], isq[sl], index=sl)
        out = {k: float(v) for k, v in m.compute().items()}
        torch.save(out, f"{path}.{rank}")
    finally:
        dist.destroy_process_group()


def test_metric_under_ddp_equals_single_process(tmp_path):
    import torch.multiprocessing as mp

    feats, pids, camids, isq = _features(seed=2)
    single = RankMetrics()
    single.update(feats, pids, camids, isq)
    expected = {k: float(v) for k, v in single.compute().items()}
    mp.spawn(_ddp_worker, args=(2, _free_port(), str(tmp_path / "out")), nprocs=2, join=True)
    for rank in range(2):
        got = torch.load(f"{tmp_path / 'out'}.{rank}", weights_only=True)
        assert got == expected
