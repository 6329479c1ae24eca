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
import pickletools
import re
import struct
import zipfile
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


#: ANSI escape sequences (torch colours parts of its messages): never printed.
ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


def plain(text: str) -> str:
    """``text`` without ANSI escape sequences."""
    return ANSI.sub("", text)


def _pickles_complete(path: Path, count: int = 5) -> bool:
    """Whether the first ``count`` pickles of a file (the legacy torch format is five pickles,
    then the raw tensor data) parse to their end, without executing any of them."""
    size = path.stat().st_size
    with open(path, "rb") as fh:
        for _ in range(count):
            if fh.tell() >= size:
                break
            try:
                for _ in pickletools.genops(fh):
                    pass
            except (ValueError, EOFError):
                return False
    return True


def _torch_file_problem(path: Path) -> str | None:
    """What makes ``path`` unreadable as a PyTorch file before torch reads it: empty, not a
    zip archive nor a pickle (random bytes, another format), or a zip archive cut short."""
    with open(path, "rb") as fh:
        head = fh.read(4)
    if not head:
        return "is empty"
    if head == b"PK\x03\x04":
        try:
            with zipfile.ZipFile(path) as archive:
                bad = archive.testzip()
        except (zipfile.BadZipFile, OSError, EOFError) as exc:
            return f"is truncated or damaged (an incomplete zip archive: {exc})"
        return f"is damaged (a checksum error in {bad!r})" if bad is not None else None
    if head[:1] == b"\x80":  # a pickle: the legacy torch format, or pickled objects
        return None if _pickles_complete(path) else "is truncated or damaged (a pickle cut short)"
    return ("is not a PyTorch file: neither the zip archive of torch.save nor a pickle (corrupt, or "
            "another format?)")


def _read_torch(path: Path, container: tuple[str, ...]) -> dict:
    import torch

    problem = _torch_file_problem(path)
    if problem is not None:
        raise AnalyseError(f"{path}: {problem}")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        text = plain(str(exc))
        found = re.search(r"Unsupported global: GLOBAL (\S+)", text)
        if found is None:
            raise AnalyseError(f"{path}: cannot read as a PyTorch file ({_first_line(text)})") from None
        raise AnalyseError(
            f"{path}: holds pickled Python objects ({found.group(1)}: a whole nn.Module?), which are not loaded; "
            "save the weights with torch.save(model.state_dict(), path) instead") from None
    except Exception as exc:  # zip / EOF errors: a damaged or foreign file
        raise AnalyseError(f"{path}: cannot read as a PyTorch file ({type(exc).__name__}: "
                           f"{_first_line(plain(str(exc)))})") from None
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


def _first_line(text: str) -> str:
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    return (lines[0] if lines else "no message")[:200]


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
    if len(data) < 8:
        raise AnalyseError(f"{path}: is not a .safetensors file ({len(data)} bytes, shorter than its header length)")
    (n,) = struct.unpack("<Q", data[:8])
    if n > len(data) - 8:
        raise AnalyseError(f"{path}: is truncated or not a .safetensors file (its header would be {n} bytes; "
                           f"the file holds {len(data)})")
    try:
        header = json.loads(data[8:8 + n])
    except (ValueError, UnicodeDecodeError):
        raise AnalyseError(f"{path}: is not a .safetensors file (its header is not JSON: corrupt, or another "
                           "format?)") from None
    body = memoryview(data)[8 + n:]
    try:
        ends = [int(spec["data_offsets"][1]) for name, spec in header.items() if name != "__metadata__"]
    except (KeyError, TypeError, ValueError, IndexError) as exc:
        raise AnalyseError(f"{path}: cannot read as .safetensors (its header lacks data offsets: "
                           f"{type(exc).__name__}: {exc})") from None
    if ends and max(ends) > len(body):
        raise AnalyseError(f"{path}: is truncated (its tensors need {max(ends)} bytes of data; the file holds "
                           f"{len(body)})")
    try:
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
