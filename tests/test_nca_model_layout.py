"""One MLP layout for every family, and files saved under earlier layouts and module names still load."""
import io
import json
import zipfile
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dpattern.abm.neural import NeuralChemotaxis as AgentChemotaxis, NeuralSlime
from dpattern.core import mlp
from dpattern.core.model import load_model
from dpattern.nca import fast_gradient, model as nca_model
from dpattern.nca.model import NCA, seed_state
from dpattern.nca.update import MLPUpdate
from dpattern.pde.neural import NeuralRDA, PixelMLP

ROOT = Path(__file__).resolve().parents[1]


def _stored(path):
    "Every array of a checkpoint by its stored path, read with zipfile and NumPy only."
    with zipfile.ZipFile(path) as z:
        header = json.loads(z.read("header.json"))
        return header, {m["path"]: np.load(io.BytesIO(z.read(f"leaf_{i:05d}.npy")))
                        for i, m in enumerate(header["leaves"])}


def _write(path, header, arrays):
    "A checkpoint written by hand: the header and one .npy per array, in the header's order."
    header = {**header, "leaves": [{"path": k, "shape": list(a.shape), "dtype": a.dtype.str, "prng_key": False}
                                   for k, a in arrays.items()]}
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("header.json", json.dumps(header))
        for i, a in enumerate(arrays.values()):
            buf = io.BytesIO()
            np.save(buf, a)
            z.writestr(f"leaf_{i:05d}.npy", buf.getvalue())


def test_the_saved_logo_nca_loads_from_its_former_module_name_and_grows():
    path = ROOT / "nbs/inspect/nca_logo.dpt"
    header, arrays = _stored(path)
    assert header["model"]["hyperparams"]["update"]["__model__"] == "dpattern.nca.model.MLPUpdate"
    m = NCA.load(path)
    assert type(m.update) is MLPUpdate
    np.testing.assert_array_equal(np.asarray(m.update.w1), arrays[".update.w1"])
    y, _ = m.rollout(seed_state(m.channels, 40), 64, jax.random.key(0))
    assert float(y[3].sum()) > 20.0       # a grown shape, not one seed cell


def test_the_saved_horse_swarm_loads_its_output_major_weights_transposed():
    path = ROOT / "nbs/tutorials/abm_horse.dpt"
    _, arrays = _stored(path)
    m = load_model(path)
    assert isinstance(m, AgentChemotaxis)
    np.testing.assert_array_equal(np.asarray(m.network.w[0]), arrays[".w_in"].T)
    np.testing.assert_array_equal(np.asarray(m.network.w[1]), arrays[".w_out"].T)
    np.testing.assert_array_equal(np.asarray(m.network.b[1]), arrays[".b_out"])
    # the rule is the formula of the stored arrays, output-major as they were saved
    f = np.asarray(jax.random.normal(jax.random.key(0), (5, m.network.n_in - m.memory)))
    mem = np.zeros((5, m.memory), np.float32)
    act = {"tanh": np.tanh, "relu": lambda x: np.maximum(x, 0)}[m.activation]
    h = act(np.concatenate([np.tanh(f), mem], -1) @ arrays[".w_in"].T + arrays[".b_in"])
    o = h @ arrays[".w_out"].T + arrays[".b_out"]
    turn, speed, _, _ = m.respond(jnp.asarray(f), jnp.asarray(mem))
    np.testing.assert_allclose(np.asarray(speed), m.max_speed / (1 + np.exp(-o[:, 0])), rtol=1e-5)
    np.testing.assert_allclose(np.asarray(turn), m.max_turn * np.tanh(o[:, 1]), rtol=1e-5, atol=1e-6)


def test_a_neural_pde_saved_output_major_loads(tmp_path):
    new = NeuralRDA(2, width=6, layers=2, key=jax.random.key(0))
    header, arrays = _stored(new.save(tmp_path / "new.dpt"))
    rng = np.random.default_rng(0)
    old = {}
    for k, a in arrays.items():  # the earlier layout: .weights[l] [out, in], .biases[l]
        a = rng.normal(size=a.shape).astype(a.dtype)
        arrays[k] = a
        old[k.replace(".w[", ".weights[").replace(".b[", ".biases[")] = a.T if ".w[" in k else a
    _write(tmp_path / "old.dpt", {k: v for k, v in header.items() if k != "leaves"}, old)
    back = load_model(tmp_path / "old.dpt")
    for k, a in arrays.items():
        term, rest = k[1:].split(".", 1)
        name, i = rest[0], int(rest[2:-1])
        np.testing.assert_array_equal(np.asarray(getattr(getattr(back, term), name)[i]), a)
    u = jnp.asarray(rng.uniform(size=(2, 8, 8)).astype(np.float32))
    assert bool(jnp.isfinite(back(0.0, u)).all())


def test_a_file_that_fits_no_layout_is_still_refused(tmp_path):
    new = NeuralRDA(2, width=6, key=jax.random.key(0))
    header, arrays = _stored(new.save(tmp_path / "new.dpt"))
    arrays = {k.replace(".w[", ".kernels["): v for k, v in arrays.items()}
    _write(tmp_path / "odd.dpt", {k: v for k, v in header.items() if k != "leaves"}, arrays)
    with pytest.raises(ValueError, match="expected"):
        load_model(tmp_path / "odd.dpt")


@pytest.mark.parametrize("which", ["nca", "pde", "abm"])
def test_every_family_uses_the_input_major_dense_layer(which):
    key = jax.random.key(1)
    if which == "nca":
        net = MLPUpdate(6, 3, hidden=5, activation="tanh", key=key)
        ws, bs, call = (net.w1, net.w2), (net.b1, net.b2), net
    elif which == "pde":
        net = PixelMLP(6, 3, width=5, layers=1, activation="tanh", key=key)
        ws, bs = net.w, net.b
        call = lambda x: jnp.moveaxis(net(jnp.moveaxis(x, -1, 0)), 0, -1)
    else:
        net = NeuralSlime(channels=2, hidden=5, activation="tanh", key=key).network
        ws, bs, call = net.w, net.b, net
    ws = [np.asarray(jax.random.normal(jax.random.key(i), w.shape)) for i, w in enumerate(ws)]
    x = np.asarray(jax.random.normal(jax.random.key(9), (4, ws[0].shape[0])))
    assert ws[0].shape[0] == x.shape[1]             # [fan_in, fan_out]
    ref = np.tanh(x @ ws[0] + np.asarray(bs[0])) @ ws[1] + np.asarray(bs[1])
    np.testing.assert_allclose(np.asarray(mlp.apply_mlp(ws, bs, jnp.asarray(x), "tanh")), ref, rtol=1e-5, atol=1e-6)
    if which == "nca":
        import equinox as eqx
        call = eqx.tree_at(lambda u: (u.w1, u.w2), net, tuple(jnp.asarray(w) for w in ws))
    else:
        import equinox as eqx
        net2 = eqx.tree_at(lambda m: m.w, net, [jnp.asarray(w) for w in ws])
        call = net2 if which == "abm" else (lambda x: jnp.moveaxis(net2(jnp.moveaxis(x, -1, 0)), 0, -1))
    np.testing.assert_allclose(np.asarray(call(jnp.asarray(x))), ref, rtol=1e-5, atol=1e-6)


def test_one_activation_table():
    for bad in (lambda: MLPUpdate(3, 2, activation="swish", key=jax.random.key(0)),
                lambda: PixelMLP(3, 2, activation="swish", key=jax.random.key(0)),
                lambda: NeuralSlime(activation="swish", key=jax.random.key(0))):
        with pytest.raises(ValueError, match="expected one of " + ", ".join(mlp.ACTIVATIONS)):
            bad()


def test_names_stay_importable_from_the_nca_model_and_internals_stay_out_of_all():
    for name in ("NCA", "seed_state", "perceive", "perception_kernels", "KERNELS", "PERCEPTIONS", "MLPUpdate",
                 "GatedUpdate", "KANUpdate", "UPDATES", "gaussian_basis", "fast_rollout", "GRADIENTS"):
        assert hasattr(nca_model, name), name
    for name in ("firing_rows", "firing_capacity", "dense_rows", "gather_rows", "scatter_rows"):
        assert name not in nca_model.__all__ and name not in fast_gradient.__all__


def test_an_earlier_layout_with_a_missing_array_is_a_checkpoint_error(tmp_path):
    from dpattern.core.checkpoint import CheckpointError
    src = ROOT / "nbs/tutorials/abm_horse.dpt"
    with zipfile.ZipFile(src) as z, zipfile.ZipFile(tmp_path / "cut.dpt", "w") as out:
        for name in z.namelist():
            if name != "leaf_00002.npy":          # drop .w_out
                out.writestr(name, z.read(name))
    with pytest.raises(CheckpointError):
        load_model(tmp_path / "cut.dpt")
