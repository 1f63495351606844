"""The round manager: loads the trained model, runs edit rounds on the shared training loop,
and saves every round so a run can resume after its last complete round.

A round (in this order):
 1. load the latest snapshot (round 0 = the trained model); lift the RoI onto its Gaussians,
    select the views, render them: the pre-edit renders;
 2. edit each render (the render and the instruction are the editor's input, never the photos)
    with the round's seed, and blend the edit in with the view's soft RoI mask;
 3. the blended edits become the training targets (camera.original_image is swapped);
 4. optimise --round_iters iterations (+ --refine_iters GS-only ones) with the edit objective
    and the mode policy (policies.py);
 5. render, score and save the round; the checkpoint, then training_state.yaml, come last.
Even an uninterrupted run re-reads each round's snapshot from disk at the start of the next,
so a resumed run takes exactly the path an uninterrupted one does.
"""
import copy
import os
import shutil
import time
from argparse import ArgumentParser
from contextlib import contextmanager
from typing import Dict, List

import numpy as np
import torch
from tqdm import tqdm

from editing import artifacts
from editing.artifacts import Layout
from editing.config import saved_config
from editing.editors import make_editor
from editing.losses import LossWeights, gaussian_terms, image_terms, total_loss
from editing.metrics import ClipDirection, LpipsMetric, colour_spread, summarise, view_metrics
from editing.policies import (EditStrategy, ModePolicy, restart_position_schedule,
                              scale_learning_rates, set_anchors)
from editing.roi import (annotations_from_record, build_roi, ground_annotations,
                         parse_annotations)
from editing.views import select_views, view_directions
from utils.errors import UserError
from utils.general_utils import set_seed
from scene.training_log import truncate_log
from utils.io_utils import ensure_writable_dir, remove_stale_temps


class Timer:
    def __init__(self):
        self.s: Dict[str, float] = {}

    @contextmanager
    def __call__(self, name: str):
        t = time.perf_counter()
        try:
            yield
        finally:
            self.s[name] = self.s.get(name, 0.0) + time.perf_counter() - t

    def rounded(self) -> dict:
        out = {k: round(v, 3) for k, v in self.s.items()}
        out["total"] = round(sum(self.s.values()), 3)
        return out


def round_seed(seed: int, r: int) -> int:
    return int(seed) + 1000 * int(r)


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


class EditSession:
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
        from scene.trainer import TrainConfig, Trainer, resolve_device
        if cfg.editor == "pix2pix":  # a wrong folder should fail before anything slow
            check_model_folder(cfg.pix2pix_model, "--pix2pix_model", "model_index.json")
        if cfg.clip_model:
            check_model_folder(cfg.clip_model, "--clip_model", "config.json")
        dataset, opt, pipe, dens = load_trained_setup(cfg)
        self._check_output()
        self.render = render
        self.device = resolve_device(dataset.device)
        if dataset.data_device in (None, "", "auto"):
            dataset.data_device = str(self.device)
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
        self.original.restore(self._clone_capture(self.capture0))
        self._photos: Dict[int, torch.Tensor] = {}  # photos of the views swapped this round
        self._original_renders: Dict[int, torch.Tensor] = {}
        # Given RoI annotations are checked against the views before anything is written.
        self.annotations = None if cfg.roi_prompt else parse_annotations(cfg, self.cams)
        self.start_round = self._prepare_output()

        out_ds = copy.copy(dataset)
        out_ds.model_path = cfg.output  # the loop's training_log.csv goes to the edit's folder
        self.trainer = Trainer(out_ds, self.opt, pipe, dens, TrainConfig(quiet=cfg.quiet),
                               None, scene=scene)
        self.trainer.dens = copy.copy(dens)
        self.trainer.dens.strategy = f"edit ({cfg.mode})"
        self.strategy = EditStrategy(cameras_extent=scene.cameras_extent,
                                     max_gaussians=getattr(dens, "max_gaussians", 0),
                                     grad_thresh=getattr(dens, "grad_thresh", 0.0002),
                                     percent_dense=getattr(dens, "percent_dense", 0.01))
        self.trainer.strategy = self.strategy
        self.background = self.trainer.background
        if cfg.roi_prompt:
            self.annotations = self._grounded_annotations()
        t = time.perf_counter()
        self.editor = make_editor(cfg, self.device).load()
        self.editor_load_s = time.perf_counter() - t
        self.clip = ClipDirection(cfg.clip_model, self.device) if cfg.clip_model else None
        self.lpips = LpipsMetric(self.device)
        self._init_manifest()

    @staticmethod
    def _clone_capture(captured: dict) -> dict:
        out = dict(captured)
        out["params"] = {k: v.clone() for k, v in captured["params"].items()}
        return out

    def _check_output(self):
        """Refusals that need no scene, before anything is loaded or written."""
        cfg, L = self.cfg, self.layout
        if cfg.resume and not os.path.isfile(L.state):
            raise UserError(f"--resume: {cfg.output} holds no edit to resume "
                            "(no training_state.yaml)")
        done = int(artifacts.read_state(L)["completed_rounds"])
        if not cfg.resume and cfg.from_round is None and done > 0:
            raise UserError(f"--output {cfg.output} already holds {done} edit round(s): "
                            "use --resume, --from_round K or another --output")
        if cfg.from_round is not None and cfg.from_round > done:
            raise UserError(f"--from_round {cfg.from_round}: {cfg.output} has only {done} "
                            "complete round(s)")

    def _prepare_output(self) -> int:
        """Decide where this run starts (fresh, --resume, --from_round) and tidy the folder."""
        cfg, L = self.cfg, self.layout
        ensure_writable_dir(cfg.output)
        # A run killed while saving leaves its temporary files (.tmp_*model_round_NNN.pt).
        remove_stale_temps(cfg.output, recursive=True)
        state = artifacts.read_state(L)
        done = int(state["completed_rounds"])
        if cfg.from_round is not None:
            k = cfg.from_round
            for r in range(k + 1, max(done, cfg.rounds) + 2):
                for path in L.round_files(r):
                    if os.path.isdir(path):
                        shutil.rmtree(path)
                    elif os.path.exists(path):
                        os.remove(path)
            state["rounds"] = [e for e in state["rounds"] if e["round"] <= k]
            state["completed_rounds"] = k
            state["iteration"] = state["rounds"][-1]["last_iteration"] if k else 0
            if k:
                artifacts.copy_atomic(L.checkpoint(k), L.latest)
            elif os.path.exists(L.latest):
                os.remove(L.latest)
            start = k
        else:  # --resume, or a fresh run (_check_output refused to overwrite rounds)
            start = done
        self.state = state
        self._truncate_log(state["iteration"])
        artifacts.write_yaml(L.config, saved_config(cfg))
        artifacts.write_state(L, state)
        return start

    def _truncate_log(self, last_iteration: int):
        """Drop training-log rows of a round that never completed."""
        truncate_log(os.path.join(self.cfg.output, "training_log.csv"), last_iteration)

    def _grounded_annotations(self):
        """--roi_prompt: ask the VLM once per run (its answer is saved with round 1); later
        rounds and resumed runs reuse the boxes."""
        cfg = self.cfg
        path = self.layout.roi(1, "grounding.json")
        if os.path.isfile(path):
            import json
            with open(path) as f:
                record = json.load(f)
            if record.get("prompt") == cfg.roi_prompt:
                self.grounding = record
                return annotations_from_record(record)
        anns, record = ground_annotations(cfg, self.cams, self.device)
        artifacts.atomic_write_json(path, record)
        self.grounding = record
        return anns

    def _init_manifest(self):
        cfg, L = self.cfg, self.layout
        old = artifacts.read_manifest(L)
        models = old.get("models", {})
        done = self.state["completed_rounds"]
        self.manifest = {
            "instruction": cfg.instruction,
            "mode": cfg.mode,
            "editor": self.editor.describe(),
            "diffusion": {"steps": cfg.diffusion_steps, "guidance_scale": cfg.guidance_scale,
                          "image_guidance_scale": cfg.image_guidance_scale,
                          "size": cfg.diffusion_size},
            "seeds": {"seed": cfg.seed, "round_seed": "seed + 1000 * round",
                      "diffusion_seed": "round_seed + view"},
            "input_model": {"path": os.path.abspath(cfg.model_path),
                            "iteration": self.loaded_iter,
                            "ply": os.path.abspath(self.input_ply),
                            "ply_sha256": artifacts.sha256_file(self.input_ply),
                            "source_path": self.trainer.dataset.source_path,
                            "images": self.trainer.dataset.images},
            "views": {str(i): c.image_name for i, c in enumerate(self.cams)},
            "roi": {"prompt": cfg.roi_prompt, "boxes": cfg.roi_box, "polygons": cfg.roi_polygon,
                    "points": cfg.roi_points, "grounding": self.grounding},
            "models": {
                "pix2pix": (artifacts.describe_model(cfg.pix2pix_model, models.get("pix2pix"))
                            if cfg.editor == "pix2pix" else None),
                "clip": artifacts.describe_model(cfg.clip_model, models.get("clip")),
                "qwen": artifacts.describe_model(cfg.qwen_model_path, models.get("qwen"))
                if cfg.roi_prompt else None,
            },
            "packages": artifacts.package_versions(),
            "device": str(self.device),
            "editor_load_s": round(self.editor_load_s, 3),
            "rounds_planned": cfg.rounds,
            "round_iters": cfg.round_iters,
            "refine_iters": cfg.refine_iters,
            "created": old.get("created") or time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            # Only committed rounds: a round killed after its manifest update is not one.
            "rounds": [e for e in old.get("rounds", []) if e["round"] <= done],
        }
        artifacts.write_manifest(L, self.manifest)

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
            self.run_round(r)
        return self.state

    def _restore_snapshot(self, r: int) -> int:
        """Load round r's snapshot into the trainer's model; returns its global iteration."""
        g = self.trainer.gaussians
        if r == 0:
            g.restore(self._clone_capture(self.capture0), self.opt)
            self.strategy.initialize_state(g)
            return 0
        ckpt = artifacts.load_checkpoint(self.layout.checkpoint(r))
        g.restore(ckpt["model"], self.opt)
        self.strategy.load_state_dict(ckpt["strategy"], device=self.device)
        self.trainer.last_checkpoint = self.layout.checkpoint(r)
        return int(ckpt["iteration"])

    @torch.no_grad()
    def _render(self, model, v: int) -> torch.Tensor:
        return self.render(self.cams[v], model, self.pipe, self.background)["render"].clamp(0, 1)

    def _original_render(self, v: int) -> torch.Tensor:
        if v not in self._original_renders:  # uint8 keeps the cache small on big scenes
            img = self._render(self.original, v)
            self._original_renders[v] = (img * 255 + 0.5).to(torch.uint8).cpu()
        return self._original_renders[v].to(self.device).float() / 255.0

    def _photo(self, v: int) -> torch.Tensor:
        if v in self._photos:
            return self._photos[v].to(self.device).float() / 255.0
        return self.cams[v].original_image.to(self.device)

    def _swap_targets(self, targets: Dict[int, torch.Tensor]):
        """Step 3: the edits become the views' training targets (photos kept aside)."""
        for v, img in targets.items():
            self._photos[v] = (self.cams[v].original_image.clamp(0, 1) * 255 + 0.5).to(torch.uint8)
            self.cams[v].original_image = img

    def _restore_photos(self):
        for v, photo in self._photos.items():
            self.cams[v].original_image = photo  # uint8, as loaded: the camera converts on use
        self._photos = {}

    def _previous_residuals(self, r: int) -> Dict[int, float]:
        prev = [e for e in self.state["rounds"] if e["round"] == r - 1]
        if not prev:
            return {}
        return {int(k): float(v) for k, v in (prev[0].get("residuals") or {}).items()}

    def run_round(self, r: int):
        cfg, L, T = self.cfg, self.layout, Timer()
        trainer, g = self.trainer, self.trainer.gaussians
        it0 = self._restore_snapshot(r - 1)
        restart_position_schedule(g, it0 + 1)
        seed = round_seed(cfg.seed, r)
        set_seed(seed)
        n_start = g.num_points

        # 1. RoI, view selection, pre-edit renders
        with T("render"):
            roi = build_roi(g, self.cams, self.annotations, self.render, self.pipe, cfg)
            coverage = roi.coverage()
            centre = (roi.centroid() if not roi.whole_image else g.get_xyz.detach().mean(0))
            selection = select_views(coverage, view_directions(self.cams, centre.cpu().numpy()),
                                     cfg.edit_fraction, cfg.off_axis_fraction,
                                     self._previous_residuals(r))
            sel = [s["view"] for s in selection]
            masks = {v: roi.mask(v) for v in sel}
            vis = {v: roi.visibility(v) for v in sel}
            pre = {v: self._render(g, v) for v in sel}

        # 2. edit each render, blend with the RoI mask
        edited, seeds = {}, {}
        with T("diffusion"):
            for v in tqdm(sel, desc=f"Round {r}: editing views", disable=cfg.quiet,
                          dynamic_ncols=True):
                seeds[v] = seed + v
                out = self.editor(pre[v], cfg.instruction, seeds[v]).to(self.device)
                m = masks[v][None]
                edited[v] = (m * out + (1 - m) * pre[v]).clamp(0, 1)

        # 3. swap the targets; 4. optimise
        self._swap_targets(edited)
        keep = {v: (pre[v] if cfg.preserve_to == "pre_edit" else self._photo(v)) for v in sel}
        set_anchors(g, self.strategy, roi.weights)
        last = it0 + cfg.round_iters
        policy = ModePolicy(cfg, self.strategy, [self.cams[v] for v in sel], masks, sel,
                            it0 + 1, last)
        self._install(policy, sel, masks, keep, seed)
        trainer.phase_of = lambda it: f"round_{r}"
        trainer.first_iter, self.opt.iterations = it0 + 1, last
        with T("optimisation"):
            trainer.train()
        if cfg.refine_iters:
            policy.refining = True
            trainer.phase_of = lambda it: f"refine_{r}"
            trainer.first_iter, self.opt.iterations = last + 1, last + cfg.refine_iters
            with T("refine"):
                trainer.train()
        it_end = self.opt.iterations

        # 5. post-optimisation renders and metrics
        with T("render"):
            post = {v: self._render(g, v) for v in sel}
        with T("metrics"):
            per_view = {v: view_metrics(post[v], edited[v], self._original_render(v),
                                        self._photo(v), masks[v], self.lpips) for v in sel}
            summary = summarise(per_view)
            clip = None
            if self.clip is not None:
                clip = self.clip([self._original_render(v) for v in sel], [post[v] for v in sel],
                                 cfg.clip_source_text, cfg.clip_target_text or cfg.instruction)
        self._restore_photos()  # the cameras hold the photos again between rounds

        with T("save"):
            self._save_round(r, sel, selection, seeds, roi, pre, edited, post, masks, vis)
            residuals = {v: per_view[v]["roi_residual"] for v in sel}
            timings = T.rounded()
            metrics = {
                "round": r, "instruction": cfg.instruction, "mode": cfg.mode,
                "iterations": {"first": it0 + 1, "last": it_end, "optimisation": cfg.round_iters,
                               "refine": cfg.refine_iters},
                "gaussians": {"start": n_start, "end": g.num_points},
                "roi": {"whole_image": roi.whole_image,
                        "gaussians_in_roi": int((roi.weights > 0.5).sum()),
                        "mean_weight": round(float(roi.weights.mean()), 6)},
                "views": [dict(s, image_name=self.cams[s["view"]].image_name,
                               seed=seeds[s["view"]]) for s in selection],
                "mean": summary,
                "per_view": {int(v): m for v, m in per_view.items()},
                "consistency": {
                    "roi_colour_spread_targets": colour_spread([edited[v] for v in sel],
                                                               [masks[v] for v in sel]),
                    "roi_colour_spread_renders": colour_spread([post[v] for v in sel],
                                                               [masks[v] for v in sel])},
                "clip_direction": clip,
                "clip_note": None if self.clip else "off (no --clip_model)",
                "lpips_note": self.lpips.reason,
                "events": policy.log,
                "timings_s": timings,
            }
            artifacts.write_yaml(L.metrics(r), metrics)
            g.save_ply(L.ply(r))
            self.manifest["rounds"] = [e for e in self.manifest["rounds"] if e["round"] < r]
            self.manifest["rounds"].append({
                "round": r, "seed": seed, "views": sel,
                "diffusion_seeds": {str(v): s for v, s in seeds.items()},
                "iterations": {"first": it0 + 1, "last": it_end,
                               "optimisation": cfg.round_iters, "refine": cfg.refine_iters},
                "gaussians": g.num_points, "timings_s": timings})
            artifacts.write_manifest(L, self.manifest)
            artifacts.save_checkpoint(L.checkpoint(r), r, it_end, g, self.strategy)
            artifacts.copy_atomic(L.checkpoint(r), L.latest)
        # The commit point: only now does this round count as complete.
        self.state["rounds"] = [e for e in self.state["rounds"] if e["round"] < r]
        self.state["rounds"].append({
            "round": r, "seed": seed, "first_iteration": it0 + 1, "last_iteration": it_end,
            "iterations": cfg.round_iters, "refine_iterations": cfg.refine_iters,
            "views": sel, "residuals": {int(v): x for v, x in residuals.items()},
            "gaussians": g.num_points,
            "checkpoint": os.path.relpath(L.checkpoint(r), cfg.output),
            "timings_s": T.rounded(),
            "finished": time.strftime("%Y-%m-%dT%H:%M:%S%z")})
        self.state["completed_rounds"] = r
        self.state["iteration"] = it_end
        artifacts.write_state(L, self.state)
        if not cfg.quiet:
            t = T.rounded()
            print(f"[ROUND {r}/{cfg.rounds}] {len(sel)} views, {g.num_points} Gaussians; "
                  f"render {t.get('render', 0):.1f} s, diffusion {t.get('diffusion', 0):.1f} s, "
                  f"optimisation {t.get('optimisation', 0) + t.get('refine', 0):.1f} s; "
                  f"RoI PSNR {_fmt(summary.get('roi_psnr'))} dB, outside vs original "
                  f"{_fmt(summary.get('outside_psnr_to_original'))} dB")

    def _install(self, policy: ModePolicy, sel: List[int], masks, keep, seed: int):
        """Point the shared training loop at this round's views, objective and hooks."""
        from scene.sampler import CameraSampler
        trainer, weights = self.trainer, self.loss_weights
        view_of = {id(self.cams[v]): v for v in sel}
        extent = self.strategy.cameras_extent
        dev = self.device

        def objective(tr, pkg, cam, iteration):
            v = view_of[id(cam)]
            img = image_terms(pkg["render"], cam.original_image.to(dev), keep[v], masks[v],
                              weights)
            gs = gaussian_terms(tr.gaussians, self.strategy.state, extent)
            return total_loss(img, gs, weights), img["l1"], img["ssim"]

        trainer.views = [self.cams[v] for v in sel]
        trainer.sampler = CameraSampler(len(sel), seed)
        trainer.objective = objective
        trainer.pre_step_hooks = [policy.pre_step]
        trainer.hooks = [policy.post_step]

    def _save_round(self, r, sel, selection, seeds, roi, pre, edited, post, masks, vis):
        L = self.layout
        for v in sel:
            artifacts.save_png(pre[v], L.render(r, "pre_edit", v))
            artifacts.save_png(edited[v], L.render(r, "edited", v))
            artifacts.save_png(post[v], L.render(r, "post_opt", v))
            artifacts.save_png(masks[v], L.roi(r, f"mask_view_{v:03d}.png"))
            artifacts.save_png(vis[v], L.roi(r, f"visibility_view_{v:03d}.png"))
        # The lifted weights as carried through the round's clone/split/prune/spawn, so they
        # are row-aligned with point_cloud/round_<r>/point_cloud.ply.
        weights = 1.0 - self.strategy.state["edit_damp"]
        artifacts.save_npy(weights.detach().cpu().numpy().astype(np.float32),
                           L.roi(r, "gaussian_weights.npy"))


def _fmt(x) -> str:
    return "n/a" if x is None else f"{x:.2f}"
