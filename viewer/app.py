"""view.py's work: tell what kind of folder it was given, start the server, build the view."""
import os
import time
from dataclasses import dataclass
from typing import Optional

from utils.errors import UserError
from viewer.splats import DEFAULT_MAX_SPLATS


@dataclass
class Viewer:
    server: object
    kind: str               # "model", "guided" or "edit"
    model: object           # ModelView
    layer: Optional[object] = None   # RegionsView (guided) or EditLayer (edit)
    open_s: float = 0.0     # seconds from the call to a scene ready to serve


def folder_kind(path: str) -> str:
    if not os.path.isdir(path):
        raise UserError(f"-m/--model_path {path}: no such folder")
    if os.path.isfile(os.path.join(path, "training_state.yaml")) and \
            os.path.isfile(os.path.join(path, "manifest.json")):
        return "edit"
    if not os.path.isfile(os.path.join(path, "cfg_args")):
        raise UserError(f"-m/--model_path {path}: neither a train.py output folder (no "
                        "cfg_args) nor an edit.py output folder (no training_state.yaml)")
    return "guided" if os.path.isdir(os.path.join(path, "regions")) else "model"


def open_viewer(path: str, iteration: int = -1, host: str = "127.0.0.1", port: int = 8080,
                max_splats: Optional[int] = None, quiet: bool = False) -> Viewer:
    """Load the folder, then serve it; returns once the scene is ready (the server runs in
    its own threads until viewer.server.stop())."""
    t0 = time.perf_counter()
    kind = folder_kind(path)
    max_splats = DEFAULT_MAX_SPLATS if max_splats is None else max_splats
    from viewer.server import check_port_free, open_server
    check_port_free(host, port)  # before loading: a taken port costs no time
    from viewer.model_view import ModelView
    if kind == "edit":
        from viewer.edits import EditLayer, EditRun
        run = EditRun(path)
        server = open_server(host, port, quiet=quiet)
        view = ModelView(server, run.input, max_splats)
        layer = EditLayer(server, view, run, max_splats)
        return Viewer(server, kind, view, layer, open_s=time.perf_counter() - t0)
    from viewer.model_files import TrainedModel
    model = TrainedModel(path, iteration)
    server = open_server(host, port, quiet=quiet)
    view = ModelView(server, model, max_splats)
    regions = None
    if kind == "guided":
        from viewer.regions import RegionsView
        regions = RegionsView(server, view, path)
    if not quiet and view.arrays.subset:
        print(f"Viewer: {view.arrays.note()}", flush=True)
    return Viewer(server, kind, view, regions, open_s=time.perf_counter() - t0)
