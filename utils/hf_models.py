"""Hugging Face models named on the command line: a local folder or a hub id ("org/name").

One rule for telling the two apart, one check that a local folder is a model folder (before
any slow work), and the arguments `from_pretrained` gets. Used by the InstructPix2Pix editor,
the CLIP metric, the Qwen3-VL loader and the edit manifest. Nothing heavy is imported here.
"""
import logging
import os
from typing import Optional, Tuple

from utils.errors import UserError


def looks_local(name: str) -> bool:
    """A folder rather than a hub id: anything that exists, an absolute path, one starting
    with . or ~, ending with /, or without exactly one "/" (hub ids are "org/name")."""
    return (os.path.exists(os.path.expanduser(name)) or os.path.isabs(name)
            or name.startswith((".", "~")) or name.endswith("/") or name.count("/") != 1)


def check_model_folder(name: str, flag: str, index_file: str):
    """One clear line for an empty name or a missing or wrong local model folder (a folder
    without `index_file`, e.g. config.json or model_index.json); hub ids pass through."""
    if not name:
        raise UserError(f"{flag} is empty")
    if not looks_local(name):
        return
    path = os.path.expanduser(name)
    if not os.path.isdir(path):
        raise UserError(f"{flag} {name}: no such folder")
    if not os.path.isfile(os.path.join(path, index_file)):
        raise UserError(f"{flag} {name}: not a model folder (no {index_file})")


def model_source(name: str, flag: str, index_file: str) -> Tuple[str, bool]:
    """check_model_folder, then (what from_pretrained reads, whether that is a local folder:
    pass it as local_files_only so a folder never reaches for the network)."""
    check_model_folder(name, flag, index_file)
    local = looks_local(name)
    return (os.path.expanduser(name) if local else name), local


def local_snapshot(name: str) -> Tuple[Optional[str], Optional[str]]:
    """(the folder holding `name`'s files on this machine, or None; a note when a hub id has
    no local snapshot). Never downloads."""
    if looks_local(name):
        return os.path.expanduser(name), None
    try:
        from huggingface_hub import snapshot_download
        return snapshot_download(name, local_files_only=True), None
    except Exception as e:
        return None, f"no local snapshot to hash ({type(e).__name__})"


def quiet_hf_logs():
    """transformers warns that CLIP's image processor falls back to PIL without torchvision
    (we never use it) and diffusers that `accelerate` is missing; both are noise here."""
    # Both libraries reset their logger level when first imported: import, then set.
    for name in ("transformers", "diffusers"):
        try:
            __import__(name).utils.logging.set_verbosity_error()
        except Exception:
            logging.getLogger(name).setLevel(logging.ERROR)
