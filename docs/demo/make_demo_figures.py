"""Regenerate the README's two demo covers on the ``trained`` profile: each cover beside the spectrogram of its
variant 0, and the first two variants' prompts (printed as the README's table rows).

    .venv/bin/python -m generation build-index --profile trained
    .venv/bin/python docs/demo/make_demo_figures.py

It runs the README's own command (``python -m generation run COVER --profile trained --variants 4 --seed 7``, synth
renderer) and reads what it wrote; the spectrogram is 0-8 kHz, log power, over the clip's 10 s.
"""

import json
import subprocess
import sys
import tempfile
from collections import Counter
from pathlib import Path

import numpy as np
import soundfile
from PIL import Image
from scipy.signal import spectrogram

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
COVERS = {"dAjT7ts1HRa8bBI02psJhj": "classical", "YCt1qiYpb1vb58s1oyCr0u": "metal"}
HEIGHT, SPECTROGRAM_WIDTH, TOP_HZ = 256, 600, 8000


def run(album_id: str, out: Path) -> dict:
    cover = ROOT / "fixtures" / "musicoset" / "covers" / f"{album_id}.png"
    command = [sys.executable, "-m", "generation", "run", str(cover), "--variants", "4", "--seed", "7"]
    command += ["--profile", "trained", "--renderer", "synth", "--out", str(out)]
    subprocess.run(command, cwd=ROOT, check=True, capture_output=True)
    return json.loads((out / "report.json").read_text())


def magma_like(values: np.ndarray) -> np.ndarray:
    """0-1 -> RGB, black through purple and pink to pale yellow."""
    stops = np.array([[0, 0, 4], [80, 18, 123], [182, 54, 121], [251, 136, 97], [252, 253, 191]], dtype=float)
    positions = np.linspace(0, 1, len(stops))
    return np.stack([np.interp(values, positions, stops[:, c]) for c in range(3)], axis=-1).astype(np.uint8)


def spectrogram_image(audio_path: Path) -> Image.Image:
    samples, rate = soundfile.read(audio_path, always_2d=True)
    frequencies, _, power = spectrogram(samples.mean(axis=1), fs=rate, nperseg=1024, noverlap=768)
    decibels = 10 * np.log10(power[frequencies <= TOP_HZ] + 1e-12)
    scaled = np.clip((decibels - (decibels.max() - 80)) / 80, 0, 1)[::-1]  # low frequencies at the bottom
    image = Image.fromarray(magma_like(scaled))
    return image.resize((SPECTROGRAM_WIDTH, HEIGHT), Image.Resampling.BILINEAR)


def main() -> None:
    with tempfile.TemporaryDirectory() as folder:
        for album_id, genre in COVERS.items():
            report = run(album_id, Path(folder) / album_id)
            variants = report["variants"]
            figure = Image.new("RGB", (HEIGHT + 8 + SPECTROGRAM_WIDTH, HEIGHT), "white")
            with Image.open(ROOT / "fixtures" / "musicoset" / "covers" / f"{album_id}.png") as cover:
                figure.paste(cover.convert("RGB").resize((HEIGHT, HEIGHT)), (0, 0))
            figure.paste(spectrogram_image(Path(variants[0]["audio_path"])), (HEIGHT + 8, 0))
            figure.save(HERE / f"{album_id}.png", optimize=True)
            neighbours = Counter(n["genre"] for n in report["neighbours"]).most_common()
            neighbours_text = ", ".join(f"{count} x {name}" for name, count in neighbours)
            prompts = " / ".join(v["prompt"] for v in variants[:2])
            print(f"| {genre} (`{album_id}`), neighbours {neighbours_text} | {prompts} |")


if __name__ == "__main__":
    main()
