"""Every `python main.py …` command shown in the README and docs/ parses: config files exist, options and values are
valid (`--print_config`, which stops before any model is loaded). A renamed option or config cannot leave a stale
command in the docs."""
from __future__ import annotations

import contextlib
import io
import re
import shlex

import pytest

from tests.conftest import ROOT

PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]


def shown_commands() -> list[tuple[str, str]]:
    """(page, command) for each complete command in a ```bash block (placeholders such as `...` or `<x>` skipped)."""
    found = []
    for page in PAGES:
        for block in re.findall(r"```bash\n(.*?)```", page.read_text(), flags=re.S):
            joined = re.sub(r"\\\n\s*", " ", block)
            for line in joined.splitlines():
                line = line.split("  #")[0].strip()
                if line.startswith("python main.py ") and not any(p in line for p in ("...", "…", "<", "path/to")):
                    found.append((str(page.relative_to(ROOT)), line))
    return found


COMMANDS = shown_commands()


def test_the_docs_show_commands():
    assert len(COMMANDS) >= 10 and any(page.startswith("docs/") for page, _ in COMMANDS)


@pytest.mark.parametrize(("page", "command"), COMMANDS, ids=[f"{p}:{i}" for i, (p, _) in enumerate(COMMANDS)])
def test_a_shown_command_parses(page, command, monkeypatch):
    import src.families.text  # noqa: F401  (short class names, as main.py imports them)
    import src.methods  # noqa: F401
    from src.cli import cli_main
    from src.run_checks import check_config_files

    monkeypatch.chdir(ROOT)
    args = shlex.split(command)[2:]
    check_config_files(args)
    with contextlib.redirect_stdout(io.StringIO()), pytest.raises(SystemExit) as stopped:
        cli_main([*args, "--print_config"])
    assert stopped.value.code in (0, None), f"{page}: {command}"
