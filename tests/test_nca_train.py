"""Training acceptance: regeneration after damage, morph through three images, texture from noise."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dpattern.core.data import load_image, load_texture
from dpattern.core.train import train
from dpattern.nca.runs import nca_optimiser
from dpattern.nca.model import NCA
from dpattern.nca.tasks import Grow, Morph, Texture, visible_l2
from dpattern.nca.visualise import erase_disc


def _fit(model, task, steps, seed=0):
    r = train(model, task, steps, jax.random.key(seed), optimiser=nca_optimiser(steps), progress=False,
              log_every=10**9, checkpoint_every=10**9)
    return r.model


def test_regeneration_after_damage():
    target = load_image("logo", size=16, pad=2)                                # [4, 20, 20]
    task = Grow(target, channels=12, batch_size=8, pool_size=64, steps=(16, 28), window=4, damage=2, reseed=2,
                warmup=300)                                                    # seed-only growth first, then the pool
    model = _fit(NCA(12, hidden=48, key=jax.random.key(0)), task, 600)
    loss = lambda x: float(visible_l2(x[None], target)[0])
    # erase a disc covering 20% of the pattern (alpha > 0.1), off the middle
    area = float((target[3] > 0.1).sum())
    radius = np.sqrt(0.2 * area / np.pi) / target.shape[-1]
    ratios = []
    for i in range(3):
        grown, _ = model.rollout(task.seed, 56, jax.random.key(10 + i))
        hurt = erase_disc(grown, centre=(0.38, 0.62), radius=radius)
        erased = float(((grown[3] > 0.1) & (hurt[3] == 0)).sum()) / area
        assert 0.12 < erased < 0.28, erased
        key = jax.random.key(20 + i)
        undamaged = loss(model.rollout(grown, 56, key)[0])           # the same number of further steps, no damage
        damaged, regrown = loss(hurt), loss(model.rollout(hurt, 56, key)[0])
        print(f"initial {loss(task.seed):.4f} undamaged {undamaged:.4f} damaged {damaged:.4f} regrown {regrown:.4f}")
        assert undamaged < loss(task.seed) / 3        # it grew the pattern and keeps it
        assert damaged > 2 * undamaged                # the damage hurt
        ratios.append(regrown / undamaged)
    assert max(ratios) <= 2, ratios                   # ... and was repaired


def _shape(kind, colour, n=16, r=5):
    y, x = np.mgrid[0:n, 0:n] - (n - 1) / 2
    mask = {"disc": x**2 + y**2 <= r**2, "square": (abs(x) <= r - 1) & (abs(y) <= r - 1),
            "ring": (x**2 + y**2 <= (r + 1)**2) & (x**2 + y**2 >= (r - 2)**2)}[kind].astype(np.float32)
    return np.concatenate([np.array(colour, np.float32)[:, None, None] * mask, mask[None]])


def test_morph_three_images_reduces_loss_5x():
    frames = np.stack([_shape("disc", (0.9, 0.2, 0.1)), _shape("square", (0.1, 0.6, 0.2)),
                       _shape("ring", (0.1, 0.3, 0.9))])
    task = Morph(frames, channels=12, batch_size=4, steps=16, max_shift=2)
    model = NCA(12, hidden=48, key=jax.random.key(0))
    before = float(task.evaluate(model, jax.random.key(9)))
    after = float(task.evaluate(_fit(model, task, 400), jax.random.key(9)))
    print(f"morph {before:.4f} -> {after:.4f} ({before / after:.1f}x)")
    assert after <= before / 5


def test_texture_brick_reduces_loss_5x():
    brick = load_texture("brick", size=32, crop=128)          # bricks a few cells wide, mortar lines
    task = Texture(brick, channels=8, size=32, batch_size=4, pool_size=32, steps=(16, 24))
    model = NCA(8, perception="anisotropic_laplacian", hidden=32, alive_threshold=None, visible=1,
                key=jax.random.key(0))
    before = float(task.evaluate(model, jax.random.key(9)))
    trained = _fit(model, task, 100)
    after = float(task.evaluate(trained, jax.random.key(9)))
    print(f"texture {before:.4f} -> {after:.4f} ({before / after:.1f}x)")
    assert after <= before / 5
    # not a flat image: the grown texture has about the exemplar's contrast
    y, _ = trained.rollout(task.noise(jax.random.key(3), None), 24, jax.random.key(4))
    assert 0.5 < float(y[0].std() / brick.std()) < 2
