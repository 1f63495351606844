"""The training loop shared by train.py and edit.py (its extension points: scene/plugins.py)."""
import math
import os
import sys
import time
from dataclasses import dataclass, field
from typing import List, Optional

import torch
from tqdm import tqdm

from gaussian_renderer import backend_name, render
from scene import Scene
from scene.checkpoint import (check_resume, checkpoint_path, load_checkpoint, restore_checkpoint,
                              save_checkpoint)
from scene.depth_loss import depth_plugin
from scene.gaussian_model import GaussianModel
from scene.plugins import PhotometricObjective, Step, TrainingPlugin
from scene.sampler import CameraSampler
from scene import tb_report
from scene.exposure import ExposureModel, right_half
from scene.sparse_adam import optimizer_step
from scene.strategies import make_strategy
from scene.training_log import TrainingLog, truncate_log
from scene.view_scorer import ViewScorer
from utils.errors import UserError
from utils.device import resolve_device, resolve_secondary_device
from utils.general_utils import set_seed
from utils.image_utils import psnr
from utils.io_utils import remove_stale_temps
from utils.loss_utils import l1_loss


class TrainingDiverged(UserError):
    pass


@dataclass
class TrainConfig:
    test_iterations: List[int] = field(default_factory=list)
    save_iterations: List[int] = field(default_factory=list)
    checkpoint_iterations: List[int] = field(default_factory=list)
    start_checkpoint: Optional[str] = None
    quiet: bool = False
    # train.py owns its model folder: stale temporary files of a killed save are removed and
    # training_log.csv is cut back to the starting iteration (edit.py tidies its own folder).
    tidy_model_folder: bool = False
    debug_from: int = -1  # the reference's --debug_from: pipe.debug on from this iteration


class Trainer:
    """Builds scene, model and strategy, then runs the loop of scene/plugins.py.

    train.py and edit.py share it: extensions (semantic guidance, depth supervision, the
    edit's policy, viewers) are TrainingPlugins added with `add_plugin` (for every call of
    `train`) or passed to `train(plugins=...)` (for that call); the edit also hands `train`
    its own views, sampler and objective.
    """

    def __init__(self, dataset, opt, pipe, dens, cfg: TrainConfig, tb_writer=None,
                 scene: Optional[Scene] = None, strategy=None):
        """scene: an already loaded Scene whose Gaussians to optimise (edit.py loads a trained
        model); None builds one from dataset.source_path as train.py does. strategy: the
        densification strategy (None: the one `dens.strategy` names)."""
        self.dataset, self.opt, self.pipe, self.dens, self.cfg = dataset, opt, pipe, dens, cfg
        self.device = resolve_device(dataset.device)
        dataset.data_device = str(resolve_secondary_device(dataset.data_device, self.device,
                                                           "--data_device"))
        set_seed(dataset.seed)
        ckpt = None
        if cfg.start_checkpoint:  # checked before the scene loads: a bad resume costs no time
            ckpt = load_checkpoint(cfg.start_checkpoint)
            check_resume(ckpt, cfg.start_checkpoint, dataset.sh_degree, opt.iterations)
        if scene is None:
            self.gaussians = GaussianModel(dataset.sh_degree, device=self.device)
            self.scene = Scene(dataset, self.gaussians, quiet=cfg.quiet)
        else:
            self.scene, self.gaussians = scene, scene.gaussians
        self.gaussians.training_setup(opt)
        self.strategy = strategy or make_strategy(dens.strategy, dens, self.scene.cameras_extent,
                                                  dataset.white_background, opt.iterations,
                                                  dataset.seed)
        self.strategy.initialize_state(self.gaussians)
        self.sampler = CameraSampler(len(self.scene.getTrainCameras()), dataset.seed)
        self.exposure = (ExposureModel([c.image_name for c in self.scene.getTrainCameras()],
                                       opt, self.device)
                         if getattr(dataset, "train_test_exp", False) else None)
        self.first_iter = 1
        if ckpt is not None:
            self.first_iter = restore_checkpoint(ckpt, self.gaussians, self.sampler, opt,
                                                 self.exposure) + 1
        if cfg.tidy_model_folder:
            tidy_model_folder(dataset.model_path, self.first_iter - 1)
        bg = [1.0, 1.0, 1.0] if dataset.white_background else [0.0, 0.0, 0.0]
        self.background = torch.tensor(bg, dtype=torch.float32, device=self.device)
        self.scorer = ViewScorer(render, pipe, self.background, self.scene.getTrainCameras(),
                                 opt.lambda_dssim)
        self.objective = PhotometricObjective(opt.lambda_dssim)
        self.plugins: List[TrainingPlugin] = []
        self.log: Optional[TrainingLog] = None   # opened by the first train() call
        self.tb = tb_writer
        self.last_checkpoint = None
        depth = depth_plugin(self.scene.getTrainCameras(), opt)  # -d/--depths
        if depth is not None:
            self.add_plugin(depth)

    def add_plugin(self, plugin: TrainingPlugin) -> TrainingPlugin:
        """Call `plugin` at its moments of every later iteration (after those added before)."""
        self.plugins.append(plugin)
        return plugin

    def phase_of(self, iteration: int, plugins=None) -> str:
        """The iteration's phase label: the first plugin's answer ("" when none answers)."""
        for p in self.plugins if plugins is None else plugins:
            label = p.phase(iteration)
            if label is not None:
                return label
        return ""

    # ------------------------------------------------------------------------------------
    def train(self, first: Optional[int] = None, last: Optional[int] = None,
              views: Optional[list] = None, sampler: Optional[CameraSampler] = None,
              objective=None, plugins=()) -> float:
        """Run iterations first..last (default: after the checkpoint .. --iterations) on
        `views` drawn by `sampler` (default: every training view, the run's sampler),
        minimising `objective` (default: L1 + D-SSIM to the photos) with the trainer's plugins
        and then `plugins`. Returns the seconds it took."""
        opt, cfg, g = self.opt, self.cfg, self.gaussians
        first = self.first_iter if first is None else first
        last = opt.iterations if last is None else last
        cams = self.scene.getTrainCameras() if views is None else views
        sampler = sampler or self.sampler
        if sampler.n != len(cams):
            raise ValueError(f"train: a sampler over {sampler.n} views for {len(cams)} views")
        objective = objective or self.objective
        plugins = list(self.plugins) + list(plugins)
        if self.log is None:
            terms = list(objective.TERMS) + [t for p in plugins for t in p.TERMS]
            self.log = TrainingLog(self.dataset.model_path, terms=terms)
        if not cfg.quiet:
            print(f"Training {len(cams)} views ({len(self.scene.getTestCameras())} test) on "
                  f"{self.device}, backend {backend_name(self.pipe.backend, self.device)}, "
                  f"{g.num_points} initial Gaussians, strategy {self.strategy.label}")
        t_start = time.perf_counter()
        ema = 0.0
        bar = progress_bar(first - 1, last, cfg.quiet)
        for iteration in range(first, last + 1):
            for p in plugins:
                p.iteration_start(self, iteration)
            t_iter = time.perf_counter()
            if iteration - 1 == cfg.debug_from:
                self.pipe.debug = True
            g.update_learning_rate(iteration)
            if iteration % 1000 == 0:
                g.oneupSHdegree()
            step = Step(self, iteration, cams[sampler.next()], None)
            random_bg = opt.random_background or any(p.random_background(iteration)
                                                     for p in plugins)
            bg = torch.rand(3, device=self.device) if random_bg else self.background
            step.render_pkg = pkg = render(step.camera, g, self.pipe, bg)
            self._photometric_view(step)
            loss_terms = objective.terms(step)
            for p in plugins:
                for name, term in p.loss_terms(step).items():
                    if name in loss_terms.terms:
                        raise ValueError(f"two loss terms are named {name!r}")
                    loss_terms.terms[name] = term
            loss = loss_terms.total()
            self.strategy.step_pre_backward(iteration, g, pkg, step.camera)
            loss.backward()
            # One device sync for everything the log and TensorBoard report.
            values = torch.stack([t.detach().float().reshape(()) for t in
                                  (loss, loss_terms.l1, loss_terms.ssim,
                                   *loss_terms.terms.values())]).tolist()
            loss_v, l1_v, ssim_v = values[:3]
            terms_v = dict(zip(loss_terms.terms, values[3:]))
            if not math.isfinite(loss_v):
                self._diverged(iteration, f"loss is {loss_v}")
            with torch.no_grad():
                self.strategy.step_post_backward(iteration, g, pkg, self.scorer)
                for p in plugins:
                    p.before_step(step)
                optimizer_step(g.optimizer, pkg["visibility_filter"])
                g.optimizer.zero_grad(set_to_none=True)
                if self.exposure is not None:
                    self.exposure.step(iteration)
                self._check_finite(iteration)
            ema = loss_v if iteration == first else 0.4 * loss_v + 0.6 * ema
            self.log.add(iteration=iteration, loss=f"{loss_v:.6f}", l1=f"{l1_v:.6f}",
                         ssim=f"{ssim_v:.6f}", gaussians=g.num_points,
                         elapsed_s=f"{time.perf_counter() - t_start:.2f}",
                         phase=self.phase_of(iteration, plugins),
                         **{f"term_{k}": f"{v:.6f}" for k, v in terms_v.items()})
            if iteration % 10 == 0:
                bar.set_postfix(loss=f"{ema:.5f}", gaussians=g.num_points, refresh=False)
            bar.update(1)
            tb_report.log_iteration(self.tb, iteration, l1_v, loss_v,
                                    time.perf_counter() - t_iter, g.num_points)
            tb_report.log_terms(self.tb, iteration, terms_v)
            for p in plugins:
                p.after_step(step)
            self._evaluate_and_save(iteration)
        bar.close()
        self.log.flush()
        return time.perf_counter() - t_start

    def _photometric_view(self, step: Step):
        """What the loss compares: the render under the image's exposure (--train_test_exp),
        and for a test image's training half only its left half."""
        pkg, cam = step.render_pkg, step.camera
        if self.exposure is not None:
            pkg["render"] = self.exposure.apply(pkg["render"], cam.image_name)
        if getattr(cam, "loss_mask", None) is not None:
            pkg["render"] = pkg["render"] * cam.loss_mask.to(self.device)

    def _check_finite(self, iteration: int):
        """NaN Gaussians are invisible to the renderer, so the loss alone can stay finite."""
        g = self.gaussians
        bad = [n for n, t in (("xyz", g._xyz), ("opacity", g._opacity),
                              ("scaling", g._scaling), ("rotation", g._rotation),
                              ("f_dc", g._features_dc)) if not bool(torch.isfinite(t).all())]
        if bad:
            self._diverged(iteration, f"non-finite {', '.join(bad)}")

    def _evaluate_and_save(self, iteration: int):
        cfg = self.cfg
        if iteration in cfg.test_iterations:
            res = self.evaluate(iteration)
            if "test" in res:
                self.log.set_last(psnr=f"{res['test']['psnr']:.4f}")
        self.log.maybe_flush()
        if iteration in cfg.save_iterations:
            if not cfg.quiet:
                tqdm.write(f"[ITER {iteration}] Saving Gaussians")
            self.scene.save(iteration)
            if self.exposure is not None:
                self.exposure.save(self.dataset.model_path)
        if iteration in cfg.checkpoint_iterations:
            self.log.flush()
            self.last_checkpoint = save_checkpoint(
                checkpoint_path(self.dataset.model_path, iteration), iteration, self.gaussians,
                self.sampler, self.exposure)
            if not cfg.quiet:
                tqdm.write(f"[ITER {iteration}] Saved checkpoint {self.last_checkpoint}")

    def _diverged(self, iteration: int, what: str):
        self.log.flush()
        last = self.last_checkpoint or self.cfg.start_checkpoint or "none"
        raise TrainingDiverged(f"training diverged at iteration {iteration} ({what}); "
                               f"last good checkpoint: {last}")

    @torch.no_grad()
    def evaluate(self, iteration: int) -> dict:
        """Mean L1/PSNR on the test views and on a few training views (as the reference)."""
        train = self.scene.getTrainCameras()
        sets = {"test": self.scene.getTestCameras(),
                "train": [train[i % len(train)] for i in range(5, 30, 5)]}
        out = {}
        first_test = bool(self.cfg.test_iterations) and iteration == min(self.cfg.test_iterations)
        for name, cams in sets.items():
            if not cams:
                continue
            l1s, psnrs = [], []
            for i, cam in enumerate(cams):
                img = render(cam, self.gaussians, self.pipe, self.background)["render"]
                gt = cam.original_image.to(self.device)
                if self.exposure is not None:  # the reference's protocol: right halves
                    img, gt = right_half(self.exposure.apply(img, cam.image_name)), right_half(gt)
                img = torch.clamp(img, 0, 1)
                tb_report.log_view_images(self.tb, name, i, cam, img, gt, iteration, first_test)
                l1s.append(float(l1_loss(img, gt)))
                psnrs.append(float(psnr(img, gt).mean()))
            out[name] = {"l1": sum(l1s) / len(l1s), "psnr": sum(psnrs) / len(psnrs)}
            if not self.cfg.quiet:
                tqdm.write(f"[ITER {iteration}] Evaluating {name}: L1 {out[name]['l1']:.6f} "
                           f"PSNR {out[name]['psnr']:.4f}")
            tb_report.log_evaluation(self.tb, name, out[name]["l1"], out[name]["psnr"], iteration)
        tb_report.log_scene(self.tb, self.gaussians, iteration)
        return out


def tidy_model_folder(model_path: str, last_iteration: int):
    """Before training into `model_path` from `last_iteration` (0 = a fresh start): remove
    temporary files a killed save left (.tmp_*chkpntN.pth, .tmp_*point_cloud.ply) and log
    rows after `last_iteration`, which this run writes again."""
    remove_stale_temps(model_path)
    pc_dir = os.path.join(model_path, "point_cloud")
    if os.path.isdir(pc_dir):
        for name in os.listdir(pc_dir):
            sub = os.path.join(pc_dir, name)
            if name.startswith("iteration_") and os.path.isdir(sub):
                remove_stale_temps(sub)
                if not os.listdir(sub):  # an empty folder would pass for a saved iteration
                    os.rmdir(sub)
    truncate_log(os.path.join(model_path, "training_log.csv"), last_iteration)


def progress_bar(done: int, total: int, quiet: bool):
    """The training bar, advanced by update(1) so that its counter and rate are right
    whenever it prints. A terminal redraws it every 0.5 s; a file or pipe gets a line every
    10 s (a 30 s interval held the loop's counter back: a short run read 0/N until its end)."""
    return tqdm(desc="Training", disable=quiet, initial=done, total=total, dynamic_ncols=True,
                mininterval=0.5 if sys.stderr.isatty() else 10)


def default_model_path() -> str:
    import uuid
    return os.path.join("output", uuid.uuid4().hex[:10])
