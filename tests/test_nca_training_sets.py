"""Training sets in the NCA tasks: several sequences and trajectories of different grid sizes in one run,
per-trajectory losses, carried states, several devices, and bad files refused before anything compiles."""
import contextlib
import io
import json

import jax
import numpy as np
import pytest

from conftest import run_python
from dpattern.cli import main
from dpattern.core.dataset import write_tiff
from dpattern.core.train import train
from dpattern.nca import NCA, Imitate, Morph, nca_optimiser


def _shape(kind, colour, n, r):
    y, x = np.mgrid[0:n, 0:n] - (n - 1) / 2
    mask = {"disc": x**2 + y**2 <= r**2, "square": (abs(x) <= r - 1) & (abs(y) <= r - 1)}[kind].astype(np.float32)
    return np.concatenate([np.array(colour, np.float32)[:, None, None] * mask, mask[None]])


def test_morph_on_two_sizes_lowers_each_sequence_loss_5x():
    seqs = [np.stack([_shape("disc", (0.9, 0.2, 0.1), n, r), _shape("square", (0.1, 0.6, 0.2), n, r)])
            for n, r in ((12, 4), (16, 5))]
    task = Morph(seqs, channels=10, batch_size=4, steps=12, max_shift=2)
    assert task.group_sizes == (2, 2)                       # one group per size, each split over the devices
    model = NCA(10, hidden=32, key=jax.random.key(0))
    k = jax.random.key(9)
    before = np.asarray(task.trajectory_losses(model, k))
    # the untrained NCA changes nothing: each sequence's loss is l2(first frame, second frame), computed here
    np.testing.assert_allclose(before, [np.mean((s[1] - s[0]) ** 2) for s in seqs], rtol=1e-5)
    trained = train(model, task, 300, jax.random.key(1), optimiser=nca_optimiser(300, 3e-3), progress=False).model
    after = np.asarray(task.trajectory_losses(trained, k))
    print("morph per sequence", before, "->", after)
    assert (after <= before / 5).all(), (before, after)


def _fisher(seed, size, frames=9):
    from dpattern.pde.classic import make_model
    from dpattern.pde.solver import simulate
    _, u = simulate(make_model("fisher-kpp"), jax.random.key(seed), size=size, t_end=8.0, frames=frames)
    return np.asarray(u)


def test_imitate_on_two_trajectories_predicts_a_held_out_one_better_than_on_one():
    a, b, held_out = _fisher(0, 16), _fisher(1, 24), _fisher(2, 20)
    model = NCA(1, ("identity", "laplacian"), hidden=16, fire_rate=1.0, alive_threshold=None, visible=1,
                key=jax.random.key(1))
    errors = {}
    for name, data in [("one", [a]), ("two", [a, b])]:
        task = Imitate(data, channels=1, batch_size=4, steps=2, horizon=3)
        fit = train(model, task, 80, jax.random.key(2), optimiser=nca_optimiser(80, 3e-3), progress=False).model
        errors[name] = float(Imitate(held_out, channels=1, steps=2, horizon=3).evaluate(fit, jax.random.key(3)))
    persistence = float(np.mean((held_out[1:] - held_out[:1]) ** 2))
    print("held-out error", errors, "persistence", persistence)
    assert errors["two"] < errors["one"] < persistence, errors


def test_imitate_windows_start_from_the_models_previous_prediction():
    rng = np.random.default_rng(0)
    u = rng.uniform(size=(8, 1, 8, 8)).astype(np.float32)
    task = Imitate(u, channels=3, batch_size=4, steps=1, horizon=2, restart=0.0)
    model = NCA(3, ("identity", "laplacian"), hidden=8, fire_rate=1.0, alive_threshold=None, visible=1,
                key=jax.random.key(0))
    model = jax.tree.map(lambda p: p + 0.3 if isinstance(p, jax.Array) and p.dtype == np.float32 else p, model)
    state = task.init(None)
    first = task.sample(state, jax.random.key(1))[0]
    np.testing.assert_array_equal(first["x"][:, 1:], 0)                  # step 1: every window from the data
    np.testing.assert_array_equal(first["x"][:, :1], u[np.asarray(first["t"])])
    _, ends = task.loss(model, [first], jax.random.key(2))
    state = task.update(state, [first], ends)
    second = task.sample(state, jax.random.key(3))[0]
    t0 = np.asarray(first["t"])
    go = t0 + 2 <= 8 - 1 - 2                                          # room for the next window: it continues
    assert go.any() and (~go).any(), t0
    np.testing.assert_array_equal(np.asarray(second["t"])[go], t0[go] + 2)
    np.testing.assert_array_equal(np.asarray(second["x"])[go], np.asarray(ends[0])[go])   # the model's own state
    assert np.abs(np.asarray(ends[0])[go][:, 1:]).min() > 1e-3          # ... hidden channels included, not zeros
    np.testing.assert_array_equal(np.asarray(second["x"])[~go][:, 1:], 0)                # the others restart
    np.testing.assert_allclose(np.asarray(second["y"])[go][:, 0], u[t0[go] + 3])          # targets move on too


DEVICES = """
import json, jax, numpy as np
from dpattern.core.train import train
from dpattern.nca import NCA, Morph, nca_optimiser
assert jax.device_count() == 2
rng = np.random.default_rng(0)
seqs = [rng.uniform(size=(2, 2, 8, 8)).astype(np.float32), rng.uniform(size=(2, 2, 12, 12)).astype(np.float32)]
task = Morph(seqs, channels=4, batch_size=4, steps=3, max_shift=1)
model = NCA(4, hidden=8, visible=2, alive_threshold=None, key=jax.random.key(0))
losses = {n: train(model, task, 3, jax.random.key(1), optimiser=nca_optimiser(3, 1e-2), progress=False,
                   devices=n).losses for n in (1, 2)}
odd = Morph([seqs[0], np.concatenate([seqs[1], seqs[1][:1]])], channels=4, batch_size=3, steps=3)
try:
    train(model, odd, 1, jax.random.key(1), progress=False)
    error = None
except ValueError as e:
    error = str(e)
print(json.dumps({"losses": losses, "error": error}))
"""


def test_mixed_sizes_on_two_devices_give_the_losses_of_one():
    out = json.loads(run_python(DEVICES, devices=2).stdout.strip().splitlines()[-1])
    np.testing.assert_allclose(out["losses"]["2"], out["losses"]["1"], atol=1e-5)
    assert "group 0 of the batch (1 samples of one grid size; groups [1, 2])" in out["error"], out["error"]
    assert "cannot be split evenly over 2 devices" in out["error"]


def _cli(argv):
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        code = main(argv)
    return code, err.getvalue()


@pytest.fixture
def files(tmp_path):
    z = np.zeros((3, 1, 8, 8), np.float32)
    np.savez(tmp_path / "a.npz", u=z, t=np.arange(3.0))
    np.savez(tmp_path / "two_channels.npz", u=np.zeros((3, 2, 12, 12), np.float32))
    np.savez(tmp_path / "one_frame.npz", u=z[:1])
    np.savez(tmp_path / "times.npz", u=z, t=np.array([0.0, 2.0, 1.0]))
    np.savez(tmp_path / "nan.npz", u=np.where(np.eye(8, dtype=bool), np.nan, z))
    np.savez(tmp_path / "mask.npz", u=z, environment=np.ones((1, 6, 8), np.float32))
    write_tiff(tmp_path / "stack.tif", np.full((3, 2, 10, 10), 0.2, np.float32))
    return tmp_path


@pytest.mark.parametrize("task", ["morph", "imitate"])
def test_each_bad_file_is_refused_by_name_before_anything_is_written(files, task):
    d = files
    cases = [([d / "a.npz", d / "two_channels.npz"], [], "two_channels.npz: 2 channels, but"),
             ([d / "a.npz", d / "one_frame.npz"], [], "one_frame.npz: has 1 frame; at least 2 frames"),
             ([d / "times.npz"], [], "times.npz: times must increase strictly"),
             ([d / "nan.npz"], [], "nan.npz: frames contain 24 non-finite values"),
             ([d / "mask.npz"], [], "mask.npz: the environment must be [E, H, W] (or a mask [H, W]) on the frames' "
                                    "grid 8x8, got shape (1, 6, 8)"),
             ([d / "stack.tif"], ["--data-channels", "2"], "stack.tif: channels [2] do not exist"),
             ([d / "stack.tif"], ["--mask-threshold", "0.5"], "stack.tif: no pixel of channel 0 exceeds the mask"),
             ([d / "missing.npz"], [], "missing.npz does not exist")]
    if task == "morph":
        cases.append(([d / "a.npz", "logo"], [], "give either images (the frames of one sequence) or sequence files"))
    for targets, extra, message in cases:
        out = d / "never"
        code, err = _cli(["nca", "train", "--task", task, "--target", *map(str, targets), *extra, "--out", str(out)])
        assert code == 2 and message in err, (targets, extra, err)
        assert not out.exists()


def test_cli_trains_on_files_of_two_sizes_with_masks_and_reports_each(tmp_path):
    rng = np.random.default_rng(0)
    for name, n in (("small.tif", 10), ("large.tif", 14)):
        stack = rng.uniform(0, 0.4, size=(4, 2, n, n)).astype(np.float32)
        stack[:, 1] = 0.0
        stack[:, 1, 2:-2, 2:-2] = 1.0                         # channel 1: the colony, a mask above 0.5
        write_tiff(tmp_path / name, stack)
    out = tmp_path / "run"
    code, err = _cli(["nca", "train", "--task", "imitate", "--target", str(tmp_path / "small.tif"),
                      str(tmp_path / "large.tif"), "--data-channels", "0", "--mask-threshold", "0.5",
                      "--mask-channel", "1", "--channels", "4", "--hidden", "8", "--steps", "1", "--horizon", "2",
                      "--batch", "2", "--restart", "0.5", "--loss", "l1", "--range-penalty", "0.1", "--iters", "2",
                      "--out", str(out), "--quiet"])
    assert code == 0, err
    m = json.loads((out / "metrics.json").read_text())
    assert sorted(m["trajectory_losses"]) == ["large.tif", "small.tif"]
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    events = EventAccumulator(str(out / "logs"), size_guidance={"scalars": 0}).Reload()
    assert {"trajectory/small.tif", "trajectory/large.tif"} <= set(events.Tags()["scalars"])   # one per file
    model = NCA.load(out / "model.dpt")
    assert model.fixed is not None and model.fixed.channels == (1,)     # the mask sits after the visible channel


def test_morph_run_reads_two_sequence_files_of_different_sizes(tmp_path):
    from dpattern.nca.runs import TrainConfig, build
    seqs = {}
    for name, (n, r) in (("a.npz", (10, 3)), ("b.npz", (14, 4))):
        seqs[name] = np.stack([_shape("disc", (0.9, 0.2, 0.1), n, r), _shape("square", (0.1, 0.6, 0.2), n, r)])
        np.savez(tmp_path / name, u=seqs[name], t=np.arange(2.0))
    config = TrainConfig.for_task("morph", target=(str(tmp_path / "a.npz"), str(tmp_path / "b.npz")), channels=6,
                                  hidden=8, batch_size=2, loss="l1", range_penalty=0.5)
    model, task = build(config)
    assert task.names == ("a.npz", "b.npz") and task.group_sizes == (1, 1)
    assert task.loss_fn.kind == "l1" and task.range_weight == 0.5
    # before training the NCA changes nothing: each sequence's loss is l1(first frame, second frame)
    np.testing.assert_allclose(np.asarray(task.trajectory_losses(model, jax.random.key(0))),
                               [np.mean(np.abs(s[1] - s[0])) for s in seqs.values()], rtol=1e-5)
