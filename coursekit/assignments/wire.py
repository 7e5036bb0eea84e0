"""Arrays as JSON-safe values, exactly: how probes go to the child process and measurements come back.

An array travels as `{"dtype": ..., "shape": [...], "data": base64 of its bytes}`, so NaN and inf
survive bit for bit and no JSON parser ever meets a non-standard number. Only numeric dtypes are
accepted on the way back: a measurement is numbers, never objects.
"""

import base64

import numpy as np

_NUMERIC = ("float16", "float32", "float64", "int8", "int16", "int32", "int64", "uint8", "bool")


def encode(value):
    """A NumPy array (or anything `np.asarray` takes) as a JSON-safe dict."""
    array = np.array(value, order="C", copy=True)  # (np.ascontiguousarray would make a 0-d array 1-d)
    if array.dtype.name not in _NUMERIC:
        raise TypeError(f"cannot send an array of dtype {array.dtype}")
    return {"dtype": array.dtype.name, "shape": list(array.shape), "data": base64.b64encode(array.tobytes()).decode()}


def decode(value):
    """The array `encode` made; raises ValueError on anything malformed."""
    try:
        dtype = np.dtype(value["dtype"])
        shape = tuple(int(n) for n in value["shape"])
        data = base64.b64decode(value["data"], validate=True)
    except (KeyError, TypeError, ValueError) as error:
        raise ValueError(f"malformed array: {error}") from None
    if dtype.name not in _NUMERIC:
        raise ValueError(f"unexpected dtype {dtype}")
    if len(data) != dtype.itemsize * int(np.prod(shape, dtype=np.int64)):
        raise ValueError(f"{len(data)} bytes do not fill an array of shape {shape} and dtype {dtype}")
    return np.frombuffer(data, dtype=dtype).reshape(shape).copy()


def encode_tree(value):
    """Dicts and lists as they are, arrays (NumPy) encoded; plain numbers and strings untouched."""
    if isinstance(value, dict):
        return {key: encode_tree(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [encode_tree(item) for item in value]
    if isinstance(value, np.ndarray):
        return {"__array__": encode(value)}
    return value


def decode_tree(value):
    """The inverse of `encode_tree`."""
    if isinstance(value, dict):
        if set(value) == {"__array__"}:
            return decode(value["__array__"])
        return {key: decode_tree(item) for key, item in value.items()}
    if isinstance(value, list):
        return [decode_tree(item) for item in value]
    return value
