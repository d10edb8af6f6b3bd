"""The shared training loop: resume after SIGKILL, data-parallel sharding, mixed sizes, divergence, logging."""
import json
import os
import signal
import subprocess
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from conftest import ROOT, run_python
from dpattern.core.checkpoint import read_header
from dpattern.core.train import LATEST, BEST, Task, TrainingDiverged, train
from toy import Mixer, make_task

TRAIN_SCRIPT = """
import sys, time, jax, numpy as np, optax
from dpattern.core.train import train
from toy import Mixer, make_task
out, steps, resume, slow = sys.argv[1], int(sys.argv[2]), sys.argv[3] == "1", float(sys.argv[4])
task = make_task(sizes=(16,))
r = train(Mixer(3, key=jax.random.key(0)), task, steps, key=jax.random.key(42), out=out, resume=resume,
          checkpoint_every=3, log_every=5, progress=False, on_step=lambda i, l: time.sleep(slow))
np.save(out + "/final_weight.npy", np.asarray(r.model.weight))
"""


def _run_train(out, steps, resume=False, slow=0.0, wait=True):
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT / "tests"), str(ROOT)]))
    args = [sys.executable, "-c", TRAIN_SCRIPT, str(out), str(steps), "1" if resume else "0", str(slow)]
    p = subprocess.Popen(args, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    if wait:
        o, e = p.communicate(timeout=600)
        assert p.returncode == 0, e
    return p


def test_sigkill_then_resume_matches_uninterrupted(tmp_path):
    full, cut = tmp_path / "full", tmp_path / "cut"
    _run_train(full, 20)
    p = _run_train(cut, 20, slow=0.25, wait=False)
    deadline = time.time() + 300
    while time.time() < deadline:
        ck = cut / LATEST
        if ck.exists() and read_header(ck)["step"] >= 6:
            break
        time.sleep(0.05)
    p.send_signal(signal.SIGKILL)
    p.wait()
    step_at_kill = read_header(cut / LATEST)["step"]
    assert 6 <= step_at_kill < 20, step_at_kill
    assert not (cut / "final_weight.npy").exists()
    _run_train(cut, 20, resume=True)
    a, b = np.load(full / "final_weight.npy"), np.load(cut / "final_weight.npy")
    np.testing.assert_allclose(a, b, atol=1e-6)
    assert len(read_header(cut / LATEST)["losses"]) == 20


SHARD_SCRIPT = """
import jax, numpy as np, optax, equinox as eqx
from dpattern.core.train import train, Task
from dpattern.core import sharding
from toy import Mixer, make_task
assert jax.device_count() == {n}
task = make_task(sizes=(16,), batch_size=8)
seen = []
class Spy(type(task)):
    def loss(self, model, batch, key):
        jax.debug.inspect_array_sharding(batch[0][0], callback=seen.append)
        return super().loss(model, batch, key)
spy = Spy(batch_size=8, inputs=task.inputs, targets=task.targets)
r = train(Mixer(3, key=jax.random.key(0)), spy, 3, key=jax.random.key(1), optimiser=optax.sgd(0.1), progress=False)
np.save("{out}", np.asarray(r.model.weight))
print("SPEC", seen[0].spec, seen[0].mesh.size)
"""


def test_sharded_step_matches_single_device(tmp_path):
    outs = {}
    for n in (1, 4):
        f = tmp_path / f"w{n}.npy"
        r = run_python(SHARD_SCRIPT.format(n=n, out=f), devices=n)
        outs[n] = np.load(f)
        if n == 4:
            assert "SPEC P('data',) 4" in r.stdout, r.stdout
    np.testing.assert_allclose(outs[1], outs[4], atol=1e-5)


def test_batch_not_divisible_is_clear_before_compiling():
    r = run_python("""
import jax
from dpattern.core.train import train
from toy import Mixer, make_task
try:
    train(Mixer(3, key=jax.random.key(0)), make_task(batch_size=6), 2, key=jax.random.key(0), progress=False)
except ValueError as e:
    print("ERR", e)
""", devices=4)
    assert "ERR batch size 6 cannot be split evenly over 4 devices" in r.stdout


def test_two_grid_sizes_train_together():
    task = make_task(sizes=(32, 48), batch_size=4)
    model = Mixer(3, key=jax.random.key(0))
    batch = task.sample(None, jax.random.key(5))
    before = np.asarray(task.loss(model, batch, None)[1])
    r = train(model, task, 1, key=jax.random.key(0), optimiser=optax.sgd(0.5), progress=False)
    after = np.asarray(task.loss(r.model, batch, None)[1])
    assert after.shape == (2,) and (after < before).all(), (before, after)


def test_divergence_stops_with_message_and_keeps_checkpoint(tmp_path):
    # plain gradient descent with a far too large step: the loss grows ~1000x per step until it overflows
    with pytest.raises(TrainingDiverged, match="diverged at step .*last good checkpoint is .*checkpoint_latest"):
        train(Mixer(3, key=jax.random.key(0)), make_task(), 100, key=jax.random.key(0), optimiser=optax.sgd(30.0),
              out=tmp_path, checkpoint_every=4, progress=False)
    h = read_header(tmp_path / LATEST)
    assert np.isfinite(h["losses"]).all() and h["step"] >= 4 and h["step"] % 4 == 0
    from dpattern.core.model import load_model
    assert np.isfinite(np.asarray(load_model(tmp_path / LATEST).weight)).all()


def test_tensorboard_scalars_and_images(tmp_path):
    class Logged(type(make_task())):
        def log(self, model, state, step, logger, key):
            logger.image("prediction", np.clip(np.asarray(model(self.inputs[0][0])).transpose(1, 2, 0), 0, 1), step)
            logger.histogram("weights", np.asarray(model.weight), step)

    t = make_task()
    task = Logged(batch_size=t.batch_size, inputs=t.inputs, targets=t.targets)
    train(Mixer(3, key=jax.random.key(0)), task, 10, key=jax.random.key(0), out=tmp_path, log_every=5,
          progress=False)
    acc = EventAccumulator(str(tmp_path / "logs"), size_guidance={"images": 0, "histograms": 0}).Reload()
    assert len(acc.Scalars("train/loss")) == 10
    assert [e.step for e in acc.Images("prediction")] == [5, 10]
    assert acc.Images("prediction")[0].width == 16
    assert len(acc.Histograms("weights")) == 2
    assert (tmp_path / BEST).exists()


def test_resume_refuses_other_model(tmp_path):
    task = make_task()
    train(Mixer(3, key=jax.random.key(0)), task, 2, key=jax.random.key(0), out=tmp_path, progress=False)
    other = make_task(channels=4)
    with pytest.raises(ValueError, match="trained with a different model"):
        train(Mixer(4, key=jax.random.key(0)), other, 4, key=jax.random.key(0), out=tmp_path, resume=True,
              progress=False)


def test_no_task_figures_without_a_run_directory():
    "Without `out` nothing is logged, so a task's (possibly costly) `log` is never called."
    class Loud(type(make_task())):
        def log(self, model, state, step, logger, key):
            raise AssertionError("log called without a run directory")

    t = make_task()
    task = Loud(batch_size=t.batch_size, inputs=t.inputs, targets=t.targets)
    train(Mixer(3, key=jax.random.key(0)), task, 4, key=jax.random.key(0), log_every=2, progress=False)
