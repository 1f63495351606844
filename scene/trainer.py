"""The training loop shared by train.py and edit.py."""
import math
import os
import sys
import time
from dataclasses import dataclass, field
from typing import Callable, List, Optional

import torch
from tqdm import tqdm

from gaussian_renderer import backend_name, render
from scene import Scene
from scene.checkpoint import (check_resume, checkpoint_path, load_checkpoint, restore_checkpoint,
                              save_checkpoint)
from scene.depth_loss import attach_depth_loss
from scene.gaussian_model import GaussianModel
from scene.sampler import CameraSampler
from scene import tb_report
from scene.exposure import ExposureModel, right_half
from scene.sparse_adam import optimizer_step
from scene.tb_report import open_tensorboard  # noqa: F401  (train.py imports it from here)
from scene.strategies import make_strategy
from scene.training_log import TrainingLog, truncate_log
from utils.errors import UserError
from utils.general_utils import set_seed
from utils.image_utils import psnr
from utils.io_utils import remove_stale_temps
from utils.loss_utils import l1_loss, ssim


def resolve_device(name: str) -> torch.device:
    if name in (None, "", "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dev = torch.device(name)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise UserError(f"--device {name}: CUDA is not available on this machine")
    return dev


class TrainingDiverged(UserError):
    pass


def photometric_loss(image, gt, lambda_dssim: float):
    l1 = l1_loss(image, gt)
    ssim_val = ssim(image, gt)
    return (1.0 - lambda_dssim) * l1 + lambda_dssim * (1.0 - ssim_val), l1, ssim_val


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
    """Builds scene, model and strategy, then runs the loop of DESIGN.md."""

    def __init__(self, dataset, opt, pipe, dens, cfg: TrainConfig, tb_writer=None,
                 scene: Optional[Scene] = None):
        """scene: an already loaded Scene whose Gaussians to optimise (edit.py loads a trained
        model); None builds one from dataset.source_path as train.py does."""
        self.dataset, self.opt, self.pipe, self.dens, self.cfg = dataset, opt, pipe, dens, cfg
        self.device = resolve_device(dataset.device)
        if dataset.data_device in (None, "", "auto"):
            dataset.data_device = str(self.device)
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
        self.strategy = make_strategy(dens.strategy, dens, self.scene.cameras_extent,
                                      dataset.white_background, opt.iterations, dataset.seed)
        self.strategy.initialize_state(self.gaussians)
        self.sampler = CameraSampler(len(self.scene.getTrainCameras()), dataset.seed)
        self.exposure = (ExposureModel([c.image_name for c in self.scene.getTrainCameras()],
                                       opt, self.device)
                         if getattr(dataset, "train_test_exp", False) else None)
        self.first_iter = 1
        if ckpt is not None:
            self.first_iter = restore_checkpoint(ckpt, self.gaussians, self.strategy,
                                                 self.sampler, opt, self.device,
                                                 self.exposure) + 1
        if cfg.tidy_model_folder:
            tidy_model_folder(dataset.model_path, self.first_iter - 1)
        bg = [1.0, 1.0, 1.0] if dataset.white_background else [0.0, 0.0, 0.0]
        self.background = torch.tensor(bg, dtype=torch.float32, device=self.device)
        # What strategies need to render views of their own (scoring, region hooks).
        self.strategy_context = {"cameras": self.scene.getTrainCameras(), "render": render,
                                 "pipe": pipe, "background": self.background,
                                 "lambda_dssim": opt.lambda_dssim}
        self.log = TrainingLog(dataset.model_path)
        self.tb = tb_writer
        self.last_checkpoint = None
        self.phase_of: Callable[[int], str] = lambda it: ""
        # Whether an iteration trains against a random background colour besides
        # --random_background (semantic guidance turns it on for background completion).
        self.random_background_at: Callable[[int], bool] = lambda it: False
        # Terms added to the loss: term(trainer, render_pkg, camera, iteration) -> tensor or
        # None (semantic guidance adds its background-completion term).
        self.loss_terms: List[Callable] = []
        self.hooks: List[Callable] = []  # called as hook(trainer, iteration) after each step
        # Extension points for edit.py (None / empty = train.py's behaviour):
        # views: the cameras to sample from (with a sampler of the same length);
        # objective(trainer, render_pkg, camera, iteration) -> (loss, l1, ssim) replaces L1 + D-SSIM
        # to camera.original_image; pre_step_hooks(trainer, iteration) run after the strategy's
        # post-backward step, just before optimizer.step().
        self.views: Optional[list] = None
        self.objective: Optional[Callable] = None
        self.pre_step_hooks: List[Callable] = []
        attach_depth_loss(self)  # -d/--depths: the reference's inverse-depth L1 term
        self.viewer = None  # a NetworkViewer (train.py), served at the top of each iteration

    # ------------------------------------------------------------------------------------
    def train(self):
        opt, cfg = self.opt, self.cfg
        g = self.gaussians
        cams = self.views if self.views is not None else self.scene.getTrainCameras()
        if not cfg.quiet:
            print(f"Training {len(cams)} views ({len(self.scene.getTestCameras())} test) on "
                  f"{self.device}, backend {backend_name(self.pipe.backend, self.device)}, "
                  f"{g.num_points} initial Gaussians, strategy {self.dens.strategy}")
        t_start = time.perf_counter()
        ema = 0.0
        bar = progress_bar(self.first_iter - 1, opt.iterations, cfg.quiet)
        for iteration in range(self.first_iter, opt.iterations + 1):
            if self.viewer is not None:
                self.viewer.serve(self)
            t_iter = time.perf_counter()
            if iteration - 1 == cfg.debug_from:
                self.pipe.debug = True
            g.update_learning_rate(iteration)
            if iteration % 1000 == 0:
                g.oneupSHdegree()
            cam = cams[self.sampler.next()]
            random_bg = opt.random_background or self.random_background_at(iteration)
            bg = torch.rand(3, device=self.device) if random_bg else self.background
            pkg = render(cam, g, self.pipe, bg)
            if self.exposure is not None:
                pkg["render"] = self.exposure.apply(pkg["render"], cam.image_name)
            if getattr(cam, "loss_mask", None) is not None:  # a test image's left half
                pkg["render"] = pkg["render"] * cam.loss_mask.to(self.device)
            if self.objective is None:
                gt = cam.original_image.to(self.device)
                loss, l1, ssim_val = photometric_loss(pkg["render"], gt, opt.lambda_dssim)
            else:
                loss, l1, ssim_val = self.objective(self, pkg, cam, iteration)
            for term in self.loss_terms:
                extra = term(self, pkg, cam, iteration)
                if extra is not None:
                    loss = loss + extra
            self.strategy.step_pre_backward(iteration, g, pkg, cam)
            loss.backward()
            loss_v = float(loss.detach())
            if not math.isfinite(loss_v):
                self._diverged(iteration, f"loss is {loss_v}")
            with torch.no_grad():
                self.strategy.step_post_backward(iteration, g, pkg, cam, self.strategy_context)
                for hook in self.pre_step_hooks:
                    hook(self, iteration)
                optimizer_step(g.optimizer, pkg["visibility_filter"])
                g.optimizer.zero_grad(set_to_none=True)
                if self.exposure is not None:
                    self.exposure.step(iteration)
                # NaN Gaussians are invisible to the renderer, so the loss alone can stay finite.
                bad = [n for n, t in (("xyz", g._xyz), ("opacity", g._opacity),
                                      ("scaling", g._scaling), ("rotation", g._rotation),
                                      ("f_dc", g._features_dc)) if not bool(torch.isfinite(t).all())]
                if bad:
                    self._diverged(iteration, f"non-finite {', '.join(bad)}")
            ema = loss_v if iteration == self.first_iter else 0.4 * loss_v + 0.6 * ema
            elapsed = time.perf_counter() - t_start
            l1_v = float(l1.detach())  # one device sync, for the log and TensorBoard
            self.log.add(iteration=iteration, loss=f"{loss_v:.6f}", l1=f"{l1_v:.6f}",
                         ssim=f"{float(ssim_val.detach()):.6f}", gaussians=g.num_points,
                         elapsed_s=f"{elapsed:.2f}", phase=self.phase_of(iteration))
            if iteration % 10 == 0:
                bar.set_postfix(loss=f"{ema:.5f}", gaussians=g.num_points, refresh=False)
            bar.update(1)
            tb_report.log_iteration(self.tb, iteration, l1_v, loss_v,
                                    time.perf_counter() - t_iter, g.num_points)
            for hook in self.hooks:
                hook(self, iteration)
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
                    checkpoint_path(self.dataset.model_path, iteration), iteration, g,
                    self.strategy, self.sampler, self.exposure)
                if not cfg.quiet:
                    tqdm.write(f"[ITER {iteration}] Saved checkpoint {self.last_checkpoint}")
        bar.close()
        self.log.flush()
        return time.perf_counter() - t_start

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
