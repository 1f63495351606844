"""The training loop's extension points.

A plugin subclasses TrainingPlugin and overrides the moments it needs; the loop calls every
plugin at each moment, in the order they were added (`Trainer.add_plugin`). One iteration:

    iteration_start(trainer, it)     before anything (the network viewer answers its client)
    phase(it) -> str | None          the label logged for the iteration (first answer wins)
    random_background(it) -> bool    train this iteration against a random background colour
      render the sampled camera; the objective's named terms (L1 + D-SSIM unless replaced)
    loss_terms(step) -> {name: t}    extra weighted terms; every term is summed into the loss
      and logged (training_log.csv `term_<name>`, TensorBoard `loss_terms/<name>`)
      backward; the strategy's densification (it renders through the loop's ViewScorer)
    before_step(step)                after densification, just before the optimizer step
      optimizer step
    after_step(step)                 after the step is logged: analyses, edits, viewers

An objective (the loss the loop minimises) is an object with `terms(step) -> LossTerms`;
`PhotometricObjective` is train.py's, editing/objective.py is the edit's.
"""
from dataclasses import dataclass, field
from typing import Any, Dict, Optional, Tuple

import torch

from utils.loss_utils import photometric_terms


@dataclass
class Step:
    """One training iteration as plugins see it."""
    trainer: Any                    # scene.trainer.Trainer: gaussians, scene, scorer, ...
    iteration: int
    camera: Any
    render_pkg: dict


@dataclass
class LossTerms:
    """Named, already weighted loss terms, summed in order into the loss, plus the L1 and SSIM
    to the view's target that the log reports (detached)."""
    terms: Dict[str, torch.Tensor]
    l1: torch.Tensor
    ssim: torch.Tensor

    def total(self) -> torch.Tensor:
        items = iter(self.terms.values())
        loss = next(items)
        for t in items:
            loss = loss + t
        return loss


class TrainingPlugin:
    """Base class: every moment does nothing. `TERMS` names the loss terms `loss_terms` may
    return (the log's columns are fixed before the first iteration)."""
    TERMS: Tuple[str, ...] = ()

    def iteration_start(self, trainer, iteration: int) -> None:
        pass

    def phase(self, iteration: int) -> Optional[str]:
        return None

    def random_background(self, iteration: int) -> bool:
        return False

    def loss_terms(self, step: Step) -> Dict[str, torch.Tensor]:
        return {}

    def before_step(self, step: Step) -> None:
        pass

    def after_step(self, step: Step) -> None:
        pass


@dataclass
class PhotometricObjective:
    """The reference objective against the camera's photo: (1 - l) * L1 + l * (1 - SSIM)."""
    lambda_dssim: float = 0.2
    TERMS: Tuple[str, ...] = field(default=("l1", "dssim"), init=False)

    def terms(self, step: Step) -> LossTerms:
        image = step.render_pkg["render"]
        gt = step.camera.original_image.to(image.device)
        l1_term, dssim_term, l1, ssim_val = photometric_terms(image, gt, self.lambda_dssim)
        return LossTerms({"l1": l1_term, "dssim": dssim_term}, l1, ssim_val)
