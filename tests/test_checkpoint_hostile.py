"""Hostile and careless checkpoints and run directories: crafted headers, huge claims, zip bombs, NaN weights,
kills during writes, a full disk, divergence with failing figure hooks."""
import errno
import io
import json
import os
import signal
import struct
import subprocess
import sys
import time
import warnings
import zipfile
import zlib
from pathlib import Path

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from conftest import ROOT
from dpattern.core.boundary import FixedChannels
from dpattern.core.checkpoint import CheckpointError, WriteError, load_pytree, read_header, save_pytree
from dpattern.core.model import load_model
from dpattern.core.train import BEST, LATEST, TrainingDiverged, read_training_header, train
from toy import Mixer, MixTask, make_task

ENV = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT / "tests"), str(ROOT)]), JAX_PLATFORMS="cpu")


def _child(code: str, *args, timeout=300):
    "Run `code` in a fresh Python; returns (returncode, stdout, stderr, peak RSS in bytes of that child)."
    p = subprocess.Popen([sys.executable, "-c", code, *map(str, args)], env=ENV, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True)
    out, err = p.communicate(timeout=timeout)
    # the child reports its own peak resident memory (getrusage RUSAGE_SELF, read just before it exits)
    peak = int(out.rsplit("PEAK", 1)[1]) if "PEAK" in out else None
    return p.returncode, out, err, peak


LOAD = """
import resource, sys
from dpattern.core.checkpoint import CheckpointError
from dpattern.core.model import load_model
import toy
try:
    load_model(sys.argv[1], toy.Mixer)
    print("LOADED")
except CheckpointError as e:
    print("ERR", e)
print("PEAK", resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024)
"""


def _rewrite(src, dst, header_edit=None, members=None, compression=zipfile.ZIP_STORED):
    "Copy a checkpoint, editing its header dict and replacing members (name -> bytes)."
    members = members or {}
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w") as zout:
        for info in zin.infolist():
            data = zin.read(info)
            if info.filename == "header.json" and header_edit is not None:
                h = json.loads(data)
                header_edit(h)
                data = json.dumps(h).encode()
            zout.writestr(info.filename, members.get(info.filename, data), compression)
    return Path(dst)


def _npy_header(shape, dtype="<f4") -> bytes:
    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(buf, {"descr": dtype, "fortran_order": False, "shape": tuple(shape)})
    return buf.getvalue()


@pytest.fixture
def saved(tmp_path):
    m = Mixer(3, key=jax.random.key(0))
    return m, m.save(tmp_path / "m.dpt")


# --- crafted claims: refused before anything is allocated, measured in the child --------------------------------

def test_huge_claims_refused_with_low_peak_memory(tmp_path, saved):
    _, p = saved
    cases = {
        # the header's own entry claims a 10^6 x 10^6 weight
        "header_shape": _rewrite(p, tmp_path / "a.dpt", lambda h: h["leaves"][1].update(shape=[10**6, 10**6])),
        # header consistent, but the .npy member's own header claims 10^12 elements
        "npy_shape": _rewrite(p, tmp_path / "b.dpt", members={"leaf_00001.npy": _npy_header((10**6, 10**6))}),
        # hyperparameters asking for a model of 4e14 bytes (the header's array entries untouched)
        "hyperparams": _rewrite(p, tmp_path / "c.dpt", lambda h: h["model"]["hyperparams"].update(channels=10**7)),
    }
    expect = {"header_shape": "above the limit", "npy_shape": "stored as shape (1000000, 1000000)",
              "hyperparams": "describe a Mixer with"}
    for name, f in cases.items():
        rc, out, err, peak = _child(LOAD, f)
        assert rc == 0, err
        assert "ERR " in out and expect[name] in out and str(f) in out, (name, out)
        assert peak is not None and peak < 2**30, (name, peak / 2**20)


def test_zip_bomb_refused_without_inflating(tmp_path, saved):
    _, p = saved
    dst = tmp_path / "bomb.dpt"  # a ~2 MB file whose weight member inflates to 2 GiB of zeros
    with zipfile.ZipFile(p) as zin, zipfile.ZipFile(dst, "w", compression=zipfile.ZIP_DEFLATED) as zout:
        for info in zin.infolist():
            data = zin.read(info)
            if info.filename != "leaf_00001.npy":
                zout.writestr(info.filename, data)
                continue
            zi = zipfile.ZipInfo(info.filename)
            zi.compress_type = zipfile.ZIP_DEFLATED
            with zout.open(zi, "w", force_zip64=True) as f:
                f.write(data)
                chunk = bytes(2**24)
                for _ in range(2**31 // len(chunk)):  # 2 GiB of zeros
                    f.write(chunk)
    assert dst.stat().st_size < 4 * 2**20, dst.stat().st_size
    rc, out, err, peak = _child(LOAD, dst)
    assert rc == 0, err
    assert "ERR " in out and "bytes uncompressed" in out and "damaged or crafted" in out, out
    assert peak < 2**30, peak / 2**20


def test_zip_bomb_lying_about_its_size_is_bounded(tmp_path, saved):
    "A member whose directory entries claim the expected size but whose data inflates to 200 MB."
    _, p = saved
    with zipfile.ZipFile(p) as z:
        npy = z.read("leaf_00001.npy")
        names = {i.filename: z.read(i) for i in z.infolist()}
    dst = tmp_path / "liar.dpt"
    with zipfile.ZipFile(dst, "w", compression=zipfile.ZIP_DEFLATED) as zout:
        for n, data in names.items():
            zout.writestr(n, npy + bytes(200 * 2**20) if n == "leaf_00001.npy" else data)
    raw = bytearray(dst.read_bytes())
    with zipfile.ZipFile(dst) as z:
        info = z.getinfo("leaf_00001.npy")
    # patch the uncompressed size in the local header (offset 22) and in the central directory entry (offset 24)
    struct.pack_into("<I", raw, info.header_offset + 22, len(npy))
    pos = raw.find(b"PK\x01\x02")
    while True:
        pos = raw.find(b"PK\x01\x02", pos)
        name_len = struct.unpack_from("<H", raw, pos + 28)[0]
        if raw[pos + 46: pos + 46 + name_len] == b"leaf_00001.npy":
            struct.pack_into("<I", raw, pos + 24, len(npy))
            break
        pos += 4
    dst.write_bytes(bytes(raw))
    rc, out, err, peak = _child(LOAD, dst)
    assert rc == 0, err
    assert "ERR " in out and "corrupted" in out, out
    assert peak < 2**30, peak / 2**20


# --- crafted headers: every field checked -------------------------------------------------------------------------

@pytest.mark.parametrize("edit, message", [
    (lambda h: h.pop("leaves"), "the header has no 'leaves' field"),
    (lambda h: h.update(leaves="x"), "header field 'leaves' is a string"),
    (lambda h: h["leaves"][0].pop("shape"), "leaves[0]: the header has no 'shape' field"),
    (lambda h: h["leaves"][0].update(shape=[-1]), "expected at most 32 sizes >= 0"),
    (lambda h: h["leaves"][0].update(dtype="|O"), "expected a numeric dtype"),
    (lambda h: h.update(version="1"), "header field 'version' is a string"),
    (lambda h: h.pop("kind"), "the header has no 'kind' field"),
    (lambda h: h.pop("model"), "holds a 'model', not a model"),
    (lambda h: h["model"].update(hyperparams=[3]), "model entry: header field 'hyperparams' is a list"),
    (lambda h: h["model"].update(kind="os.system"), "unknown model kind 'os.system' (not a dpattern model)"),
    (lambda h: h["model"]["hyperparams"].update(channels="3"), "cannot build a Mixer"),
    (lambda h: h["model"]["hyperparams"].update(channels=4), "array 0 is .weight of shape (3, 3), expected .weight"),
])
def test_crafted_header_is_one_clear_error(tmp_path, saved, edit, message):
    _, p = saved
    bad = _rewrite(p, tmp_path / "bad.dpt", edit)
    with pytest.raises(CheckpointError, match=r"bad\.dpt") as e:
        load_model(bad, Mixer)
    assert message in str(e.value), str(e.value)


def test_header_not_strict_json_or_not_an_object(tmp_path, saved):
    _, p = saved
    with zipfile.ZipFile(p) as z:
        text = z.read("header.json").decode()
    nan = _rewrite(p, tmp_path / "nan.dpt", members={"header.json": text.replace('"version": 1', '"version": NaN')})
    with pytest.raises(CheckpointError, match="NaN is not valid JSON"):
        read_header(nan)
    lst = _rewrite(p, tmp_path / "list.dpt", members={"header.json": b"[1, 2]"})
    with pytest.raises(CheckpointError, match="the header is a list, expected a JSON object"):
        read_header(lst)
    flipped = bytearray(p.read_bytes())
    flipped[flipped.find(b'"format"') + 3] ^= 0x01  # a bit flip inside the header: the CRC catches it
    (tmp_path / "flip.dpt").write_bytes(bytes(flipped))
    with pytest.raises(CheckpointError, match="flip.dpt: the header is corrupted"):
        load_model(tmp_path / "flip.dpt")


def test_saved_headers_are_strict_json(tmp_path):
    p = save_pytree(tmp_path / "t.dpt", {"w": jnp.ones(2)}, "training", best=float("inf"), losses=[float("nan")])
    with zipfile.ZipFile(p) as z:
        h = json.loads(z.read("header.json"), parse_constant=lambda c: pytest.fail(f"bare {c} in header"))
    assert h["best"] is None and h["losses"] == [None]


def test_other_family_says_which(tmp_path):
    FixedChannels([0], jnp.zeros((1, 4, 4))).save(tmp_path / "f.dpt")
    with pytest.raises(CheckpointError, match=r"f.dpt: holds a FixedChannels model of the core family "
                                              r"\(dpattern.core.boundary.FixedChannels\), expected a Mixer"):
        load_model(tmp_path / "f.dpt", Mixer)
    save_pytree(tmp_path / "x.dpt", {"w": jnp.ones(2)}, "trajectory")
    with pytest.raises(CheckpointError, match="holds a 'trajectory', not a model"):
        load_model(tmp_path / "x.dpt")


def test_nan_weights_refused(tmp_path, saved):
    m, _ = saved
    bad = eqx.tree_at(lambda m: m.weight, m, m.weight.at[1, 2].set(jnp.nan))
    bad.save(tmp_path / "nan.dpt")
    with pytest.raises(CheckpointError, match=r"array \.weight holds 1 NaN or infinite value of 9: the run that "
                                              r"wrote it had diverged"):
        load_model(tmp_path / "nan.dpt", Mixer)
    assert np.isnan(np.asarray(load_model(tmp_path / "nan.dpt", finite=False).weight)).sum() == 1


def test_resume_from_nan_or_damaged_training_checkpoint_refused(tmp_path):
    task = make_task()
    train(Mixer(3, key=jax.random.key(0)), task, 4, key=jax.random.key(0), out=tmp_path, checkpoint_every=2,
          progress=False)
    good = (tmp_path / LATEST).read_bytes()
    with zipfile.ZipFile(tmp_path / LATEST) as z:
        h = json.loads(z.read("header.json"))
        i = next(k for k, leaf in enumerate(h["leaves"]) if leaf["path"] == "['model'].weight")
        a = np.load(io.BytesIO(z.read(f"leaf_{i:05d}.npy")))
    a[0, 0] = np.inf
    buf = io.BytesIO()
    np.save(buf, a)
    _rewrite(_copy(good, tmp_path / "orig.dpt"), tmp_path / LATEST,
             members={f"leaf_{i:05d}.npy": buf.getvalue()})
    with pytest.raises(CheckpointError, match=r"\['model'\].weight holds 1 NaN or infinite"):
        train(Mixer(3, key=jax.random.key(0)), task, 8, key=jax.random.key(0), out=tmp_path, resume=True,
              progress=False)
    _rewrite(tmp_path / "orig.dpt", tmp_path / LATEST, lambda h: h.pop("step"))
    with pytest.raises(CheckpointError, match="the header has no 'step' field"):
        train(Mixer(3, key=jax.random.key(0)), task, 8, key=jax.random.key(0), out=tmp_path, resume=True,
              progress=False)
    with pytest.raises(CheckpointError, match="the header has no 'step' field"):
        read_training_header(tmp_path / LATEST)


def _copy(data: bytes, path: Path) -> Path:
    path.write_bytes(data)
    return path


# --- kills during checkpoint writes --------------------------------------------------------------------------------

KILL_SCRIPT = """
import sys, time, jax, jax.numpy as jnp
from dpattern.core.train import train
from toy import Mixer, MixTask, make_task

class Pooled(MixTask):
    "A task whose state (a pool) makes each checkpoint ~8 MB, so its write takes a while."
    def init(self, key):
        return jax.random.uniform(key, (2048, 1024))

t = make_task()
task = Pooled(batch_size=t.batch_size, inputs=t.inputs, targets=t.targets)
train(Mixer(3, key=jax.random.key(0)), task, int(sys.argv[2]), key=jax.random.key(1), out=sys.argv[1],
      resume=True, checkpoint_every=2, log_every=1, progress=False, on_step=lambda i, l: time.sleep(0.02))
print("DONE")
"""


def _temporaries(out: Path):
    return [p for p in out.glob(".checkpoint_*.tmp-*")] if out.exists() else []


def _start(out, steps):
    return subprocess.Popen([sys.executable, "-c", KILL_SCRIPT, str(out), str(steps)], env=ENV,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def test_kill_during_writes_then_resume(tmp_path):
    out, steps, kills, during_best = tmp_path / "run", 40, 0, 0
    for attempt in range(5):
        p = _start(out, steps)
        deadline, hit = time.time() + 240, None
        want_best = attempt % 2 == 0  # alternate: kill while the best file is written, then while any is
        while time.time() < deadline and p.poll() is None:
            tmps = _temporaries(out)
            if tmps and (not want_best or any(".checkpoint_best" in t.name for t in tmps)):
                p.send_signal(signal.SIGKILL)
                hit = tmps
                break
            time.sleep(0.0005)
        p.wait()
        if hit is None:
            continue
        kills += 1
        during_best += any(".checkpoint_best" in t.name for t in hit)
        # the invariant the fix keeps: the latest header never names a best score whose file is not in place
        if (out / LATEST).exists():
            latest = read_training_header(out / LATEST)
            assert (out / BEST).exists(), "latest names a best checkpoint that is not there"
            assert read_training_header(out / BEST)["best"] == latest["best"]
    assert kills >= 3 and during_best >= 1, (kills, during_best)
    assert _temporaries(out), "the last kill should have left a temporary behind"
    p = _start(out, steps)
    o, e = p.communicate(timeout=600)
    assert p.returncode == 0 and "DONE" in o, e
    assert not list(out.glob(".*.tmp-*")), list(out.iterdir())
    for name in (LATEST, BEST):
        assert isinstance(load_model(out / name, Mixer), Mixer)
    assert read_training_header(out / LATEST)["step"] == steps
    # TensorBoard holds each step's loss once, however often the steps were replayed
    from tensorboard.backend.event_processing.event_file_loader import EventFileLoader
    seen = sorted(ev.step for f in (out / "logs").glob("*tfevents*") for ev in EventFileLoader(str(f)).Load()
                  if any(v.tag == "train/loss" for v in ev.summary.value))
    assert seen == list(range(steps)), seen


# --- divergence with failing figure hooks -------------------------------------------------------------------------

def test_divergence_named_despite_failing_figures(tmp_path):
    calls = []

    def figure(model, step, logger, key):
        calls.append(step)
        raise ValueError("no live cells in the states: nothing to measure")

    with warnings.catch_warnings(record=True) as caught, pytest.raises(TrainingDiverged) as e:
        warnings.simplefilter("always")
        train(Mixer(3, key=jax.random.key(0)), make_task(), 100, key=jax.random.key(0), optimiser=optax.sgd(30.0),
              out=tmp_path, checkpoint_every=2, log_every=1, callbacks=[figure], progress=False)
    err = e.value
    assert "training diverged at step" in str(err) and str(tmp_path / LATEST) in str(err)
    assert err.checkpoint == tmp_path / LATEST and err.step >= 2 and calls
    assert any("callback figure failed" in str(w.message) for w in caught)
    assert np.isfinite(np.asarray(load_model(err.checkpoint, Mixer).weight)).all()
    assert read_training_header(err.checkpoint)["step"] <= err.step


def test_divergence_factor_stops_a_growing_finite_loss(tmp_path):
    with pytest.raises(TrainingDiverged, match=r"more than 10 times the lowest so far") as e:
        train(Mixer(3, key=jax.random.key(0)), make_task(), 100, key=jax.random.key(0), optimiser=optax.sgd(30.0),
              out=tmp_path, checkpoint_every=1, diverge_factor=10.0, progress=False)
    assert np.isfinite(e.value.loss)
    h = read_training_header(tmp_path / LATEST)
    assert max(h["losses"]) <= 10 * min(h["losses"])


# --- a full disk ---------------------------------------------------------------------------------------------------

class _Pooled(MixTask):
    def init(self, key):
        return jax.random.uniform(key, (180, 1024))  # ~740 kB per checkpoint: the third write fills 2 MB


def _pooled():
    t = make_task()
    return _Pooled(batch_size=t.batch_size, inputs=t.inputs, targets=t.targets)


def _full_disk_dir(tmp_path, monkeypatch, try_mount):
    "A 2 MB tmpfs if this process may mount one, else a simulated disk that fills after 2 MB of fsynced writes."
    d = tmp_path / "small"
    d.mkdir()
    if try_mount:
        r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(d)], capture_output=True)
        if r.returncode == 0:
            return d, True
    written = {"n": 0}
    real = os.fsync

    def fsync(fd):
        written["n"] += os.fstat(fd).st_size
        if written["n"] > 2 * 2**20:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    return d, False


@pytest.mark.parametrize("try_mount", [True, False], ids=["tmpfs", "simulated"])
def test_full_disk_is_a_clear_error_and_keeps_the_last_checkpoint(tmp_path, monkeypatch, try_mount):
    d, mounted = _full_disk_dir(tmp_path, monkeypatch, try_mount)
    try:
        with pytest.raises(WriteError, match=r"could not write .*checkpoint_.*\.dpt: the disk is full; the previous "
                                             r"file is unchanged") as e:
            train(Mixer(3, key=jax.random.key(0)), _pooled(), 200, key=jax.random.key(0), out=d, checkpoint_every=2,
                  progress=False)
        assert isinstance(e.value, OSError) and e.value.errno == errno.ENOSPC
        h = read_training_header(d / LATEST)
        assert h["step"] >= 2
        assert isinstance(load_model(d / LATEST, Mixer), Mixer)
        assert not list(d.glob(".*.tmp-*"))
    finally:
        if mounted:
            subprocess.run(["umount", "-l", str(d)], check=False)
