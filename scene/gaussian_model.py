"""The set of 3D Gaussians being optimized: parameters, activations, optimizer, the
per-Gaussian side tables, and the densification primitives (clone, split, spawn, prune, reset
opacity) that strategies call.

All row surgery goes through scene.gaussian_ops, which keeps the Adam state and every side
table row-aligned with the parameters.
"""
import copy
from typing import Dict, Optional

import numpy as np
import torch
from torch import nn

from scene import gaussian_ops as ops
from scene.ply_io import read_gaussian_ply, write_gaussian_ply
from scene.sparse_adam import make_optimizer
from utils.errors import UserError
from utils.general_utils import (build_rotation, build_scaling_rotation, get_expon_lr_func,
                                 inverse_sigmoid, strip_symmetric)
from utils.knn import mean_sq_dist_to_knn
from utils.sh_utils import RGB2SH

# optimizer group name -> attribute holding the parameter (order = group order)
PARAM_ATTRS = {
    "xyz": "_xyz",
    "f_dc": "_features_dc",
    "f_rest": "_features_rest",
    "opacity": "_opacity",
    "scaling": "_scaling",
    "rotation": "_rotation",
}


class GaussianModel:
    def __init__(self, sh_degree: int, device=None):
        self.max_sh_degree = int(sh_degree)
        self.active_sh_degree = 0
        # The caller resolves the device (CUDA when available); CPU is the safe default.
        self.device = torch.device(device) if device is not None else torch.device("cpu")
        self.spatial_lr_scale = 1.0
        self.optimizer: Optional[torch.optim.Adam] = None
        self.xyz_scheduler_args = None
        # Side tables: name -> tensor with one row per Gaussian (a strategy's gradient
        # statistics, prune protection, an edit's RoI weights and anchors). Every prune,
        # clone, split and spawn keeps them aligned: copies take their source's rows, new
        # Gaussians get zeros.
        self.tables: Dict[str, torch.Tensor] = {}
        self._set_params(self._empty_values(0))

    # ------------------------------------------------------------ parameters

    @property
    def num_sh_rest(self) -> int:
        return (self.max_sh_degree + 1) ** 2 - 1

    def _empty_values(self, n: int) -> Dict[str, torch.Tensor]:
        z = lambda *shape: torch.zeros(shape, device=self.device)  # noqa: E731
        return {"xyz": z(n, 3), "f_dc": z(n, 1, 3), "f_rest": z(n, self.num_sh_rest, 3),
                "opacity": z(n, 1), "scaling": z(n, 3), "rotation": z(n, 4)}

    def _params(self) -> Dict[str, nn.Parameter]:
        return {name: getattr(self, attr) for name, attr in PARAM_ATTRS.items()}

    def _set_params(self, values: Dict[str, torch.Tensor]):
        for name, attr in PARAM_ATTRS.items():
            v = values[name]
            if not isinstance(v, nn.Parameter):
                v = nn.Parameter(v.detach().to(self.device, torch.float32).contiguous())
            setattr(self, attr, v)

    def _run(self, fn, *args, **kwargs):
        """Run a gaussian_ops function on our params and write the results back."""
        params = self._params()
        out = fn(params, self.optimizer, *args, **kwargs)
        self._set_params(params)
        return out

    # ------------------------------------------------------------ side tables

    def set_table(self, name: str, values: torch.Tensor) -> torch.Tensor:
        """Register (or replace) a per-Gaussian table; it must have one row per Gaussian."""
        if values.dim() == 0 or values.shape[0] != self.num_points:
            raise ValueError(f"table '{name}' has shape {tuple(values.shape)}, expected "
                             f"{self.num_points} rows")
        self.tables[name] = values
        return values

    def new_table(self, name: str, dtype=torch.float32) -> torch.Tensor:
        """Register a zero table of one value per Gaussian (replacing any of that name)."""
        return self.set_table(name, torch.zeros(self.num_points, dtype=dtype,
                                                device=self._xyz.device))

    def drop_table(self, name: str) -> Optional[torch.Tensor]:
        return self.tables.pop(name, None)

    # ------------------------------------------------------------ activations

    @property
    def num_points(self) -> int:
        return self._xyz.shape[0]

    @property
    def get_xyz(self):
        return self._xyz

    @property
    def get_features(self):
        return torch.cat((self._features_dc, self._features_rest), dim=1)

    @property
    def get_features_dc(self):
        return self._features_dc

    @property
    def get_features_rest(self):
        return self._features_rest

    @property
    def get_scaling(self):
        return torch.exp(self._scaling)

    @property
    def get_rotation(self):
        return torch.nn.functional.normalize(self._rotation, dim=-1)

    @property
    def get_opacity(self):
        return torch.sigmoid(self._opacity)

    def get_covariance(self, scaling_modifier: float = 1.0):
        L = build_scaling_rotation(scaling_modifier * self.get_scaling, self._rotation)
        return strip_symmetric(L @ L.transpose(1, 2))

    def oneupSHdegree(self):
        if self.active_sh_degree < self.max_sh_degree:
            self.active_sh_degree += 1

    # ------------------------------------------------------------ initialisation

    def _new_values(self, xyz: torch.Tensor, rgb: torch.Tensor, dist2: torch.Tensor,
                    opacity) -> Dict[str, torch.Tensor]:
        """Raw values for new Gaussians: given colour, isotropic scale sqrt(dist2),
        identity rotation, given opacity, zero higher SH."""
        m = xyz.shape[0]
        vals = self._empty_values(m)
        vals["xyz"] = xyz
        vals["f_dc"] = RGB2SH(rgb).reshape(m, 1, 3)
        vals["scaling"] = torch.log(torch.sqrt(dist2))[:, None].repeat(1, 3)
        vals["rotation"][:, 0] = 1.0
        op = torch.as_tensor(opacity, dtype=torch.float32, device=self.device)
        vals["opacity"] = inverse_sigmoid(op.expand(m).reshape(m, 1).clone())
        return vals

    def create_from_pcd(self, pcd, spatial_lr_scale: float):
        """Initialise from a point cloud with .points (N,3) and .colors (N,3) in [0,1]."""
        self.spatial_lr_scale = float(spatial_lr_scale)
        xyz = torch.as_tensor(np.asarray(pcd.points), dtype=torch.float32,
                              device=self.device).reshape(-1, 3)
        rgb = torch.as_tensor(np.asarray(pcd.colors), dtype=torch.float32,
                              device=self.device).reshape(-1, 3)
        dist2 = mean_sq_dist_to_knn(xyz)
        self._set_params(self._new_values(xyz, rgb, dist2, 0.1))
        self.tables = {}
        self.optimizer = None

    # ------------------------------------------------------------ optimisation

    def training_setup(self, opt):
        # Separate DC / higher-SH rates (FastGS); unset (None or 0) falls back to the
        # reference's feature_lr and feature_lr / 20.
        lr_dc = getattr(opt, "lowfeature_lr", None) or opt.feature_lr
        lr_rest = getattr(opt, "highfeature_lr", None) or opt.feature_lr / 20.0
        lrs = {
            "xyz": opt.position_lr_init * self.spatial_lr_scale,
            "f_dc": lr_dc,
            "f_rest": lr_rest,
            "opacity": opt.opacity_lr,
            "scaling": opt.scaling_lr,
            "rotation": opt.rotation_lr,
        }
        groups = [{"params": [p], "lr": lrs[name], "name": name}
                  for name, p in self._params().items()]
        self.optimizer = make_optimizer(getattr(opt, "optimizer_type", "default"), groups)
        self.xyz_scheduler_args = get_expon_lr_func(
            lr_init=opt.position_lr_init * self.spatial_lr_scale,
            lr_final=opt.position_lr_final * self.spatial_lr_scale,
            lr_delay_mult=opt.position_lr_delay_mult,
            max_steps=opt.position_lr_max_steps)

    def update_learning_rate(self, iteration: int) -> float:
        lr = self.xyz_scheduler_args(iteration)
        for group in self.optimizer.param_groups:
            if group["name"] == "xyz":
                group["lr"] = lr
        return lr

    # ------------------------------------------------------------ densification primitives

    def append_gaussians(self, values: Dict[str, torch.Tensor]) -> int:
        """Append Gaussians given raw values for every group name. Returns how many."""
        values = {k: torch.as_tensor(v, dtype=torch.float32, device=self.device)
                  for k, v in values.items()}
        return self._run(ops.append, values, state=self.tables)

    def prune(self, mask: torch.Tensor) -> int:
        """Remove the Gaussians where mask is True. Returns how many were removed."""
        return self._run(ops.remove, mask.to(self.device), state=self.tables)

    def clone(self, mask: torch.Tensor) -> int:
        """Append exact copies of the selected Gaussians. Returns how many were added."""
        return self._run(ops.duplicate, mask.to(self.device), state=self.tables)

    def clone_and_split(self, clone: torch.Tensor, split: torch.Tensor) -> int:
        """Clone the Gaussians in `clone`, then split those in `split` (both masks over the
        Gaussians as they are now). Returns the net number added; the new rows (clones,
        then split children) are the last ones."""
        n_before = self.num_points
        added = self.clone(clone)
        pad = torch.zeros(self.num_points - n_before, dtype=torch.bool, device=split.device)
        return added + self.split(torch.cat([split, pad]))

    def split(self, mask: torch.Tensor, n: int = 2, scale_factor: float = 0.8) -> int:
        """Replace each selected Gaussian by n samples from its own 3D Gaussian, with
        scales divided by scale_factor * n (reference densify_and_split). Samples use
        torch's global RNG. Children go to the end; table rows are copied from the parent.
        Returns the net number of Gaussians added ((n - 1) * selected)."""
        mask = mask.to(self.device)
        idx = mask.nonzero(as_tuple=True)[0]
        m = idx.numel()
        if m == 0:
            return 0
        with torch.no_grad():
            stds = self.get_scaling[idx].repeat(n, 1)
            samples = torch.normal(mean=torch.zeros_like(stds), std=stds)
            rots = build_rotation(self._rotation[idx]).repeat(n, 1, 1)
            new_xyz = (rots @ samples[..., None])[..., 0] + self._xyz[idx].repeat(n, 1)
            children = {name: p.detach()[idx].repeat(n, *([1] * (p.dim() - 1)))
                        for name, p in self._params().items()}
            children["xyz"] = new_xyz
            children["scaling"] = torch.log(stds / (scale_factor * n))
        src = idx.repeat(n)
        self._run(ops.append, children, state=self.tables, state_src=src)
        parents = torch.zeros(self.num_points, dtype=torch.bool, device=self.device)
        parents[idx] = True
        self._run(ops.remove, parents, state=self.tables)
        return (n - 1) * m

    def spawn(self, xyz, rgb, scales=None, opacity=0.1) -> int:
        """Append new Gaussians at world points `xyz` (M,3) with colours `rgb` (M,3) in
        [0,1]. `scales` are world-space sizes (M,) or (M,3); when None each new Gaussian is
        sized by its 3 nearest neighbours among existing and new points. Returns M."""
        xyz = torch.as_tensor(xyz, dtype=torch.float32, device=self.device).reshape(-1, 3)
        rgb = torch.as_tensor(rgb, dtype=torch.float32, device=self.device).reshape(-1, 3)
        m = xyz.shape[0]
        if m == 0:
            return 0
        if rgb.shape[0] != m:
            raise ValueError(f"spawn: {m} points but {rgb.shape[0]} colours")
        if scales is None:
            everything = torch.cat([self._xyz.detach(), xyz])
            dist2 = mean_sq_dist_to_knn(everything)[-m:]
        else:
            dist2 = torch.ones(m, device=self.device)
        vals = self._new_values(xyz, rgb, dist2, opacity)
        if scales is not None:
            s = torch.as_tensor(scales, dtype=torch.float32, device=self.device)
            s = s.reshape(m, 1).expand(m, 3) if s.dim() <= 1 else s.reshape(m, 3)
            vals["scaling"] = torch.log(s.clamp_min(1e-12))
        return self._run(ops.append, vals, state=self.tables)

    def reset_opacity(self, max_value: float = 0.01) -> int:
        """Clamp opacities to at most max_value and zero their Adam moments."""
        cap = torch.full_like(self._opacity, max_value)
        new = inverse_sigmoid(torch.minimum(self.get_opacity.detach(), cap))
        return self._run(ops.reset_rows, "opacity", new)

    # ------------------------------------------------------------ IO

    def save_ply(self, path: str):
        with torch.no_grad():
            write_gaussian_ply(
                path,
                xyz=self._xyz.cpu().numpy(),
                features_dc=self._features_dc.cpu().numpy(),
                features_rest=self._features_rest.cpu().numpy(),
                opacity=self._opacity.cpu().numpy(),
                scaling=self._scaling.cpu().numpy(),
                rotation=self._rotation.cpu().numpy())

    def load_ply(self, path: str):
        """Load a splat PLY. A file with a lower SH degree is zero-padded to ours; a
        higher one is an error. Leaves the optimizer unset (call training_setup)."""
        data = read_gaussian_ply(path)
        if data["sh_degree"] > self.max_sh_degree:
            raise UserError(f"{path}: has SH degree {data['sh_degree']} but the model is set "
                            f"up for degree {self.max_sh_degree} (use --sh_degree)")
        rest = torch.from_numpy(data["features_rest"])
        n = rest.shape[0]
        if rest.shape[1] < self.num_sh_rest:
            rest = torch.cat([rest, torch.zeros(n, self.num_sh_rest - rest.shape[1], 3)], 1)
        self._set_params({
            "xyz": torch.from_numpy(data["xyz"]),
            "f_dc": torch.from_numpy(data["features_dc"]),
            "f_rest": rest,
            "opacity": torch.from_numpy(data["opacity"]),
            "scaling": torch.from_numpy(data["scaling"]),
            "rotation": torch.from_numpy(data["rotation"]),
        })
        self.active_sh_degree = self.max_sh_degree
        self.tables = {}
        self.optimizer = None

    def capture(self) -> dict:
        """Everything needed to resume training, as plain tensors / numbers / dicts so it
        loads with torch.load(weights_only=True). Deep-copied: later steps don't alter it."""
        return {
            "params": {name: p.detach().clone() for name, p in self._params().items()},
            "optimizer": (copy.deepcopy(self.optimizer.state_dict())
                          if self.optimizer is not None else None),
            "active_sh_degree": int(self.active_sh_degree),
            "max_sh_degree": int(self.max_sh_degree),
            "spatial_lr_scale": float(self.spatial_lr_scale),
            "tables": {name: t.detach().clone() for name, t in self.tables.items()},
        }

    def restore(self, captured: dict, training_args=None):
        """Inverse of capture(). With training_args the optimizer is rebuilt and its
        saved state (moments, step, learning rates) loaded exactly."""
        try:
            params = captured["params"]
            self.max_sh_degree = int(captured["max_sh_degree"])
            self.active_sh_degree = int(captured["active_sh_degree"])
            self.spatial_lr_scale = float(captured["spatial_lr_scale"])
            self._set_params({name: params[name] for name in PARAM_ATTRS})
            self.tables = {}
            for name, t in captured.get("tables", {}).items():
                self.set_table(name, t.to(self.device).clone())
        except KeyError as e:
            raise UserError(f"checkpoint is missing Gaussian model entry {e}") from None
        self.optimizer = None
        if training_args is None:
            return
        self.training_setup(training_args)
        saved = captured.get("optimizer")
        if saved is not None:
            names = [g.get("name") for g in saved["param_groups"]]
            if names != list(PARAM_ATTRS):
                raise UserError(f"checkpoint optimizer groups {names} do not match "
                                f"{list(PARAM_ATTRS)}")
            self.optimizer.load_state_dict(saved)
