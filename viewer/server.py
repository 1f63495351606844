"""Start a viser server on exactly the host and port asked for.

viser quietly moves to the next free port when one is taken, and listens on 0.0.0.0 by
default; our CLIs want neither: a taken port is one clear line naming the flag, and the
server only listens on the host given (127.0.0.1 unless the user says otherwise).
"""
import contextlib
import errno
import io
import socket

from utils.errors import UserError


def require_viser():
    """The viser module, or a UserError that says how to install it."""
    try:
        import viser
    except ImportError:
        raise UserError("the viewer needs the 'viser' package: pip install -r requirements.txt"
                        ) from None
    return viser


def check_port_free(host: str, port: int, port_flag: str = "--port",
                    host_flag: str = "--host"):
    """UserError unless (host, port) can be bound now (same socket options as the server)."""
    if not 0 <= port <= 65535:
        raise UserError(f"{port_flag} {port}: not a port number (0-65535)")
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror:
        raise UserError(f"{host_flag} {host}: not a host name or address") from None
    family, _, _, _, addr = infos[0]
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(addr)
        except OSError as e:
            if e.errno == errno.EADDRINUSE:
                raise UserError(f"{port_flag} {port}: port already in use on {host} "
                                f"(pick another with {port_flag})") from None
            if e.errno == errno.EADDRNOTAVAIL:
                raise UserError(f"{host_flag} {host}: not an address of this machine") from None
            if e.errno == errno.EACCES:
                raise UserError(f"{port_flag} {port}: permission denied (ports below 1024 "
                                "need root)") from None
            raise UserError(f"{host_flag} {host} {port_flag} {port}: cannot listen ({e})"
                            ) from None


def open_server(host: str, port: int, port_flag: str = "--port", host_flag: str = "--host",
                quiet: bool = False):
    """A started viser.ViserServer listening on host:port only."""
    viser = require_viser()
    check_port_free(host, port, port_flag, host_flag)
    with contextlib.redirect_stdout(io.StringIO()):  # viser's banner: we print one line
        server = viser.ViserServer(host=host, port=port, verbose=False)
    # A share link would tunnel the viewer out beyond --host: never open one.
    server.request_share_url = lambda *args, **kwargs: None
    if port and server.get_port() != port:  # taken between our check and viser's bind
        server.stop()
        raise UserError(f"{port_flag} {port}: port already in use on {host} "
                        f"(pick another with {port_flag})")
    server.gui.configure_theme(control_width="large", dark_mode=False, show_logo=False,
                                show_share_button=False)
    if not quiet:
        print(f"Viewer: http://{host}:{server.get_port()}", flush=True)
    return server


def set_background(server, rgb):
    """The browser's background in the run's background colour (RGB in [0, 1])."""
    import numpy as np
    from utils.image_utils import to_uint8
    pixel = to_uint8(np.asarray(rgb, np.float32))
    server.scene.set_background_image(np.broadcast_to(pixel, (8, 8, 3)).copy(), format="png")
