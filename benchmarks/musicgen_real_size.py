"""Batched vs one-by-one MusicGen rendering at facebook/musicgen-small's real size, with random weights (no download).

Builds the real architecture from its configuration written out below (T5-base text encoder, 24-layer 1024-wide
decoder over 4 codebooks of 2048 codes, EnCodec 32 kHz), wraps it in ``MusicGenRenderer`` and times ``render`` for N
variants in one batch against N single calls, on CUDA when available. Random weights decode to noise, but the work per
step (and so the timing and memory) is the real model's. Prompts are tokenised with the tiny twin's tokenizer (the real
T5 vocabulary is not available offline); that changes prompt lengths by a few tokens and nothing measurable.

Usage:
    python benchmarks/musicgen_real_size.py                      # 4 variants x 10 s (GPU)
    python benchmarks/musicgen_real_size.py --variants 8 --duration 5
    python benchmarks/musicgen_real_size.py --smoke              # real size, 0.5 s, CPU: checks the code path
"""

import argparse
import time
from pathlib import Path

import torch
from transformers import (
    EncodecConfig,
    GenerationConfig,
    MusicgenConfig,
    MusicgenDecoderConfig,
    MusicgenProcessor,
    T5Config,
)

from generation.features import AcousticFeatures
from generation.musicgen import MusicGenRenderer, random_musicgen
from generation.render import RenderRequest

TINY_DIR = Path(__file__).resolve().parents[1] / "fixtures" / "tiny" / "musicgen"
PROMPTS = (
    "rock, upbeat 128 BPM, in A minor, intense, distorted electric guitars, loud punchy mix",
    "slow sad piano ballad in a minor with soft strings and long reverb",
    "upbeat electronic dance track with punchy drums and a warm bass line",
    "calm ambient soundscape with pads, gentle synth textures and no vocals",
    "smooth jazz trio with upright bass, brushed drums and a relaxed piano solo",
    "dark hip hop beat with heavy 808 bass, crisp hi hats and a moody sample",
    "happy acoustic folk tune with fingerpicked guitar and light percussion",
    "epic orchestral score with brass, choir, timpani and rising strings",
)
# The renderer reads only the prompt; features are carried along as the pipeline would.
FEATURES = AcousticFeatures(
    genre="rock",
    key="A",
    mode="minor",
    time_signature=4,
    tempo=128.0,
    loudness=-7.0,
    acousticness=0.2,
    danceability=0.5,
    energy=0.8,
    instrumentalness=0.1,
    liveness=0.1,
    speechiness=0.05,
    valence=0.3,
)


def musicgen_small_config() -> tuple[MusicgenConfig, GenerationConfig]:
    """facebook/musicgen-small's config.json and generation_config.json, written out by hand."""
    text_encoder = T5Config(  # t5-base; MusicGen uses only its encoder
        vocab_size=32128,
        d_model=768,
        d_kv=64,
        d_ff=3072,
        num_layers=12,
        num_decoder_layers=12,
        num_heads=12,
        relative_attention_num_buckets=32,
        relative_attention_max_distance=128,
        dropout_rate=0.1,
        layer_norm_epsilon=1e-6,
        feed_forward_proj="relu",
        pad_token_id=0,
        eos_token_id=1,
    )
    audio_encoder = EncodecConfig(  # facebook/encodec_32khz: 32000 / (8*5*4*4) = 50 frames/s, 4 x 11 bits = 2.2 kbps
        sampling_rate=32_000,
        target_bandwidths=[2.2],
        audio_channels=1,
        normalize=False,
        chunk_length_s=None,
        overlap=None,
        hidden_size=128,
        num_filters=64,
        num_residual_layers=1,
        upsampling_ratios=[8, 5, 4, 4],
        norm_type="weight_norm",
        kernel_size=7,
        last_kernel_size=7,
        residual_kernel_size=3,
        dilation_growth_rate=2,
        use_causal_conv=False,
        pad_mode="reflect",
        compress=2,
        num_lstm_layers=2,
        trim_right_ratio=1.0,
        codebook_size=2048,
        codebook_dim=128,
        use_conv_shortcut=False,
    )
    decoder = MusicgenDecoderConfig(
        vocab_size=2048,
        max_position_embeddings=2048,
        num_hidden_layers=24,
        ffn_dim=4096,
        num_attention_heads=16,
        hidden_size=1024,
        activation_function="gelu",
        dropout=0.1,
        attention_dropout=0.0,
        activation_dropout=0.0,
        layerdrop=0.0,
        initializer_factor=0.02,
        scale_embedding=False,
        num_codebooks=4,
        audio_channels=1,
        pad_token_id=2048,
        bos_token_id=2048,
        tie_word_embeddings=False,
    )
    config = MusicgenConfig(text_encoder=text_encoder, audio_encoder=audio_encoder, decoder=decoder)
    generation_config = GenerationConfig(
        bos_token_id=2048,
        decoder_start_token_id=2048,
        pad_token_id=2048,
        do_sample=True,
        guidance_scale=3.0,
        max_length=1500,
    )
    return config, generation_config


def timed_render(
    renderer: MusicGenRenderer, requests: list[RenderRequest], *, seed: int, duration_s: float
) -> tuple[float, float]:
    """Seconds for one ``render`` call and the peak GPU memory in GiB during it (0 on CPU, where it is not tracked)."""
    cuda = renderer.model.device.type == "cuda"
    if cuda:
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    start = time.perf_counter()
    renderer.render(requests, seed=seed, duration_s=duration_s)
    if cuda:
        torch.cuda.synchronize()
    elapsed = time.perf_counter() - start
    peak = torch.cuda.max_memory_allocated() / 2**30 if cuda else 0.0
    return elapsed, peak


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--variants", type=int, default=4, help="variants per batch (default: %(default)s)")
    parser.add_argument("--duration", type=float, default=10.0, help="seconds per clip (default: %(default)s)")
    parser.add_argument("--device", default=None, help="torch device (default: cuda when available, else cpu)")
    parser.add_argument(
        "--dtype", choices=("float32", "float16", "bfloat16"), default="float32", help="weights (default: %(default)s)"
    )
    parser.add_argument("--seed", type=int, default=0, help="round seed (default: %(default)s)")
    parser.add_argument("--smoke", action="store_true", help="real size on CPU, 0.5 s clips: checks the code path")
    args = parser.parse_args()
    if args.smoke:
        args.device, args.duration = "cpu", 0.5
        # One thread: on the shared 2-core dev box, with other jobs running, 2 OpenMP threads made --smoke take
        # 4 min (a 1024x4096 matmul for 2 rows took 15 ms); 1 thread took 36 s.
        torch.set_num_threads(1)
    device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    if device.type == "cpu" and not args.smoke and args.duration > 1.0:
        parser.error("no CUDA device: use --smoke (or --duration 1 or less) on CPU")
    dtype = getattr(torch, args.dtype)

    start = time.perf_counter()
    config, generation_config = musicgen_small_config()
    model = random_musicgen(config, generation_config, seed=args.seed)
    model.to(device=device, dtype=dtype)  # type: ignore[call-arg]  # transformers types a decorated nn.Module.to
    processor = MusicgenProcessor.from_pretrained(TINY_DIR)
    renderer = MusicGenRenderer(model, processor, model_id="random:musicgen-small-architecture")
    build_s = time.perf_counter() - start
    counts = {
        name: sum(p.numel() for p in getattr(model, name).parameters())
        for name in ("text_encoder", "decoder", "audio_encoder")
    }
    total = sum(p.numel() for p in model.parameters())
    print(
        f"musicgen-small architecture, random weights: {total / 1e6:.1f}M parameters ("
        + ", ".join(f"{name} {count / 1e6:.1f}M" for name, count in counts.items())
        + f"); built in {build_s:.1f} s"
    )
    gpu = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
    clips = f"{args.variants} variants x {args.duration:g} s"
    print(f"device {device} ({gpu}), {args.dtype}, {clips}, guidance {renderer.guidance_scale:g}")

    requests = [RenderRequest(prompt=PROMPTS[i % len(PROMPTS)], features=FEATURES) for i in range(args.variants)]
    # Warm-up: CUDA context, kernels and allocator, so the first timed call is not charged for them.
    timed_render(renderer, requests[:1], seed=args.seed, duration_s=0.2)

    batched_s, batched_peak = timed_render(renderer, requests, seed=args.seed, duration_s=args.duration)
    singles_s, singles_peak = 0.0, 0.0
    for request in requests:
        elapsed, peak = timed_render(renderer, [request], seed=args.seed, duration_s=args.duration)
        singles_s += elapsed
        singles_peak = max(singles_peak, peak)

    audio_s = args.variants * args.duration
    for label, seconds, peak in (("batched", batched_s, batched_peak), ("one-by-one", singles_s, singles_peak)):
        memory = f"peak GPU memory {peak:.2f} GiB" if device.type == "cuda" else "peak GPU memory n/a (CPU)"
        print(
            f"{label:>10}: {seconds:7.2f} s, {args.variants / seconds:6.3f} variants/s, "
            f"{audio_s / seconds:6.3f} s of audio per s, {memory}"
        )
    print(f"batching speed-up: {singles_s / batched_s:.2f}x")


if __name__ == "__main__":
    main()
