"""The reference codebase's remote-viewer protocol (what SIBR's remote viewer speaks), served
while training (`--ip`, `--port`, `--disable_viewer`).

One TCP client at a time. Each message from the viewer is a 4-byte little-endian length and
then that many bytes of UTF-8 JSON: resolution_x/y, train, fov_y, fov_x, z_near, z_far,
shs_python, rot_scale_python, keep_alive, scaling_modifier, view_matrix and
view_projection_matrix (16 floats each, read as the rows of our transposed matrices, i.e.
column-major; the viewer's OpenGL axes are turned into ours by negating columns 1 and 2 of
the view matrix and column 1 of the view-projection matrix). The answer is the render as
height x width x 3 bytes (RGB, row-major, no length prefix; nothing when resolution is 0),
then a 4-byte little-endian length and the ASCII source path of the scene.

While a viewer is connected the training loop answers one message per iteration; with
`train` false it keeps answering without training (paused), and after the last iteration it
keeps serving while `keep_alive` is true. Without a client, an iteration costs one clock read;
a non-blocking accept() runs at most every POLL_SECONDS.
"""
import errno
import json
import socket
import time
from typing import Optional

import torch

from scene.plugins import TrainingPlugin
from utils.errors import UserError
from utils.image_utils import to_uint8_hwc


class ViewerCamera:
    """A render-only camera from a viewer message (the reference's MiniCam)."""

    def __init__(self, width, height, fovy, fovx, znear, zfar, world_view_transform,
                 full_proj_transform):
        self.image_width, self.image_height = int(width), int(height)
        self.FoVy, self.FoVx = float(fovy), float(fovx)
        self.znear, self.zfar = float(znear), float(zfar)
        self.world_view_transform = world_view_transform
        self.full_proj_transform = full_proj_transform
        self.camera_center = torch.linalg.inv(world_view_transform)[3, :3]
        self.image_name = ""


def camera_from_message(msg: dict) -> Optional[ViewerCamera]:
    """None for a message without a frame request (resolution 0)."""
    width, height = int(msg["resolution_x"]), int(msg["resolution_y"])
    if width == 0 or height == 0:
        return None
    view = torch.tensor(msg["view_matrix"], dtype=torch.float32).reshape(4, 4)
    view[:, 1] = -view[:, 1]
    view[:, 2] = -view[:, 2]
    proj = torch.tensor(msg["view_projection_matrix"], dtype=torch.float32).reshape(4, 4)
    proj[:, 1] = -proj[:, 1]
    return ViewerCamera(width, height, msg["fov_y"], msg["fov_x"], msg["z_near"],
                        msg["z_far"], view, proj)


def message_for_camera(cam, train: bool = True, keep_alive: bool = True,
                       scaling_modifier: float = 1.0) -> dict:
    """The viewer's message for one of our cameras (the inverse of camera_from_message);
    what a client sends, used by tests and scripts."""
    view = cam.world_view_transform.detach().cpu().clone()
    view[:, 1] = -view[:, 1]
    view[:, 2] = -view[:, 2]
    proj = cam.full_proj_transform.detach().cpu().clone()
    proj[:, 1] = -proj[:, 1]
    return {"resolution_x": cam.image_width, "resolution_y": cam.image_height,
            "train": train, "fov_y": cam.FoVy, "fov_x": cam.FoVx, "z_near": cam.znear,
            "z_far": cam.zfar, "shs_python": False, "rot_scale_python": False,
            "keep_alive": keep_alive, "scaling_modifier": scaling_modifier,
            "view_matrix": view.flatten().tolist(),
            "view_projection_matrix": proj.flatten().tolist()}


def recv_exact(conn: socket.socket, n: int) -> bytes:
    buf = bytearray()
    while len(buf) < n:
        chunk = conn.recv(n - len(buf))
        if not chunk:
            raise ConnectionError("viewer disconnected")
        buf += chunk
    return bytes(buf)


def read_message(conn: socket.socket) -> dict:
    length = int.from_bytes(recv_exact(conn, 4), "little")
    return json.loads(recv_exact(conn, length).decode("utf-8"))


def write_message(conn: socket.socket, payload: dict):
    data = json.dumps(payload).encode("utf-8")
    conn.sendall(len(data).to_bytes(4, "little") + data)


def send_frame(conn: socket.socket, image_bytes: Optional[bytes], source_path: str):
    if image_bytes is not None:
        conn.sendall(image_bytes)
    verify = source_path.encode("ascii", "replace")
    conn.sendall(len(verify).to_bytes(4, "little") + verify)


def image_to_bytes(image: torch.Tensor) -> bytes:
    """(3,H,W) float in [0,1] -> H*W*3 RGB bytes, as the reference sends."""
    return to_uint8_hwc(image, rounding="truncate").tobytes()  # the reference truncates


POLL_SECONDS = 0.1


class PortInUse(UserError):
    """The viewer's port is taken (typically by another training run on this machine)."""


class NetworkViewer(TrainingPlugin):
    """The listening socket and the one connected viewer; as a training plugin it answers
    the viewer at the start of every iteration."""

    def __init__(self, ip: str, port: int, quiet: bool = False):
        if not 0 < port < 65536:
            raise UserError(f"--port must be in 1..65535, got {port}")
        self.quiet = quiet
        self.conn = None
        self.listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            self.listener.bind((ip, port))
        except OSError as e:
            self.listener.close()
            if e.errno == errno.EADDRINUSE:
                raise PortInUse(f"--port {port}: {ip}:{port} is already in use (another "
                                "training run?); give another --port or --disable_viewer") from None
            raise UserError(f"--ip {ip} --port {port}: cannot listen there ({e.strerror})") from None
        self.listener.listen()
        self.listener.setblocking(False)
        self.address = self.listener.getsockname()
        self._next_poll = 0.0

    def try_connect(self):
        now = time.monotonic()
        if now < self._next_poll:
            return
        self._next_poll = now + POLL_SECONDS
        try:
            conn, addr = self.listener.accept()
        except (BlockingIOError, InterruptedError):
            return
        conn.setblocking(True)
        conn.settimeout(None)
        self.conn = conn
        if not self.quiet:
            from tqdm import tqdm
            tqdm.write(f"Viewer connected from {addr[0]}:{addr[1]}")

    def iteration_start(self, trainer, iteration: int):
        self.serve(trainer)

    def serve(self, trainer, done: bool = False):
        """Called at the top of each training iteration (done=False): answer the viewer
        once, or keep answering while it pauses training. After the last iteration (done=True,
        the final model saved) keep answering while the viewer says keep_alive."""
        if self.conn is None:
            self.try_connect()
        while self.conn is not None:
            try:
                msg = read_message(self.conn)
                cam = camera_from_message(msg)
                frame = None
                if cam is not None:
                    from gaussian_renderer import render
                    with torch.no_grad():
                        image = render(cam, trainer.gaussians, trainer.pipe, trainer.background,
                                       scaling_modifier=float(msg["scaling_modifier"]))["render"]
                    frame = image_to_bytes(image)
                send_frame(self.conn, frame, trainer.dataset.source_path)
                if bool(msg["train"]) and (not done or not bool(msg["keep_alive"])):
                    return
            except (OSError, ConnectionError, ValueError, KeyError, TypeError):
                self.disconnect()  # a viewer that leaves or talks nonsense: keep training

    def finish(self, trainer):
        """After the last iteration: serve while the viewer keeps alive, then close."""
        self._next_poll = 0.0
        if self.conn is not None:
            self.serve(trainer, done=True)
        self.close()

    def disconnect(self):
        if self.conn is not None:
            try:
                self.conn.close()
            finally:
                self.conn = None

    def close(self):
        self.disconnect()
        self.listener.close()
