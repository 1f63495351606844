"""Optimization Parameters: iterations, learning rates and loss weights."""
from arguments.groups import ParamGroup
from utils.ranges import (ITERATIONS_MAX, Int, fraction, learning_rate, non_negative)


class OptimizationParams(ParamGroup):
    def __init__(self, parser):
        self.iterations = 30_000
        self.position_lr_init = 0.00016
        self.position_lr_final = 0.0000016
        self.position_lr_delay_mult = 0.01
        self.position_lr_max_steps = 30_000
        self.feature_lr = 0.0025
        self.lowfeature_lr = 0.0
        self.highfeature_lr = 0.0
        self.opacity_lr = 0.025
        self.scaling_lr = 0.005
        self.rotation_lr = 0.001
        self.lambda_dssim = 0.2
        self.random_background = False
        self.depth_l1_weight_init = 1.0
        self.depth_l1_weight_final = 0.01
        self.optimizer_type = "default"
        self.exposure_lr_init = 0.01
        self.exposure_lr_final = 0.001
        self.exposure_lr_delay_steps = 0
        self.exposure_lr_delay_mult = 0.0
        super().__init__(parser, "Optimization Parameters")

    def _help(self):
        return {"lowfeature_lr": "learning rate of the SH DC (base colour) coefficients "
                                 "(0 = --feature_lr)",
                "highfeature_lr": "learning rate of the higher SH coefficients "
                                  "(0 = --feature_lr / 20, as the reference)",
                "depth_l1_weight_init": "with -d/--depths: weight of the L1 loss on inverse "
                                        "depth at iteration 1, decaying exponentially to ...",
                "depth_l1_weight_final": "... this weight at the last iteration",
                "optimizer_type": "default (Adam) or sparse_adam (Adam steps only the "
                                  "Gaussians visible in the iteration's view)"}

    def _ranges(self):
        lrs = ("position_lr_init", "position_lr_final", "feature_lr", "lowfeature_lr",
               "highfeature_lr", "opacity_lr", "scaling_lr", "rotation_lr",
               "exposure_lr_init", "exposure_lr_final")
        return {"iterations": Int(1, ITERATIONS_MAX), "position_lr_delay_mult": fraction(),
                "position_lr_max_steps": Int(1, ITERATIONS_MAX), "lambda_dssim": fraction(),
                "depth_l1_weight_init": non_negative(), "depth_l1_weight_final": non_negative(),
                "exposure_lr_delay_steps": Int(0, ITERATIONS_MAX),
                "exposure_lr_delay_mult": fraction(),
                **{name: learning_rate() for name in lrs}}
