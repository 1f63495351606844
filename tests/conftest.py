"""Shared fixtures and the test tiers (DESIGN.md "Testing tiers"; markers in pytest.ini).

Every test carries exactly one tier marker, so `pytest -m unit` (seconds) and the other tiers
select the whole suite between them; collection fails on a test without one. Builders a test
module needs at import time live in tests/tiny.py (cameras, models, options) and
tests/demo_scenes.py (procedural scenes, training helpers, the shared captures).
"""
import pytest

from tests.demo_scenes import make_scene
from tests.tiny import param_defaults, require_cpp

TIERS = ("unit", "e2e", "captures", "gpu", "cuda_cpu")
# A test that uses one of these fixtures is in that tier whatever its module's default says.
FIXTURE_TIERS = {"demo_scene": "e2e"}


def _tier_marks(node):
    return [m for m in node.own_markers if m.name in TIERS]


@pytest.hookimpl(tryfirst=True)  # before `-m` deselects anything
def pytest_collection_modifyitems(config, items):
    """Gives every test exactly one tier: its own marker, else the tier of a fixture it uses
    (FIXTURE_TIERS), else its class's or module's `pytestmark`. Fails collection when a test
    has none or two. The defaults move from the module onto the tests that keep them, so `-m`
    sees one tier per test."""
    chosen, wrong = {}, []
    for item in items:
        own = {m.name for m in _tier_marks(item)}
        by_fixture = {FIXTURE_TIERS[f] for f in item.fixturenames if f in FIXTURE_TIERS}
        default = set()
        for node in reversed(item.listchain()[:-1]):  # its class, then its module
            default = {m.name for m in _tier_marks(node)}
            if default:
                break
        tiers = own or by_fixture or default
        if len(tiers) != 1 or (own and by_fixture and own != by_fixture):
            wrong.append(f"{item.nodeid}: {', '.join(sorted(tiers | by_fixture)) or 'none'}")
        else:
            chosen[item] = tiers.pop()
    if wrong:
        raise pytest.UsageError(
            f"every test needs exactly one tier marker of {', '.join(TIERS)} (pytest.ini, "
            f"tests/conftest.py); {len(wrong)} do not:\n  " + "\n  ".join(wrong))
    for item, tier in chosen.items():
        for node in item.listchain()[:-1]:
            node.own_markers[:] = [m for m in node.own_markers if m.name not in TIERS]
        item.own_markers[:] = [m for m in item.own_markers if m.name not in TIERS]
        item.add_marker(tier)


# -- scenes ----------------------------------------------------------------------------------
@pytest.fixture(scope="session")
def demo_scene(tmp_path_factory):
    """The procedural demo capture (10 views, 64x48), made once per session. Read-only for the
    tests: one that changes a scene copies it first."""
    return make_scene(tmp_path_factory.mktemp("scene") / "demo", views=10, width=64, height=48)


# -- option namespaces: the CLI's defaults (tests.tiny.param_defaults for other groups) --
@pytest.fixture
def pipe_params():
    from arguments import PipelineParams
    return param_defaults(PipelineParams)


# -- renderers -------------------------------------------------------------------------------
@pytest.fixture(params=["torch", "cpp"])
def cpu_rasterize(request):
    """`rasterize` of each CPU backend: the PyTorch oracle, and the C++ rasterizer (skipped,
    saying why, where it cannot be built)."""
    from gaussian_renderer import cpp_backend, torch_backend
    if request.param == "cpp":
        require_cpp()
    return {"torch": torch_backend, "cpp": cpp_backend}[request.param].rasterize
