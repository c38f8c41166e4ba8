"""The docs site stays whole: a short README whose links resolve, every page of docs/ in the nav
of mkdocs.yml and every nav entry a page, and the generated reference sections complete.
``mkdocs build --strict`` in .ci/run checks the links between pages and the anchors."""

from __future__ import annotations

import importlib.util
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
README_MAX_LINES = 150


def nav_pages(entries: list[Any]) -> list[str]:
    found: list[str] = []
    for entry in entries:
        if isinstance(entry, str):
            found.append(entry)
        elif isinstance(entry, dict):
            for value in entry.values():
                found += nav_pages(value) if isinstance(value, list) else [value]
    return found


def mkdocs_config() -> dict[str, Any]:
    # mkdocs.yml names a Python function with a !!python/name tag; only its structure is read here.
    class Loader(yaml.SafeLoader):
        pass

    Loader.add_multi_constructor("tag:yaml.org,2002:python/", lambda loader, suffix, node: suffix)
    config: dict[str, Any] = yaml.load((ROOT / "mkdocs.yml").read_text(), Loader=Loader)
    return config


def hook() -> ModuleType:
    spec = importlib.util.spec_from_file_location("docs_generate", DOCS / "hooks" / "generate.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def test_the_readme_is_one_screen_or_two() -> None:
    lines = (ROOT / "README.md").read_text().splitlines()
    assert len(lines) <= README_MAX_LINES, f"README.md has {len(lines)} lines; move details into docs/"


def test_the_readme_links_resolve() -> None:
    text = (ROOT / "README.md").read_text()
    targets = re.findall(r"\]\(([^)#]+)(?:#[^)]*)?\)", text)
    assert targets
    missing = [t for t in targets if not t.startswith("http") and not (ROOT / t).exists()]
    assert missing == []


def test_the_readme_names_the_two_commands_and_the_end_of_gen1() -> None:
    text = (ROOT / "README.md").read_text()
    assert "backendauth-operator dev" in text and ".venv/bin/pytest" in text
    assert "2027-05-01" in text and "docs/how-to/hand-off.md" in text
    # The test command is the one .ci/run runs.
    assert ".venv/bin/pytest" in (ROOT / ".ci" / "run").read_text()


def test_every_page_is_in_the_nav_and_every_nav_entry_is_a_page() -> None:
    config = mkdocs_config()
    listed = nav_pages(config["nav"])
    pages = sorted(str(p.relative_to(DOCS)) for p in DOCS.rglob("*.md"))
    assert sorted(listed) == pages
    assert len(listed) == len(set(listed))


def test_the_hook_is_outside_the_operator_package_and_out_of_the_site() -> None:
    config = mkdocs_config()
    assert config["hooks"] == ["docs/hooks/generate.py"]
    assert "hooks/" in config["exclude_docs"]
    assert not (ROOT / "operator" / "backendauth_operator" / "generate.py").exists()


def test_every_generated_section_is_known_and_filled() -> None:
    generate = hook()
    markers = {}
    for page in DOCS.rglob("*.md"):
        for name in generate.MARKER.findall(page.read_text()):
            markers[name] = page
    assert set(markers) == set(generate.GENERATORS), "each generator has a page, each marker a generator"
    for page in set(markers.values()):
        assert not generate.MARKER.search(generate.generate(page.read_text()))
    with pytest.raises(ValueError, match="unknown generated section"):
        generate.generate("<!-- generated: nothing-of-the-sort -->")


def _paths(schema: dict[str, Any], path: str) -> list[str]:
    node = schema.get("items", schema) if schema.get("type") == "array" else schema
    suffix = "[]" if node is not schema else ""
    found = [path]
    for name, child in node.get("properties", {}).items():
        found += _paths(child, f"{path}{suffix}.{name}")
    return found


def test_the_spec_reference_has_every_field_of_the_committed_crd() -> None:
    generate = hook()
    crd = yaml.safe_load((ROOT / "crds" / "backendauths.amplifybackend.gitops.dev.yaml").read_text())
    schema = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    text = generate.spec_reference() + generate.status_reference()
    for top in ("spec", "status"):
        for path in _paths(schema["properties"][top], top):
            assert f"| `{path}` |" in text, path
    assert "| `spec.appId` | string | yes |" in text and "**immutable**" in text


def test_the_settings_metrics_and_commands_are_all_listed() -> None:
    from backendauth_operator.commands.cli import build_parser
    from backendauth_operator.config import Settings

    generate = hook()
    config = generate.config_reference()
    assert "`BACKENDAUTH_JOB_POLL_SECONDS` | number | `10.0`" in config
    assert config.count("\n| `") == len(Settings.model_fields)
    metrics = generate.metrics_reference()
    assert "`backendauth_aws_calls_total` | counter | `operation`, `outcome`, `account`" in metrics
    cli = generate.cli_reference()
    commands = re.findall(r"^## `backendauth-operator (\S+)`", cli, re.M)
    choices = next(a.choices for a in build_parser()._actions if isinstance(a.choices, dict))
    assert commands == list(choices)


def test_the_state_diagram_is_drawn_from_every_row_of_decide() -> None:
    generate = hook()
    rows = generate._decision_rows()
    diagram = generate.states_diagram()
    assert diagram.startswith("```mermaid\nflowchart")
    assert f"The {len(rows)} rows" in diagram and len(rows) > 100
    for reason in ("JobCompleted", "Throttled", "InvalidSpec", "AccountChanged", "deletion: let go"):
        assert reason in diagram, reason


def _build(config: Path, site: Path) -> subprocess.CompletedProcess[str]:
    mkdocs = Path(sys.executable).parent / "mkdocs"
    if not mkdocs.exists():
        if os.environ.get("CI") == "true":
            pytest.fail("mkdocs is not installed (pyproject's test extra names it)")
        pytest.skip("mkdocs is not installed")
    return subprocess.run(
        [str(mkdocs), "build", "--strict", "-f", str(config), "--site-dir", str(site)],
        capture_output=True, text=True, timeout=300, env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},
    )  # fmt: skip


def test_the_strict_build_passes_and_fails_on_a_broken_link(tmp_path: Path) -> None:
    """As .ci/run builds the site; and a copy with one link broken does not build."""
    good = _build(ROOT / "mkdocs.yml", tmp_path / "site")
    assert good.returncode == 0, good.stderr
    # Every row of every table has as many cells as its header (a stray | splits a cell).
    rows = 0
    for html in (tmp_path / "site").rglob("index.html"):
        for table in re.findall(r"<table>(.*?)</table>", html.read_text(), re.S):
            head, _, body = table.partition("</thead>")
            columns = len(re.findall(r"<th[ >]", head))
            for row in re.findall(r"<tr>(.*?)</tr>", body, re.S):
                rows += 1
                assert len(re.findall(r"<td[ >]", row)) == columns, (html, row[:200])
    assert rows > 300
    copy = tmp_path / "copy"
    shutil.copytree(DOCS, copy / "docs")
    (copy / "mkdocs.yml").write_text((ROOT / "mkdocs.yml").read_text())
    (copy / "tests").symlink_to(ROOT / "tests")  # the hook draws the diagram from tests/
    page = copy / "docs" / "index.md"
    page.write_text(page.read_text() + "\n[a page that is not there](nowhere.md)\n")
    broken = _build(copy / "mkdocs.yml", tmp_path / "site2")
    assert broken.returncode != 0 and "nowhere.md" in broken.stderr, broken.stderr


def test_the_layout_names_every_module_of_the_operator() -> None:
    layout = (DOCS / "explanation" / "architecture.md").read_text()
    package = ROOT / "operator" / "backendauth_operator"
    modules = sorted(p.relative_to(package) for p in package.rglob("*.py") if p.name != "__init__.py")
    assert len(modules) > 30  # the subpackages are walked, not only the top level
    unnamed = [str(m) for m in modules if not re.search(rf"^ +(\S+, )?{re.escape(m.name)}[ ,]", layout, re.M)]
    assert unnamed == []
    folders = {m.parent for m in modules if m.parent != Path()}
    assert [str(f) for f in sorted(folders) if f"  {f}/ " not in layout] == []


def test_generated_cells_keep_angle_brackets_and_pipes_as_written() -> None:
    generate = hook()
    cell = generate._cell("DIR/<namespace>/<name>.yaml a|b")
    assert cell == "DIR/&lt;namespace&gt;/&lt;name&gt;.yaml a\\|b"
    assert generate._code("a || b") == "`a || b`"  # no cell splits inside a code span
    cli = generate.cli_reference()
    assert "DIR/&lt;namespace&gt;/&lt;name&gt;.yaml" in cli
