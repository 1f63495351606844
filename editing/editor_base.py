"""The edit-function interface every editor implements (editors.py, pix2pix.py).

Its own module so the editors can import it without importing each other.
"""
import torch


class Editor:
    """Base class: `editor(image, instruction, seed) -> image`, (3,H,W) float tensors in [0,1]
    of the same size. `load()` does the slow part (weights) once, before the first round."""
    name = "editor"

    def load(self):
        return self

    def __call__(self, image: torch.Tensor, instruction: str, seed: int) -> torch.Tensor:
        raise NotImplementedError

    def describe(self) -> dict:
        """What the manifest records about this editor."""
        return {"editor": self.name}
