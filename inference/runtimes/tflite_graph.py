"""A reader of TFLite model files: the first subgraph's tensors, constants and operators as plain Python.

It exists so that a model can be rebuilt in another framework (see `birdnet_torch`) without importing
LiteRT, TensorFlow or the flatbuffers package: it reads the flatbuffer with `struct` and views each
constant buffer with numpy, without copying it. It reads the options of the operators it names in
`OPERATORS` and refuses any other operator. Quantisation parameters and sparsity are not read.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Any

import numpy as np

_IDENTIFIER = b"TFL3"

# TensorType -> numpy dtype, or a name where numpy has none.
_TENSOR_TYPES: dict[int, np.dtype | str] = {
    0: np.dtype("float32"),
    1: np.dtype("float16"),
    2: np.dtype("int32"),
    3: np.dtype("uint8"),
    4: np.dtype("int64"),
    5: "string",
    6: np.dtype("bool"),
    7: np.dtype("int16"),
    8: np.dtype("complex64"),
    9: np.dtype("int8"),
    10: np.dtype("float64"),
    11: np.dtype("complex128"),
    12: np.dtype("uint64"),
    13: "resource",
    14: "variant",
    15: np.dtype("uint32"),
    16: np.dtype("uint16"),
    17: "int4",
    18: "bfloat16",
}

# BuiltinOperator code -> (name, the BuiltinOptions union type its options come in; 0 = none).
OPERATORS: dict[int, tuple[str, int]] = {
    0: ("ADD", 11),
    1: ("AVERAGE_POOL_2D", 5),
    2: ("CONCATENATION", 10),
    3: ("CONV_2D", 1),
    4: ("DEPTHWISE_CONV_2D", 2),
    9: ("FULLY_CONNECTED", 8),
    14: ("LOGISTIC", 0),
    17: ("MAX_POOL_2D", 5),
    18: ("MUL", 21),
    19: ("RELU", 0),
    21: ("RELU6", 0),
    22: ("RESHAPE", 17),
    28: ("TANH", 0),
    34: ("PAD", 22),
    36: ("GATHER", 23),
    39: ("TRANSPOSE", 26),
    40: ("MEAN", 27),
    41: ("SUB", 28),
    42: ("DIV", 29),
    43: ("SQUEEZE", 30),
    45: ("STRIDED_SLICE", 32),
    53: ("CAST", 37),
    55: ("MAXIMUM", 39),
    57: ("MINIMUM", 39),
    70: ("EXPAND_DIMS", 52),
    74: ("SUM", 27),
    77: ("SHAPE", 55),
    78: ("POW", 56),
    81: ("REDUCE_PROD", 27),
    82: ("REDUCE_MAX", 27),
    83: ("PACK", 59),
    89: ("REDUCE_MIN", 27),
    90: ("FLOOR_DIV", 65),
    96: ("RANGE", 73),
    102: ("SPLIT_V", 79),
    105: ("REVERSE_V2", 81),
    131: ("RFFT2D", 105),
}

OPERATORS_BY_NAME = {name: options_type for name, options_type in OPERATORS.values()}

_PADDINGS = {0: "SAME", 1: "VALID"}
_ACTIVATIONS = {0: "NONE", 1: "RELU", 2: "RELU_N1_TO_1", 3: "RELU6", 4: "TANH", 5: "SIGN_BIT"}

# BuiltinOptions union type -> its fields as (key, field slot, kind, default). Kinds: struct formats,
# "padding"/"activation"/"type" (enums stored as int8) and "ints" (a vector of int32).
_OPTIONS: dict[int, tuple[tuple[str, int, str, Any], ...]] = {
    0: (),  # no options
    1: (  # Conv2DOptions
        ("padding", 0, "padding", 0),
        ("stride_w", 1, "i", 0),
        ("stride_h", 2, "i", 0),
        ("fused_activation", 3, "activation", 0),
        ("dilation_w", 4, "i", 1),
        ("dilation_h", 5, "i", 1),
    ),
    2: (  # DepthwiseConv2DOptions
        ("padding", 0, "padding", 0),
        ("stride_w", 1, "i", 0),
        ("stride_h", 2, "i", 0),
        ("depth_multiplier", 3, "i", 0),
        ("fused_activation", 4, "activation", 0),
        ("dilation_w", 5, "i", 1),
        ("dilation_h", 6, "i", 1),
    ),
    5: (  # Pool2DOptions
        ("padding", 0, "padding", 0),
        ("stride_w", 1, "i", 0),
        ("stride_h", 2, "i", 0),
        ("filter_w", 3, "i", 0),
        ("filter_h", 4, "i", 0),
        ("fused_activation", 5, "activation", 0),
    ),
    8: (  # FullyConnectedOptions
        ("fused_activation", 0, "activation", 0),
        ("weights_format", 1, "b", 0),
        ("keep_num_dims", 2, "?", False),
    ),
    10: (("axis", 0, "i", 0), ("fused_activation", 1, "activation", 0)),  # ConcatenationOptions
    11: (("fused_activation", 0, "activation", 0),),  # AddOptions
    17: (("new_shape", 0, "ints", ()),),  # ReshapeOptions
    21: (("fused_activation", 0, "activation", 0),),  # MulOptions
    22: (),  # PadOptions
    23: (("axis", 0, "i", 0), ("batch_dims", 1, "i", 0)),  # GatherOptions
    26: (),  # TransposeOptions
    27: (("keep_dims", 0, "?", False),),  # ReducerOptions
    28: (("fused_activation", 0, "activation", 0),),  # SubOptions
    29: (("fused_activation", 0, "activation", 0),),  # DivOptions
    30: (("squeeze_dims", 0, "ints", ()),),  # SqueezeOptions
    32: (  # StridedSliceOptions
        ("begin_mask", 0, "i", 0),
        ("end_mask", 1, "i", 0),
        ("ellipsis_mask", 2, "i", 0),
        ("new_axis_mask", 3, "i", 0),
        ("shrink_axis_mask", 4, "i", 0),
        ("offset", 5, "?", False),
    ),
    37: (("in_data_type", 0, "type", 0), ("out_data_type", 1, "type", 0)),  # CastOptions
    39: (),  # MaximumMinimumOptions
    52: (),  # ExpandDimsOptions
    55: (("out_type", 0, "type", 2),),  # ShapeOptions (its default is INT32 by TFLite's kernel)
    56: (),  # PowOptions
    59: (("values_count", 0, "i", 0), ("axis", 1, "i", 0)),  # PackOptions
    65: (),  # FloorDivOptions
    73: (),  # RangeOptions
    79: (("num_splits", 0, "i", 0),),  # SplitVOptions
    81: (),  # ReverseV2Options
    105: (),  # Rfft2dOptions
}


@dataclass(frozen=True, eq=False)
class Tensor:
    name: str
    shape: tuple[int, ...]  # as stored: dynamic dimensions read 1
    dtype: np.dtype | str
    data: np.ndarray | None  # the constant's values (a read-only view of the file), None when computed


@dataclass(frozen=True)
class Operator:
    kind: str  # the builtin operator's name, e.g. "CONV_2D"
    inputs: tuple[int, ...]  # tensor indices; -1 = an optional input left out
    outputs: tuple[int, ...]
    options: dict[str, Any]


@dataclass(frozen=True)
class Graph:
    tensors: tuple[Tensor, ...]
    operators: tuple[Operator, ...]  # in an order that runs each after the operators it reads from
    inputs: tuple[int, ...]
    outputs: tuple[int, ...]


class _Table:
    """A flatbuffer table: fields addressed by slot number, bounds-checked against the file."""

    def __init__(self, data: bytes, position: int) -> None:
        self.data = data
        self.position = position
        vtable = position - _read(data, "<i", position)
        self.vtable = vtable
        self.vtable_size = _read(data, "<H", vtable)

    def _field(self, slot: int) -> int:
        entry = 4 + 2 * slot
        if entry + 2 > self.vtable_size:
            return 0
        offset = _read(self.data, "<H", self.vtable + entry)
        return self.position + offset if offset else 0

    def scalar(self, slot: int, fmt: str, default: Any) -> Any:
        at = self._field(slot)
        return _read(self.data, "<" + fmt, at) if at else default

    def _target(self, slot: int) -> int:
        at = self._field(slot)
        return at + _read(self.data, "<I", at) if at else 0

    def table(self, slot: int) -> _Table | None:
        at = self._target(slot)
        return _Table(self.data, at) if at else None

    def vector(self, slot: int) -> tuple[int, int]:
        """(position of the first element, length); (0, 0) when absent."""
        at = self._target(slot)
        return (at + 4, _read(self.data, "<I", at)) if at else (0, 0)

    def ints(self, slot: int) -> tuple[int, ...]:
        start, length = self.vector(slot)
        return tuple(int(v) for v in np.frombuffer(_bytes(self.data, start, 4 * length), "<i4")) if length else ()

    def tables(self, slot: int) -> list[_Table]:
        start, length = self.vector(slot)
        return [_Table(self.data, at + _read(self.data, "<I", at)) for at in range(start, start + 4 * length, 4)]

    def string(self, slot: int) -> str:
        start, length = self.vector(slot)
        return str(_bytes(self.data, start, length), "utf-8") if length else ""


def _read(data: bytes, fmt: str, at: int) -> Any:
    if at < 0 or at + struct.calcsize(fmt) > len(data):
        raise _Truncated
    return struct.unpack_from(fmt, data, at)[0]


def _bytes(data: bytes, start: int, length: int) -> memoryview:
    if start < 0 or length < 0 or start + length > len(data):
        raise _Truncated
    return memoryview(data)[start : start + length]


class _Truncated(Exception):
    pass


def read_tflite(data: bytes) -> Graph:
    """The first subgraph of the TFLite model in `data` (the bytes of a .tflite file)."""
    if len(data) < 8 or data[4:8] != _IDENTIFIER:
        raise ValueError("not a TFLite model: the file does not carry the TFL3 flatbuffer identifier at bytes 4-8")
    try:
        return _read_model(data)
    except _Truncated:
        raise ValueError(
            f"not a whole TFLite model: an offset points past the end of the {len(data)} bytes; "
            "the file is truncated or corrupt"
        ) from None


def _read_model(data: bytes) -> Graph:
    model = _Table(data, _read(data, "<I", 0))
    subgraphs = model.tables(2)
    if not subgraphs:
        raise ValueError("the TFLite model has no subgraph")
    buffers = [_buffer_bytes(data, buffer) for buffer in model.tables(4)]
    kinds = [_operator_kind(code) for code in model.tables(1)]
    graph = subgraphs[0]
    tensors = tuple(_tensor(table, buffers) for table in graph.tables(0))
    operators = tuple(_operator(position, table, kinds) for position, table in enumerate(graph.tables(3)))
    return Graph(tensors, operators, graph.ints(1), graph.ints(2))


def _buffer_bytes(data: bytes, buffer: _Table) -> memoryview | None:
    start, length = buffer.vector(0)
    if length:
        return _bytes(data, start, length)
    offset, size = buffer.scalar(1, "Q", 0), buffer.scalar(2, "Q", 0)
    if offset > 1 and size:  # models over 2 GB keep buffers after the flatbuffer, addressed from the file start
        return _bytes(data, offset, size)
    return None


def _operator_kind(code: _Table) -> str | int:
    """The operator's name, or its builtin code when this reader does not know it (refused when used)."""
    builtin = max(code.scalar(0, "b", 0), code.scalar(3, "i", 0))
    if builtin == 32:  # CUSTOM
        return f"CUSTOM:{code.string(1)}"
    return OPERATORS[builtin][0] if builtin in OPERATORS else builtin


def _tensor(table: _Table, buffers: list[memoryview | None]) -> Tensor:
    name = table.string(3)
    shape = table.ints(0)
    type_code = table.scalar(1, "b", 0)
    if type_code not in _TENSOR_TYPES:
        raise ValueError(f"tensor {name!r} has TFLite type {type_code}, which this reader does not know")
    dtype = _TENSOR_TYPES[type_code]
    buffer_index = table.scalar(2, "I", 0)
    if buffer_index >= len(buffers):
        raise ValueError(f"tensor {name!r} refers to buffer {buffer_index}; the model has {len(buffers)}")
    raw = buffers[buffer_index]
    if raw is None:
        return Tensor(name, shape, dtype, None)
    if isinstance(dtype, str):  # no numpy type: the raw bytes
        return Tensor(name, shape, dtype, np.frombuffer(raw, np.uint8))
    count = int(np.prod(shape, dtype=np.int64))
    if len(raw) != count * dtype.itemsize:
        raise ValueError(f"tensor {name!r} of shape {shape} and type {dtype} has a buffer of {len(raw)} bytes")
    return Tensor(name, shape, dtype, np.frombuffer(raw, dtype.newbyteorder("<")).reshape(shape))


def _operator(position: int, table: _Table, kinds: list[str | int]) -> Operator:
    code_index = table.scalar(0, "I", 0)
    if code_index >= len(kinds):
        raise ValueError(f"operator {position} refers to operator code {code_index}; the model has {len(kinds)}")
    kind = kinds[code_index]
    if not isinstance(kind, str) or kind.startswith("CUSTOM:"):
        what = f"the custom operator {kind[7:]!r}" if isinstance(kind, str) else f"builtin operator code {kind}"
        raise ValueError(f"operator {position} is {what}, which this reader does not know")
    options_type = table.scalar(3, "B", 0)
    expected = OPERATORS_BY_NAME[kind]
    if options_type not in (0, expected):
        raise ValueError(f"operator {position} ({kind}) carries options of union type {options_type}, not {expected}")
    options_table = table.table(4) if options_type else None
    options = _options(options_table, _OPTIONS[expected], kind, position)
    return Operator(kind, table.ints(1), table.ints(2), options)


def _options(table: _Table | None, fields: tuple, kind: str, position: int) -> dict[str, Any]:
    options: dict[str, Any] = {}
    for key, slot, field_kind, default in fields:
        if field_kind == "ints":
            options[key] = table.ints(slot) if table else default
            continue
        fmt = "b" if field_kind in ("padding", "activation", "type") else field_kind
        value = table.scalar(slot, fmt, default) if table else default
        if field_kind == "padding":
            value = _enum(_PADDINGS, value, "padding", kind, position)
        elif field_kind == "activation":
            value = _enum(_ACTIVATIONS, value, "fused activation", kind, position)
        elif field_kind == "type":
            value = _enum(_TENSOR_TYPES, value, "tensor type", kind, position)
        elif field_kind == "?":
            value = bool(value)
        options[key] = value
    return options


def _enum(names: dict[int, Any], value: int, what: str, kind: str, position: int) -> Any:
    if value not in names:
        raise ValueError(f"operator {position} ({kind}) has {what} {value}, which this reader does not know")
    return names[value]
