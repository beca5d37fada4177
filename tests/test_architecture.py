"""The architecture, checked on every run: import layers (import-linter's contracts in pyproject.toml),
no import circles, one seam for delivery models and one adapter for RQ's storage."""

import re
import subprocess
import sys
import tomllib
from pathlib import Path

import grimp

BASE_DIR = Path(__file__).resolve().parent.parent
APPS = ("prepsite", "sandbox", "topics")


def first_party_sources(*, suffixes=(".py",)) -> list[Path]:
    return [
        path
        for app in (*APPS, "templates")
        for path in sorted((BASE_DIR / app).rglob("*"))
        if path.suffix in suffixes and "migrations" not in path.parts and "content" not in path.parts
    ]


def test_import_layers_hold_as_the_contracts_in_pyproject_say():
    lint_imports = Path(sys.executable).parent / "lint-imports"
    result = subprocess.run([str(lint_imports)], cwd=BASE_DIR, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    kept = re.search(r"Contracts: (\d+) kept, 0 broken", result.stdout)
    assert kept, result.stdout
    assert int(kept.group(1)) >= 5


def test_no_import_circles_between_first_party_modules():
    """Function-local imports count too: grimp sees them, so a circle cannot hide inside a function."""
    graph = grimp.build_graph(*APPS, cache_dir=None)
    circles = set()
    for module in sorted(graph.modules):
        for imported in graph.find_modules_directly_imported_by(module):
            if imported.startswith(module + ".") or module.startswith(imported + "."):
                continue  # a package and its own modules
            back = graph.find_shortest_chain(importer=imported, imported=module)
            if back:
                circles.add(" -> ".join((module, *back)))
    assert not circles, "import circles:\n" + "\n".join(sorted(circles))


MODEL_NAME_COMPARISON = re.compile(
    r"""(==|!=)\s*b?["'](rq|stream|log)["']|["'](rq|stream|log)["']\s*(==|!=)|\bin\s*[(\[{]\s*["'](rq|stream|log)["']"""
)


def test_no_code_outside_the_delivery_package_asks_which_model_it_holds():
    found = [
        f"{path.relative_to(BASE_DIR)}:{n}: {line.strip()}"
        for path in first_party_sources(suffixes=(".py", ".html"))
        if path.relative_to(BASE_DIR).parts[:2] != ("sandbox", "delivery")
        for n, line in enumerate(path.read_text().splitlines(), 1)
        if MODEL_NAME_COMPARISON.search(line)
    ]
    assert not found, "\n".join(found)


def test_only_the_rq_storage_adapter_spells_rqs_keys():
    found = [
        f"{path.relative_to(BASE_DIR)}:{n}: {line.strip()}"
        for path in first_party_sources()
        if path != BASE_DIR / "sandbox" / "engine" / "rq_storage.py"
        for n, line in enumerate(path.read_text().splitlines(), 1)
        if re.search(r"""["']rq:""", line) or ".lrem(" in line
    ]
    assert not found, "\n".join(found)


def test_every_study_module_is_under_the_study_contract():
    """The Study contract lists its modules (Drills live inside topics/): a new Study module must join it."""
    config = tomllib.loads((BASE_DIR / "pyproject.toml").read_text())["tool"]["importlinter"]["contracts"]
    listed = set(next(c for c in config if c["name"].startswith("Study never"))["source_modules"])
    study = {
        "topics." + (path.stem if path.suffix == ".py" else path.name)
        for path in (BASE_DIR / "topics").iterdir()
        if path.name not in {"__init__.py", "__pycache__", "drills", "migrations", "content"}
        and (path.suffix == ".py" or path.is_dir())
    }
    assert study <= listed, sorted(study - listed)


def test_no_module_is_over_600_lines():
    """A module that long carries several jobs; split it along them (migrations and content aside)."""
    long = {
        str(path.relative_to(BASE_DIR)): n
        for app in APPS
        for path in (BASE_DIR / app).rglob("*.py")
        if "migrations" not in path.parts and (n := len(path.read_text().splitlines())) > 600
    }
    assert not long, long
