"""The console script and the installed package's dependencies."""
import importlib.metadata
import subprocess
import sys

from conftest import run_python


def test_help_on_every_command():
    from dpattern.cli import build_parser
    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    stack = [(name, p) for name, p in sub.choices.items()]
    seen = []
    while stack:
        name, p = stack.pop()
        seen.append(name)
        assert p.format_help().startswith("usage: dpattern")
        for a in p._actions:
            if getattr(a, "choices", None) and isinstance(a.choices, dict):
                stack += [(f"{name} {n}", q) for n, q in a.choices.items()]
    assert "info" in seen


def test_info_runs():
    r = subprocess.run(["dpattern", "info"], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    assert "backend" in r.stdout and "jax" in r.stdout


def test_runtime_needs_no_dev_tools():
    reqs = importlib.metadata.requires("dpattern")
    runtime = [r for r in reqs if "extra ==" not in r]
    names = {r.split(">")[0].split("=")[0].split("<")[0].strip().lower() for r in runtime}
    assert names == {"jax", "jaxlib", "equinox", "optax", "diffrax", "numpy", "matplotlib", "scikit-image",
                     "tensorboard", "ipywidgets", "anywidget", "tqdm"}, names
    run_python("import sys, pkgutil, importlib, dpattern\n"
               "for m in pkgutil.walk_packages(dpattern.__path__, 'dpattern.'): importlib.import_module(m.name)\n"
               "bad = [m for m in sys.modules if m.split('.')[0] in ('nbdev', 'pytest', 'fastcore', 'execnb')]\n"
               "assert not bad, bad")
