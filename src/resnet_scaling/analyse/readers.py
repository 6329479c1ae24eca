"""Read the named tensors of one checkpoint as float64 numpy arrays, whatever wrote it.

Formats: ``.npz`` (stacked arrays, and the JSON metadata of this workflow's files),
PyTorch ``state_dict``s saved with ``torch.save`` (read with ``weights_only=True``: a
pickled module is refused, never executed) and ``.safetensors`` (with the ``safetensors``
package when it is installed, otherwise from the documented layout: an 8-byte little-endian
header length, a JSON header of dtype, shape and byte offsets, then the raw little-endian data).
A file's header is checked before anything large is read: a .safetensors header and the sizes
it declares against the file's size (:func:`safetensors_header`), the first bytes of a PyTorch
file against the zip and pickle signatures.
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


#: The largest JSON header a .safetensors file may declare (the limit of the safetensors package).
SAFETENSORS_MAX_HEADER = 100_000_000


def safetensors_header(path) -> tuple[dict, int]:
    """(tensor name → dtype, shape, data offsets; offset of the data) of a .safetensors file,
    checked before any tensor is read: the 8-byte header length and the JSON header are read
    alone, the header's length and the data it declares are compared with the file's size (the
    layout leaves no byte undeclared), and every tensor's byte range with its dtype and shape."""
    path = Path(path)
    size = path.stat().st_size
    with open(path, "rb") as fh:
        head = fh.read(8)
        if len(head) < 8:
            raise AnalyseError(f"{path}: is not a .safetensors file ({size} bytes, shorter than its header length)")
        (n,) = struct.unpack("<Q", head)
        if n > size - 8 or n > SAFETENSORS_MAX_HEADER:
            raise AnalyseError(f"{path}: is truncated or not a .safetensors file (its header would be {n} bytes; "
                               f"the file holds {size})")
        raw = fh.read(n)
    try:
        header = json.loads(raw)
        if not isinstance(header, dict):
            raise ValueError("not a JSON object")
    except (ValueError, UnicodeDecodeError):
        raise AnalyseError(f"{path}: is not a .safetensors file (its header is not JSON: corrupt, or another "
                           "format?)") from None
    data_size = size - 8 - n
    end = 0
    for name, spec in header.items():
        if name == "__metadata__":
            continue
        try:
            start, stop = (int(x) for x in spec["data_offsets"])
            shape = [int(x) for x in spec["shape"]]
            dtype = spec["dtype"]
        except (KeyError, TypeError, ValueError) as exc:
            raise AnalyseError(f"{path}: cannot read as .safetensors (its header lacks the dtype, shape or data "
                               f"offsets of {name!r}: {type(exc).__name__}: {exc})") from None
        if dtype != "BF16" and dtype not in SAFETENSORS_DTYPES:
            raise AnalyseError(f"{path}: tensor {name!r} has the dtype {dtype!r}, which the analysis cannot read")
        itemsize = 2 if dtype == "BF16" else np.dtype(SAFETENSORS_DTYPES[dtype]).itemsize
        if not 0 <= start <= stop or stop - start != itemsize * int(np.prod(shape, dtype=np.int64)):
            raise AnalyseError(f"{path}: cannot read as .safetensors (tensor {name!r} of shape {shape} and dtype "
                               f"{dtype} has the byte range {start}..{stop})")
        end = max(end, stop)
    if end > data_size:
        raise AnalyseError(f"{path}: is truncated (its tensors need {end} bytes of data; the file holds "
                           f"{data_size})")
    if end < data_size:
        raise AnalyseError(f"{path}: is not a .safetensors file as its header declares ({data_size - end} bytes "
                           "after the last tensor: damaged, or another format?)")
    return header, 8 + n


def _read_safetensors(path: Path) -> dict:
    safetensors_header(path)  # the header and the sizes it declares, before any data is read
    try:
        from safetensors.numpy import load_file
    except ImportError:
        return read_safetensors_layout(path)
    try:
        return dict(load_file(str(path)))
    except Exception:  # e.g. bfloat16, which numpy lacks: the layout reader widens it
        return read_safetensors_layout(path)


def read_safetensors_layout(path) -> dict:
    """A .safetensors file read from its documented byte layout (no package needed): the header
    first (:func:`safetensors_header`), then each tensor's own bytes."""
    path = Path(path)
    header, offset = safetensors_header(path)
    out = {}
    with open(path, "rb") as fh:
        for name, spec in header.items():
            if name == "__metadata__":
                continue
            start, end = (int(x) for x in spec["data_offsets"])
            fh.seek(offset + start)
            raw = fh.read(end - start)
            if spec["dtype"] == "BF16":  # the high half of a float32
                array = (np.frombuffer(raw, "<u2").astype(np.uint32) << 16).view(np.float32)
            else:
                array = np.frombuffer(raw, SAFETENSORS_DTYPES[spec["dtype"]])
            out[name] = array.reshape([int(x) for x in spec["shape"]]).copy()
    return out
