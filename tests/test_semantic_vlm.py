"""Qwen3-VL path on a tiny random model built here: loading, inputs, batched generate, answers
flowing into masks and densification, and the unparseable-answer path."""
import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest
import torch

from semantic.proposers import Observation, QwenProposer
from semantic.vlm import QwenVL, load_vlm, vlm_size
from bench.tiny_qwen import SHORT_PROMPTS, fit_answer, save_tiny_qwen
from tests.demo_scenes import REPO, make_scene, train_inprocess
from utils.errors import UserError

pytestmark = pytest.mark.e2e

ANSWER = '[{"bbox_2d": [100, 150, 600, 850], "label": "object"}]'


@pytest.fixture(scope="module")
def random_qwen(tmp_path_factory):
    return save_tiny_qwen(str(tmp_path_factory.mktemp("qwen") / "random"))


@pytest.fixture(scope="module")
def fitted_qwen(random_qwen, tmp_path_factory):
    path = str(tmp_path_factory.mktemp("qwen") / "fitted")
    shutil.copytree(random_qwen, path)
    loss = fit_answer(path, ANSWER, steps=120)
    assert loss < 0.1
    return path


def images(n, seed=0):
    rng = np.random.default_rng(seed)
    return [rng.integers(0, 256, (int(rng.integers(40, 110)), int(rng.integers(40, 150)), 3),
                         dtype=np.uint8) for _ in range(n)]


@pytest.mark.unit
def test_vlm_sizes_are_multiples_of_32_within_the_caps():
    for w, h in [(192, 108), (1600, 1066), (33, 20), (5000, 40)]:
        vw, vh = vlm_size(w, h, 448 * 448)
        assert vw % 32 == 0 and vh % 32 == 0 and vw * vh <= 448 * 448
    assert vlm_size(64, 32, 448 * 448, min_pixels=64 * 64)[0] * vlm_size(
        64, 32, 448 * 448, min_pixels=64 * 64)[1] >= 64 * 64
    assert vlm_size(1920, 1080, 448 * 448)[0] / vlm_size(1920, 1080, 448 * 448)[1] == \
        pytest.approx(1920 / 1080, rel=0.1)


def test_loads_through_from_pretrained_and_batches(random_qwen):
    vlm = load_vlm(random_qwen, "cpu", max_new_tokens=8)
    assert vlm.model is None  # lazy
    imgs = images(3)
    inputs, sizes = vlm.build_inputs(imgs, ["a", "bb", "ccc"])
    assert vlm.model is not None and vlm.model.dtype == torch.float32
    n_img = (inputs["input_ids"] == vlm.tokenizer.convert_tokens_to_ids("<|image_pad|>")).sum(1)
    grid = inputs["image_grid_thw"]
    assert n_img.tolist() == (grid.prod(1) // 4).tolist()
    assert torch.equal(inputs["mm_token_type_ids"].bool(),
                       inputs["input_ids"] == vlm.tokenizer.convert_tokens_to_ids("<|image_pad|>"))
    assert (inputs["attention_mask"][:, -1] == 1).all()  # left padding
    for (w, h), g in zip(sizes, grid):
        assert (w // 16, h // 16) == (int(g[2]), int(g[1]))
    texts, _ = vlm.generate(imgs, ["a", "bb", "ccc"])
    assert len(texts) == 3 and all(isinstance(t, str) for t in texts)


def test_chat_template_and_fallback_give_the_same_inputs(random_qwen, tmp_path):
    bare = str(tmp_path / "bare")
    save_tiny_qwen(bare, chat_template=False)
    a = QwenVL(random_qwen).build_inputs(images(2), ["find it", "x"])[0]
    b = QwenVL(bare).build_inputs(images(2), ["find it", "x"])[0]
    for k in ("input_ids", "attention_mask", "pixel_values", "image_grid_thw"):
        assert torch.equal(a[k], b[k]), k


def test_our_inputs_match_transformers_processor(random_qwen):
    try:
        from transformers.models.qwen3_vl.processing_qwen3_vl import Qwen3VLProcessor
        from transformers import AutoVideoProcessor
        vlm = QwenVL(random_qwen).load()
        proc = Qwen3VLProcessor(image_processor=vlm.image_processor, tokenizer=vlm.tokenizer,
                                video_processor=AutoVideoProcessor.from_pretrained(random_qwen))
    except Exception as e:  # noqa: BLE001 - any failure here means "not available"
        pytest.skip("transformers' Qwen3VLProcessor needs Qwen's video processor, which needs "
                    f"torchvision (not installed on CPU machines): {type(e).__name__}")
    imgs = images(2)
    ours, sizes = vlm.build_inputs(imgs, ["find it", "x"])
    from PIL import Image
    pils = [Image.fromarray(i).resize(s, Image.BICUBIC) for i, s in zip(imgs, sizes)]
    texts = [vlm.prompt_text(p) for p in ["find it", "x"]]
    theirs = proc(text=texts, images=pils, return_tensors="pt", padding=True)
    for k in ("input_ids", "pixel_values", "image_grid_thw"):
        assert torch.equal(ours[k], theirs[k]), k


def test_fitted_model_answers_boxes_in_view_pixels(fitted_qwen):
    imgs = images(3, seed=5)
    answers = load_vlm(fitted_qwen, max_new_tokens=40).ground(imgs, "Locate the object.")
    for img, a in zip(imgs, answers):
        h, w = img.shape[:2]
        assert a.status == "ok" and a.raw_text.strip() == ANSWER
        assert a.boxes[0] == pytest.approx((0.1 * w, 0.15 * h, 0.6 * w, 0.85 * h), abs=1e-6)


def _observation(w=80, h=60, seed=0):
    g = torch.Generator().manual_seed(seed)
    return Observation("v", torch.rand(3, h, w, generator=g), torch.ones(h, w),
                       torch.rand(3, h, w, generator=g))


def test_phase1_composite_boxes_map_to_the_render(fitted_qwen):
    vlm = load_vlm(fitted_qwen, max_new_tokens=40)
    obs = _observation()
    res, = QwenProposer(vlm, {"phase1": "p"}, max_box_frac=1.0).propose([obs], "phase1")
    # The model saw [render | photo] (2W wide): relative x maps through 2W, not W. With the
    # fitted answer (x about 100..600, centre in the left half) the box starts near 0.2W and
    # is clipped at the render's right edge.
    rel = json.loads(res.raw_text)[0]["bbox_2d"]
    assert (rel[0] + rel[2]) / 2 < 500
    (x1, y1, x2, y2), = res.boxes
    assert x1 == pytest.approx(rel[0] / 1000 * 160) and x2 == pytest.approx(min(80, rel[2] / 1000 * 160))
    assert (y1, y2) == pytest.approx((rel[1] / 1000 * 60, rel[3] / 1000 * 60))
    assert res.mask[30, 70] and not res.mask[30, 2]


def test_untrained_model_answers_are_handled(random_qwen):
    vlm = load_vlm(random_qwen, max_new_tokens=12)
    results = QwenProposer(vlm, SHORT_PROMPTS).propose(
        [_observation(seed=i) for i in range(2)], "phase2")
    for r in results:
        assert r.status in ("empty", "unparseable") and r.boxes == []
        assert r.mask.all()  # no subject found: the whole view is background
        assert r.latency_s > 0


def test_guided_training_with_the_fitted_model(fitted_qwen, tmp_path_factory):
    scene = make_scene(tmp_path_factory.mktemp("vlm") / "demo", views=8, width=64, height=48)
    m = str(tmp_path_factory.mktemp("vlm") / "m")
    prompts = str(tmp_path_factory.mktemp("vlm") / "prompts.yaml")
    with open(prompts, "w") as f:
        json.dump(SHORT_PROMPTS, f)  # JSON is YAML
    train_inprocess(["-s", scene, "-m", m, "--random_init", "100", "--iterations", "40",
                     "--prompt_file", prompts,
                     "--qwen_model_path", fitted_qwen, "--vlm_max_new_tokens", "40",
                     "--semantic_num_samples", "2", "--phase1_end", "20", "--phase1_interval",
                     "10", "--phase2_start", "20", "--phase2_end", "30", "--phase2_interval",
                     "10", "--phase3_start", "30", "--phase3_end", "35", "--phase3_interval",
                     "5", "--phase1_max_points", "50", "--phase2_max_points", "50",
                     "--phase3_max_points", "50", "--max_box_frac", "0.9",
                     "--save_region_vis", "--quiet", "--no_tensorboard",
                     "--test_iterations", "99", "--save_iterations", "40"])
    added = 0
    for it in (10, 20, 30, 35):
        folder = os.path.join(m, "regions", f"iter_{it:06d}")
        rec = json.load(open(os.path.join(folder, "regions.json")))
        for v in rec["views"]:
            assert '"bbox_2d"' in v["raw_text"] and v["parse_status"] == "ok"
            assert len(v["boxes"]) == 1
            assert os.path.isfile(os.path.join(folder, v["view"] + "_mask.png"))
            new = v["densified"] + v["spawned"] + v["seeded"]
            assert new <= 50  # --phaseN_max_points: per view and analysis
            added += new
    assert added > 0


def test_missing_model_folder_is_one_line_before_training(tmp_path):
    # A real scene: train.py reads its image headers (to resolve the size-dependent defaults)
    # before the model path is checked; nothing is loaded or written before either.
    scene = make_scene(tmp_path / "scene", views=3, width=16, height=12)
    r = subprocess.run([sys.executable, "train.py", "-s", scene, "-m", str(tmp_path / "m"),
                        "--qwen_model_path", str(tmp_path / "no_model")], cwd=REPO,
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 2  # a user error, as every CLI's
    lines = [ln for ln in r.stderr.strip().splitlines() if ln.strip()]
    assert len(lines) == 1 and "--qwen_model_path" in lines[0], r.stderr
    assert not os.path.exists(tmp_path / "m" / "input.ply")   # the scene never loaded


@pytest.mark.unit
def test_folder_without_config_is_refused(tmp_path):
    with pytest.raises(UserError, match="config.json"):
        load_vlm(str(tmp_path))
