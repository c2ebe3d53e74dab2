"""The tree's promises, checked: what ``from sae import`` gives, which part may import which, where Streamlit lives.

The parts of ``sae`` form layers, lowest first; a module may import its own part and the parts below it,
never one above (imports under ``if TYPE_CHECKING:`` are type hints only and do not count):

    core < data < evaluation < training < workers < experiments < viz < runs < app < ui

Streamlit is imported only by ``sae/ui``, ``dashboard.py`` and ``pages/``.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LAYERS = ("core", "data", "evaluation", "training", "workers", "experiments", "viz", "runs", "app", "cli", "ui")
ENTRY = ("__main__", "__init__")  # sae/__main__.py, sae/__init__.py: may use any part but ui

# Every name `from sae import ...` gave before the tree was split into parts (and still gives).
PUBLIC_NAMES = ("ConfigError", "ModelConfig", "TrainConfig", "SparseAutoencoder", "kl_divergence",
                "kl_divergence_grad", "mean_activation", "sparse_autoencoder_loss", "Snapshot", "Trainer")


def sae_modules() -> list[Path]:
    return sorted((ROOT / "sae").rglob("*.py"))


def runtime_imports(path: Path) -> list[tuple[int, str]]:
    """(line, module) of every ``import sae...`` / ``from sae... import`` outside ``if TYPE_CHECKING:`` blocks,
    relative imports resolved against the file's package."""
    tree = ast.parse(path.read_text(), str(path))
    type_only: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            type_only.update(id(n) for stmt in node.body for n in ast.walk(stmt))
    package = ".".join(path.relative_to(ROOT).with_suffix("").parts[:-1])
    found = []
    for node in ast.walk(tree):
        if id(node) in type_only:
            continue
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[:len(package.split(".")) - node.level + 1]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            names = [f"{module}.{a.name}" for a in node.names]
            found += [(node.lineno, module)] + [(node.lineno, n) for n in names if n.count(".") >= 2]
        elif isinstance(node, ast.Import):
            found += [(node.lineno, a.name) for a in node.names]
    return found


def part_of(module: str) -> str | None:
    """The part (``core``, ``runs``, ...) a dotted module name belongs to, or None outside ``sae.<part>``."""
    bits = module.split(".")
    return bits[1] if len(bits) >= 2 and bits[0] == "sae" and bits[1] in LAYERS else None


def test_from_sae_import_gives_every_public_name():
    import sae

    for name in PUBLIC_NAMES:
        assert hasattr(sae, name), name
        assert name in sae.__all__, name
    assert sae.Trainer.__module__ == "sae.training.trainer"
    assert sae.kl_divergence.__module__ == "sae.core.loss"


def test_the_parts_are_packages_named_in_the_layer_order():
    parts = {p.name for p in (ROOT / "sae").iterdir() if (p / "__init__.py").exists()}
    assert parts == set(LAYERS)
    loose = {p.stem for p in (ROOT / "sae").glob("*.py")}
    assert loose == set(ENTRY), "modules belong in a part, not loose at the top of sae/"


@pytest.mark.parametrize("path", sae_modules(), ids=lambda p: str(p.relative_to(ROOT)))
def test_a_module_imports_only_its_part_and_the_parts_below(path):
    rel = path.relative_to(ROOT).with_suffix("").parts
    here = rel[1] if len(rel) > 2 else None
    limit = LAYERS.index(here) if here else LAYERS.index("ui") - 1  # the entry modules: everything but ui
    for line, module in runtime_imports(path):
        part = part_of(module)
        if part is not None:
            assert LAYERS.index(part) <= limit, f"{path.relative_to(ROOT)}:{line} imports {module} (a higher layer)"


@pytest.mark.parametrize("path", sae_modules(), ids=lambda p: str(p.relative_to(ROOT)))
def test_only_the_ui_part_imports_streamlit(path):
    if path.relative_to(ROOT).parts[1] == "ui":
        return
    for line, module in runtime_imports(path):
        assert module.split(".")[0] != "streamlit", f"{path.relative_to(ROOT)}:{line} imports streamlit"


def test_the_library_loads_without_streamlit():
    """A notebook without Streamlit installed can use every part below ui (streamlit blocked at import)."""
    code = ("import sys; sys.modules['streamlit'] = None\n"
            "import sae, sae.cli, sae.app.job, sae.app.tasks, sae.app.derived, sae.runs.store, sae.runs.sweep, "
            "sae.runs.export, sae.viz.curves, sae.viz.filters, sae.viz.distributions, sae.viz.samples, "
            "sae.viz.run_figures, sae.viz.experiment_figures, "
            "sae.experiments.denoising, sae.experiments.mistake_compare, sae.training.estimator\n"
            "print('ok')")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr[-2000:]


def test_the_readme_lists_every_module_as_its_docstring_says():
    """The README's module table is exactly what scripts/module_table.py builds from the tree."""
    sys.path.insert(0, str(ROOT / "scripts"))
    try:
        import module_table
    finally:
        sys.path.remove(str(ROOT / "scripts"))
    listed = module_table.readme_table((ROOT / "README.md").read_text())
    assert listed == module_table.table(), "run: python scripts/module_table.py --write"
    for path in sae_modules():
        rel = path.relative_to(ROOT)
        name = f"`{rel.parent}/`" if path.name == "__init__.py" else f"`{rel}`"
        assert f"| {name} |" in listed, name
