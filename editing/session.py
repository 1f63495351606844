"""The edit session: one edit.py run over one --output folder.

A session loads the trained model (-m, its cfg_args and the chosen iteration) once, decides
where the run starts (output_folder.py: a fresh run after round 0, --resume after the last
round training_state.yaml names, --from_round K after round K), builds the shared training
loop (scene/trainer.py) with the edit's strategy, loads the editor and the metric models,
writes the manifest, then runs rounds start+1 .. --rounds (rounds.py), each committed before
the next begins.

Between rounds the session keeps: the trained model's snapshot (round 0, and the reference the
drift metrics compare with), the cameras (holding their photos again), the RoI annotations
(given, or the VLM's answer for --roi_prompt, asked once per run) and the manifest. Each round
re-reads the previous round's snapshot from disk, so a resumed run takes exactly the path an
uninterrupted one does.
"""
import copy
import json
import os
import time
from argparse import ArgumentParser
from typing import Dict

import torch

from editing import artifacts
from editing.artifacts import Layout
from editing.editors import make_editor
from editing.losses import LossWeights
from editing.metrics import ClipDirection, LpipsMetric
from editing.output_folder import check_output, prepare_output
from editing.policies import EditStrategy, scale_learning_rates
from editing.roi import annotations_from_record, ground_annotations, parse_annotations
from editing.rounds import run_round
from scene.checkpoint import model_capture
from utils.errors import UserError
from utils.image_utils import to_uint8


def load_trained_setup(cfg):
    """The trained model's settings (cfg_args) as train.py's parameter groups, with the
    edit's overrides (-s, -i, --device, --backend, --seed)."""
    from arguments import (DensificationParams, ModelParams, OptimizationParams,
                           PipelineParams, check_values, read_cfg_args)
    if not os.path.isdir(cfg.model_path):
        raise UserError(f"-m/--model_path {cfg.model_path}: no such folder")
    saved = read_cfg_args(cfg.model_path)
    if not saved:
        raise UserError(f"-m/--model_path {cfg.model_path} has no cfg_args: not a train.py "
                        "output folder")
    parser = ArgumentParser()
    groups = (ModelParams(parser), OptimizationParams(parser), PipelineParams(parser),
              DensificationParams(parser))
    ns = parser.parse_args([])
    saved = check_values(parser, saved, os.path.join(cfg.model_path, "cfg_args"))
    for k, v in saved.items():
        setattr(ns, k, v)
    ns.model_path = cfg.model_path
    for k in ("source_path", "images", "device", "backend"):
        if getattr(cfg, k, None):
            setattr(ns, k, getattr(cfg, k))
    ns.seed = cfg.seed
    ns.depths = ""  # the capture's depth maps describe the scene before the edit
    return tuple(g.extract(ns) for g in groups)


def _clone_capture(captured: dict) -> dict:
    out = dict(captured)
    out["params"] = {k: v.clone() for k, v in captured["params"].items()}
    return out


class EditSession:
    """One edit.py run over one --output folder: `EditSession(cfg).run()` loads the trained
    model, resumes after the last round training_state.yaml names (or after --from_round K;
    a fresh folder after round 0), runs the rounds still to do up to --rounds (rounds.py),
    and returns the training state (training_state.yaml's content)."""

    def __init__(self, cfg):
        self.cfg = cfg
        self.layout = Layout(cfg.output)
        self.loss_weights = LossWeights.from_config(cfg)
        self.grounding = None  # the VLM's answer, with --roi_prompt

    # ================================================================== setup
    def setup(self):
        cfg = self.cfg
        from utils.hf_models import check_model_folder
        from gaussian_renderer import render
        from scene import Scene
        from scene.gaussian_model import GaussianModel
        from scene.trainer import TrainConfig, Trainer
        from utils.device import resolve_device, resolve_secondary_device
        if cfg.editor == "pix2pix":  # a wrong folder should fail before anything slow
            check_model_folder(cfg.pix2pix_model, "--pix2pix_model", "model_index.json")
        if cfg.clip_model:
            check_model_folder(cfg.clip_model, "--clip_model", "config.json")
        dataset, opt, pipe, dens = load_trained_setup(cfg)
        check_output(cfg, self.layout)
        self.render = render
        self.device = resolve_device(dataset.device)
        dataset.data_device = str(resolve_secondary_device(dataset.data_device, self.device,
                                                           "--data_device"))
        self.opt = scale_learning_rates(opt, cfg.mode, cfg.round_iters + cfg.refine_iters)
        self.pipe = pipe
        gaussians = GaussianModel(dataset.sh_degree, device=self.device)
        scene = Scene(dataset, gaussians, load_iteration=cfg.iteration, quiet=cfg.quiet)
        self.loaded_iter = scene.loaded_iter
        self.input_ply = os.path.join(cfg.model_path, "point_cloud",
                                      f"iteration_{scene.loaded_iter}", "point_cloud.ply")
        self.cams = scene.getTrainCameras()
        # Round 0's snapshot, and the reference the drift metrics compare with.
        self.capture0 = gaussians.capture()
        self.original = GaussianModel(dataset.sh_degree, device=self.device)
        self.original.restore(_clone_capture(self.capture0))
        self._photos: Dict[int, torch.Tensor] = {}  # photos of the views swapped this round
        self._original_renders: Dict[int, torch.Tensor] = {}
        # Given RoI annotations are checked against the views before anything is written.
        self.annotations = None if cfg.roi_prompt else parse_annotations(cfg, self.cams)
        self.start_round, self.state = prepare_output(cfg, self.layout)

        out_ds = copy.copy(dataset)
        out_ds.model_path = cfg.output  # the loop's training_log.csv goes to the edit's folder
        self.strategy = EditStrategy(cameras_extent=scene.cameras_extent,
                                     max_gaussians=getattr(dens, "max_gaussians", 0),
                                     grad_thresh=getattr(dens, "grad_thresh", 0.0002),
                                     percent_dense=getattr(dens, "percent_dense", 0.01),
                                     mode=cfg.mode)
        self.trainer = Trainer(out_ds, self.opt, pipe, dens, TrainConfig(quiet=cfg.quiet),
                               None, scene=scene, strategy=self.strategy)
        self.background = self.trainer.background
        if cfg.roi_prompt:
            self.annotations = self._grounded_annotations()
        t = time.perf_counter()
        self.editor = make_editor(cfg, self.device).load()
        editor_load_s = time.perf_counter() - t
        self.clip = ClipDirection(cfg.clip_model, self.device) if cfg.clip_model else None
        self.lpips = LpipsMetric(self.device)
        self.manifest = artifacts.start_manifest(
            self.layout, cfg, completed_rounds=self.state["completed_rounds"],
            editor=self.editor, grounding=self.grounding, input_iteration=self.loaded_iter,
            input_ply=self.input_ply, dataset=self.trainer.dataset, cameras=self.cams,
            device=self.device, editor_load_s=editor_load_s)

    def _grounded_annotations(self):
        """--roi_prompt: ask the VLM once per run (its answer is saved with round 1); later
        rounds and resumed runs reuse the boxes."""
        cfg = self.cfg
        path = self.layout.roi(1, "grounding.json")
        if os.path.isfile(path):
            with open(path) as f:
                record = json.load(f)
            if record.get("prompt") == cfg.roi_prompt:
                self.grounding = record
                return annotations_from_record(record)
        anns, record = ground_annotations(cfg, self.cams, self.device)
        artifacts.atomic_write_json(path, record)
        self.grounding = record
        return anns

    # ================================================================== rounds
    def run(self) -> dict:
        self.setup()
        cfg = self.cfg
        if self.start_round >= cfg.rounds:
            if not cfg.quiet:
                print(f"All {cfg.rounds} rounds are complete in {cfg.output}; nothing to do")
            return self.state
        if not cfg.quiet:
            print(f"Editing {cfg.model_path} (iteration {self.loaded_iter}) -> {cfg.output}: "
                  f"{cfg.mode}, rounds {self.start_round + 1}..{cfg.rounds}")
        for r in range(self.start_round + 1, cfg.rounds + 1):
            run_round(self, r)
        return self.state

    # ================================================================== what rounds use
    def restore_snapshot(self, r: int) -> int:
        """Load round r's snapshot into the trainer's model; returns its global iteration."""
        g = self.trainer.gaussians
        if r == 0:
            g.restore(_clone_capture(self.capture0), self.opt)
            self.strategy.initialize_state(g)
            return 0
        ckpt = artifacts.load_checkpoint(self.layout.checkpoint(r))
        g.restore(model_capture(ckpt), self.opt)
        self.trainer.last_checkpoint = self.layout.checkpoint(r)
        return int(ckpt["iteration"])

    def previous_residuals(self, r: int) -> Dict[int, float]:
        """Round r-1's RoI residual per view (it raises those views' priority in round r)."""
        prev = [e for e in self.state["rounds"] if e["round"] == r - 1]
        if not prev:
            return {}
        return {int(k): float(v) for k, v in (prev[0].get("residuals") or {}).items()}

    @torch.no_grad()
    def render_view(self, model, v: int) -> torch.Tensor:
        return self.render(self.cams[v], model, self.pipe, self.background)["render"].clamp(0, 1)

    def original_render(self, v: int) -> torch.Tensor:
        """View v rendered by the trained (unedited) model."""
        if v not in self._original_renders:  # uint8 keeps the cache small on big scenes
            img = self.render_view(self.original, v)
            self._original_renders[v] = to_uint8(img).cpu()
        return self._original_renders[v].to(self.device).float() / 255.0

    def photo(self, v: int) -> torch.Tensor:
        """View v's photo, also while its camera holds an edited target."""
        if v in self._photos:
            return self._photos[v].to(self.device).float() / 255.0
        return self.cams[v].original_image.to(self.device)

    def swap_targets(self, targets: Dict[int, torch.Tensor]):
        """The edits become the views' training targets (photos kept aside)."""
        for v, img in targets.items():
            self._photos[v] = to_uint8(self.cams[v].original_image)
            self.cams[v].original_image = img

    def restore_photos(self):
        for v, photo in self._photos.items():
            self.cams[v].original_image = photo  # uint8, as loaded: the camera converts on use
        self._photos = {}
