"""The import layers, checked by parsing every module of the package (imports inside functions too).

    core (0)  <-  nca, pde, abm (1)  <-  inspect, widgets (2)  <-  command line (3)

A module may import its own layer or a lower one; the three families never import each other and the
core imports no family. Any module named `cli` (`dpattern.cli`, `dpattern.nca.cli`, ...) is the command
line. Outside the command line no `dpattern` import sits inside a function, where it would hide a cycle
(the command line may import lazily, for start-up time)."""
from __future__ import annotations

import ast
import json
import sys
import textwrap
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "dpattern"
FAMILIES = ("nca", "pde", "abm")
CLI = 3


def layer(module: str) -> int:
    "The layer of a dotted module name inside the package: 0 core, 1 a family, 2 inspection, 3 command line."
    parts = module.split(".")
    if parts[-1] == "cli":
        return CLI
    if len(parts) == 1:
        return 0                                   # the top-level package: only its version
    if parts[1] == "core":
        return 0
    if parts[1] in FAMILIES:
        return 1
    if parts[1] in ("inspect", "widgets"):
        return 2
    raise AssertionError(f"{module} is in no layer: add it to tests/test_architecture.py's layer()")


def family(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 and parts[1] in FAMILIES else None


@dataclass(frozen=True)
class Import:
    importer: str                       # dotted name of the importing module
    imported: str                       # dotted name of the imported module
    line: int
    in_function: bool

    def __str__(self):
        where = "inside a function" if self.in_function else "at module level"
        return f"{self.importer}:{self.line} imports {self.imported} ({where})"


def module_name(path: Path, root: Path) -> str:
    rel = path.relative_to(root.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def imports_of(path: Path, root: Path) -> list[Import]:
    "Every import of the package's own modules in `path`, with its line and whether it sits in a function."
    name = module_name(path, root)
    is_package = path.name == "__init__.py"
    top = root.name
    tree = ast.parse(path.read_text(), filename=str(path))
    found: list[Import] = []

    def visit(node, in_function):
        for child in ast.iter_child_nodes(node):
            inside = in_function or isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda))
            targets = []
            if isinstance(child, ast.Import):
                targets = [a.name for a in child.names]
            elif isinstance(child, ast.ImportFrom):
                if child.level:                                    # relative: resolve against this module
                    base = name.split(".") if is_package else name.split(".")[:-1]
                    base = base[:len(base) - (child.level - 1)]
                    mod = ".".join(base + ([child.module] if child.module else []))
                else:
                    mod = child.module or ""
                targets = [mod]
                # `from dpattern import nca` or `from dpattern.nca import model` imports a module too
                for a in child.names:
                    if (root.parent / Path(*(mod.split(".") + [a.name]))).is_dir() or \
                       (root.parent / Path(*(mod.split(".")))).joinpath(a.name + ".py").is_file():
                        targets.append(f"{mod}.{a.name}")
            for t in targets:
                if t == top or t.startswith(top + "."):
                    found.append(Import(name, t, child.lineno, in_function))
            visit(child, inside)

    visit(tree, False)
    return found


def violations(root: Path = PACKAGE) -> list[str]:
    "Every import in the package at `root` that runs against the layers, as readable lines."
    bad = []
    for path in sorted(root.rglob("*.py")):
        if path.name == "_modidx.py":
            continue
        for imp in imports_of(path, root):
            src, dst = imp.importer, imp.imported
            if layer(dst) > layer(src):
                bad.append(f"{imp}: layer {layer(src)} may not import layer {layer(dst)}")
            elif family(src) and family(dst) and family(src) != family(dst) and layer(src) < CLI:
                bad.append(f"{imp}: the families meet only through the core")
            if imp.in_function and layer(src) < CLI:
                bad.append(f"{imp}: imports of the package belong at module level outside the command line")
    return bad


def test_the_package_respects_its_layers():
    found = violations()
    assert not found, "imports against the layers:\n  " + "\n  ".join(found)


def test_every_module_is_in_a_layer():
    for path in PACKAGE.rglob("*.py"):
        if path.name != "_modidx.py":
            layer(module_name(path, PACKAGE))              # raises for a module outside every layer


def _synthetic(tmp_path: Path, files: dict[str, str]) -> Path:
    root = tmp_path / "dpattern"
    for rel, src in files.items():
        p = root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(textwrap.dedent(src))
    for d in [root, *[p for p in root.rglob("*") if p.is_dir()]]:
        (d / "__init__.py").touch()
    return root


def test_the_check_catches_a_back_import(tmp_path):
    root = _synthetic(tmp_path, {
        "core/ops.py": "X = 1\n",
        "nca/model.py": "from dpattern.core.ops import X\n",
        "inspect/nca.py": "from dpattern.nca.model import X\n",
        "nca/tasks.py": """
            from dpattern.core import ops
            def log():
                from dpattern.inspect.nca import X      # a back-import hidden in a function
                return X
            """,
    })
    found = violations(root)
    assert len(found) == 2, found
    assert any("dpattern.nca.tasks:4 imports dpattern.inspect.nca" in f and "layer 1 may not import layer 2" in f
               for f in found)
    assert any("at module level" in f for f in found)


def test_the_check_catches_families_meeting_and_relative_imports(tmp_path):
    root = _synthetic(tmp_path, {
        "pde/classic.py": "Y = 2\n",
        "nca/runs.py": "from ..pde.classic import Y\n",            # relative, across families
        "core/train.py": "from dpattern import nca\n",             # the core reaching up
        "nca/cli.py": "def f():\n    from dpattern.inspect import nca\n",   # fine: command line, lazy
        "inspect/nca.py": "from dpattern.pde import classic\n",    # fine: inspection sees every family
    })
    found = violations(root)
    assert any("dpattern.nca.runs:1 imports dpattern.pde.classic" in f and "families" in f for f in found), found
    assert any("dpattern.core.train:1 imports dpattern.nca" in f for f in found), found
    assert len(found) == 2, found


def _code_cells(nb: Path):
    for cell in json.loads(nb.read_text())["cells"]:
        if cell["cell_type"] == "code":
            yield "".join(cell["source"])


def _tutorial_imports(nb: Path):
    "(module, name) for every `from dpattern... import name` and `import dpattern...` in a notebook's code."
    for src in _code_cells(nb):
        lines = [l for l in src.splitlines() if not l.lstrip().startswith(("%", "!", "#|"))]
        try:
            tree = ast.parse("\n".join(lines))
        except SyntaxError:
            continue
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("dpattern"):
                for a in node.names:
                    yield node.module, a.name
            elif isinstance(node, ast.Import):
                for a in node.names:
                    if a.name.startswith("dpattern"):
                        yield a.name, None


TUTORIALS = sorted((ROOT / "nbs" / "tutorials").glob("*.ipynb"))


@pytest.mark.parametrize("nb", TUTORIALS, ids=lambda p: p.stem)
def test_tutorials_import_only_public_names(nb):
    "A tutorial imports from a package's public surface (`from dpattern.nca import NCA`), never from the command line."
    import importlib
    sys.path.insert(0, str(ROOT))
    bad = []
    for module, name in _tutorial_imports(nb):
        if name is None:
            continue
        if module == "dpattern.cli" and name == "main":
            continue                                        # running the command line is fine
        if layer(module) == CLI:
            bad.append(f"{module}.{name}: the command line is not a library")
            continue
        if module.count(".") > 1:
            bad.append(f"{module}.{name}: import it from its package ({'.'.join(module.split('.')[:2])})")
            continue
        mod = importlib.import_module(module)
        public = getattr(mod, "__all__", None)
        if name.startswith("_") or public is None or name not in public:
            bad.append(f"{module}.{name}: not in {module}.__all__")
    assert not bad, f"{nb.name} imports names that are not public:\n  " + "\n  ".join(bad)
