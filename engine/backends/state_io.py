"""Training state (optimizer, scheduler, RNG) saved without pickle: tensors in safetensors, the
rest in JSON.

`torch.load` of a pickle runs whatever code the file names, so a checkpoint folder someone else
can write would be code execution. Here a state is walked once: tensors go to one safetensors
file under their path, everything else must be JSON-able (dicts, lists, tuples, numbers,
strings, numpy arrays) and is written with type tags so it comes back exactly as it was (a
tuple stays a tuple, an int key stays an int). Loading reads only those tags; anything else is
refused.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

TENSORS = "state.safetensors"
TREE = "state.json"


class StateFormatError(ValueError):
    pass


def _encode(obj: Any, tensors: dict[str, Any], at: str) -> Any:
    import numpy as np
    import torch

    if isinstance(obj, torch.Tensor):
        tensors[at] = obj.detach().cpu().contiguous().clone()
        return {"__tensor__": at}
    if isinstance(obj, np.ndarray):
        return {"__ndarray__": obj.dtype.str, "shape": list(obj.shape), "data": obj.reshape(-1).tolist()}
    if isinstance(obj, np.generic):
        return _encode(obj.item(), tensors, at)
    if isinstance(obj, bool) or obj is None or isinstance(obj, (int, str)):
        return obj
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else {"__float__": repr(obj)}
    if isinstance(obj, tuple):
        return {"__tuple__": [_encode(v, tensors, f"{at}.{i}") for i, v in enumerate(obj)]}
    if isinstance(obj, list):
        return [_encode(v, tensors, f"{at}.{i}") for i, v in enumerate(obj)]
    if isinstance(obj, dict):
        items = []
        for k, v in obj.items():
            if not isinstance(k, (str, int)) or isinstance(k, bool):
                raise StateFormatError(f"{at}: key {k!r} is neither text nor an integer")
            items.append([k, _encode(v, tensors, f"{at}.{k}")])
        return {"__dict__": items}
    raise StateFormatError(f"{at}: cannot save a {type(obj).__name__} without pickle")


def _decode(obj: Any, tensors: dict[str, Any]) -> Any:
    import numpy as np

    if obj is None or isinstance(obj, (bool, int, float, str)):
        return obj
    if isinstance(obj, list):
        return [_decode(v, tensors) for v in obj]
    if not isinstance(obj, dict) or len(obj) not in (1, 3):
        raise StateFormatError(f"unexpected value in the state file: {str(obj)[:80]}")
    if "__tensor__" in obj:
        key = obj["__tensor__"]
        if key not in tensors:
            raise StateFormatError(f"tensor {key!r} is missing from {TENSORS}")
        return tensors[key]
    if "__ndarray__" in obj:
        return np.asarray(obj["data"], dtype=np.dtype(str(obj["__ndarray__"]))).reshape(obj["shape"])
    if "__float__" in obj:
        return float(obj["__float__"])
    if "__tuple__" in obj:
        return tuple(_decode(v, tensors) for v in obj["__tuple__"])
    if "__dict__" in obj:
        return {k: _decode(v, tensors) for k, v in obj["__dict__"]}
    raise StateFormatError(f"unknown tag in the state file: {sorted(obj)[:3]}")


def save_state(folder: Path, states: dict[str, Any]) -> None:
    """Write {name: state} as state.safetensors + state.json into folder."""
    from safetensors.torch import save_file

    tensors: dict[str, Any] = {}
    tree = {name: _encode(state, tensors, name) for name, state in states.items()}
    save_file(tensors, str(folder / TENSORS))
    (folder / TREE).write_text(json.dumps(tree), encoding="utf-8")


def load_state(folder: Path) -> dict[str, Any]:
    from safetensors.torch import load_file

    try:
        tensors = load_file(str(folder / TENSORS))
        tree = json.loads((folder / TREE).read_text(encoding="utf-8"))
        if not isinstance(tree, dict):
            raise StateFormatError(f"{TREE} is not an object")
        return {name: _decode(value, tensors) for name, value in tree.items()}
    except (OSError, ValueError, RecursionError) as exc:
        raise StateFormatError(f"{folder}: unreadable training state: {exc}") from exc


def has_state(folder: Path) -> bool:
    return (folder / TENSORS).is_file() and (folder / TREE).is_file()
