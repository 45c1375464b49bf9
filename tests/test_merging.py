"""Merge functions against independently computed expectations."""
import pytest
import torch

from dawe_merge.merging import simple_average, stack_task_vectors, task_arithmetic, task_vector, ties_merge
from dawe_merge.merging.state_dict import IncompatibleExpertError, check_compatible


def _random_state(seed: int) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return {"a.weight": torch.randn(4, 3, generator=g), "a.bias": torch.randn(4, generator=g), "b": torch.randn(5, generator=g)}


def test_task_vector_is_difference():
    pre, exp = _random_state(0), _random_state(1)
    tv = task_vector(pre, exp)
    for k in pre:
        torch.testing.assert_close(tv[k], exp[k] - pre[k])


def test_task_arithmetic_lambda_zero_is_pretrained():
    pre = _random_state(0)
    tvs = [task_vector(pre, _random_state(s)) for s in (1, 2, 3)]
    merged = task_arithmetic(pre, tvs, 0.0)
    for k in pre:
        torch.testing.assert_close(merged[k], pre[k])


def test_task_arithmetic_formula():
    pre = _random_state(0)
    experts = [_random_state(s) for s in (1, 2)]
    merged = task_arithmetic(pre, [task_vector(pre, e) for e in experts], 0.5)
    for k in pre:
        expected = pre[k] + 0.5 * ((experts[0][k] - pre[k]) + (experts[1][k] - pre[k]))
        torch.testing.assert_close(merged[k], expected)


def test_simple_average_of_identical_experts_is_that_expert():
    expert = _random_state(4)
    merged = simple_average([expert, {k: v.clone() for k, v in expert.items()}, expert])
    for k in expert:
        torch.testing.assert_close(merged[k], expert[k])


def test_ties_keep_all_one_expert_equals_task_arithmetic():
    pre = _random_state(0)
    tvs = [task_vector(pre, _random_state(7))]
    ties = ties_merge(pre, tvs, scaling=0.3, top_k_percent=100)
    ta = task_arithmetic(pre, tvs, 0.3)
    for k in pre:
        torch.testing.assert_close(ties[k], ta[k])


def test_ties_hand_computed_three_entries():
    # Three tasks over a 3-entry model. Reference convention: k = d - floor(p * d) and entries with
    # |x| >= k-th smallest are kept; p = 0.34 gives k = 2, so the two largest magnitudes survive.
    pre = {"w": torch.zeros(3)}
    tvs = [{"w": torch.tensor([1.0, -2.0, 0.5])}, {"w": torch.tensor([-3.0, 1.0, 0.2])}, {"w": torch.tensor([0.1, -1.0, 4.0])}]
    # trimmed: t1 [1,-2,0], t2 [-3,1,0], t3 [0,-1,4]; sums [-2,-2,4] → signs [-,-,+]
    # agreeing entries: e0: -3 → -3; e1: -2, -1 → -3; e2: 4 → 4
    merged = ties_merge(pre, tvs, scaling=1.0, top_k_percent=34)
    torch.testing.assert_close(merged["w"], torch.tensor([-3.0, -3.0, 4.0]))
    mean = ties_merge(pre, tvs, scaling=1.0, top_k_percent=34, merge_func="mean")
    torch.testing.assert_close(mean["w"], torch.tensor([-3.0, -1.5, 4.0]))


def test_stack_task_vectors_shape():
    pre = _random_state(0)
    stacked = stack_task_vectors([task_vector(pre, _random_state(s)) for s in (1, 2, 3)])
    assert stacked["a.weight"].shape == (3, 4, 3)


def test_shape_mismatch_names_expert_tensor_and_shapes():
    pre = _random_state(0)
    bad = dict(_random_state(1), **{"a.weight": torch.zeros(4, 5)})
    with pytest.raises(IncompatibleExpertError, match=r"newsgroups.*a\.weight.*\(4, 5\).*\(4, 3\)"):
        check_compatible(pre, bad, "newsgroups")


def test_missing_tensor_is_reported():
    pre = _random_state(0)
    bad = {k: v for k, v in _random_state(1).items() if k != "b"}
    with pytest.raises(IncompatibleExpertError, match="lacks tensors.*b"):
        check_compatible(pre, bad, "reuters")
