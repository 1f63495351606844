"""Per-phase prompts: the files in semantic/prompts/, overridable with --prompt_file.

--prompt_file takes a YAML mapping with any of the keys phase1, phase2, phase3 (the others keep
the built-in text), or a plain-text file used for every phase.
"""
import os
from typing import Dict, Optional

import yaml

from utils.errors import UserError

PROMPT_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "prompts")
PHASES = ("phase1", "phase2", "phase3")


def builtin_prompts() -> Dict[str, str]:
    out = {}
    for name in PHASES:
        with open(os.path.join(PROMPT_DIR, f"{name}.txt")) as f:
            out[name] = f.read().strip()
    return out


def load_prompts(prompt_file: Optional[str] = None) -> Dict[str, str]:
    prompts = builtin_prompts()
    if not prompt_file:
        return prompts
    try:
        with open(prompt_file) as f:
            text = f.read()
    except OSError as e:
        raise UserError(f"--prompt_file {prompt_file}: {e.strerror or e}") from e
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError:
        data = None
    if isinstance(data, dict):
        unknown = sorted(set(map(str, data)) - set(PHASES))
        if unknown:
            raise UserError(f"--prompt_file {prompt_file}: unknown keys {', '.join(unknown)} "
                            f"(expected {', '.join(PHASES)})")
        for key, value in data.items():
            if not isinstance(value, str) or not value.strip():
                raise UserError(f"--prompt_file {prompt_file}: {key} must be a non-empty text")
            prompts[key] = value.strip()
        return prompts
    if not text.strip():
        raise UserError(f"--prompt_file {prompt_file} is empty")
    return {name: text.strip() for name in PHASES}
