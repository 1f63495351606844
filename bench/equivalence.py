"""Behaviour fingerprint of the training loop: four fixed-seed CPU runs, hashed.

    python bench/equivalence.py OUT_DIR [--only NAME ...]

Runs FastGS and 3DGS from SfM on juicebox_table (600 iterations), FastGS from 100 random
points with the error proposer (1200 iterations, the schedule scaled to the run) and a
two-round recolor edit of the first model, then writes OUT_DIR/hashes.txt: one sha256 per
PLY, PNG and NPY/NPZ, per CSV (timing and term_* columns dropped) and per JSON/YAML (timing keys dropped). Two trees behave
the same when their hashes.txt are equal (`diff a/hashes.txt b/hashes.txt`); a refactor that
must not change behaviour is checked this way (issue 20).
"""
import argparse
import csv
import hashlib
import io
import json
import os
import re
import subprocess
import sys

import yaml

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCENE = os.path.realpath(os.path.join(os.path.dirname(ROOT), "shared", "scenes", "juicebox_table"))
TIMING = ("elapsed", "time", "seconds", "_s", "date", "created", "updated", "started", "finished")


def runs(out: str) -> dict:
    common = ["-s", SCENE, "-i", "images_2", "--eval", "--seed", "0", "--quiet", "--disable_viewer"]
    fastgs = os.path.join(out, "fastgs_sfm")
    return {
        "fastgs_sfm": ["train.py", *common, "-m", fastgs, "--iterations", "600"],
        "3dgs_sfm": ["train.py", *common, "-m", os.path.join(out, "3dgs_sfm"),
                     "--strategy", "3dgs", "--iterations", "600"],
        "fastgs_random_error": ["train.py", *common, "-m", os.path.join(out, "fastgs_random"),
                                "--random_init", "100", "--region_proposer", "error",
                                "--iterations", "1200"],
        "edit_recolor": ["edit.py", "-m", fastgs, "--output", os.path.join(out, "edit"),
                         "--editor", "recolor:1.0,0.15,0.15", "--instruction", "make it red",
                         "--rounds", "2", "--round_iters", "60", "--refine_iters", "10",
                         "--seed", "0", "--quiet"],
    }


def is_timing(name: str) -> bool:
    name = str(name).lower()
    return any(t in name for t in TIMING)


def strip_tree(value):
    if isinstance(value, dict):
        return {k: strip_tree(v) for k, v in value.items() if not is_timing(k)}
    if isinstance(value, list):
        return [strip_tree(v) for v in value]
    return value


def digest(path: str, out: str) -> str:
    """sha256 prefix of a file's content; text files drop timing fields and name the output
    folder <OUT>, so two output folders of the same behaviour hash the same."""
    if path.endswith(".csv"):
        with open(path, newline="") as f:
            rows = list(csv.reader(f))
        # term_* columns (the named loss terms, logged since issue 20) are left out so logs
        # of older trees compare; their sum is the loss column, which is compared.
        keep = [i for i, name in enumerate(rows[0])
                if not is_timing(name) and not name.startswith("term_")] if rows else []
        buf = io.StringIO()
        csv.writer(buf).writerows([[r[i] for i in keep if i < len(r)] for r in rows])
        data = buf.getvalue().replace(os.path.abspath(out), "<OUT>").encode()
    elif path.endswith((".json", ".yaml")):
        with open(path) as f:
            text = f.read().replace(os.path.abspath(out), "<OUT>")
        text = re.sub(r"[^\s\"']*/shared/scenes/", "<SCENES>/", text)  # the same scenes
        load = json.loads if path.endswith(".json") else yaml.safe_load
        data = json.dumps(strip_tree(load(text)), sort_keys=True, default=str).encode()
    else:
        with open(path, "rb") as f:
            data = f.read()
    return hashlib.sha256(data).hexdigest()[:16]


def hash_tree(out: str) -> list:
    lines = []
    for dirpath, _, files in os.walk(out):
        for name in sorted(files):
            if not name.endswith((".ply", ".csv", ".json", ".yaml", ".npz", ".npy", ".png")):
                continue
            path = os.path.join(dirpath, name)
            rel = os.path.relpath(path, out)
            lines.append(f"{digest(path, out)}  {rel}")
    return sorted(lines, key=lambda s: s.split("  ", 1)[1])


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("out")
    ap.add_argument("--only", nargs="*", default=None, help="run only these (names above)")
    ap.add_argument("--hash_only", action="store_true", help="hash OUT again, run nothing")
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)
    env = dict(os.environ, OMP_NUM_THREADS=os.environ.get("OMP_NUM_THREADS", "1"))
    for name, cmd in runs(os.path.abspath(args.out)).items():
        if args.hash_only or (args.only and name not in args.only):
            continue
        print(f"[equivalence] {name}: {' '.join(cmd)}", flush=True)
        subprocess.run([sys.executable, *cmd], cwd=ROOT, env=env, check=True)
    lines = hash_tree(args.out)
    with open(os.path.join(args.out, "hashes.txt"), "w") as f:
        f.write("\n".join(lines) + "\n")
    print(f"[equivalence] {len(lines)} files hashed -> {os.path.join(args.out, 'hashes.txt')}")


if __name__ == "__main__":
    main()
