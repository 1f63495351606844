"""Training-view order: shuffled passes over the training cameras, with a resumable state."""
import numpy as np


class CameraSampler:
    def __init__(self, n: int, seed: int):
        self.n = n
        self.rng = np.random.default_rng(seed)
        self.queue = []

    def next(self) -> int:
        if not self.queue:
            self.queue = self.rng.permutation(self.n).tolist()
        return self.queue.pop()

    def state_dict(self) -> dict:
        st = self.rng.bit_generator.state
        return {"n": self.n, "queue": list(self.queue), "bitgen": st["bit_generator"],
                "state": int(st["state"]["state"]), "inc": int(st["state"]["inc"]),
                "has_uint32": int(st["has_uint32"]), "uinteger": int(st["uinteger"])}

    def load_state_dict(self, d: dict):
        self.n = d["n"]
        self.queue = list(d["queue"])
        self.rng.bit_generator.state = {
            "bit_generator": d["bitgen"], "state": {"state": d["state"], "inc": d["inc"]},
            "has_uint32": d["has_uint32"], "uinteger": d["uinteger"]}
