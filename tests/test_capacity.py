"""The capacity model against figures computed by hand."""

from __future__ import annotations

import pytest

from selfplay.capacity import (Cluster, Workload, candidates_per_hour, estimate, gpu_tokens_per_candidate,
                               usd_per_verified_token)

CLUSTER = Cluster(gpus=8, tokens_per_s_per_replica=1000, checks_per_s_per_cpu=50, verify_cpus=4,
                  gpu_usd_per_hour=2.0, cpu_usd_per_hour=0.05)
# 490 completion tokens + 400 prompt tokens x 0.1 / K=4 = 500 GPU-token equivalents per candidate
WORK = Workload(k=4, tokens_per_candidate=490, yield_=0.25, prompt_tokens=400, prefill_weight=0.1)


def test_generation_bound_figures():
    assert gpu_tokens_per_candidate(WORK) == pytest.approx(500)
    result = estimate(CLUSTER, WORK)
    assert result.replicas == 8
    assert result.candidates_per_hour == pytest.approx(57_600)      # 8 x 1000 tok/s x 3600 / 500
    assert result.tasks_per_hour == pytest.approx(14_400)
    assert result.bottleneck == "generation"                        # verification: 4 x 50 x 3600 = 720k/h
    assert result.verified_tokens_per_hour == pytest.approx(7_056_000)   # 57.6k x 0.25 x 490
    assert result.usd_per_hour == pytest.approx(16.2)              # 8 x $2 + 4 x $0.05
    assert result.usd_per_million_verified_tokens == pytest.approx(16.2 / 7.056)


def test_a_larger_k_spreads_the_prompt_over_more_candidates():
    assert gpu_tokens_per_candidate(Workload(k=8, tokens_per_candidate=490, yield_=0.25, prompt_tokens=400)) == \
        pytest.approx(495)


def test_verification_bound_then_dedup_lifts_it():
    slow = Cluster(**{**CLUSTER.__dict__, "verify_cpus": 1, "checks_per_s_per_cpu": 10})
    assert candidates_per_hour(slow, WORK) == (pytest.approx(36_000), "verification")
    shared = Workload(**{**WORK.__dict__, "checks_per_candidate": 0.5})
    assert candidates_per_hour(slow, shared) == (pytest.approx(57_600), "generation")  # 72k/h of checks now


def test_the_single_driver_caps_a_large_cluster():
    capped = Cluster(**{**CLUSTER.__dict__, "driver_requests_per_s": 2.5})  # x K=4 = 10 candidates/s
    assert candidates_per_hour(capped, WORK) == (pytest.approx(36_000), "driver")


def test_tensor_parallel_replicas():
    tp2 = Cluster(**{**CLUSTER.__dict__, "gpus_per_replica": 2})
    assert estimate(tp2, WORK).replicas == 4
    assert estimate(tp2, WORK).candidates_per_hour == pytest.approx(28_800)


def test_zero_yield_costs_infinity_per_verified_token():
    assert usd_per_verified_token(CLUSTER, Workload(k=4, tokens_per_candidate=100, yield_=0.0)) == float("inf")
