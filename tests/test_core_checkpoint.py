"""Model save/load: bit-identical round trips, clear errors on bad files, atomic writes."""
import zipfile

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dpattern.core.boundary import FixedChannels
from dpattern.core.checkpoint import CheckpointError, atomic_write, read_header
from dpattern.core.model import Model, load_model
from toy import Mixer


def test_save_load_bit_identical(tmp_path):
    m = Mixer(4, key=jax.random.key(1))
    x = jax.random.uniform(jax.random.key(2), (2, 4, 9, 9))
    m.save(tmp_path / "m.dpt")
    m2 = Mixer.load(tmp_path / "m.dpt")
    assert np.array_equal(np.asarray(m(x)), np.asarray(m2(x)))
    assert read_header(tmp_path / "m.dpt")["model"]["hyperparams"] == {"channels": 4}
    assert isinstance(load_model(tmp_path / "m.dpt"), Mixer)


def test_nested_frozen_model_round_trip(tmp_path):
    f = FixedChannels([2, 0], jax.random.uniform(jax.random.key(0), (2, 5, 5)), where=jnp.eye(5))
    f.save(tmp_path / "f.dpt")
    g = FixedChannels.load(tmp_path / "f.dpt")
    x = jnp.ones((3, 5, 5))
    assert np.array_equal(np.asarray(f(x)), np.asarray(g(x)))


def test_truncated_file(tmp_path):
    Mixer(3, key=jax.random.key(0)).save(tmp_path / "m.dpt")
    data = (tmp_path / "m.dpt").read_bytes()
    (tmp_path / "cut.dpt").write_bytes(data[:-40])
    with pytest.raises(CheckpointError, match=r"cut.dpt: .*truncated"):
        Mixer.load(tmp_path / "cut.dpt")


def test_corrupted_bytes(tmp_path):
    m = Mixer(3, key=jax.random.key(0))
    m.save(tmp_path / "m.dpt")
    data = bytearray((tmp_path / "m.dpt").read_bytes())
    with zipfile.ZipFile(tmp_path / "m.dpt") as z:
        info = z.getinfo("leaf_00001.npy")
    pos = info.header_offset + 30 + len(info.filename) + info.file_size - 3  # inside the array's data
    data[pos] ^= 0xFF
    (tmp_path / "bad.dpt").write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="corrupted"):
        Mixer.load(tmp_path / "bad.dpt")


def test_wrong_kind_and_not_a_checkpoint(tmp_path):
    FixedChannels([0], jnp.zeros((1, 4, 4))).save(tmp_path / "f.dpt")
    with pytest.raises(CheckpointError, match="holds a FixedChannels model .* expected a Mixer"):
        Mixer.load(tmp_path / "f.dpt")
    (tmp_path / "junk.dpt").write_text("hello")
    with pytest.raises(CheckpointError, match="junk.dpt: not a dpattern checkpoint"):
        Mixer.load(tmp_path / "junk.dpt")
    with pytest.raises(CheckpointError, match="no such checkpoint"):
        Mixer.load(tmp_path / "nope.dpt")


def test_atomic_write_keeps_old_file_on_failure(tmp_path):
    p = tmp_path / "x.bin"
    p.write_bytes(b"old")

    def boom(f):
        f.write(b"partial")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError):
        atomic_write(p, boom)
    assert p.read_bytes() == b"old"
    assert [q.name for q in tmp_path.iterdir()] == ["x.bin"]


def test_unsaveable_hyperparameter_is_clear(tmp_path):
    class Bad(Model):
        act: object

        def __init__(self, act):
            self.act = act

    with pytest.raises(TypeError, match="hyperparameter 'act' of type custom_jvp cannot be saved"):
        Bad(jax.nn.relu).save(tmp_path / "b.dpt")
