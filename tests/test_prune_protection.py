"""Per-Gaussian prune protection and spawn opacity: what semantic guidance asks of the
strategies' region hooks and final pruning."""
import pytest
import torch

from scene.strategies.regions import add_regions
from tests.test_fastgs_strategy import (A, B, context, fastgs, grid_model, left_mask, strategy,
                                        wrong_on_left)
from tests.tiny import H, W, camera, model

pytestmark = pytest.mark.unit


def test_protected_gaussians_survive_final_pruning_until_their_protection_ends():
    D = (1.0, 1.0, 0.0)
    g = model([A, B, D], opacity=[0.9, 0.9, 0.05])
    s = fastgs(g)
    s.protect(g, 2, until=20_100)                     # D, the transparent one, was just added
    s.initialize_state(g)                             # a densification event resets the stats
    assert s.protected(g, 20_000).tolist() == [False, False, True]
    assert s.final_prune(g, 20_000, context([wrong_on_left(g)])) == 1   # A (blamed) goes
    assert g.num_points == 2 and s.protected(g, 20_000).tolist() == [False, True]  # in step
    assert not s.protected(g, 20_100).any()           # protection over: D goes next time
    assert s.final_prune(g, 20_100, context([wrong_on_left(g)])) == 1 and g.num_points == 1


def test_region_hooks_protect_exactly_what_they_add():
    g = grid_model()
    s = strategy("fastgs", g, dense=0.0)              # every grid Gaussian splits
    cam = camera()
    before = g.get_xyz.detach().clone()
    out = add_regions(s, g, [cam], [left_mask()], budget=4, mode="both", scorer=context([cam]),
                      protect_until=500)
    assert out["densified"] == 2 and out["spawned"] == 2
    prot = s.protected(g, 499)
    assert int(prot.sum()) == 2 * 2 + 2               # two split parents' children, two spawns
    assert bool(prot[-6:].all()) and not bool(prot[:-6].any())
    kept = g.get_xyz.detach()[:-6]                    # the untouched rows are the old ones
    assert all(bool((before == row).all(1).any()) for row in kept)
    assert not s.protected(g, 500).any()


def test_spawned_opacity_is_the_callers_choice():
    g = model([B], scale=0.6, opacity=0.99)
    s = strategy("fastgs", g)
    cam = camera()
    mask = torch.zeros(H, W, dtype=torch.bool)
    mask[10:20, 5:15] = True
    add_regions(s, g, [cam], [mask], budget=5, mode="spawn", scorer=context([cam]))
    add_regions(s, g, [cam], [mask], budget=5, mode="spawn", scorer=context([cam]),
                spawn_opacity=0.8)
    op = g.get_opacity.detach()[1:, 0]
    torch.testing.assert_close(op, torch.tensor([0.1] * 5 + [0.8] * 5), atol=1e-5, rtol=0)


def test_spawning_draws_from_its_own_generator_never_the_global_rng():
    """Region spawning samples its pixels from the caller's seeded generator: the same seed
    and key give the same Gaussians, another key others, and torch's global RNG (which the
    training loop's splits and random backgrounds use) is left as it was."""
    from utils.general_utils import seeded_generator

    def spawned(key):
        g = model([B], scale=0.6, opacity=0.99)
        s = strategy("fastgs", g)
        cam = camera()
        mask = torch.zeros(H, W, dtype=torch.bool)
        mask[5:25, 5:25] = True
        before = torch.get_rng_state()
        add_regions(s, g, [cam], [mask], budget=5, mode="spawn", scorer=context([cam]),
                    generator=seeded_generator(3, key))
        assert torch.equal(torch.get_rng_state(), before)
        return g.get_xyz.detach()[1:]
    first = spawned(7)
    assert first.shape == (5, 3)
    assert torch.equal(first, spawned(7)) and not torch.equal(first, spawned(8))
