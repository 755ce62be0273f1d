"""Reference log-mel front-ends in numpy float64, written from each model's own code, for the
parity tests of the Rust front-end (nothing here shares code with it).

- `efficientat`: EfficientAT `models/preprocess.py` `AugmentMelSTFT.forward` in eval mode, with
  `torchaudio.compliance.kaldi.get_mel_banks` (vtln_warp_factor 1) and `torch.stft(center=True,
  pad_mode="reflect")` re-implemented line by line.
- `librosa`: `librosa.filters.mel` (Slaney scale, Hz triangles, optional Slaney norm),
  `librosa.stft` framing (centre with reflect or constant padding), `power_to_db`
  (`amin`, `top_db`) — what PANNs and many others use.

- `torchaudio_db`: `torchaudio.transforms.MelSpectrogram` (HTK edges, triangles in Hz, no norm)
  then `AmplitudeToDB(top_db=...)` over one clip — CED's front-end.

Each function takes a mono clip and returns [frames, bands]: the clip's features computed
alone, as the reference does.
"""
from __future__ import annotations

import numpy as np


def torch_window(kind: str, length: int) -> np.ndarray:
    """torch.hann_window / hamming_window with periodic=True or False."""
    base, periodic = kind.rsplit("_", 1)
    n = np.arange(length, dtype=np.float64)
    denom = length if periodic == "periodic" else length - 1
    a0 = {"hann": 0.5, "hamming": 0.54}[base]
    return a0 - (1 - a0) * np.cos(2 * np.pi * n / denom)


def stft_power(x: np.ndarray, n_fft: int, hop: int, window: np.ndarray, center: str) -> np.ndarray:
    """torch.stft / librosa.stft: the window zero-padded to n_fft on both sides, frames of n_fft
    every hop over the padded signal; returns |X|^2 as [frames, n_fft/2+1]."""
    left = (n_fft - len(window)) // 2
    w = np.zeros(n_fft)
    w[left:left + len(window)] = window
    if center == "reflect":
        x = np.pad(x, n_fft // 2, mode="reflect")
    elif center == "zeros":
        x = np.pad(x, n_fft // 2, mode="constant")
    frames = 1 + (len(x) - n_fft) // hop
    idx = np.arange(n_fft)[None, :] + hop * np.arange(frames)[:, None]
    spec = np.fft.rfft(x[idx] * w[None, :], axis=1)
    return spec.real ** 2 + spec.imag ** 2


def kaldi_mel_banks(num_bins: int, window_length_padded: int, sample_freq: float,
                    low_freq: float, high_freq: float) -> np.ndarray:
    """torchaudio.compliance.kaldi.get_mel_banks with vtln_warp_factor 1: [num_bins, n_fft/2]."""
    mel = lambda f: 1127.0 * np.log(1.0 + np.asarray(f) / 700.0)  # noqa: E731
    num_fft_bins = window_length_padded // 2
    nyquist = 0.5 * sample_freq
    if high_freq <= 0.0:
        high_freq += nyquist
    fft_bin_width = sample_freq / window_length_padded
    mel_low, mel_high = mel(low_freq), mel(high_freq)
    delta = (mel_high - mel_low) / (num_bins + 1)
    b = np.arange(num_bins)[:, None]
    left = mel_low + b * delta
    center = mel_low + (b + 1.0) * delta
    right = mel_low + (b + 2.0) * delta
    m = mel(fft_bin_width * np.arange(num_fft_bins))[None, :]
    up = (m - left) / (center - left)
    down = (right - m) / (right - center)
    return np.maximum(0.0, np.minimum(up, down))


def efficientat(x: np.ndarray, sr: int = 32000, n_mels: int = 128, win_length: int = 800,
                hop: int = 320, n_fft: int = 1024, fmin: float = 0.0, fmax: float = 15000.0) -> np.ndarray:
    """AugmentMelSTFT.forward, eval mode: [frames, n_mels]."""
    x = np.asarray(x, dtype=np.float64)
    x = x[1:] - 0.97 * x[:-1]  # conv1d with [[[-.97, 1]]]
    power = stft_power(x, n_fft, hop, torch_window("hann_symmetric", win_length), "reflect")
    banks = kaldi_mel_banks(n_mels, n_fft, sr, fmin, fmax)
    banks = np.pad(banks, ((0, 0), (0, 1)))  # the zero Nyquist column
    mel = power @ banks.T
    return (np.log(mel + 1e-5) + 4.5) / 5.0


def slaney_hz_to_mel(f):
    f = np.asarray(f, dtype=np.float64)
    f_sp, min_log_hz = 200.0 / 3, 1000.0
    min_log_mel, logstep = min_log_hz / f_sp, np.log(6.4) / 27.0
    return np.where(f >= min_log_hz, min_log_mel + np.log(np.maximum(f, 1e-300) / min_log_hz) / logstep, f / f_sp)


def slaney_mel_to_hz(m):
    m = np.asarray(m, dtype=np.float64)
    f_sp, min_log_hz = 200.0 / 3, 1000.0
    min_log_mel, logstep = min_log_hz / f_sp, np.log(6.4) / 27.0
    return np.where(m >= min_log_mel, min_log_hz * np.exp(logstep * (m - min_log_mel)), f_sp * m)


def librosa_mel(sr: int, n_fft: int, n_mels: int, fmin: float, fmax: float, norm: str | None) -> np.ndarray:
    """librosa.filters.mel(htk=False): [n_mels, n_fft/2+1]."""
    fftfreqs = np.linspace(0, sr / 2, 1 + n_fft // 2)
    mel_f = slaney_mel_to_hz(np.linspace(slaney_hz_to_mel(fmin), slaney_hz_to_mel(fmax), n_mels + 2))
    fdiff = np.diff(mel_f)
    ramps = mel_f[:, None] - fftfreqs[None, :]
    weights = np.zeros((n_mels, len(fftfreqs)))
    for i in range(n_mels):
        lower = -ramps[i] / fdiff[i]
        upper = ramps[i + 2] / fdiff[i + 1]
        weights[i] = np.maximum(0, np.minimum(lower, upper))
    if norm == "slaney":
        weights *= (2.0 / (mel_f[2:n_mels + 2] - mel_f[:n_mels]))[:, None]
    return weights


def librosa_logmel(x: np.ndarray, sr: int, n_fft: int, win_length: int, hop: int, window: str,
                   center: str, n_mels: int, fmin: float, fmax: float, norm: str | None,
                   spectrum: str, log: str, offset: float, amin: float, top_db: float | None) -> np.ndarray:
    """stft → |X| or |X|^2 → mel → log (ln, log10 or power_to_db's 10·log10) → top_db: [frames, n_mels]."""
    power = stft_power(np.asarray(x, dtype=np.float64), n_fft, hop, torch_window(window, win_length), center)
    spec = power if spectrum == "power" else np.sqrt(power)
    mel = spec @ librosa_mel(sr, n_fft, n_mels, fmin, fmax, norm).T
    v = np.maximum(mel + offset, amin)
    out = {"ln": np.log, "log10": np.log10, "db": lambda a: 10.0 * np.log10(a)}[log](v)
    if top_db is not None:
        out = np.maximum(out, out.max() - top_db)
    return out


def torchaudio_db(x: np.ndarray, sr: int = 16000, n_fft: int = 512, hop: int = 160, n_mels: int = 64,
                  f_min: float = 0.0, f_max: float = 8000.0, top_db: float = 120.0) -> np.ndarray:
    """MelSpectrogram(center=True, pad_mode="reflect", periodic Hann n_fft, power 2.0,
    melscale_fbanks(norm=None, mel_scale="htk")) then AmplitudeToDB("power", top_db): [frames, n_mels]."""
    power = stft_power(np.asarray(x, dtype=np.float64), n_fft, hop, torch_window("hann_periodic", n_fft), "reflect")
    all_freqs = np.linspace(0, sr // 2, n_fft // 2 + 1)
    m_min, m_max = 2595.0 * np.log10(1.0 + f_min / 700.0), 2595.0 * np.log10(1.0 + f_max / 700.0)
    f_pts = 700.0 * (10 ** (np.linspace(m_min, m_max, n_mels + 2) / 2595.0) - 1.0)
    f_diff = f_pts[1:] - f_pts[:-1]
    slopes = f_pts[None, :] - all_freqs[:, None]
    down = -1.0 * slopes[:, :-2] / f_diff[:-1]
    up = slopes[:, 2:] / f_diff[1:]
    fb = np.maximum(0.0, np.minimum(down, up))  # [bins, n_mels]
    db = 10.0 * np.log10(np.maximum(power @ fb, 1e-10))
    return np.maximum(db, db.max() - top_db)
