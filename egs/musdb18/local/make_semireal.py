"""Semi-real training tracks: real isolated singing over real or rendered instrumental backing.

Writes ``<out>/train/<track>/{vocals,accompaniment}.wav`` (stereo float32 at ``--sample_rate``),
the layout stage 0 (``prepare_data.py``) produces, so ``train.py`` reads them next to the
prepared synthetic songs. ``train.py``'s random cross-track mixing and random gains then
pair every vocal track with every backing.

Vocals: the real singing in ``--singing_dir`` (CC BY 4.0, about 48 s in all) cut into phrases
of 1 to 6 s, each pitch-shifted by a random -5..+4 semitones (resampling: pitch and formants
move together, tempo changes slightly), given a random gain (-6..0 dB) and a random pan,
and placed one after another with 0 to 1.5 s of silence between phrases.

Backing: consecutive windows of the instrumental tracks found under ``--backing_dir``
(Debian's ``fretsonfire-songs-muldjord`` / ``-sectoid``: per song an instrumental
``song.ogg`` plus the lead ``guitar.ogg``, both summed; CC BY-SA 3.0), each
randomly channel-swapped. Vocals sit 1.6 to 7.2 dB below the backing, as in MUSDB18.

The same seed gives the same files.
"""
import argparse
import json
from pathlib import Path

import numpy as np
import soundfile as sf
import torch
import torchaudio.functional as AF


def load_mono(path: Path, rate: int) -> np.ndarray:
    audio, sr = sf.read(path, dtype="float32", always_2d=True)
    x = torch.from_numpy(audio.mean(1).copy())
    return (AF.resample(x, sr, rate) if sr != rate else x).numpy()


def load_stereo(path: Path, rate: int) -> np.ndarray:
    audio, sr = sf.read(path, dtype="float32", always_2d=True)
    if audio.shape[1] == 1:
        audio = np.repeat(audio, 2, axis=1)
    x = torch.from_numpy(audio[:, :2].T.copy())
    return (AF.resample(x, sr, rate) if sr != rate else x).numpy()  # (2, n)


def phrases(singing: list, rng: np.random.Generator, rate: int) -> np.ndarray:
    """One random phrase of real singing, pitch-shifted by resampling, mono."""
    weights = np.array([len(s) for s in singing], dtype=float)
    src = singing[rng.choice(len(singing), p=weights / weights.sum())]
    length = int(rng.uniform(1.0, 6.0) * rate)
    start = rng.integers(max(1, len(src) - length + 1))
    clip = torch.from_numpy(src[start : start + length].copy())
    semitones = rng.uniform(-5, 4)
    # Playing at factor f raises the pitch by 12*log2(f): resample from rate*f to rate.
    factor = 2 ** (semitones / 12)
    # The ratio is rounded to a multiple of rate/128, so the polyphase resampler stays small.
    new_len_rate = int(round(rate / factor / (rate // 128))) * (rate // 128)
    shifted = AF.resample(clip, rate, new_len_rate).numpy() if new_len_rate != rate else clip.numpy()
    fade = min(len(shifted) // 4, int(0.02 * rate))
    if fade > 0:
        ramp = np.linspace(0, 1, fade, dtype=np.float32)
        shifted[:fade] *= ramp
        shifted[-fade:] *= ramp[::-1]
    return shifted * 10 ** (rng.uniform(-6, 0) / 20)


def vocal_track(singing: list, n: int, rng: np.random.Generator, rate: int) -> np.ndarray:
    out = np.zeros((2, n), dtype=np.float32)
    at = int(rng.uniform(0, 1.0) * rate)
    while at < n:
        p = phrases(singing, rng, rate)
        p = p[: n - at]
        pan = rng.uniform(-0.2, 0.2)
        out[0, at : at + len(p)] += p * (1 - pan)
        out[1, at : at + len(p)] += p * (1 + pan)
        at += len(p) + int(rng.uniform(0, 1.5) * rate)
    return out


def rms(x: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(x, dtype=np.float64))))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--singing_dir", type=Path, required=True)
    parser.add_argument("--backing_dir", type=Path, required=True, help="folder searched for */song.ogg")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--sample_rate", type=int, default=8192)
    parser.add_argument("--track_seconds", type=float, default=30.0)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    rate, rng = args.sample_rate, np.random.default_rng(args.seed)
    singing = [load_mono(p, rate) for p in sorted(args.singing_dir.glob("*.wav"))]
    if not singing:
        raise SystemExit(f"error: no wav files in {args.singing_dir}")
    songs = sorted(args.backing_dir.rglob("song.ogg"))
    if not songs:
        raise SystemExit(f"error: no */song.ogg under {args.backing_dir}")
    n = int(args.track_seconds * rate)
    manifest = {"settings": {k: str(v) for k, v in vars(args).items()}, "tracks": {}}
    for song in songs:
        backing = load_stereo(song, rate)
        guitar = song.parent / "guitar.ogg"
        if guitar.exists():
            g = load_stereo(guitar, rate)
            m = min(backing.shape[1], g.shape[1])
            backing = backing[:, :m] + g[:, :m]
        for k in range(backing.shape[1] // n):
            acc = backing[:, k * n : (k + 1) * n]
            if rms(acc) < 1e-4:
                continue
            if rng.random() < 0.5:
                acc = acc[::-1]
            voc = vocal_track(singing, n, rng, rate)
            db = -rng.uniform(1.6, 7.2)
            voc *= rms(acc) / max(rms(voc), 1e-9) * 10 ** (db / 20)
            peak = np.abs(acc + voc).max()
            scale = rng.uniform(0.5, 0.9) / max(peak, 1e-9)
            name = f"Semireal {song.parent.name} {k:02d}"
            folder = args.out / "train" / name
            folder.mkdir(parents=True, exist_ok=True)
            sf.write(folder / "vocals.wav", (voc * scale).T, rate, subtype="FLOAT")
            sf.write(folder / "accompaniment.wav", np.ascontiguousarray((acc * scale).T), rate, subtype="FLOAT")
            manifest["tracks"][name] = {"backing": str(song.parent.name), "window": k, "vocals_db": round(db, 2)}
    (args.out / "semireal.json").write_text(json.dumps(manifest, indent=1))
    print(f"Wrote {len(manifest['tracks'])} semi-real tracks under {args.out}/train")


if __name__ == "__main__":
    main()
