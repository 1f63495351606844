"""Cost of one semantic-guidance analysis: a batched Qwen3-VL `generate` over the sampled views.

    python bench/bench_vlm.py --arch tiny [--views 4] [--size 192x108] [--device cpu]
    python bench/bench_vlm.py --arch qwen3-vl-2b --device cuda     # random weights, real shapes

`tiny` is the tests' toy model taught one box answer (realistic answer length, ~25 tokens).
`qwen3-vl-2b` is randomly initialised with Qwen3-VL-2B-Instruct's published architecture
(28 x 2048 text layers, GQA 16/8 heads, 24 x 1024 vision blocks, DeepStack at 5/11/17, vocab
151,936), bf16 on GPU: random weights never emit the end token, so every analysis generates the
full --max_new_tokens (a worst case). Prints seconds per analysis (mean of --repeats after one
warm-up), load time and peak memory (CUDA: max allocated; CPU: growth of peak RSS).
"""
import argparse
import os
import resource
import subprocess
import sys
import tempfile
import time

import numpy as np
import torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from semantic.vlm import load_vlm  # noqa: E402
from utils.device import resolve_device  # noqa: E402
from bench.tiny_qwen import SHORT_PROMPTS, build_tokenizer, fit_answer, save_tiny_qwen  # noqa: E402

QWEN3_VL_2B = dict(
    text_config=dict(vocab_size=151_936, hidden_size=2048, intermediate_size=6144,
                     num_hidden_layers=28, num_attention_heads=16, num_key_value_heads=8,
                     head_dim=128, max_position_embeddings=262_144, rms_norm_eps=1e-6,
                     rope_parameters={"rope_type": "default", "rope_theta": 5_000_000.0,
                                      "mrope_section": [24, 20, 20], "mrope_interleaved": True}),
    vision_config=dict(depth=24, hidden_size=1024, intermediate_size=4096, num_heads=16,
                       out_hidden_size=2048, patch_size=16, spatial_merge_size=2,
                       temporal_patch_size=2, num_position_embeddings=2304,
                       deepstack_visual_indexes=[5, 11, 17]),
    tie_word_embeddings=True)


def save_qwen3_vl_2b_arch(path: str):
    """Random Qwen3-VL-2B-shaped model + a small tokenizer padded to the real vocabulary."""
    from transformers import Qwen3VLConfig, Qwen3VLForConditionalGeneration
    from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import (
        Qwen2VLImageProcessorPil)
    tok = build_tokenizer()
    tok.add_tokens([f"<x{i}>" for i in range(QWEN3_VL_2B["text_config"]["vocab_size"] - len(tok))])
    ids = {t: tok.convert_tokens_to_ids(t) for t in ("<|image_pad|>", "<|video_pad|>",
                                                     "<|vision_start|>", "<|vision_end|>")}
    cfg = Qwen3VLConfig(**QWEN3_VL_2B, image_token_id=ids["<|image_pad|>"],
                        video_token_id=ids["<|video_pad|>"],
                        vision_start_token_id=ids["<|vision_start|>"],
                        vision_end_token_id=ids["<|vision_end|>"])
    with torch.device("cpu"):
        model = Qwen3VLForConditionalGeneration(cfg).to(torch.bfloat16)
    model.save_pretrained(path)
    tok.save_pretrained(path)
    Qwen2VLImageProcessorPil(patch_size=16, merge_size=2, temporal_patch_size=2,
                             image_mean=[0.5] * 3, image_std=[0.5] * 3,
                             size={"shortest_edge": 65_536, "longest_edge": 16_777_216}
                             ).save_pretrained(path)


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--arch", choices=["tiny", "qwen3-vl-2b"], default="tiny")
    ap.add_argument("--device", default="auto", help="cuda, cpu or auto (CUDA when available)")
    ap.add_argument("--views", type=int, default=4, help="--semantic_num_samples")
    ap.add_argument("--size", default="192x108", help="view size WxH (juicebox at images_2)")
    ap.add_argument("--max_new_tokens", type=int, default=256)
    ap.add_argument("--max_pixels", type=int, default=448 * 448)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--model_dir", default="", help="reuse a saved model folder")
    ap.add_argument("--build_only", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    w, h = (int(v) for v in args.size.split("x"))
    tmp = tempfile.TemporaryDirectory()
    path = args.model_dir or os.path.join(tmp.name, args.arch)
    if args.build_only:
        if args.arch == "tiny":
            save_tiny_qwen(path)
            fit_answer(path, '[{"bbox_2d": [120, 250, 480, 760], "label": "object"}]')
        else:
            save_qwen3_vl_2b_arch(path)
        return
    if not os.path.isfile(os.path.join(path, "config.json")):
        # Built in a child process, so this one's peak RSS is the analysis's alone.
        t0 = time.perf_counter()
        subprocess.run([sys.executable, os.path.abspath(__file__), "--arch", args.arch,
                        "--model_dir", path, "--build_only"], check=True)
        print(f"built {args.arch} in {time.perf_counter() - t0:.1f} s at {path}")
    rss0 = peak_rss_mb()
    device = resolve_device(args.device)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    vlm = load_vlm(path, device, max_pixels=args.max_pixels, max_new_tokens=args.max_new_tokens)
    rng = np.random.default_rng(0)
    views = [rng.integers(0, 256, (h, w, 3), dtype=np.uint8) for _ in range(args.views)]
    prompts = [SHORT_PROMPTS["phase2"]] * args.views
    t0 = time.perf_counter()
    vlm.load()
    load_s = time.perf_counter() - t0
    vlm.generate(views, prompts)  # warm-up
    times, tokens = [], 0
    for _ in range(args.repeats):
        if device.type == "cuda":
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        texts, seen = vlm.generate(views, prompts)
        if device.type == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - t0)
        tokens = max(len(vlm.tokenizer(t)["input_ids"]) for t in texts)
    mem = (torch.cuda.max_memory_allocated() / 2 ** 20 if device.type == "cuda"
           else peak_rss_mb() - rss0)  # CPU: what loading and answering added to the process
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU"
    print(f"| {args.arch} | {name} | {vlm.dtype} | {args.views} x {w}x{h} (model sees "
          f"{seen[0][0]}x{seen[0][1]}) | {tokens} | {np.mean(times):.3f} | {load_s:.1f} | "
          f"{mem:.0f} |")
    print("columns: arch | device | dtype | views | answer tokens | s per analysis | load s | "
          "peak MB")


if __name__ == "__main__":
    main()
