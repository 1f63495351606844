"""Photo-consistent depth (semantic/depth_prior.py): a textured plane's depth is found from
its photos, a textureless one gets none, and seeding picks only empty or mis-placed pixels."""
import numpy as np
import pytest
import torch

from gaussian_renderer import render
from utils.graphics_utils import project_points
from semantic.depth_prior import _blurred, neighbour_views, photo_consistent_depth, seed_points
from tests.tiny import BG, PIPE, H, W, camera, model

pytestmark = pytest.mark.unit

# Five cameras 0.4 apart along x, looking along +z at the plane z = 0 from view depth 4.
XS = np.linspace(-0.8, 0.8, 5)


def photos_of_plane(textured: bool):
    """Cameras whose photos are renders of a plane z = 0 of small Gaussians with random
    colours (textured), or are all one grey (textureless)."""
    gx, gy = np.meshgrid(np.linspace(-3, 3, 61), np.linspace(-2.4, 2.4, 49))
    xyz = np.stack([gx.ravel(), gy.ravel(), np.zeros(gx.size)], 1)
    plane = model(xyz, scale=0.06, opacity=0.95)
    rgb = torch.rand(len(xyz), 3, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        plane._features_dc[:] = ((rgb - 0.5) / 0.28209479177387814)[:, None]
    cams = []
    for i, x in enumerate(XS):
        cam = camera(T=(x, 0.0, 4.0), uid=i)
        with torch.no_grad():
            cam.original_image = render(cam, plane, PIPE, BG)["render"].clamp(0, 1) \
                if textured else torch.full((3, H, W), 0.5)
        cams.append(cam)
    return cams


def centre_pixels(margin=10):
    ys, xs = torch.meshgrid(torch.arange(margin, H - margin), torch.arange(margin, W - margin),
                            indexing="ij")
    return xs.flatten(), ys.flatten()


def test_neighbours_are_the_nearest_cameras_and_never_the_view_itself():
    cams = [camera(T=(x, 0.0, 4.0), uid=i) for i, x in enumerate(XS)]
    nb = neighbour_views(cams[0], cams, k=2)
    assert [c.uid for c in nb] == [1, 2]
    behind = camera(T=(0.0, 0.0, 4.0), uid=9)
    behind.world_view_transform = behind.world_view_transform.clone()
    behind.world_view_transform[:3, :3] *= torch.tensor([-1.0, 1.0, -1.0])  # looks along -z
    assert all(c.uid != 9 for c in neighbour_views(cams[0], cams + [behind], k=5))


def test_a_textured_plane_is_found_at_its_depth():
    cams = photos_of_plane(textured=True)
    view = cams[2]
    xs, ys = centre_pixels()
    depth, ok, colour = photo_consistent_depth(view, xs, ys, neighbour_views(view, cams),
                                               view.original_image, 1.0, 32.0)
    assert ok.float().mean() > 0.8
    assert (depth[ok] - 4.0).abs().median() < 0.15   # the sweep steps are ~3 % apart here
    seen = _blurred(view.original_image)[:, ys[ok], xs[ok]].T  # the sweep compares 3x3 means
    assert (colour[ok] - seen).abs().mean() < 0.03
    # A novel view (no photo of its own) finds the same depth from its neighbours alone.
    novel = camera(T=(0.2, 0.0, 4.0), uid=7)
    d2, ok2, _ = photo_consistent_depth(novel, xs, ys, neighbour_views(novel, cams), None,
                                        1.0, 32.0)
    assert ok2.float().mean() > 0.8 and (d2[ok2] - 4.0).abs().median() < 0.15


def test_a_textureless_plane_gets_no_depth():
    cams = photos_of_plane(textured=False)
    xs, ys = centre_pixels()
    _, ok, _ = photo_consistent_depth(cams[2], xs, ys, neighbour_views(cams[2], cams),
                                      cams[2].original_image, 1.0, 32.0)
    assert ok.float().mean() < 0.05
    # textureless="far": the colours agree everywhere, so the farthest depth is taken.
    span = torch.zeros(xs.numel(), 2)
    depth, ok, colour = photo_consistent_depth(cams[2], xs, ys, neighbour_views(cams[2], cams),
                                               cams[2].original_image, 1.0, 32.0,
                                               textureless="far", span=span)
    assert ok.all() and torch.allclose(depth, torch.full_like(depth, 32.0))
    assert torch.allclose(colour, torch.full_like(colour, 0.5))
    assert torch.allclose(span[:, 1], depth) and float(span[:, 0].max()) < 1.2  # all agree


def test_seeding_picks_empty_or_misplaced_pixels_within_the_limit():
    cams = photos_of_plane(textured=True)
    view = cams[2]
    mask = torch.zeros(H, W, dtype=torch.bool)
    mask[8:-8, 8:-8] = True
    alpha = torch.ones(H, W)
    depth = torch.full((H, W), 4.0)          # the model already has the plane right
    torch.manual_seed(0)
    assert seed_points(view, mask, alpha, depth, view.original_image, cams, 4.0, 50,
                       reseed_solid=True) is None
    depth[:, : W // 2] = 2.0                 # left half rendered at half the depth: wrong
    alpha[: H // 2] = 0.0                    # top half empty
    for reseed in (True, False):
        xs, ys, z, rgb, spacing = seed_points(view, mask, alpha, depth, view.original_image,
                                              cams, 4.0, 30, reseed_solid=reseed)
        assert 0 < len(xs) <= 30 and spacing >= 3.0
        assert bool(((alpha[ys, xs] < 0.5) | (reseed & (depth[ys, xs] < 3.0))).all())
        assert bool(mask[ys, xs].all()) and (z - 4.0).abs().median() < 0.15
        if not reseed:
            assert bool((ys < H // 2).all())
    # What is placed back-projects onto the plane, where every camera sees it.
    from utils.graphics_utils import unproject_pixels
    pts = unproject_pixels(view, xs, ys, z)
    assert pts[:, 2].abs().median() < 0.15
    uv, zc = project_points(cams[0], pts)
    assert bool((zc > 0).all())


def test_guidance_seeds_on_the_plane_within_the_cap_and_protects_what_it_adds():
    import types
    from semantic.growth import RegionGrowth
    from semantic.proposers import Observation
    from semantic.schedule import Phase
    from tests.test_fastgs_strategy import fastgs
    cams = photos_of_plane(textured=True)
    view = cams[2]
    g = model([(5.0, 5.0, 0.0)], scale=0.05)          # one Gaussian, far outside the view
    s = fastgs(g)
    args = types.SimpleNamespace(spawn_depth="photo", textureless_depth="none",
                                 background_holes="share", hole_opacity=0.8)
    guidance = RegionGrowth(args, cams)
    obs = Observation("v2", torch.zeros(3, H, W), torch.zeros(H, W), view.original_image,
                      torch.zeros(H, W), focus_depth=4.0)
    mask = np.zeros((H, W), bool)
    mask[8:-8, 8:-8] = True
    torch.manual_seed(0)
    n = guidance.seed(s, g, view, obs, mask, Phase(2, 0, 100, 10, 25),
                      protect_until=160)
    assert 0 < n <= 25 and g.num_points == 1 + n
    assert g.get_xyz.detach()[1:, 2].abs().median() < 0.15   # on the plane z = 0
    assert s.protected(g, 159).tolist() == [False] + [True] * n
    torch.testing.assert_close(g.get_opacity.detach()[1:, 0], torch.full((n,), 0.1))
    # Hole fills use --hole_opacity: phase 2 with --background_holes fill (the view renders
    # empty here), and phase 3 (novel views: no photo will train what fills their holes).
    guidance.args.background_holes = "fill"
    k = guidance.seed(s, g, view, obs, mask, Phase(2, 0, 100, 10, 25))
    assert 0 < k <= 25 and torch.allclose(g.get_opacity.detach()[-k:, 0], torch.full((k,), 0.8))
    obs.target = None
    m = guidance.seed(s, g, view, obs, mask, Phase(3, 0, 100, 10, 25))
    assert 0 < m <= 25 and torch.allclose(g.get_opacity.detach()[-m:, 0], torch.full((m,), 0.8))
    # Phase 1 never seeds, nor does --spawn_depth render.
    assert guidance.seed(s, g, view, obs, mask, Phase(1, 0, 100, 10, 25)) == 0
    guidance.args.spawn_depth = "render"
    assert guidance.seed(s, g, view, obs, mask, Phase(2, 0, 100, 10, 25)) == 0
