"""A tiny random InstructPix2Pix pipeline (and a tiny CLIP) saved to a folder, for offline
tests and CPU benchmarks of edit.py.

Real diffusers / transformers classes at toy sizes: a UNet with 8 input channels (4 noisy
latent + 4 image latent, as InstructPix2Pix), a VAE that downsamples 8x as Stable Diffusion's,
a 1-layer CLIP text encoder, a CLIP BPE tokenizer written from a small vocab.json / merges.txt,
and an Euler-ancestral scheduler. Random weights: the "edits" are noise, but every code path
(tokenize, encode, denoise with both guidances, decode) runs for real.

    python tests/tiny_pix2pix.py OUT_FOLDER       # writes OUT_FOLDER (pipeline) and OUT_FOLDER_clip
"""
import json
import os
import sys
import tempfile

WORDS = ["make", "the", "juice", "box", "red", "blue", "green", "turn", "it", "into", "a",
         "photo", "of", "scene", "remove", "object", "cup", "table"]
BOS, EOS = "<|startoftext|>", "<|endoftext|>"
HIDDEN = 16
MAX_TOKENS = 16


def write_tokenizer_files(folder: str):
    """vocab.json + merges.txt for CLIP's BPE: every word of WORDS is reachable by merging
    left to right; unknown words fall back to characters."""
    os.makedirs(folder, exist_ok=True)
    vocab, merges = {}, []
    for c in sorted(set("".join(WORDS))):
        vocab.setdefault(c, len(vocab))
        vocab.setdefault(c + "</w>", len(vocab))
    for w in WORDS:
        toks = list(w[:-1]) + [w[-1] + "</w>"]
        while len(toks) > 1:
            pair = (toks[0], toks[1])
            if pair not in merges:
                merges.append(pair)
            vocab.setdefault(toks[0] + toks[1], len(vocab))
            toks = [toks[0] + toks[1]] + toks[2:]
    for special in (BOS, EOS):
        vocab[special] = len(vocab)
    with open(os.path.join(folder, "vocab.json"), "w") as f:
        json.dump(vocab, f)
    with open(os.path.join(folder, "merges.txt"), "w") as f:
        f.write("#version: 0.2\n" + "".join(f"{a} {b}\n" for a, b in merges))
    return vocab


def _tokenizer():
    """The tokenizer, built from vocab/merges in a scratch folder (its files end up in the
    saved model; the scratch copy is not left behind)."""
    from transformers import CLIPTokenizer
    with tempfile.TemporaryDirectory() as folder:
        write_tokenizer_files(folder)
        return CLIPTokenizer(os.path.join(folder, "vocab.json"),
                             os.path.join(folder, "merges.txt"), model_max_length=MAX_TOKENS)


def _text_config(vocab_size):
    from transformers import CLIPTextConfig
    return CLIPTextConfig(vocab_size=vocab_size, hidden_size=HIDDEN, intermediate_size=32,
                          num_hidden_layers=1, num_attention_heads=2,
                          max_position_embeddings=MAX_TOKENS, projection_dim=HIDDEN,
                          bos_token_id=vocab_size - 2, eos_token_id=vocab_size - 1,
                          pad_token_id=vocab_size - 1)


def build_tiny_pix2pix(out: str, seed: int = 0) -> str:
    import torch
    from diffusers import (AutoencoderKL, EulerAncestralDiscreteScheduler,
                           StableDiffusionInstructPix2PixPipeline, UNet2DConditionModel)
    from transformers import CLIPTextModel
    torch.manual_seed(seed)
    tokenizer = _tokenizer()
    text_encoder = CLIPTextModel(_text_config(len(tokenizer)))
    unet = UNet2DConditionModel(
        sample_size=8, in_channels=8, out_channels=4, layers_per_block=1,
        block_out_channels=(16, 32), down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"),
        up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"), cross_attention_dim=HIDDEN,
        attention_head_dim=4, norm_num_groups=8)
    vae = AutoencoderKL(in_channels=3, out_channels=3, block_out_channels=(8, 16, 16, 16),
                        down_block_types=("DownEncoderBlock2D",) * 4,
                        up_block_types=("UpDecoderBlock2D",) * 4, latent_channels=4,
                        norm_num_groups=8, layers_per_block=1, sample_size=64)
    scheduler = EulerAncestralDiscreteScheduler(beta_start=0.00085, beta_end=0.012,
                                                beta_schedule="scaled_linear")
    pipe = StableDiffusionInstructPix2PixPipeline(
        vae=vae, text_encoder=text_encoder, tokenizer=tokenizer, unet=unet, scheduler=scheduler,
        safety_checker=None, feature_extractor=None, requires_safety_checker=False)
    pipe.save_pretrained(out)
    return out


def build_tiny_clip(out: str, seed: int = 0) -> str:
    import torch
    from transformers import CLIPConfig, CLIPModel, CLIPVisionConfig
    torch.manual_seed(seed)
    tokenizer = _tokenizer()
    vision = CLIPVisionConfig(hidden_size=HIDDEN, intermediate_size=32, num_hidden_layers=1,
                              num_attention_heads=2, image_size=32, patch_size=8,
                              projection_dim=HIDDEN)
    cfg = CLIPConfig(text_config=_text_config(len(tokenizer)).to_dict(),
                     vision_config=vision.to_dict(), projection_dim=HIDDEN)
    CLIPModel(cfg).save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out


if __name__ == "__main__":
    target = sys.argv[1]
    print(build_tiny_pix2pix(target))
    print(build_tiny_clip(target + "_clip"))
