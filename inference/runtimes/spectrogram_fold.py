"""BirdNET's spectrogram front end folded into one matrix multiply.

BirdNET V2.4 turns each frame of audio into mel bands with ops that are all linear in the frame:
a Hann window (MUL), an RFFT2D, the real part (CAST complex -> float), and a projection onto 96 mel
bands (a Tensordot: SHAPE/GATHER/PROD/PACK/RESHAPE around a FULLY_CONNECTED, then a RESHAPE).
LiteRT has no fast kernel for RFFT2D, so that chain is the slowest part of the model on a CPU.
Since the chain is linear, it equals one matrix computed once in float64,

    W[mel, n] = sum_k mel_matrix[mel, k] * cos(2 pi k n / L) * hann[n]        (L = frame length)

and one FULLY_CONNECTED (frames [B, T, L] -> [B, T, 96]) replaces it. The nonlinear steps after it
(the power, the flip of the mel axis, the stacking of the two spectrograms) stay as they are.

`folded_weight` is plain numpy, shared with the PyTorch backend; `fold_spectrograms` rewrites a
.tflite file (ai_edge_litert's flatbuffer schema) and checks every op it removes is the one expected.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


def folded_weight(hann: np.ndarray, mel_matrix: np.ndarray) -> np.ndarray:
    """The matrix [bands, L] of window, real DFT and mel projection, from a Hann window [L] and mel [bands, L/2+1]."""
    hann = np.asarray(hann, dtype=np.float64)
    mel_matrix = np.asarray(mel_matrix, dtype=np.float64)
    length = hann.shape[0]
    bins = length // 2 + 1
    if mel_matrix.ndim != 2 or mel_matrix.shape[1] != bins:
        raise ValueError(f"a mel matrix for frames of {length} samples has {bins} columns, got {mel_matrix.shape}")
    # k * n mod L keeps the cosine's argument small, so float64 loses nothing at L = 2,048.
    phase = np.outer(np.arange(bins), np.arange(length)) % length
    real_dft = np.cos(2.0 * np.pi * phase / length)
    return (mel_matrix @ (real_dft * hann[None, :])).astype(np.float32)


@dataclass(frozen=True)
class SpectrogramChain:
    """One spectrogram's linear chain in a TFLite graph: frames in, mel bands out, and what lies between."""

    frames: int  # tensor [B, T, L]: the framed audio
    mel: int  # tensor [B, T, bands]: the Tensordot's output
    hann: np.ndarray
    mel_matrix: np.ndarray
    first_operator: int  # the position of the Hann MUL: where the folded op goes
    operators: frozenset[int]  # the chain's operators, all replaced


class FoldError(ValueError):
    """The graph is not BirdNET's front end as expected: nothing is folded."""


def find_spectrogram_chains(model) -> list[SpectrogramChain]:
    """The Hann -> RFFT2D -> real part -> mel chains of a ModelT (ai_edge_litert's object API), checked op by op."""
    from ai_edge_litert import schema_py_generated as schema

    graph = model.subgraphs[0]
    codes = {value: name for name, value in vars(schema.BuiltinOperator).items() if not name.startswith("_")}

    def kind(position: int) -> str:
        code = model.operatorCodes[graph.operators[position].opcodeIndex]
        return codes[max(code.builtinCode, code.deprecatedBuiltinCode)]

    def constant(tensor: int) -> np.ndarray | None:
        spec = graph.tensors[tensor]
        data = model.buffers[spec.buffer].data
        if data is None or len(data) == 0:
            return None
        if spec.type != schema.TensorType.FLOAT32:
            return np.frombuffer(bytes(data), dtype=np.int32).reshape(spec.shape)
        return np.frombuffer(bytes(data), dtype=np.float32).reshape(spec.shape)

    producer: dict[int, int] = {}
    consumers: dict[int, list[int]] = {}
    for position, operator in enumerate(graph.operators):
        for tensor in operator.outputs:
            producer[int(tensor)] = position
        for tensor in operator.inputs:
            consumers.setdefault(int(tensor), []).append(position)

    def expect(position: int | None, wanted: str, where: str) -> int:
        if position is None or kind(position) != wanted:
            found = "nothing" if position is None else kind(position)
            raise FoldError(f"expected {wanted} {where}, found {found}")
        return position

    def only_consumer(tensor: int, wanted: str, where: str) -> int:
        users = consumers.get(tensor, [])
        if len(users) != 1:
            raise FoldError(f"expected one {wanted} {where}, found {len(users)} readers")
        return expect(users[0], wanted, where)

    chains = []
    for rfft in (position for position in range(len(graph.operators)) if kind(position) == "RFFT2D"):
        ops = graph.operators
        expand = expect(producer.get(int(ops[rfft].inputs[0])), "EXPAND_DIMS", "before RFFT2D")
        window = expect(producer.get(int(ops[expand].inputs[0])), "MUL", "before the RFFT's EXPAND_DIMS")
        first, second = (int(tensor) for tensor in ops[window].inputs)
        hann, frames = (constant(second), first) if constant(second) is not None else (constant(first), second)
        if hann is None or hann.ndim != 1:
            raise FoldError("the MUL before RFFT2D does not multiply by a constant window")
        fft_length = constant(int(ops[rfft].inputs[1]))
        if fft_length is None or list(fft_length) != [1, len(hann)]:
            raise FoldError(f"RFFT2D's length {fft_length} is not [1, {len(hann)}]")
        squeeze = only_consumer(int(ops[rfft].outputs[0]), "SQUEEZE", "after RFFT2D")
        cast = only_consumer(int(ops[squeeze].outputs[0]), "CAST", "after the RFFT's SQUEEZE")
        real = int(ops[cast].outputs[0])
        reshape = [user for user in consumers.get(real, []) if kind(user) == "RESHAPE"]
        shape_ops = [user for user in consumers.get(real, []) if kind(user) == "SHAPE"]
        if len(reshape) != 1 or len(reshape) + len(shape_ops) != len(consumers.get(real, [])):
            raise FoldError("the real part is read by something other than the Tensordot's SHAPE and RESHAPE")
        matmul = only_consumer(int(ops[reshape[0]].outputs[0]), "FULLY_CONNECTED", "in the mel Tensordot")
        weights, *bias = (int(tensor) for tensor in ops[matmul].inputs[1:])
        mel_matrix = constant(weights)
        activation = ops[matmul].builtinOptions.fusedActivationFunction
        if mel_matrix is None or any(tensor >= 0 for tensor in bias) or activation:
            raise FoldError("the mel projection is not a constant matrix without bias or activation")
        output = only_consumer(int(ops[matmul].outputs[0]), "RESHAPE", "after the mel projection")
        chain = {window, expand, rfft, squeeze, cast, reshape[0], matmul, output}
        # The Tensordot's shape arithmetic: everything that only feeds the chain's RESHAPEs.
        chain |= _feeding_only(graph, producer, consumers, [reshape[0], output], chain)
        chains.append(
            SpectrogramChain(
                frames=frames,
                mel=int(ops[output].outputs[0]),
                hann=hann,
                mel_matrix=mel_matrix,
                first_operator=window,
                operators=frozenset(chain),
            )
        )
    if not chains:
        raise FoldError("the graph has no RFFT2D: not BirdNET's spectrogram front end")
    return chains


def _feeding_only(graph, producer, consumers, roots, chain: set[int]) -> set[int]:
    """The operators whose outputs are read only by `chain` (transitively), walking back from `roots`' shape inputs."""
    found: set[int] = set()
    stack = [int(tensor) for root in roots for tensor in graph.operators[root].inputs[1:]]
    while stack:
        position = producer.get(stack.pop())
        if position is None or position in found or position in chain:
            continue
        outputs = [int(tensor) for tensor in graph.operators[position].outputs]
        if all(user in chain or user in found for tensor in outputs for user in consumers.get(tensor, [])):
            found.add(position)
            stack.extend(int(tensor) for tensor in graph.operators[position].inputs)
    return found


def fold_spectrograms(model_bytes: bytes) -> bytes:
    """The same model with each spectrogram chain replaced by one FULLY_CONNECTED of its folded matrix."""
    import flatbuffers
    from ai_edge_litert import schema_py_generated as schema

    model = schema.ModelT.InitFromPackedBuf(model_bytes, 0)
    graph = model.subgraphs[0]
    chains = find_spectrogram_chains(model)
    fully_connected = _opcode_index(model, schema.BuiltinOperator.FULLY_CONNECTED)
    replaced: dict[int, schema.OperatorT] = {}
    for chain in chains:
        buffer = schema.BufferT()
        buffer.data = np.frombuffer(folded_weight(chain.hann, chain.mel_matrix).tobytes(), dtype=np.uint8)
        model.buffers.append(buffer)
        weight = schema.TensorT()
        weight.shape = np.array([chain.mel_matrix.shape[0], len(chain.hann)], dtype=np.int32)
        weight.type = schema.TensorType.FLOAT32
        weight.buffer = len(model.buffers) - 1
        weight.name = f"folded_spectrogram_{len(chain.hann)}".encode()
        graph.tensors.append(weight)
        options = schema.FullyConnectedOptionsT()
        options.keepNumDims = True  # [B, T, L] -> [B, T, bands], as the Tensordot's RESHAPE gave
        operator = schema.OperatorT()
        operator.opcodeIndex = fully_connected
        operator.inputs = np.array([chain.frames, len(graph.tensors) - 1, -1], dtype=np.int32)
        operator.outputs = np.array([chain.mel], dtype=np.int32)
        operator.builtinOptionsType = schema.BuiltinOptions.FullyConnectedOptions
        operator.builtinOptions = options
        replaced[chain.first_operator] = operator
    removed = frozenset().union(*(chain.operators for chain in chains))
    graph.operators = [
        replaced.get(position, operator)
        for position, operator in enumerate(graph.operators)
        if position in replaced or position not in removed
    ]
    builder = flatbuffers.Builder(len(model_bytes) + 2**20)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output())


def _opcode_index(model, builtin: int) -> int:
    """The index of an operator code in the model's table, added when missing."""
    from ai_edge_litert import schema_py_generated as schema

    for index, code in enumerate(model.operatorCodes):
        if max(code.builtinCode, code.deprecatedBuiltinCode) == builtin:
            return index
    code = schema.OperatorCodeT()
    code.builtinCode = builtin
    code.deprecatedBuiltinCode = min(builtin, 127)
    code.version = 1
    model.operatorCodes.append(code)
    return len(model.operatorCodes) - 1
