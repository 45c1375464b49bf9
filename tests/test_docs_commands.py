"""Every `python main.py …` command shown in the README and docs/ parses: config files exist, options and values are
valid (`--print_config`, which stops before any model is loaded). A renamed option or config cannot leave a stale
command in the docs. Each candidate of a shown `python scripts/select_settings.py …` grid parses as its `fit` would
run, and each shown `python scripts/select_across.py …` reproduces the committed choice in results/selection/."""
from __future__ import annotations

import contextlib
import io
import re
import shlex

import pytest

from tests.conftest import ROOT

PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]


def shown_commands(program: str = "python main.py ") -> list[tuple[str, str]]:
    """(page, command) for each complete command in a ```bash block (placeholders such as `...` or `<x>` skipped)."""
    found = []
    for page in PAGES:
        for block in re.findall(r"```bash\n(.*?)```", page.read_text(), flags=re.S):
            joined = re.sub(r"\\\n\s*", " ", block)
            for line in joined.splitlines():
                line = re.sub(r"^(\w+=\S+\s+)+", "", line.split("  #")[0].strip())  # OMP_NUM_THREADS=1 python … → python …
                if line.startswith(program) and not any(p in line for p in ("...", "…", "<", "path/to")):
                    found.append((str(page.relative_to(ROOT)), line))
    return found


COMMANDS = shown_commands()
ACROSS_BENCHMARKS = shown_commands("python scripts/select_across.py ")
SELECTIONS = shown_commands("python scripts/select_settings.py ")


def test_the_docs_show_commands():
    assert len(COMMANDS) >= 10 and any(page.startswith("docs/") for page, _ in COMMANDS)
    assert ACROSS_BENCHMARKS, "the cli page shows scripts/select_across.py"
    assert len(SELECTIONS) >= 2, "the cli and t5 pages show scripts/select_settings.py"


@pytest.mark.parametrize(("page", "command"), COMMANDS, ids=[f"{p}:{i}" for i, (p, _) in enumerate(COMMANDS)])
def test_a_shown_command_parses(page, command, monkeypatch):
    import dawe_merge.families.text  # noqa: F401  (short class names, as main.py imports them)
    import dawe_merge.methods  # noqa: F401
    from dawe_merge.cli import cli_main
    from dawe_merge.run_checks import check_config_files

    monkeypatch.chdir(ROOT)
    args = shlex.split(command)[2:]
    check_config_files(args)
    with contextlib.redirect_stdout(io.StringIO()), pytest.raises(SystemExit) as stopped:
        cli_main([*args, "--print_config"])
    assert stopped.value.code in (0, None), f"{page}: {command}"


@pytest.mark.parametrize(("page", "command"), ACROSS_BENCHMARKS, ids=[f"{p}:{i}" for i, (p, _) in enumerate(ACROSS_BENCHMARKS)])
def test_a_shown_selection_across_benchmarks_reproduces_the_committed_choice(page, command, monkeypatch, tmp_path):
    """The shown command, run on the committed per-benchmark selections, chooses what results/selection/ holds."""
    import json

    from scripts.select_across import main

    monkeypatch.chdir(ROOT)
    args = shlex.split(command)[2:]
    chosen = main([*args, "--out", str(tmp_path)])
    method = json.loads((ROOT / args[0]).read_text())["method"]
    out = args[args.index("--out") + 1] if "--out" in args else "results/selection"
    committed = json.loads((ROOT / out / f"{method}.json").read_text())
    assert chosen == committed["chosen"], f"{page}: {command}"


@pytest.mark.parametrize(("page", "command"), SELECTIONS, ids=[f"{p}:{i}" for i, (p, _) in enumerate(SELECTIONS)])
def test_every_candidate_of_a_shown_selection_parses(page, command, monkeypatch, tmp_path):
    """Each grid value reaches its option as the candidate's `fit` (static methods: `validate`) gets it (a quoted Literal
    choice would fail here)."""
    import json

    import dawe_merge.families.text  # noqa: F401
    import dawe_merge.methods  # noqa: F401
    from dawe_merge.cli import cli_main
    from scripts.select_settings import candidate_args, candidates_of, parse

    monkeypatch.chdir(ROOT)
    args, config, extra = parse(shlex.split(command)[2:])
    for setting in candidates_of(json.loads(args.grid)):
        with contextlib.redirect_stdout(io.StringIO()), pytest.raises(SystemExit) as stopped:
            cli_main([*candidate_args(config, args.method, setting, tmp_path, extra), "--print_config"])
        assert stopped.value.code in (0, None), f"{page}: {command} with {setting}"
