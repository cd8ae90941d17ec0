"""Time the captioner stage at InternVL3-1B's real size with random weights (no download needed).

Builds InternVL3-1B-hf's architecture from its configuration written out here (InternViT-300M vision tower at
448 px, Qwen2.5-0.5B language model), random weights, and the tiny tokenizer (its ids fit in the real vocabulary,
so the speed of the real model is measured; the text is meaningless). Times one batched, schema-constrained call
for N variants of one cover against N single calls, checks that the same seed reproduces the batch, and prints
tokens/s and peak GPU memory.

Usage: python benchmarks/captioner_real_size.py [--variants 4] [--device cuda] [--smoke]
"""

import argparse
import json
import sys
import time
from pathlib import Path

import torch
from PIL import Image
from transformers import AutoTokenizer, GotOcr2ImageProcessorPil, InternVLConfig, InternVLForConditionalGeneration

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from generation.caption import Captioner, images_only_processor  # noqa: E402
from generation.instruction import build_instruction  # noqa: E402

TINY_CAPTIONER = Path(__file__).resolve().parents[1] / "fixtures" / "tiny" / "captioner"
GENRES = [
    "ambient",
    "blues",
    "classical",
    "country",
    "edm",
    "folk",
    "hip hop",
    "jazz",
    "latin",
    "metal",
    "pop",
    "r&b",
    "reggae",
    "rock",
]


def internvl3_1b_config(image_token_id: int, *, layers: int | None = None) -> InternVLConfig:
    """InternVL3-1B-hf's dimensions; ``layers`` shrinks both towers' depth (for a CPU smoke run only)."""
    vision = {
        "hidden_size": 1024,
        "num_hidden_layers": layers or 24,
        "num_attention_heads": 16,
        "intermediate_size": 4096,
        "image_size": [448, 448],
        "patch_size": [14, 14],
        "use_qk_norm": False,
        "layer_norm_eps": 1e-6,
        "norm_type": "layer_norm",
        "use_mean_pooling": True,
    }
    text = {
        "model_type": "qwen2",
        "vocab_size": 151674,
        "hidden_size": 896,
        "intermediate_size": 4864,
        "num_hidden_layers": layers or 24,
        "num_attention_heads": 14,
        "num_key_value_heads": 2,
        "max_position_embeddings": 32768,
        "rope_theta": 1000000.0,
        "tie_word_embeddings": True,
        "rms_norm_eps": 1e-6,
    }
    return InternVLConfig(
        vision_config=vision,
        text_config=text,
        image_token_id=image_token_id,
        downsample_ratio=0.5,
        projector_hidden_act="gelu",
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--variants", type=int, default=4)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--dtype", default="bfloat16", choices=("bfloat16", "float32"))
    parser.add_argument("--max-new-tokens", type=int, default=384)
    parser.add_argument("--smoke", action="store_true", help="2 layers per tower on CPU: checks the code path only")
    args = parser.parse_args()

    tokenizer = AutoTokenizer.from_pretrained(TINY_CAPTIONER)
    image_processor = GotOcr2ImageProcessorPil(size={"height": 448, "width": 448}, max_patches=12)
    processor_class = images_only_processor(__import__("transformers").InternVLProcessor)
    # (448 / 14) ** 2 * 0.5 ** 2 = 256 image tokens per tile, as InternVL3-1B-hf's processor_config.json says.
    processor = processor_class(
        image_processor=image_processor,
        tokenizer=tokenizer,
        image_seq_length=256,
        chat_template=tokenizer.chat_template,
    )
    config = internvl3_1b_config(tokenizer.context_image_token_id, layers=2 if args.smoke else None)
    dtype = torch.float32 if args.smoke else getattr(torch, args.dtype)
    start = time.perf_counter()
    torch.manual_seed(0)
    model = InternVLForConditionalGeneration(config).to(device=args.device, dtype=dtype)
    model.config._name_or_path = model.name_or_path = "internvl3-1b-random"
    parameters = sum(p.numel() for p in model.parameters())
    print(
        f"InternVL3-1B architecture, random weights: {parameters / 1e6:.1f}M parameters, built in "
        f"{time.perf_counter() - start:.1f} s; device {args.device}, {dtype}"
    )
    captioner = Captioner(model, processor, model_id="internvl3-1b-random", max_new_tokens=args.max_new_tokens)

    cover = Image.new("RGB", (640, 640), (180, 40, 90))
    instruction = build_instruction(genres=GENRES)
    results = {}

    def timed(label: str, variants: int, calls: int, seed: int, constrained: bool = True) -> list[str]:
        if args.device.startswith("cuda"):
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
        began = time.perf_counter()
        texts, valid = [], 0
        for call in range(calls):
            out = captioner.generate(
                cover,
                instruction=instruction,
                genres=GENRES,
                num_variants=variants,
                seed=seed + call,
                constrained=constrained,
            )
            texts += [r.raw_text for r in out]
            valid += sum(r.valid for r in out)
            assert all(r.valid for r in out) or not constrained, [r.error for r in out]
        if args.device.startswith("cuda"):
            torch.cuda.synchronize()
        seconds = time.perf_counter() - began
        tokens = sum(len(tokenizer(t)["input_ids"]) for t in texts)
        peak = torch.cuda.max_memory_allocated() / 2**30 if args.device.startswith("cuda") else float("nan")
        print(
            f"{label:>11}: {seconds:7.2f} s, {len(texts) / seconds:6.2f} variants/s, {tokens / seconds:7.1f} tokens/s, "
            f"peak GPU memory {peak:.2f} GiB, valid JSON {valid}/{len(texts)}"
        )
        results[label] = {"seconds": seconds, "variants_per_s": len(texts) / seconds, "peak_gib": peak}
        return texts

    # Warm-up at both batch sizes: the first calls compile the grammar and CUDA kernels for each shape.
    timed("warm-up 1", 1, 1, seed=99)
    timed("warm-up N", args.variants, 1, seed=98)
    batched = timed("batched", args.variants, 1, seed=7)
    timed("one-by-one", 1, args.variants, seed=7)
    again = timed("batched x2", args.variants, 1, seed=7)
    # Free decoding for the grammar's cost per token (stops at max_new_tokens: random weights rarely end).
    timed("free", args.variants, 1, seed=7, constrained=False)
    print(f"same seed reproduces the batch: {batched == again}; distinct variants: {len(set(batched))}/{len(batched)}")
    print(f"batching speed-up: {results['batched']['variants_per_s'] / results['one-by-one']['variants_per_s']:.2f}x")
    print(json.dumps({"example_output": batched[0]}))


if __name__ == "__main__":
    main()
