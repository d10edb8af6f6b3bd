"""`dpattern inspect` on a saved NCA run, the inspection figures logged to TensorBoard during NCA training,
and the checks behind them on tiny models (ablation of an ignored channel, fixed point and stability)."""
import json

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dpattern.cli import main
from dpattern.inspect.nca import ablation, fixed_point, knock_out, stability
from dpattern.nca.model import NCA

TINY = ["--size", "8", "--pad", "1", "--channels", "6", "--hidden", "8", "--batch-size", "2", "--steps", "6",
        "--pool-size", "4", "--iters", "1", "--quiet"]


@pytest.fixture(scope="module")
def nca_run(tmp_path_factory):
    "A one-step `dpattern nca train` run (its TensorBoard log holds one round of inspection figures)."
    run = tmp_path_factory.mktemp("nca") / "run"
    assert main(["nca", "train", *TINY, "--out", str(run)]) == 0
    return run


def test_training_logs_inspection_figures(nca_run):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    events = EventAccumulator(str(nca_run / "logs"), size_guidance={"images": 0, "scalars": 0}).Reload()
    images = set(events.Tags()["images"])
    assert {"inspect/sensitivity", "inspect/gain", "inspect/ablation"} <= images, images
    assert [e.step for e in events.Images("inspect/sensitivity")] == [1]
    assert {"inspect/ablation/channel_4", "inspect/ablation/channel_5"} <= set(events.Tags()["scalars"])


def test_inspect_a_saved_nca_run(nca_run, capsys):
    assert main(["inspect", str(nca_run)]) == 0
    out = nca_run / "inspect"
    assert sorted(p.stem for p in out.glob("*.png")) == ["ablation", "fixed_point", "gain", "sensitivity", "weights"]
    report = json.loads((out / "inspect.json").read_text())
    assert report["kind"] == "nca-train" and report["model"] == "NCA"
    assert report["ablation"]["channels"] == [4, 5]
    assert set(report["kernel_gain"]) == {"identity", "grad_x", "grad_y"}
    assert np.isfinite(report["fixed_point"]["residual"])
    # a second time without --overwrite: refused, nothing changed
    assert main(["inspect", str(nca_run)]) == 2
    assert "already holds inspection figures" in capsys.readouterr().err


def test_inspect_refuses_an_nca_directory_without_a_model(tmp_path, capsys):
    (tmp_path / "config.json").write_text(json.dumps({"task": "grow"}))
    assert main(["inspect", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("dpattern inspect: error:") and "is not a dpattern run directory" in err
    assert "dpattern nca train" in err and not (tmp_path / "inspect").exists()


def _random_nca(channels=6, seed=0, **kw):
    m = NCA(channels, "anisotropic", "mlp", 16, activation="tanh", key=jax.random.key(seed), **kw)
    w2 = 0.3 * jax.random.normal(jax.random.key(seed + 1), m.update.w2.shape)
    return eqx.tree_at(lambda m: m.update.w2, m, w2)


def test_ablating_an_ignored_channel_leaves_the_loss_unchanged():
    "Channel 5's first-layer weights are zero (every kernel): knocking it out changes the loss by < 1e-6."
    m = _random_nca(fire_rate=0.5)
    rows = np.arange(3) * 6 + 5
    m = eqx.tree_at(lambda m: m.update.w1, m, m.update.w1.at[rows].set(0.0))
    x0 = jax.random.uniform(jax.random.key(2), (6, 12, 12))
    target = jnp.zeros((4, 12, 12)).at[:, 3:9, 3:9].set(1.0)
    loss = eqx.filter_jit(lambda m: jnp.mean((m.rollout(x0, 16, jax.random.key(0))[0][:4] - target) ** 2))
    res = ablation(m, loss, (12, 12))
    assert res["channels"] == [4, 5]
    assert abs(res["change"][1]) < 1e-6 and abs(res["change"][0]) > 1e-5, res
    with pytest.raises(ValueError, match="does not exist"):
        knock_out(m, 6, (12, 12))


@pytest.mark.parametrize("gain", [0.2, 3.0])
def test_fixed_point_stability_matches_a_perturbed_rollout(gain):
    """Fire rate 1, no alive mask; small second-layer weights give a contracting step (|λ1| < 1), large
    self-feedback an expanding one. Newton's fixed point has residual < 1e-5, and a perturbation along the
    leading eigenvector shrinks or grows in a direct rollout as |λ1| says."""
    with jax.enable_x64(True):
        m = NCA(3, "anisotropic_laplacian", "mlp", 12, fire_rate=1.0, alive_threshold=None, activation="tanh",
                visible=3, key=jax.random.key(5))
        w2 = 0.05 * jax.random.normal(jax.random.key(6), (12, 3))
        w1 = m.update.w1.at[:3, :3].set(jnp.eye(3))
        w2 = w2.at[:3].set(gain * jnp.eye(3) - (0.5 * jnp.eye(3) if gain < 1 else 0))
        b1 = 0.1 * jax.random.normal(jax.random.key(7), (12,))
        m = eqx.tree_at(lambda m: (m.update.w1, m.update.w2, m.update.b1), m, (w1, w2, b1))
        m = jax.tree.map(lambda a: a.astype(jnp.float64) if eqx.is_inexact_array(a) else a, m)
        x0 = 0.05 * jax.random.normal(jax.random.key(8), (3, 6, 6), jnp.float64)
        xs, hist = fixed_point(m, x0, tol=1e-12)
        resid = float(jnp.linalg.norm(m(xs, jax.random.key(0)) - xs))
        assert resid < 1e-5, (resid, hist)
        st = stability(m, xs)
        lead = abs(st["eigenvalues"][0])
        eps = 1e-7
        n = 10 if lead < 1 else max(2, int(np.log(1e-4 / eps) / np.log(lead)))   # stay in the linear range
        y, _ = m.rollout(xs + eps * jnp.asarray(st["vector"]), n, jax.random.key(0))
        ratio = float(jnp.linalg.norm(y - xs) / eps) ** (1 / n)
        assert st["stable"] == (lead < 1) == (ratio < 1), (lead, ratio)
        assert abs(ratio - lead) < 0.02 * lead, (lead, ratio)
        assert (lead < 0.95) if gain < 1 else (lead > 1.05), lead
