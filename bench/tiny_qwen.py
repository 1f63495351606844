"""A tiny random Qwen3-VL saved to a folder, for offline tests and CPU benchmarks.

Real architecture classes (Qwen3VLForConditionalGeneration, a byte-level BPE tokenizer with
Qwen's special tokens and ChatML template, the PIL image processor), toy sizes. `fit_answer`
teaches it one fixed answer in a few seconds, so tests see real `generate` output.
"""
import os

import numpy as np
import torch

SPECIAL = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|vision_start|>", "<|vision_end|>",
           "<|image_pad|>", "<|video_pad|>"]
CHAT_TEMPLATE = (
    "{% for message in messages %}<|im_start|>{{ message['role'] }}\n"
    "{% if message['content'] is string %}{{ message['content'] }}{% else %}"
    "{% for item in message['content'] %}{% if item['type'] == 'image' %}"
    "<|vision_start|><|image_pad|><|vision_end|>{% elif item['type'] == 'text' %}"
    "{{ item['text'] }}{% endif %}{% endfor %}{% endif %}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}")
SHORT_PROMPTS = {"phase1": "Find regions.", "phase2": "Locate the main subject.",
                 "phase3": "Find holes."}
CORPUS = ['[{"bbox_2d": [120, 250, 480, 760], "label": "object"}]',
          "Find regions of the image. Answer with JSON boxes bbox_2d and label.",
          "0123456789 , : [ ] { } \" subject background detail"]


def build_tokenizer():
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=360, special_tokens=SPECIAL,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(CORPUS * 10, trainer)
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="<|im_end|>",
                                   pad_token="<|endoftext|>")
    fast.chat_template = CHAT_TEMPLATE
    return fast


def save_tiny_qwen(path: str, seed: int = 0, chat_template: bool = True):
    """Write a random tiny Qwen3-VL (model, tokenizer, image processor) to `path`."""
    from transformers import Qwen3VLConfig, Qwen3VLForConditionalGeneration
    from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import (
        Qwen2VLImageProcessorPil)
    torch.manual_seed(seed)
    tok = build_tokenizer()
    if not chat_template:
        tok.chat_template = None
    ids = {t: tok.convert_tokens_to_ids(t) for t in SPECIAL}
    cfg = Qwen3VLConfig(
        text_config=dict(vocab_size=len(tok), hidden_size=64, intermediate_size=128,
                         num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                         head_dim=16, max_position_embeddings=4096,
                         rope_parameters={"rope_type": "default", "rope_theta": 10000.0,
                                          "mrope_section": [2, 3, 3],
                                          "mrope_interleaved": True}),
        vision_config=dict(depth=2, hidden_size=32, intermediate_size=64, num_heads=2,
                           out_hidden_size=64, patch_size=16, spatial_merge_size=2,
                           temporal_patch_size=2, num_position_embeddings=256,
                           deepstack_visual_indexes=[1]),
        image_token_id=ids["<|image_pad|>"], video_token_id=ids["<|video_pad|>"],
        vision_start_token_id=ids["<|vision_start|>"], vision_end_token_id=ids["<|vision_end|>"],
        tie_word_embeddings=True)
    model = Qwen3VLForConditionalGeneration(cfg)
    model.generation_config.eos_token_id = ids["<|im_end|>"]
    model.generation_config.pad_token_id = ids["<|endoftext|>"]
    os.makedirs(path, exist_ok=True)
    model.save_pretrained(path)
    tok.save_pretrained(path)
    Qwen2VLImageProcessorPil(patch_size=16, merge_size=2, temporal_patch_size=2,
                             image_mean=[0.5] * 3, image_std=[0.5] * 3,
                             size={"shortest_edge": 32 * 32, "longest_edge": 256 * 256}
                             ).save_pretrained(path)
    return path


def fit_answer(path: str, answer: str, steps: int = 120, seed: int = 0) -> float:
    """Teach the saved model to answer `answer` to any image and prompt; saves it back.
    Returns the final loss."""
    from semantic.vlm import QwenVL
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    vlm = QwenVL(path, "cpu").load()
    model, tok = vlm.model, vlm.tokenizer
    model.train()
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    target = tok(answer + "<|im_end|>", return_tensors="pt")["input_ids"][0]
    # Short prompts keep fitting fast; tests that train with guidance pass them as --prompt_file.
    prompts = list(SHORT_PROMPTS.values()) + ["Locate the object.", "p"]
    loss = torch.tensor(0.0)
    for step in range(steps):
        imgs = [rng.integers(0, 256, (int(rng.integers(40, 120)), int(rng.integers(40, 160)), 3),
                             dtype=np.uint8) for _ in range(2)]
        inputs, _ = vlm.build_inputs(imgs, [prompts[(2 * step + k) % len(prompts)]
                                            for k in range(2)])
        n = inputs["input_ids"].shape[0]
        tgt = target.unsqueeze(0).repeat(n, 1)
        ids = torch.cat([inputs["input_ids"], tgt], 1)
        labels = torch.cat([torch.full_like(inputs["input_ids"], -100), tgt], 1)
        inputs.update(input_ids=ids, labels=labels,
                      attention_mask=torch.cat([inputs["attention_mask"],
                                                torch.ones_like(tgt)], 1),
                      mm_token_type_ids=torch.cat([inputs["mm_token_type_ids"],
                                                   torch.zeros_like(tgt, dtype=torch.int32)],
                                                  1))
        loss = model(**inputs).loss
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.eval()
    model.save_pretrained(path)
    return float(loss.detach())
