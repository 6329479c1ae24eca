"""Read the named tensors of one checkpoint as float64 numpy arrays, whatever wrote it.

Formats: ``.npz`` (stacked arrays, and the JSON metadata of this workflow's files),
PyTorch ``state_dict``s saved with ``torch.save`` (read with ``weights_only=True``: a
pickled module is refused, never executed) and ``.safetensors`` (with the ``safetensors``
package when it is installed, otherwise from the documented layout: an 8-byte little-endian
header length, a JSON header of dtype, shape and byte offsets, then the raw little-endian data).
"""

from __future__ import annotations

import json
import pickle
import struct
from pathlib import Path

import numpy as np

from ..io import read_npz
from .maps import AnalyseError

SUFFIXES = {".npz": "npz", ".pt": "torch", ".pth": "torch", ".bin": "torch", ".ckpt": "torch",
            ".safetensors": "safetensors"}
#: dtypes of the safetensors header that numpy reads directly (BF16 is widened by hand).
SAFETENSORS_DTYPES = {"F64": "<f8", "F32": "<f4", "F16": "<f2", "I64": "<i8", "I32": "<i4", "I16": "<i2",
                      "I8": "i1", "U8": "u1", "BOOL": "?"}


def file_format(path: Path, declared: str) -> str:
    """The format of ``path``: the map's ``format``, or by suffix when it is ``auto``."""
    if declared != "auto":
        return declared
    try:
        return SUFFIXES[path.suffix.lower()]
    except KeyError:
        raise AnalyseError(f"{path}: unknown file type {path.suffix!r}; set `format` in the map "
                           f"(npz, torch or safetensors)") from None


def read_checkpoint(path, declared: str = "auto", container: tuple[str, ...] = ()) -> tuple[dict, dict]:
    """(name → array, metadata) of one file; the metadata is empty except for this workflow's .npz."""
    path = Path(path)
    if not path.is_file():
        raise AnalyseError(f"{path}: no such file")
    kind = file_format(path, declared)
    if kind == "npz":
        try:
            arrays, meta = read_npz(path)
        except (ValueError, OSError) as exc:
            raise AnalyseError(f"{path}: cannot read as .npz ({str(exc).split(';')[0]})") from None
    elif kind == "torch":
        arrays, meta = _read_torch(path, container), {}
    else:
        arrays, meta = _read_safetensors(path), {}
    return arrays, meta


def _read_torch(path: Path, container: tuple[str, ...]) -> dict:
    import torch

    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise AnalyseError(
            f"{path}: holds pickled Python objects (a whole nn.Module?), which are not loaded ({first[:160]}); "
            "save the weights with torch.save(model.state_dict(), path) instead") from None
    except Exception as exc:  # zip / EOF errors: a damaged or foreign file
        raise AnalyseError(f"{path}: cannot read as a PyTorch file ({type(exc).__name__}: {exc})") from None
    for i, part in enumerate(container):
        if not isinstance(obj, dict) or part not in obj:
            raise AnalyseError(f"{path}: container: no entry {'.'.join(container[:i + 1])!r} in the saved object")
        obj = obj[part]
    if not isinstance(obj, dict):
        raise AnalyseError(f"{path}: holds a {type(obj).__name__}, not a state_dict; save the weights with "
                           "torch.save(model.state_dict(), path)")
    def numpy(v):  # bfloat16 has no numpy dtype: floats are widened to float64 first
        v = v.detach().cpu()
        return (v.to(torch.float64) if v.is_floating_point() else v).numpy()

    return {str(k): numpy(v) if isinstance(v, torch.Tensor) else v for k, v in obj.items()}


def _read_safetensors(path: Path) -> dict:
    try:
        from safetensors.numpy import load_file
    except ImportError:
        return read_safetensors_layout(path)
    try:
        return dict(load_file(str(path)))
    except Exception:  # e.g. bfloat16, which numpy lacks: the layout reader widens it
        return read_safetensors_layout(path)


def read_safetensors_layout(path) -> dict:
    """A .safetensors file read from its documented byte layout (no package needed)."""
    path = Path(path)
    data = path.read_bytes()
    try:
        (n,) = struct.unpack("<Q", data[:8])
        header = json.loads(data[8:8 + n])
        body = memoryview(data)[8 + n:]
        out = {}
        for name, spec in header.items():
            if name == "__metadata__":
                continue
            start, end = spec["data_offsets"]
            raw = body[start:end]
            if spec["dtype"] == "BF16":  # the high half of a float32
                array = (np.frombuffer(raw, "<u2").astype(np.uint32) << 16).view(np.float32)
            else:
                array = np.frombuffer(raw, SAFETENSORS_DTYPES[spec["dtype"]])
            out[name] = array.reshape(spec["shape"]).copy()
    except (struct.error, ValueError, KeyError, TypeError) as exc:
        raise AnalyseError(f"{path}: cannot read as .safetensors ({type(exc).__name__}: {exc})") from None
    return out
