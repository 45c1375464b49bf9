"""CoefficientTally: per-input-task means of the coefficients a test run used, and their sum over ranks."""
import torch

from dawe_merge.methods.coefficient_tally import CoefficientTally


def test_means_per_input_task_count_each_input_of_a_per_sample_batch_and_a_shared_batch_once():
    tally = CoefficientTally(["a", "b"], num_layers=3)
    per_sample = torch.arange(2 * 2 * 3, dtype=torch.float32).reshape(2, 2, 3)  # two inputs of task a
    shared = torch.full((2, 3), 5.0)  # one batch of task b sharing one merge
    tally.add("a", per_sample)
    tally.add("b", shared)
    summary = tally.summary(layer_names=["l0", "l1", "l2"])
    # task a: the mean of its two inputs' (2, 3) coefficients, then the mean over tensors per task vector
    mean_a = [(sum(range(0, 3)) + sum(range(6, 9))) / 6, (sum(range(3, 6)) + sum(range(9, 12))) / 6]
    assert summary["by_input_task"] == [mean_a, [5.0, 5.0]]
    expected_overall = ((per_sample.double().mean(0)) + shared.double()) / 2
    assert torch.allclose(torch.tensor(summary["per_tensor"], dtype=torch.float64), expected_overall)
    assert summary["tensor_names"] == ["l0", "l1", "l2"]
    assert CoefficientTally(["a"], 1).summary(None) is None  # nothing tested yet: no summary


def test_sum_over_ranks_adds_every_rank_and_keeps_a_task_only_another_rank_saw():
    rank0, rank1 = CoefficientTally(["a", "b"], num_layers=1), CoefficientTally(["a", "b"], num_layers=1)
    rank0.add("a", torch.tensor([[[1.0], [3.0]]]))
    rank1.add("a", torch.tensor([[[3.0], [1.0]]]))
    rank1.add("b", torch.tensor([[[2.0], [2.0]], [[4.0], [0.0]]]))
    sent: list[torch.Tensor] = []  # what rank 1 contributes to each all-reduce, in order
    rank1.sum_over_ranks(lambda local: sent.append(local.clone()) or local)
    rank0.sum_over_ranks(lambda local: local + sent.pop(0))
    summary = rank0.summary(None)
    assert summary["by_input_task"] == [[2.0, 2.0], [3.0, 1.0]]  # a: (1+3)/2, (3+1)/2; b: (2+4)/2, (2+0)/2
    assert summary["per_tensor"] is None and not sent
