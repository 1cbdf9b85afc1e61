"""A synthetic MUSDB18-format data set, for users (and tests) without MUSDB18.

Each song is a window of a Debian MIDI file (``openttd-openmsx``, ``planetblupi-music-midi``)
rendered by FluidSynth with the General MIDI soundfont, one render per stem:
channel 10 is ``drums``, bass programs (or the lowest line) are ``bass``, and the
highest mostly-monophonic line is taken out of the band and *sung* as ``vocals``.
The rest is ``other``.

The singing is a deterministic source-filter synthesizer, not a singing voice: a
harmonic glottal source following the melody (glides, delayed vibrato, pitch drift),
shaped by vowel formants that change with every note, with breath noise and
consonant bursts at note onsets. It has the harmonic, vibrato-laden spectrum the
U-Net has to find, without words. Optionally real isolated singing from a folder
(for example ``data/singing/``, CC BY 4.0) replaces it in some songs.

Layout written: ``<out>/{train,test}/<song>/{mixture,drums,bass,other,vocals}.wav``,
44.1 kHz stereo PCM-16, where ``mixture`` is exactly the sum of the stems (the stems
are quantised first). The same seed gives the same files; each song depends only on
``(seed, subset, index)``. Train and test songs come from disjoint MIDI files.

Command line::

    python -m asteroid_unet.synth --out data/synth --n-train 80 --n-test 20 --duration 30 --seed 0
"""
import argparse
import functools
import json
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Sequence

import numpy as np
import soundfile as sf

RATE = 44100
STEMS = ("drums", "bass", "other", "vocals")
SOUNDFONT = Path("/usr/share/sounds/sf2/FluidR3_GM.sf2")
MIDI_DIRS = (Path("/usr/share/games/openttd/baseset/openmsx"), Path("/usr/share/planetblupi/music"))
INSTALL_HINT = "apt-get install -y --no-install-recommends fluidsynth fluid-soundfont-gm openttd-openmsx"
DRUM_CHANNEL = 9
GAP_S = 2.0  # silence between the stems rendered one after the other in one FluidSynth call
# Formants (Hz) and bandwidths of sung vowels a, e, i, o, u.
VOWELS = np.array([[800, 1150, 2900], [400, 1700, 2600], [300, 2100, 3000], [450, 800, 2830], [325, 700, 2530]])
BANDWIDTHS = np.array([80.0, 100.0, 130.0])


@dataclass
class Note:
    start: float
    end: float
    pitch: int
    velocity: int


def check_tools(soundfont: Path = SOUNDFONT) -> None:
    """Raise a clear error when FluidSynth or the soundfont is missing."""
    if shutil.which("fluidsynth") is None:
        raise RuntimeError(f"fluidsynth is not installed. Install it with:  {INSTALL_HINT}")
    if not Path(soundfont).is_file():
        raise RuntimeError(f"Soundfont {soundfont} not found. Install it with:  {INSTALL_HINT}")


def find_midi_files(dirs: Sequence[Path] = MIDI_DIRS) -> list:
    """Sorted ``.mid`` files under ``dirs``; raises when there are none."""
    files = sorted(p for d in dirs for p in Path(d).glob("*.mid"))
    if not files:
        raise RuntimeError(f"No MIDI files in {[str(d) for d in dirs]}. Install some with:  {INSTALL_HINT}")
    return files


@functools.lru_cache(maxsize=64)
def read_midi(path: Path) -> list:
    """Channel messages of a MIDI file as ``(absolute seconds, mido.Message)``."""
    import mido

    events, now = [], 0.0
    for msg in mido.MidiFile(str(path)):
        now += msg.time
        if not msg.is_meta and hasattr(msg, "channel"):
            events.append((now, msg))
    return events


def notes_by_channel(events: list, start: float, end: float) -> dict:
    """Notes starting in ``[start, end)``, per channel, with times relative to ``start``."""
    open_notes, notes = {}, {}
    for t, msg in events:
        key = (msg.channel, getattr(msg, "note", None))
        if msg.type == "note_on" and msg.velocity > 0:
            open_notes[key] = (t, msg.velocity)
        elif msg.type in ("note_on", "note_off") and key in open_notes:
            onset, velocity = open_notes.pop(key)
            if start <= onset < end:
                notes.setdefault(msg.channel, []).append(Note(onset - start, min(t, end) - start, msg.note, velocity))
    return notes


def assign_stems(notes: dict, events: list, start: float) -> dict:
    """Map channels to ``drums``, ``bass``, ``other`` and the sung ``melody`` channel (or None)."""
    programs = {}
    for t, msg in events:
        if msg.type == "program_change" and t <= start + 1.0:
            programs[msg.channel] = msg.program
    pitched = {c: n for c, n in notes.items() if c != DRUM_CHANNEL and len(n) >= 4}
    mean_pitch = {c: float(np.mean([x.pitch for x in n])) for c, n in pitched.items()}
    bass = {c for c in pitched if 32 <= programs.get(c, 0) <= 39}
    if not bass and len(pitched) > 1:
        lowest = min(mean_pitch, key=mean_pitch.get)
        if mean_pitch[lowest] < 52:
            bass = {lowest}
    candidates = [c for c in pitched if c not in bass and _monophony(pitched[c]) > 0.7]
    if candidates:  # the line is sung instead of played
        melody = max(candidates, key=mean_pitch.get)
        other = {c for c in notes if c not in (DRUM_CHANNEL, melody) and c not in bass}
    else:  # the voice doubles the top line of the highest instrument
        other = {c for c in notes if c != DRUM_CHANNEL and c not in bass}
        melody = max(other or pitched, key=lambda c: mean_pitch.get(c, 0), default=None)
    return {"drums": {DRUM_CHANNEL} & set(notes), "bass": bass, "other": other, "melody": melody}


def _monophony(notes: list) -> float:
    """Fraction of notes that do not overlap the next one."""
    ordered = sorted(notes, key=lambda n: n.start)
    if len(ordered) < 2:
        return 1.0
    return float(np.mean([a.end <= b.start + 0.02 for a, b in zip(ordered, ordered[1:])]))


def write_segments(events: list, groups: Sequence[set], start: float, duration: float, path: Path) -> None:
    """A MIDI file playing the window ``[start, start + duration)`` once per channel group, one after another.

    Each segment restores the channels' program and controllers as they were at ``start``.
    """
    import mido

    ticks_per_second = 960  # 480 ticks per beat at 120 bpm
    out = mido.MidiFile(type=0, ticks_per_beat=480)
    track = mido.MidiTrack()
    out.tracks.append(track)
    timed = []
    for k, channels in enumerate(groups):
        offset = k * (duration + GAP_S)
        for c in range(16):
            timed.append((offset, 0, mido.Message("control_change", channel=c, control=121, value=0)))
        state = {}
        for t, msg in events:
            if t > start:
                break
            if msg.channel in channels and msg.type in ("program_change", "control_change", "pitchwheel"):
                state[(msg.type, msg.channel, getattr(msg, "control", None))] = msg
        timed += [(offset, 1, m) for m in state.values()]
        for t, msg in events:
            if msg.channel in channels and start <= t < start + duration:
                timed.append((offset + t - start, 2, msg))
        for c in range(16):
            timed.append((offset + duration, 3, mido.Message("control_change", channel=c, control=120, value=0)))
    last = 0
    for t, _, msg in sorted(timed, key=lambda x: (x[0], x[1])):
        tick = int(round(t * ticks_per_second))
        track.append(msg.copy(time=tick - last))
        last = tick
    out.save(str(path))


def render_instruments(events: list, stems: dict, start: float, duration: float, soundfont: Path) -> dict:
    """Render drums, bass and other (float32 ``(samples, 2)`` at 44.1 kHz) in one FluidSynth call."""
    names = ("drums", "bass", "other")
    n = int(round(duration * RATE))
    with tempfile.TemporaryDirectory() as tmp:
        mid, wav = Path(tmp) / "song.mid", Path(tmp) / "song.wav"
        write_segments(events, [stems[s] for s in names], start, duration, mid)
        cmd = ["fluidsynth", "-ni", "-q", "-R", "0", "-C", "0", "-g", "0.5", "-r", str(RATE),
               "-o", "audio.file.format=float", "-F", str(wav), str(soundfont), str(mid)]
        result = subprocess.run(cmd, capture_output=True, text=True)
        if result.returncode != 0 or not wav.exists():
            raise RuntimeError(f"fluidsynth failed ({result.returncode}): {result.stderr.strip()}")
        audio, _ = sf.read(wav, dtype="float32", always_2d=True)
    hop = int(round((duration + GAP_S) * RATE))
    audio = np.pad(audio, ((0, max(0, len(names) * hop - len(audio))), (0, 0)))
    return {name: audio[k * hop : k * hop + n] for k, name in enumerate(names)}


def melody_line(notes: list, rng: np.random.Generator) -> list:
    """Monophonic (highest-note) line, moved by octaves to a female or male singing register."""
    ordered = sorted(notes, key=lambda n: (n.start, -n.pitch))
    line = []
    for note in ordered:
        if line and note.start < line[-1].start + 0.02:
            continue  # chord: keep the top note
        if line and line[-1].end > note.start:
            line[-1].end = note.start
        line.append(Note(note.start, note.end, note.pitch, note.velocity))
    register = rng.choice([67, 55])
    shift = 12 * int(round((register - np.median([n.pitch for n in line])) / 12)) if line else 0
    return [Note(n.start, n.end, n.pitch + shift, n.velocity) for n in line if n.end - n.start > 0.03]


def sing(line: list, duration: float, rng: np.random.Generator) -> np.ndarray:
    """Mono float32 "singing" of a note line: glottal harmonics through per-note vowel formants."""
    n = int(round(duration * RATE))
    t = np.arange(n) / RATE
    f0_midi = np.zeros(n)
    amp = np.zeros(n)
    vowel = np.zeros((n, 3))
    onsets = []
    for k, note in enumerate(line):
        a, b = int(note.start * RATE), min(n, int(note.end * RATE))
        if b <= a:
            continue
        seg = t[a:b] - note.start
        glide_from = line[k - 1].pitch if k and note.start - line[k - 1].end < 0.05 else note.pitch
        f0_midi[a:b] = note.pitch + (glide_from - note.pitch) * np.exp(-seg / 0.03)
        attack, release = np.minimum(seg / 0.04, 1.0), np.minimum((note.end - note.start - seg) / 0.08, 1.0)
        amp[a:b] = (0.4 + 0.6 * note.velocity / 127) * np.clip(np.minimum(attack, release), 0, 1)
        vowel[a:b] = VOWELS[rng.integers(len(VOWELS))]
        onsets.append(a)
    if not onsets:
        return np.zeros(n, dtype=np.float32)
    vowel = _smooth(np.where(vowel > 0, vowel, VOWELS[0]), int(0.05 * RATE))
    rate, depth = rng.uniform(4.8, 6.5), rng.uniform(0.25, 0.6)
    vibrato = depth * np.sin(2 * np.pi * rate * t + rng.uniform(0, 2 * np.pi)) * np.clip(_since_onset(onsets, n) / 0.3 - 0.5, 0, 1)
    drift = _smooth(rng.standard_normal(n), int(0.2 * RATE)) * 4.0
    f0 = 440.0 * 2 ** ((f0_midi + vibrato + drift * 0.1 - 69) / 12)
    phase = 2 * np.pi * np.cumsum(f0) / RATE
    voice = np.zeros(n)
    tilt = rng.uniform(1.0, 1.5)
    for h in range(1, 60):
        fh = h * f0
        gain = sum(1.0 / (1 + ((fh - vowel[:, i]) / (BANDWIDTHS[i] / 2)) ** 2) * (1.0, 0.7, 0.3)[i] for i in range(3))
        voice += np.where(fh < 0.45 * RATE, (0.05 + gain) * h ** -tilt, 0) * np.sin(h * phase)
    breath = np.diff(rng.standard_normal(n + 1)) * 0.02
    bursts = np.zeros(n)
    for a in onsets:
        if rng.random() < 0.5:
            m = min(n - a, int(rng.uniform(0.02, 0.05) * RATE))
            bursts[a : a + m] = np.diff(rng.standard_normal(m + 1)) * 0.15 * np.hanning(m)
    smooth_amp = _smooth(amp, int(0.005 * RATE))
    return ((voice + breath) * smooth_amp + bursts).astype(np.float32)


def _since_onset(onsets: list, n: int) -> np.ndarray:
    """Seconds since the latest note onset, per sample."""
    marks = np.zeros(n, dtype=int)
    marks[onsets] = onsets
    return (np.arange(n) - np.maximum.accumulate(marks)) / RATE


def _smooth(x: np.ndarray, width: int) -> np.ndarray:
    """Moving average along the first axis."""
    kernel = np.ones(max(1, width)) / max(1, width)
    if x.ndim == 1:
        return np.convolve(x, kernel, mode="same")
    return np.stack([np.convolve(col, kernel, mode="same") for col in x.T], axis=1)


def real_singing(folder: Path, duration: float, rng: np.random.Generator) -> Optional[np.ndarray]:
    """A random excerpt of a random 44.1 kHz wav in ``folder``, placed at a random time (mono float32)."""
    files = sorted(Path(folder).glob("*.wav"))
    if not files:
        return None
    audio, rate = sf.read(files[rng.integers(len(files))], dtype="float32", always_2d=True)
    if rate != RATE:
        return None
    audio, n = audio.mean(1), int(round(duration * RATE))
    offset = rng.integers(max(1, len(audio) - n + 1))
    clip = audio[offset : offset + n]
    out = np.zeros(n, dtype=np.float32)
    at = rng.integers(n - len(clip) + 1)
    out[at : at + len(clip)] = clip
    return out


def make_song(midi: Path, duration: float, rng: np.random.Generator, soundfont: Path = SOUNDFONT,
              singing_dir: Optional[Path] = None) -> tuple:
    """Stems ``{name: int16 (samples, 2)}`` of one song, and a dict describing how it was made."""
    events = read_midi(midi)
    length = events[-1][0] if events else 0.0
    if length < duration:
        raise ValueError(f"{midi.name} lasts {length:.1f} s, shorter than the requested {duration} s")
    best = None
    for start in rng.uniform(0, length - duration, size=6):  # prefer a window with a melody
        notes = notes_by_channel(events, start, start + duration)
        stems = assign_stems(notes, events, start)
        n_melody = len(notes.get(stems["melody"], [])) if stems["melody"] is not None else 0
        if best is None or n_melody > best[0]:
            best = (n_melody, start, notes, stems)
    _, start, notes, stems = best
    audio = render_instruments(events, stems, start, duration, soundfont)
    voice = None
    if singing_dir is not None and rng.random() < 0.5:
        voice = real_singing(Path(singing_dir), duration, rng)
        vocal_source = "real singing"
    if voice is None:
        vocal_source = "synthetic singing"
        voice = sing(melody_line(notes.get(stems["melody"], []), rng), duration, rng)
    pan = rng.uniform(-0.15, 0.15)
    audio["vocals"] = np.stack([voice * (1 - pan), voice * (1 + pan)], axis=1)
    accompaniment = audio["drums"] + audio["bass"] + audio["other"]
    vocal_db = -rng.uniform(1.6, 7.2)  # vocals below the accompaniment, as in MUSDB18
    gain = _rms(accompaniment) / max(_rms(audio["vocals"]), 1e-9) * 10 ** (vocal_db / 20)
    audio["vocals"] *= gain if _rms(audio["vocals"]) > 0 else 0.0
    peak = np.abs(sum(audio[s] for s in STEMS)).max()
    scale = rng.uniform(0.5, 0.9) / max(peak, 1e-9)
    stems_int = {s: np.round(audio[s] * scale * 32767).astype(np.int16) for s in STEMS}
    info = dict(midi=midi.name, start_s=round(float(start), 3), melody_channel=stems["melody"],
                vocals=vocal_source, vocals_db=round(float(vocal_db), 2),
                channels={s: sorted(int(c) for c in stems[s]) for s in ("drums", "bass", "other")})
    return stems_int, info


def _rms(x: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(x, dtype=np.float64))))


def write_song(folder: Path, stems: dict) -> None:
    """Write the stems and their exact sum as ``mixture.wav`` (PCM-16)."""
    folder.mkdir(parents=True, exist_ok=True)
    mixture = sum(stems[s].astype(np.int32) for s in STEMS)
    if np.abs(mixture).max() > 32767:
        raise ValueError("mixture clips")
    for name, data in {**stems, "mixture": mixture.astype(np.int16)}.items():
        sf.write(folder / f"{name}.wav", data, RATE, subtype="PCM_16")


def generate(out: Path, n_train: int = 8, n_test: int = 2, duration: float = 10.0, seed: int = 0,
             soundfont: Path = SOUNDFONT, midi_dirs: Sequence[Path] = MIDI_DIRS,
             singing_dir: Optional[Path] = None) -> Path:
    """Write a synthetic MUSDB18 wav tree under ``out`` and ``out/synth.json``; returns ``out``.

    Args:
        out: destination folder.
        n_train, n_test: songs per subset. Defaults 8 and 2.
        duration: seconds per song. Default 10.
        seed: the same seed gives the same audio. Default 0.
        soundfont, midi_dirs: FluidSynth soundfont and folders of ``.mid`` files.
        singing_dir: optional folder of real singing (44.1 kHz wav); about half the songs use it.
    """
    if n_train < 0 or n_test < 0 or n_train + n_test == 0:
        raise ValueError("n_train and n_test must be >= 0, with at least one song")
    if duration <= 0:
        raise ValueError(f"duration must be positive, got {duration}")
    check_tools(soundfont)
    files = find_midi_files(midi_dirs)
    order = np.random.default_rng(seed).permutation(len(files))
    n_held = max(1, len(files) // 5) if len(files) > 1 else 0
    pools = {"test": [files[i] for i in order[:n_held]] or files, "train": [files[i] for i in order[n_held:]] or files}
    out = Path(out)
    manifest = {"seed": seed, "duration": duration, "rate": RATE, "songs": {}}
    for subset, count in (("train", n_train), ("test", n_test)):
        for index in range(count):
            rng = np.random.default_rng([seed, subset == "test", index])
            midi = _pick_midi(pools[subset], duration, rng)
            stems, info = make_song(midi, duration, rng, soundfont, singing_dir)
            name = f"Synth {index:03d} - {midi.stem}"
            write_song(out / subset / name, stems)
            manifest["songs"][f"{subset}/{name}"] = info
    (out / "synth.json").write_text(json.dumps(manifest, indent=1))
    return out


def _pick_midi(pool: list, duration: float, rng: np.random.Generator) -> Path:
    """A random file of ``pool`` lasting at least ``duration`` seconds."""
    pool = list(pool)
    while pool:
        midi = pool.pop(rng.integers(len(pool)))
        events = read_midi(midi)
        if events and events[-1][0] >= duration:
            return midi
    raise ValueError(f"No MIDI file lasts {duration} s; choose a shorter duration")


def main(argv: Optional[Sequence[str]] = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--n-train", type=int, default=8)
    parser.add_argument("--n-test", type=int, default=2)
    parser.add_argument("--duration", type=float, default=10.0, help="seconds per song")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--soundfont", type=Path, default=SOUNDFONT)
    parser.add_argument("--midi-dir", type=Path, action="append", help="folder of .mid files (repeatable)")
    parser.add_argument("--singing-dir", type=Path, help="folder of real singing wavs mixed into some songs")
    args = parser.parse_args(argv)
    try:
        generate(args.out, args.n_train, args.n_test, args.duration, args.seed, args.soundfont,
                 args.midi_dir or MIDI_DIRS, args.singing_dir)
    except (RuntimeError, ValueError) as err:
        parser.exit(1, f"error: {err}\n")
    print(f"Wrote {args.n_train} train and {args.n_test} test songs under {args.out}")


if __name__ == "__main__":
    main()
