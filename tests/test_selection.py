"""Choosing an adapted state never reads a test label: best_validation keeps the best state monitored on the
validation splits (held out from the training data), the start (task arithmetic) among the candidates."""
from __future__ import annotations

import json

import lightning as L
import pytest
import torch

from dawe_merge.errors import ConfigError
from dawe_merge.models.compatibility import IncompatibleCheckpointError
from tests.conftest import TASKS, method_config, pool_overrides, quiet_trainer, run_cli

STEPS = ["--trainer.max_steps", "4", "--trainer.val_check_interval", "2", "--trainer.limit_val_batches", "1"]


def _args(method: str, data_config, pool, tmp_path, *extra: str) -> list[str]:
    return ["--config", str(data_config), "--config", method_config(method), *pool_overrides(pool), *quiet_trainer(tmp_path), *extra]


def _report(tmp_path, method: str) -> dict:
    return json.loads((tmp_path / "results/tiny" / method / "report.json").read_text())


@pytest.mark.parametrize("method", ["adamerging_task_wise", "dawe_task_wise"])
def test_best_validation_evaluates_the_best_monitored_state_never_below_the_start(method, tiny_pool, data_config, tmp_path):
    select = ["--model.init_args.selection", "best_validation", "--model.init_args.lr", "0.5"]  # a large lr: states differ
    cli = run_cli(["fit", *_args(method, data_config, tiny_pool, tmp_path, *select, *STEPS)])
    history, best = cli.model.history, cli.model.best_validation
    assert [row["step"] for row in history] == [0.0, 2.0, 4.0], "the start is monitored, then every val_check_interval"
    averages = [row["average"] for row in history]
    assert best["average"] == max(averages) >= averages[0], "never below the start on the validation data"
    assert best["step"] == history[averages.index(max(averages))]["step"], "ties keep the earlier state"
    for name, value in best["state"].items():  # the module leaves fit holding the selected state
        assert (dict(cli.model.named_parameters()).get(name, value) == value).all()

    run_cli(["test", *_args(method, data_config, tiny_pool, tmp_path, *select, "--ckpt_path", str(tmp_path / "runs/checkpoints/last.ckpt"))])
    selected = _report(tmp_path, method)
    tied = [int(r["step"]) for r in history if r["average"] == best["average"] and r["step"] != best["step"]]
    assert selected["selection"] == {"rule": "best_validation", "step": int(best["step"]), "validation_average": best["average"],
                                     **({"tied_with_later_steps": tied} if tied else {})}  # fmt: skip
    # the same state reached another way: task arithmetic for the start, else the checkpoint written at that step
    if best["step"] == 0:
        run_cli(["test", *_args("task_arithmetic", data_config, tiny_pool, tmp_path)])
        same = _report(tmp_path, "task_arithmetic")
    else:
        step_ckpt = next((tmp_path / "runs/checkpoints").glob(f"*step={best['step']}.ckpt"))
        run_cli(["test", *_args(method, data_config, tiny_pool, tmp_path / "again", "--model.init_args.lr", "0.5", "--ckpt_path", str(step_ckpt))])
        same = _report(tmp_path / "again", method)
    tasks = [k for k, v in selected.items() if isinstance(v, dict) and "accuracy" in v]
    assert len(tasks) == len(TASKS) + 1, "every task and the average"
    for task in tasks:
        assert selected[task]["accuracy"] == same[task]["accuracy"]
        assert selected[task]["loss"] == pytest.approx(same[task]["loss"], abs=1e-5)


def test_best_validation_refuses_to_select_on_test_labels(tiny_pool, data_config, tmp_path):
    args = _args("dawe_task_wise", data_config, tiny_pool, tmp_path, "--model.init_args.selection", "best_validation", "--data.init_args.monitor_split", "test", *STEPS)
    with pytest.raises(ConfigError, match="must not read test labels"):
        run_cli(["fit", *args])


def test_best_validation_keeps_the_start_among_the_candidates(tiny_pool, data_config, tmp_path):
    args = _args("adamerging_task_wise", data_config, tiny_pool, tmp_path, "--model.init_args.selection", "best_validation", "--trainer.num_sanity_val_steps", "0", *STEPS)
    with pytest.raises(ConfigError, match="num_sanity_val_steps -1"):
        run_cli(["fit", *args])


def test_a_checkpoint_monitored_on_test_labels_has_no_selected_state(tiny_pool, data_config, tmp_path):
    run_cli(["fit", *_args("adamerging_task_wise", data_config, tiny_pool, tmp_path, "--data.init_args.monitor_split", "test", *STEPS)])
    ckpt = str(tmp_path / "runs/checkpoints/last.ckpt")
    with pytest.raises(IncompatibleCheckpointError, match="holds no state selected on validation data"):
        run_cli(["test", *_args("adamerging_task_wise", data_config, tiny_pool, tmp_path, "--model.init_args.selection", "best_validation", "--ckpt_path", ckpt)])


def test_choose_prefers_accuracy_then_fewer_steps_then_the_earlier_candidate():
    from dawe_merge.reports.selection import choose

    def curve(*pairs):
        return [{"step": float(s), "average": a} for s, a in pairs]

    candidates = [{"setting": {"lr": 1}, "curve": curve((0, 0.5), (25, 0.7), (50, 0.7))},
                  {"setting": {"lr": 2}, "curve": curve((0, 0.5), (25, 0.6), (50, 0.7))}]  # fmt: skip
    chosen = choose(candidates)
    assert (chosen["candidate"], chosen["step"], chosen["average"], chosen["start_average"]) == (0, 25, 0.7, 0.5)
    candidates.append({"setting": {"lr": 3}, "curve": curve((0, 0.5), (75, 0.71))})
    assert (choose(candidates)["candidate"], choose(candidates)["step"]) == (2, 75)
    assert choose([{"setting": {}, "curve": curve((0, 0.5), (25, 0.4))}])["step"] == 0, "worse than the start: keep the start"


def test_the_selection_script_reads_no_test_label(tiny_pool, tmp_path):
    """Garbage test labels (permuted) leave every validation curve, and so the choice, exactly as they were."""
    import yaml

    from scripts.select_settings import main
    from tests.conftest import MINILM_FEATURES, TEXT_POOL
    from tests.test_adaptation import _saved_tasks

    records = []
    for garbage in (False, True):
        root = tmp_path / f"garbage_{garbage}"
        root.mkdir()
        config = {"model": {"init_args": {"modelpool": TEXT_POOL}}, "features": MINILM_FEATURES,
                  "data": {"class_path": "dawe_merge.families.text.TextTaskPool", "init_args": {"benchmark": "tiny", "adapt_batch_size": 4, "tasks": _saved_tasks(root, garbage)}}}  # fmt: skip
        (root / "data.yaml").write_text(yaml.safe_dump(config))
        experts = json.dumps({"animals": f"{tiny_pool['experts_dir']}/rotten_tomatoes", "colours": f"{tiny_pool['experts_dir']}/election_tweets"})
        fit = [*pool_overrides(tiny_pool), "--model.init_args.modelpool.init_args.experts", experts, "--trainer.accelerator", "cpu",
               "--trainer.enable_progress_bar", "false", *STEPS]  # fmt: skip
        main(["--config", str(root / "data.yaml"), "--method", "adamerging_task_wise", "--grid", '{"lr": [0.01, 0.5]}',
              "--out", str(root / "selection"), "--runs", str(root / "runs"), "--", *fit])  # fmt: skip
        record = json.loads((root / "selection/adamerging_task_wise.json").read_text())
        assert len(record["candidates"]) == 2 and all(len(c["curve"]) == 3 for c in record["candidates"])
        assert "Chosen: lr = " in (root / "selection/adamerging_task_wise.md").read_text()
        records.append({k: v for k, v in record.items() if k != "command"})
    assert records[0] == records[1]


def test_a_grid_of_choices_passes_them_unquoted():
    """A Literal option (entropy_over) rejects '"vocabulary"'; numbers and booleans go as JSON."""
    from scripts.select_settings import command_line

    setting = {"model.init_args.modelpool.init_args.entropy_over": "vocabulary", "lr": 1.0e-4, "standardize_features": True}
    assert command_line(setting) == ["--model.init_args.modelpool.init_args.entropy_over", "vocabulary",
                                     "--model.init_args.lr", "0.0001", "--model.init_args.standardize_features", "true"]  # fmt: skip


def test_best_validation_loads_a_later_selected_state_from_the_checkpoint(tiny_pool, data_config, tmp_path):
    """The selected state, not the last, is what `test` evaluates: a last.ckpt whose selected state is step 2's
    evaluates exactly as step 2's own checkpoint does with `last`."""
    import torch

    method, lr = "dawe_task_wise", ["--model.init_args.lr", "0.5"]
    run_cli(["fit", *_args(method, data_config, tiny_pool, tmp_path, *lr, *STEPS)])
    checkpoints = tmp_path / "runs/checkpoints"
    step_2 = torch.load(next(checkpoints.glob("*step=2.ckpt")), weights_only=True)
    last = torch.load(checkpoints / "last.ckpt", weights_only=True)
    assert any(not torch.equal(step_2["state_dict"][k], last["state_dict"][k]) for k in last["state_dict"]), "the states must differ"
    last["best_validation"] = {"step": 2, "average": 1.0, "state": step_2["state_dict"]}
    torch.save(last, tmp_path / "selected_step_2.ckpt")
    select = ["--model.init_args.selection", "best_validation"]
    run_cli(["test", *_args(method, data_config, tiny_pool, tmp_path / "a", *lr, *select, "--ckpt_path", str(tmp_path / "selected_step_2.ckpt"))])
    run_cli(["test", *_args(method, data_config, tiny_pool, tmp_path / "b", *lr, "--ckpt_path", str(next(checkpoints.glob("*step=2.ckpt"))))])
    run_cli(["test", *_args(method, data_config, tiny_pool, tmp_path / "c", *lr, "--ckpt_path", str(checkpoints / "last.ckpt"))])
    a, b, c = (_report(tmp_path / x, method) for x in "abc")
    assert a["average"]["loss"] == pytest.approx(b["average"]["loss"], abs=1e-6)
    assert a["average"]["loss"] != pytest.approx(c["average"]["loss"], abs=1e-6), "the last state evaluates differently"


class ValidationFeaturesAreTheBatchOwn(L.Callback):
    """During `fit`, DAWE's features of a validation batch must be that batch's own, never the cached features of the
    test example that shares its index (the cache holds the test inputs adaptation trains on)."""

    def __init__(self) -> None:
        self.checked = 0

    def on_validation_batch_start(self, trainer, pl_module, batch, batch_idx, dataloader_idx=0) -> None:
        task = pl_module.task_names[dataloader_idx]
        own = pl_module.feature_extractor.features(batch).to(pl_module.device)
        torch.testing.assert_close(pl_module.features(batch, task), own, atol=1e-5, rtol=1e-5)
        self.checked += 1


def test_dawe_monitoring_reads_the_validation_inputs_own_features(tiny_pool, data_config, tmp_path):
    callbacks = json.dumps({"class_path": "tests.test_selection.ValidationFeaturesAreTheBatchOwn"})
    cli = run_cli(["fit", *_args("dawe_task_wise", data_config, tiny_pool, tmp_path, *STEPS, "--trainer.callbacks+", callbacks)])
    check = next(c for c in cli.trainer.callbacks if type(c).__name__ == "ValidationFeaturesAreTheBatchOwn")
    assert check.checked == 3 * len(TASKS), "step 0, 2 and 4, one batch per task"
    assert len(cli.model._feature_cache) > 0, "training still reads the cache of test inputs"


def test_choose_across_takes_the_best_mean_gain_not_the_best_on_one_benchmark(tmp_path):
    """Setting a wins big on one benchmark and falls below its start on the other; b gains a little on both."""
    from dawe_merge.reports.selection import choose_across
    from scripts.select_across import main

    def record(benchmark, start, a, b):
        curve = lambda values: [{"step": float(25 * i), "average": v} for i, v in enumerate([start, *values])]  # noqa: E731
        return {"method": "dawe_task_wise", "benchmark": benchmark,
                "candidates": [{"setting": {"lr": 1}, "curve": curve(a)}, {"setting": {"lr": 2}, "curve": curve(b)}]}  # fmt: skip

    text, vision = record("text", 0.80, [0.90, 0.86], [0.82, 0.83]), record("vision", 0.60, [0.50, 0.40], [0.62, 0.63])
    chosen = choose_across([text, vision])
    # mean gains: lr 1: (0.10 - 0.10) / 2 = 0 at step 25, (0.06 - 0.20) / 2 < 0 at 50; lr 2: 0.02 at 25, 0.03 at 50
    assert (chosen["setting"], chosen["step"]) == ({"lr": 2}, 50)
    assert abs(chosen["average"] - 0.03) < 1e-12 and chosen["gains"] == pytest.approx({"text": 0.03, "vision": 0.03})
    files = []
    for name, rec in (("t.json", text), ("v.json", vision)):
        (tmp_path / name).write_text(json.dumps(rec))
        files.append(str(tmp_path / name))
    assert main([*files, "--out", str(tmp_path / "across")])["setting"] == {"lr": 2}
    md = (tmp_path / "across/dawe_task_wise.md").read_text()
    assert "Chosen: lr = 2, step 50" in md and "text +3.00, vision +3.00" in md and "| 1 | +0.00 | +0.00 | -7.00 |" in md
    with pytest.raises(ValueError, match="given twice"):
        choose_across([text, text])
    with pytest.raises(ValueError, match="written by scripts/select_settings.py"):
        choose_across([text, json.loads((tmp_path / "across/dawe_task_wise.json").read_text())])
    vision["method"] = "adamerging_task_wise"
    with pytest.raises(ValueError, match="different methods"):
        choose_across([text, vision])
    with pytest.raises(SystemExit):
        main([files[0], str(tmp_path / "missing.json")])


def test_a_tie_that_decided_the_selection_is_recorded():
    from dawe_merge.methods.adamerging import AdaMerging

    method = AdaMerging.__new__(AdaMerging)
    method.selection = "best_validation"
    method.history = [{"step": 0, "average": 0.5}, {"step": 25, "average": 0.75}, {"step": 50, "average": 0.75}, {"step": 75, "average": 0.6}]
    method.best_validation = {"step": 25, "average": 0.75, "state": {}}  # the earlier of the tied states, as fit keeps it
    assert method.selection_record() == {"rule": "best_validation", "step": 25, "validation_average": 0.75, "tied_with_later_steps": [50]}
    method.history[2]["average"] = 0.7
    assert "tied_with_later_steps" not in method.selection_record()


def test_a_static_methods_settings_are_scored_by_validate_against_task_arithmetic(tiny_pool, data_config, tmp_path):
    """DARE with nothing dropped, merged by task arithmetic, is task arithmetic: its validation average equals the
    reference the script scores, so its gain is exactly 0; across two benchmarks the gains are measured from each one's
    task arithmetic."""
    from dawe_merge.reports.selection import choose_across
    from scripts.select_settings import main

    common = [*pool_overrides(tiny_pool), "--trainer.accelerator", "cpu", "--trainer.enable_progress_bar", "false"]
    main(["--config", str(data_config), "--method", "dare", "--grid", '{"drop_rate": [0.0, 0.9], "merge": ["task_arithmetic"]}',
          "--out", str(tmp_path / "selection"), "--runs", str(tmp_path / "runs"), "--", *common])  # fmt: skip
    record = json.loads((tmp_path / "selection/dare.json").read_text())
    kept, dropped = (c["curve"] for c in record["candidates"])
    assert [r["step"] for r in kept] == [0] and len(dropped) == 1
    assert kept[0]["average"] == record["task_arithmetic_average"]
    assert "task arithmetic on the same splits" in (tmp_path / "selection/dare.md").read_text()
    other = {**record, "benchmark": "other", "task_arithmetic_average": record["task_arithmetic_average"] - 0.25}
    across = choose_across([record, other])
    assert across["gains"]["tiny"] == pytest.approx(across["gains"]["other"] - 0.25)
    assert across["gains"]["tiny"] == pytest.approx(max(kept[0]["average"], dropped[0]["average"]) - record["task_arithmetic_average"])


def test_the_held_out_tasks_refuse_every_selection(capsys):
    """Nothing is ever chosen on the held-out corpora: the selection script stops before the first candidate runs."""
    from scripts.select_settings import main
    from tests.conftest import ROOT

    with pytest.raises(SystemExit, match="health_tweets_source, news_outlet, commons_party, bundestag_party are held out"):
        main(["--config", str(ROOT / "configs/benchmarks/text_minilm_heldout.yaml"), "--method", "dawe_task_wise",
              "--grid", '{"lr": [0.001]}', "--out", "unused", "--runs", "unused"])  # fmt: skip
    assert "selection: candidate" not in capsys.readouterr().err


def test_selection_message_names_the_start_beside_the_chosen_step():
    from dawe_merge.methods.validation_selection import selection_message

    history = [{"step": 0.0, "average": 0.5}, {"step": 25.0, "average": 0.625}]
    assert selection_message({"step": 25, "average": 0.625}, history) == (
        "selection: the state of step 25 (validation average 62.50; the start (step 0): 50.00)")
    assert selection_message({"step": 25, "average": 0.625}, history[1:]) == "selection: the state of step 25 (validation average 62.50)"
