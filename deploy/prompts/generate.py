#!/usr/bin/env python3
"""Generates the voice adapter's prompts and music on hold (no recorded or copyrighted audio).

Speech comes from espeak-ng (`apt-get install espeak-ng`), music is synthesized here. Every file is
8 kHz mono G.711 mu-law WAV, the format the adapter plays without conversion. Run from anywhere:
`python3 deploy/prompts/generate.py`; the files are checked in, so this is only needed to change them.
"""
import audioop  # deprecated in 3.11, still there; enough for a one-off tool
import math
import os
import struct
import subprocess
import tempfile
import wave

HERE = os.path.dirname(os.path.abspath(__file__))
RATE = 8000

SPEECH = {
    "menu/welcome": "Welcome to Centralino.",
    "menu/options": "For sales, press 1. For billing, press 2. For technical support, press 3. "
    "To hear these options again, press 0.",
    "menu/billing": "For invoices, press 1. For payments, press 2.",
    "menu/invalid": "Sorry, that is not a valid choice.",
    "menu/no-input": "Sorry, I did not hear your choice.",
    "menu/goodbye": "Thank you for calling. Goodbye.",
    "queue/please-hold": "All our operators are busy. Please hold: you will be answered as soon as possible.",
    "queue/you-are-number": "You are number",
    "queue/in-line": "in line.",
    "queue/estimated-wait": "The estimated wait is",
    "queue/minute": "minute.",
    "queue/minutes": "minutes.",
    "queue/press-1-callback": "To be called back instead of waiting, press 1.",
    "queue/callback-confirmed": "Thank you. We will call you back as soon as an operator is free. Goodbye.",
    "queue/closed": "We cannot take your call now. Please call again later. Goodbye.",
    "queue/connecting": "Connecting you to an operator.",
}
WORDS = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten",
         "eleven", "twelve", "thirteen", "fourteen", "fifteen", "sixteen", "seventeen", "eighteen",
         "nineteen"]
for i, w in enumerate(WORDS):
    SPEECH[f"digits/{i}"] = w
for t, w in zip(range(20, 100, 10),
                ["twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety"]):
    SPEECH[f"digits/{t}"] = w
SPEECH["digits/hundred"] = "hundred"
SPEECH["digits/thousand"] = "thousand"


def write_ulaw(name, pcm16):
    path = os.path.join(HERE, name + ".wav")
    os.makedirs(os.path.dirname(path), exist_ok=True)
    data = audioop.lin2ulaw(pcm16, 2)
    fmt = struct.pack("<HHIIHHH", 7, 1, RATE, RATE, 1, 8, 0)  # mu-law, mono, 8-bit, cbSize 0
    fact = struct.pack("<I", len(data))
    body = (b"WAVE" + b"fmt " + struct.pack("<I", len(fmt)) + fmt + b"fact" + struct.pack("<I", 4)
            + fact + b"data" + struct.pack("<I", len(data)) + data + (b"\0" if len(data) % 2 else b""))
    with open(path, "wb") as f:
        f.write(b"RIFF" + struct.pack("<I", len(body)) + body)


def speak(text):
    with tempfile.TemporaryDirectory() as d:
        out = os.path.join(d, "s.wav")
        subprocess.run(["espeak-ng", "-v", "en-us", "-s", "150", "-w", out, text], check=True)
        with wave.open(out) as w:
            assert w.getsampwidth() == 2 and w.getnchannels() == 1
            frames = w.readframes(w.getnframes())
            rate = w.getframerate()
    pcm, _ = audioop.ratecv(frames, 2, 1, rate, RATE, None)
    return pcm


def music(seconds=16):
    """A slow arpeggio of soft sine tones: C, A minor, F, G."""
    chords = [[261.63, 329.63, 392.00], [220.00, 261.63, 329.63], [174.61, 220.00, 261.63],
              [196.00, 246.94, 293.66]]
    note = 0.5
    samples = []
    n_notes = int(seconds / note)
    for k in range(n_notes):
        chord = chords[(k // 8) % len(chords)]
        f = chord[k % 3] * (2 if k % 6 >= 3 else 1)
        n = int(note * RATE)
        for i in range(n):
            t = i / RATE
            env = min(1.0, t / 0.02) * math.exp(-3.0 * t)
            bass = 0.35 * math.sin(2 * math.pi * chord[0] / 2 * (k * note + t))
            samples.append(int(6000 * (env * math.sin(2 * math.pi * f * t) + bass)))
    return struct.pack("<%dh" % len(samples), *samples)


if __name__ == "__main__":
    for name, text in sorted(SPEECH.items()):
        write_ulaw(name, speak(text))
    write_ulaw("moh/default", music())
    print(f"{len(SPEECH) + 1} files written under {HERE}")
