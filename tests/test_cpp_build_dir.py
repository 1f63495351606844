"""Where the C++ CPU rasterizer is compiled: the checkout's build/raster_cpu when writable,
else a per-user, per-CPU cache (cluster compute nodes with a read-only checkout), or
GS_CPP_BUILD_DIR. A venv's ninja reaches the build through the env of a child process,
never through this process's PATH."""
import os

import pytest

from gaussian_renderer import cpp_backend

pytestmark = pytest.mark.unit


def test_checkout_build_folder_when_writable(monkeypatch):
    monkeypatch.delenv("GS_CPP_BUILD_DIR", raising=False)
    monkeypatch.setattr(cpp_backend, "_writable", lambda folder: True)
    assert cpp_backend.build_dir() == cpp_backend._BUILD


def test_read_only_checkout_builds_in_the_user_cache(monkeypatch, tmp_path):
    monkeypatch.delenv("GS_CPP_BUILD_DIR", raising=False)
    monkeypatch.setattr(cpp_backend, "_writable", lambda folder: False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    folder = cpp_backend.build_dir()
    assert folder.startswith(str(tmp_path / "cache" / "gaussian-splatting" / "raster_cpu-"))
    assert folder.endswith(cpp_backend._cpu_key())  # -march=native: one build per CPU model
    monkeypatch.delenv("XDG_CACHE_HOME")
    assert cpp_backend.build_dir().startswith(os.path.join(os.path.expanduser("~"), ".cache"))


def test_explicit_build_folder_wins(monkeypatch, tmp_path):
    monkeypatch.setenv("GS_CPP_BUILD_DIR", str(tmp_path / "b"))
    assert cpp_backend.build_dir() == str(tmp_path / "b")


def test_writable_checks(tmp_path):
    assert cpp_backend._writable(str(tmp_path / "not" / "yet"))  # creatable
    f = tmp_path / "afile"
    f.write_text("")
    assert not cpp_backend._writable(str(f / "sub"))  # under a regular file


def test_venv_ninja_goes_into_the_build_env_not_os_environ(monkeypatch, tmp_path):
    venv_bin = tmp_path / "venv" / "bin"
    venv_bin.mkdir(parents=True)
    (venv_bin / "ninja").write_text("")
    monkeypatch.setattr(cpp_backend.sys, "executable", str(venv_bin / "python"))
    monkeypatch.setattr(cpp_backend.shutil, "which", lambda name: None)
    monkeypatch.setenv("PATH", "/usr/bin")
    env = cpp_backend.ninja_env()
    assert env["PATH"].split(os.pathsep) == [str(venv_bin), "/usr/bin"]
    assert os.environ["PATH"] == "/usr/bin"


def test_no_build_env_when_ninja_is_on_path(monkeypatch):
    monkeypatch.setattr(cpp_backend.shutil, "which", lambda name: "/usr/bin/ninja")
    assert cpp_backend.ninja_env() is None


def test_child_build_imports_the_extension(monkeypatch):
    """The venv-ninja path: the build runs in a child with its own env, then is imported."""
    if not cpp_backend.is_available():
        pytest.skip("the C++ rasterizer could not be built here (C++ compiler and ninja needed)")
    before = dict(os.environ)
    monkeypatch.setattr(cpp_backend, "ninja_env", lambda: dict(os.environ))
    cpp_backend._extension.cache_clear()
    try:
        ext = cpp_backend._extension()
        assert ext is not None and hasattr(ext, "forward") and hasattr(ext, "backward")
    finally:
        cpp_backend._extension.cache_clear()
    assert dict(os.environ) == before
