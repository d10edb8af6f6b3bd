"""`dpattern inspect` on saved runs of every family, and its refusals."""
import json

import numpy as np
import pytest

from conftest import run_python
from dpattern.cli import main


def _pngs(d):
    return sorted(p.stem for p in d.glob("*.png"))


def test_inspect_a_classic_pde_fit(tmp_path, capsys):
    "A Gray–Scott fit (noise-free data): uncertainties, the landscape, and the truth within 3 sigma."
    run = tmp_path / "fit"
    assert main(["pde", "simulate", "gray-scott", "--size", "24", "--t-end", "300", "--frames", "16",
                 "--out", str(tmp_path / "sim")]) == 0
    assert main(["pde", "fit", "--data", str(tmp_path / "sim" / "trajectory.npz"), "--init", "feed=0.065",
                 "--init", "kill=0.06", "--iters", "20", "--out", str(run), "--quiet"]) == 0
    assert (run / "data.npz").is_file()
    assert main(["inspect", str(run), "--refine", "3"]) == 0
    out = run / "inspect"
    assert _pngs(out) == ["landscape", "uncertainty"]
    report = json.loads((out / "inspect.json").read_text())
    assert report["kind"] == "pde-fit" and report["model"] == "GrayScott"
    for name, p in report["uncertainty"]["parameters"].items():
        assert abs(p["value"] - report["true"][name]) < 3 * p["std"], (name, p, report["true"][name])


def test_inspect_a_neural_pde_fit(tmp_path):
    d = tmp_path
    assert main(["pde", "simulate", "gray-scott", "--size", "16", "--t-end", "60", "--frames", "4",
                 "--out", str(d / "sim")]) == 0
    assert main(["pde", "fit", "--data", str(d / "sim" / "trajectory.npz"), "--model", "neural-rda", "--hidden", "1",
                 "--width", "4", "--degree", "1", "--iters", "2", "--window", "1", "--out", str(d / "fit"), "--quiet"]) == 0
    assert main(["inspect", str(d / "fit"), "--out", str(d / "figs")]) == 0
    assert _pngs(d / "figs") == ["coefficients", "term_magnitudes", "terms"]
    report = json.loads((d / "figs" / "inspect.json").read_text())
    assert set(report["term_rms"]) == {"diffusion", "advection", "production", "decay", "damping"}
    assert len(report["term_rms"]["diffusion"]) == 3              # 2 observed + 1 hidden channel


def test_inspect_agent_runs(tmp_path):
    horse = tmp_path / "horse"
    assert main(["abm", "train", "--agents", "32", "--size", "24", "--steps", "8", "--batch", "1", "--hidden", "8",
                 "--iters", "1", "--out", str(horse), "--quiet"]) == 0
    assert main(["inspect", str(horse)]) == 0
    assert _pngs(horse / "inspect") == ["density_fields", "responses"]
    sim = tmp_path / "sim"
    assert main(["abm", "simulate", "physarum", "--agents", "300", "--size", "24", "--steps", "20",
                 "--out", str(sim)]) == 0
    assert main(["inspect", str(sim)]) == 0
    report = json.loads((sim / "inspect" / "inspect.json").read_text())
    assert report["kind"] == "abm-simulate" and len(report["density_field_correlation"]) == 1


def test_inspect_refuses_what_is_not_a_run(tmp_path, capsys):
    (tmp_path / "notes.txt").write_text("hello")
    for argv, message in [([str(tmp_path)], "is not a dpattern run directory"),
                          ([str(tmp_path / "missing")], "does not exist"),
                          ([str(tmp_path / "notes.txt")], "is a file, not a run directory")]:
        assert main(["inspect", *argv]) == 2
        err = capsys.readouterr().err
        assert message in err and err.startswith("dpattern inspect: error:"), err
    assert not (tmp_path / "inspect").exists()
    # a PDE simulation is data, not a fitted model
    assert main(["pde", "simulate", "heat", "--size", "8", "--t-end", "1", "--frames", "2",
                 "--out", str(tmp_path / "sim")]) == 0
    assert main(["inspect", str(tmp_path / "sim")]) == 2
    assert "fit it with `dpattern pde fit --data" in capsys.readouterr().err
    assert not (tmp_path / "sim" / "inspect").exists()


def test_console_script_exit_code():
    "The installed entry point returns exit code 2 with one line on stderr."
    r = run_python("import sys; from dpattern.cli import main; sys.exit(main(['inspect', '/nonexistent/run']))",
                   check=False)
    assert r.returncode == 2 and "run directory /nonexistent/run does not exist" in r.stderr
