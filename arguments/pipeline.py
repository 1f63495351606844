"""Pipeline Parameters: the rasterizer and its footprint."""
from arguments.groups import ParamGroup
from utils.ranges import Float


class PipelineParams(ParamGroup):
    def __init__(self, parser):
        self.convert_SHs_python = False
        self.compute_cov3D_python = False
        self.debug = False
        self.backend = "auto"
        self.mult = 0.5
        self.antialiasing = False
        super().__init__(parser, "Pipeline Parameters")

    def _help(self):
        return {"backend": "rasterizer: auto (CUDA extension on CUDA, C++ rasterizer on CPU, "
                           "when built; else torch), cuda, cpp or torch (pure PyTorch oracle)",
                "mult": "FastGS compact footprint factor, shared by training and rendering "
                        "(1.0 = the reference 3DGS footprint)",
                "antialiasing": "2D mip filter (the reference's): opacity scaled by "
                                "sqrt(det(cov2D) / det(cov2D + dilation)); saved in cfg_args, "
                                "so render.py and edit.py use it too"}

    def _ranges(self):
        return {"mult": Float(0.0, 4.0, lo_open=True)}
