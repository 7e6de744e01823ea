"""BirdNET V2.4's TFLite network run by PyTorch (CPU or GPU), translated op by op from the model file at load time.

Nothing here imports LiteRT, TensorFlow or Django: `tflite_graph` reads the file, and each operator becomes a
torch call. Activations are torch tensors on the device; 4-D ones are kept as NCHW for torch's convolutions,
while every operator keeps TFLite's NHWC meaning. The arithmetic on shapes (SHAPE, STRIDED_SLICE, PACK...)
runs once per input shape in numpy, when the plan for that shape is made; running a plan never waits on the
device. The mel spectrogram's chain (frames, Hann window, RFFT2D, real part, mel matrix) runs as one operator:
the window in float32, then one float64 matrix for the DFT's real part and the mel matrix together.
"""

from __future__ import annotations

import threading
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from inference.runtimes.tflite_graph import Graph, Operator, read_tflite

Kernel = Callable[..., torch.Tensor]
# One step of a plan: kernel, the slots (tensor indices) it reads, the slot it writes, the slots freed after it.
Step = tuple[Kernel, tuple[int, ...], int, tuple[int, ...]]

# Operators of our own, standing for chains of TFLite ones (see `_rewrite`).
MEL_FRAMES = "MEL_FRAMES"  # signal -> frames -> window -> RFFT2D -> real part -> mel matrix
SWISH = "SWISH"  # x * LOGISTIC(x)
_NCHW_DIM = {0: 0, 1: 2, 2: 3, 3: 1}  # TFLite's NHWC axis -> its dimension in NCHW


def disable_tf32() -> None:
    """Keep CUDA matmuls and convolutions in full float32: TF32 would move the logits far beyond LiteRT's."""
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False


class BirdNetTorch:
    """BirdNET's network on a torch device: windows [B, 144000] -> (logits [B, 6522], embeddings [B, 1024])."""

    def __init__(self, graph: Graph, device: str | torch.device = "cpu", *, channels_last: bool | None = None) -> None:
        """`channels_last`: keep 4-D activations and filters NHWC in memory (torch's channels_last format), which
        the CPU's convolutions run about 1.3x faster on; None = on a CPU only."""
        self.graph = graph
        self.device = torch.empty(0, device=device).device
        self.channels_last = self.device.type == "cpu" if channels_last is None else channels_last
        self.memory_format = torch.channels_last if self.channels_last else torch.contiguous_format
        if self.device.type == "cuda":
            disable_tf32()
        (self.input,) = graph.inputs
        self.window_samples = graph.tensors[self.input].shape[1]
        self.logits = graph.outputs[0]
        self.embeddings = next(op.inputs[0] for op in graph.operators if self.logits in op.outputs)
        self.operators = _needed(_rewrite(graph), (self.logits, self.embeddings))
        self._constants: dict[tuple[int, str], torch.Tensor] = {}
        self._plans: dict[tuple[int, ...], _Plan] = {}
        self._lock = threading.Lock()

    @classmethod
    def from_file(
        cls, path: str | Path, device: str | torch.device = "cpu", *, channels_last: bool | None = None
    ) -> BirdNetTorch:
        """The network of a BirdNET .tflite file (BirdNET_GLOBAL_6K_V2.4_Model_FP32.tflite) on `device`."""
        return cls(read_tflite(Path(path).read_bytes()), device, channels_last=channels_last)

    def __call__(self, batch: torch.Tensor | np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        """Windows [B, 144000] float32 -> (logits [B, 6522], embeddings [B, 1024]), on this network's device."""
        batch = torch.as_tensor(batch, dtype=torch.float32, device=self.device)
        if batch.ndim != 2 or batch.shape[1] != self.window_samples:
            raise ValueError(
                f"BirdNET takes windows as [batch, {self.window_samples}] samples; got {tuple(batch.shape)}"
            )
        if len(batch) == 0:
            sizes = (self.graph.tensors[index].shape[-1] for index in (self.logits, self.embeddings))
            return tuple(batch.new_zeros((0, size)) for size in sizes)
        with torch.inference_mode():
            plan = self._plans.get(tuple(batch.shape))
            if plan is not None:
                return plan.run(batch)
            with self._lock:
                planner = _Planner(self, batch)
                self._plans[tuple(batch.shape)] = planner.plan
            return planner.outputs

    def constant(self, index: int, form: str, array: np.ndarray) -> torch.Tensor:
        """`array` (the value of tensor `index`) laid out for torch as `form` ("tf", "nchw", "conv",
        "depthwise") on the device; kept when the value comes from the model file."""
        key = (index, form)
        if key in self._constants:
            return self._constants[key]
        if form == "nchw":  # broadcast like TFLite's NHWC operand, then move channels to dimension 1
            if array.ndim > 4:
                raise ValueError(f"tensor {self.graph.tensors[index].name!r} has more than 4 dimensions")
            array = array.reshape((1,) * (4 - array.ndim) + array.shape).transpose(0, 3, 1, 2)
        elif form == "conv":  # [out, kh, kw, in] -> [out, in, kh, kw]
            array = array.transpose(0, 3, 1, 2)
        elif form == "depthwise":  # [1, kh, kw, channels] -> [channels, 1, kh, kw]
            array = array.transpose(3, 0, 1, 2)
        tensor = torch.from_numpy(np.ascontiguousarray(array).copy()).to(self.device)
        if form in ("conv", "depthwise"):
            tensor = tensor.contiguous(memory_format=self.memory_format)
        if self.graph.tensors[index].data is not None:
            self._constants[key] = tensor
        return tensor


@dataclass(frozen=True)
class _Live:
    """A run-time value while a plan is made: its tensor, and whether that is the NCHW copy of a 4-D NHWC one."""

    tensor: torch.Tensor
    nchw: bool = False

    @property
    def shape(self) -> tuple[int, ...]:
        """The shape TFLite sees."""
        shape = tuple(self.tensor.shape)
        return (shape[0], shape[2], shape[3], shape[1]) if self.nchw else shape


@dataclass(frozen=True)
class _Plan:
    """The kernels of one input shape, in order, with all shape arithmetic already done."""

    steps: tuple[Step, ...]
    size: int
    input: int
    outputs: tuple[int, int]

    def run(self, batch: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        slots: list[torch.Tensor | None] = [None] * self.size
        slots[self.input] = batch
        for kernel, reads, writes, frees in self.steps:
            slots[writes] = kernel(*[slots[index] for index in reads])
            for index in frees:
                slots[index] = None
        return slots[self.outputs[0]], slots[self.outputs[1]]


def _needed(operators: list[Operator], outputs: tuple[int, ...]) -> tuple[Operator, ...]:
    """The operators that the outputs depend on, in their order."""
    wanted, kept = set(outputs), []
    for op in reversed(operators):
        if wanted.intersection(op.outputs):
            kept.append(op)
            wanted.update(index for index in op.inputs if index >= 0)
    return tuple(reversed(kept))


class _Planner:
    """Runs the network once on a batch, operator by operator, recording the kernels as a `_Plan`."""

    def __init__(self, net: BirdNetTorch, batch: torch.Tensor) -> None:
        self.net = net
        self.tensors = net.graph.tensors
        self.values: dict[int, np.ndarray | _Live] = {net.input: _Live(batch)}
        steps: list[tuple[Kernel, tuple[int, ...], int]] = []
        last_read = {index: position for position, op in enumerate(net.operators) for index in op.inputs}
        for position, op in enumerate(net.operators):
            if op.kind == "SHAPE" or all(not isinstance(self.value(i), _Live) for i in op.inputs if i >= 0):
                for index, array in zip(op.outputs, self._fold(op), strict=True):
                    self.values[index] = np.asarray(array, dtype=self.tensors[index].dtype)
            else:
                steps.append(self._lower(op))
            for index in op.inputs:  # free activations once read for the last time
                if last_read.get(index) == position and index not in (net.input, net.logits, net.embeddings):
                    self.values.pop(index, None)
        self.outputs = (self._tf_output(net.logits), self._tf_output(net.embeddings))
        self.plan = _Plan(_with_frees(steps, net), len(self.tensors), net.input, (net.logits, net.embeddings))

    def _tf_output(self, index: int) -> torch.Tensor:
        value = self.live(index, "an output")
        if value.nchw:
            raise ValueError(f"the output {self.tensors[index].name!r} is 4-D; BirdNET's outputs are 2-D")
        return value.tensor

    def value(self, index: int) -> np.ndarray | _Live:
        if index not in self.values:
            tensor = self.tensors[index]
            if tensor.data is not None:
                self.values[index] = tensor.data
            elif 0 in tensor.shape:  # an empty tensor needs no buffer
                self.values[index] = np.zeros(tensor.shape, tensor.dtype)
            else:
                raise ValueError(f"tensor {index} ({tensor.name!r}) is read before any operator writes it")
        return self.values[index]

    def static(self, index: int, what: str) -> np.ndarray:
        value = self.value(index)
        if isinstance(value, _Live):
            raise ValueError(f"{what} (tensor {self.tensors[index].name!r}) must be known before the run")
        return value

    def live(self, index: int, what: str) -> _Live:
        value = self.value(index)
        if not isinstance(value, _Live):
            raise ValueError(f"{what} (tensor {self.tensors[index].name!r}) is expected to be a run-time value")
        return value

    def _fold(self, op: Operator) -> list[np.ndarray]:
        if op.kind == "SHAPE":
            value = self.value(op.inputs[0])
            return [np.array(value.shape, dtype=op.options["out_type"])]
        if op.options.get("fused_activation", "NONE") != "NONE":
            raise ValueError(f"{op.kind} with a fused activation on values known before the run is not supported")
        fold = _FOLDS.get(op.kind)
        if fold is None:
            raise ValueError(f"{op.kind} on values known before the run is not supported")
        return fold(op, *[self.value(index) if index >= 0 else None for index in op.inputs])

    def _lower(self, op: Operator) -> tuple[Kernel, tuple[int, ...], int]:
        lowering = _LOWERINGS.get(op.kind)
        if lowering is None:
            raise ValueError(f"the TFLite operator {op.kind} is not translated to torch")
        if len(op.outputs) != 1:
            raise ValueError(f"{op.kind} with {len(op.outputs)} outputs on run-time values is not supported")
        kernel, reads, nchw = lowering(self, op)
        activation = _ACTIVATIONS.get(op.options.get("fused_activation", "NONE"), ())
        if activation == ():
            raise ValueError(f"{op.kind} has the fused activation {op.options['fused_activation']}, not supported")
        if activation is not None:
            kernel = _then(kernel, activation)
        output = kernel(*[self.values[index].tensor for index in reads])
        self.values[op.outputs[0]] = _Live(output, nchw)
        return kernel, reads, op.outputs[0]

    def constant(self, index: int, form: str = "tf") -> torch.Tensor:
        return self.net.constant(index, form, self.static(index, "a constant operand"))

    def operands(self, indices: tuple[int, ...], nchw: bool) -> tuple[tuple[int, ...], Callable]:
        """(the run-time inputs among `indices`, a function of their tensors giving every operand in `nchw` or
        TFLite layout): the constants are laid out once, here."""
        reads, parts = [], []
        for index in indices:
            value = self.value(index)
            if isinstance(value, _Live):
                parts.append((len(reads), _converter(value, nchw)))
                reads.append(index)
            else:
                parts.append((None, self.constant(index, "nchw" if nchw else "tf")))
        return tuple(reads), lambda tensors: [part if at is None else part(tensors[at]) for at, part in parts]

    def tf_input(self, op: Operator) -> tuple[_Live, Callable[[torch.Tensor], torch.Tensor]]:
        """The first input, and the function giving TFLite's view of its tensor."""
        value = self.live(op.inputs[0], f"the input of {op.kind}")
        return value, _converter(value, False)


def _with_frees(steps: list[tuple[Kernel, tuple[int, ...], int]], net: BirdNetTorch) -> tuple[Step, ...]:
    """Each step with the slots that no later step reads, so a plan holds only the activations still needed."""
    last_read: dict[int, int] = {}
    for position, (_, reads, writes) in enumerate(steps):
        last_read[writes] = position  # a value nobody reads is freed at once
        for index in reads:
            last_read[index] = position
    kept = {net.input, net.logits, net.embeddings}
    frees = defaultdict(list)
    for index, position in last_read.items():
        if index not in kept:
            frees[position].append(index)
    return tuple((kernel, reads, writes, tuple(frees[p])) for p, (kernel, reads, writes) in enumerate(steps))


def _converter(value: _Live, nchw: bool) -> Callable[[torch.Tensor], torch.Tensor]:
    """The function giving `value`'s tensor in NCHW (nchw=True) or in TFLite's layout."""
    if value.nchw == nchw:
        return _identity
    if not nchw:
        return _to_nhwc
    rank = len(value.shape)
    if rank > 4:
        raise ValueError(f"a {rank}-D operand cannot meet a 4-D activation")
    ones = (1,) * (4 - rank)
    return lambda tensor: tensor.reshape(ones + tuple(tensor.shape)).permute(0, 3, 1, 2)


def _identity(tensor: torch.Tensor) -> torch.Tensor:
    return tensor


def _to_nhwc(tensor: torch.Tensor) -> torch.Tensor:
    return tensor.permute(0, 2, 3, 1)


def _then(kernel: Kernel, activation: Callable[[torch.Tensor], torch.Tensor]) -> Kernel:
    return lambda *tensors: activation(kernel(*tensors))


_ACTIVATIONS: dict[str, Callable[[torch.Tensor], torch.Tensor] | None] = {
    "NONE": None,
    "RELU": torch.relu_,  # in place: every operator with a fused activation returns a new tensor
    "RELU6": lambda tensor: tensor.clamp_(0.0, 6.0),
    "RELU_N1_TO_1": lambda tensor: tensor.clamp_(-1.0, 1.0),
    "TANH": torch.tanh_,
}


# --- rewrites of the graph: the same arithmetic in fewer, larger torch calls ----------------------------------


def _rewrite(graph: Graph) -> list[Operator]:
    """The graph's operators, with the chains that torch runs better as one call replaced."""
    operators = _fold_spectrograms(graph)
    operators = _fold_pads(graph, operators)
    return _fold_swish(operators)


def _readers(operators: list[Operator]) -> dict[int, list[Operator]]:
    readers: dict[int, list[Operator]] = defaultdict(list)
    for op in operators:
        for index in op.inputs:
            readers[index].append(op)
    return readers


def _fold_spectrograms(graph: Graph) -> list[Operator]:
    """The operators with each framed, windowed RFFT2D and its mel matrix replaced by one MEL_FRAMES operator."""
    operators = list(graph.operators)
    producer = {index: op for op in operators for index in op.outputs}
    readers = _readers(operators)
    for rfft in [op for op in operators if op.kind == "RFFT2D"]:
        chain, folded = _spectrogram(graph, rfft, producer, readers)
        operators = [folded if op is chain[-1] else op for op in operators if not any(op is c for c in chain[:-1])]
    return operators


def _fold_pads(graph: Graph, operators: list[Operator]) -> list[Operator]:
    """A PAD of H and W read only by a VALID convolution becomes that convolution's own (explicit) padding."""
    readers, replaced = _readers(operators), {}
    for pad in (op for op in operators if op.kind == "PAD"):
        paddings = graph.tensors[pad.inputs[1]].data
        users = readers[pad.outputs[0]]
        if paddings is None or paddings.shape != (4, 2) or paddings[[0, 3]].any() or len(users) != 1:
            continue
        (conv,) = users
        if conv.kind in ("CONV_2D", "DEPTHWISE_CONV_2D") and conv.inputs[0] == pad.outputs[0]:
            if conv.options["padding"] == "VALID" and pad.outputs[0] not in graph.outputs:
                (top, bottom), (left, right) = paddings[1].tolist(), paddings[2].tolist()
                options = {**conv.options, "padding": "EXPLICIT", "explicit_padding": (left, right, top, bottom)}
                replaced[id(pad)] = None
                replaced[id(conv)] = Operator(conv.kind, (pad.inputs[0], *conv.inputs[1:]), conv.outputs, options)
    return [replaced.get(id(op), op) for op in operators if replaced.get(id(op), op) is not None]


def _fold_swish(operators: list[Operator]) -> list[Operator]:
    """MUL(x, LOGISTIC(x)), with LOGISTIC(x) read by nothing else, becomes one SWISH: torch's silu, one pass over
    memory instead of three, and within one float32 rounding of the product."""
    readers, replaced = _readers(operators), {}
    for logistic in (op for op in operators if op.kind == "LOGISTIC"):
        users = readers[logistic.outputs[0]]
        if len(users) != 1 or users[0].kind != "MUL" or users[0].options["fused_activation"] != "NONE":
            continue
        (mul,) = users
        if sorted(mul.inputs) == sorted((logistic.inputs[0], logistic.outputs[0])):
            replaced[id(logistic)] = None
            replaced[id(mul)] = Operator(SWISH, (logistic.inputs[0],), mul.outputs, {})
    return [replaced.get(id(op), op) for op in operators if replaced.get(id(op), op) is not None]


def _spectrogram(graph: Graph, rfft: Operator, producer: dict, readers: dict) -> tuple[list[Operator], Operator]:
    """The chain signal -> subframes -> GATHER frames -> window MUL -> RFFT2D -> real part -> mel FULLY_CONNECTED
    around `rfft`, and the MEL_FRAMES operator replacing it."""
    name = graph.tensors[rfft.outputs[0]].name

    def refuse(problem: str) -> ValueError:
        return ValueError(f"the RFFT2D writing {name!r} is not BirdNET's mel spectrogram: {problem}")

    def made_by(index: int, kind: str) -> Operator:
        op = producer.get(index)
        if op is None or op.kind != kind:
            raise refuse(f"{graph.tensors[index].name!r} does not come from {kind}")
        return op

    def read_by(index: int, kind: str) -> Operator:
        ops = [op for op in readers[index] if op.kind != "SHAPE"]
        if len(ops) != 1 or ops[0].kind != kind:
            raise refuse(f"{graph.tensors[index].name!r} is not read by one {kind} alone")
        return ops[0]

    expand = made_by(rfft.inputs[0], "EXPAND_DIMS")
    windowing = made_by(expand.inputs[0], "MUL")
    window_index, frames_index = sorted(windowing.inputs, key=lambda index: graph.tensors[index].data is None)
    window = graph.tensors[window_index].data
    frames = made_by(frames_index, "RESHAPE")
    gather = made_by(frames.inputs[0], "GATHER")
    subframes = made_by(gather.inputs[0], "RESHAPE")
    squeeze = read_by(rfft.outputs[0], "SQUEEZE")
    real = read_by(squeeze.outputs[0], "CAST")
    flat = read_by(real.outputs[0], "RESHAPE")
    dense = read_by(flat.outputs[0], "FULLY_CONNECTED")
    mel = read_by(dense.outputs[0], "RESHAPE")
    chain = [subframes, gather, frames, windowing, expand, rfft, squeeze, real, flat, dense, mel]
    for op in chain[:-1]:
        if any(not any(r is c for c in chain) and r.kind != "SHAPE" for r in readers[op.outputs[0]]):
            raise refuse(f"{graph.tensors[op.outputs[0]].name!r} is also read outside the spectrogram")
    if window is None or window.ndim != 1 or graph.tensors[frames_index].data is not None:
        raise refuse("the frames are not multiplied by a constant window")
    length = window.size
    fft_length = graph.tensors[rfft.inputs[1]].data
    mel_matrix = graph.tensors[dense.inputs[1]].data
    if fft_length is None or tuple(fft_length.tolist()) != (1, length):
        raise refuse(f"its FFT length is not (1, {length}), the window's")
    if mel_matrix is None or mel_matrix.ndim != 2 or mel_matrix.shape[1] != length // 2 + 1:
        raise refuse(f"the FULLY_CONNECTED's weights are not a constant [mels, {length // 2 + 1}] matrix")
    if (len(dense.inputs) > 2 and dense.inputs[2] >= 0) or dense.options["fused_activation"] != "NONE":
        raise refuse("the FULLY_CONNECTED has a bias or an activation")
    if gather.options["axis"] != 1 or gather.options["batch_dims"] != 0 or len(subframes.inputs) < 2:
        raise refuse("the frames are not gathered along axis 1 of a reshaped signal")
    if length % 2:
        raise refuse(f"its frames have an odd length, {length}")
    inputs = (subframes.inputs[0], subframes.inputs[1], gather.inputs[1])
    options = {"window": window, "matrix": _dft_to_mel(mel_matrix, length)}
    return chain, Operator(MEL_FRAMES, inputs, mel.outputs, options)


def _dft_to_mel(mel_matrix: np.ndarray, length: int) -> np.ndarray:
    """[mels, L/2 + 1] float64: the mel matrix times the real part of the DFT, over samples 0..L/2 of the frame.

    The real part of the DFT is cos(2 pi k n / L), the same at n and L - n, so a frame's two halves can be added
    before the product.
    """
    bins, samples = np.arange(length // 2 + 1)[:, None], np.arange(length // 2 + 1)[None, :]
    cosines = np.cos(2 * np.pi * ((bins * samples) % length) / length)  # the modulo keeps the angle exact
    return mel_matrix.astype(np.float64) @ cosines


def _lower_mel_frames(p: _Planner, op: Operator) -> tuple[Kernel, tuple[int, ...], bool]:
    """Frames of the signal, times the window in float32 as TFLite does, then the DFT and mel matrix in float64.

    The float64 product matters: in a zero-padded tail the frames are constant, and the mel values there are
    TFLite's float32 rounding of the windowed frame (about 1e-9) raised to the power 0.46 by the spectrogram's
    x * x and POW. Reproducing them needs that rounding (hence the float32 window) and nothing coarser after it;
    a float32 product leaves about 1e-7 and moves such a window's logits by 1e-2.
    """
    signal, _ = p.tf_input(op)
    subframe = int(p.static(op.inputs[1], "the subframe shape of the spectrogram").ravel()[-1])
    indices = p.static(op.inputs[2], "the frame indices of the spectrogram")
    window = torch.from_numpy(op.options["window"].copy()).to(p.net.device)
    matrix = torch.from_numpy(op.options["matrix"]).to(p.net.device)
    count, per_frame = indices.shape
    length, half = window.numel(), window.numel() // 2
    step = int(indices[1, 0] - indices[0, 0]) if count > 1 else 1
    framing = step * np.arange(count)[:, None] + np.arange(per_frame)[None, :]
    if len(signal.shape) != 2 or not np.array_equal(indices, framing) or per_frame * subframe != length:
        raise ValueError(
            "the spectrogram's GATHER does not cut frames of a [batch, samples] signal the way "
            "tf.signal.frame does, so it cannot be folded"
        )
    hop = step * subframe
    if (signal.shape[1] - length) // hop + 1 < count:
        raise ValueError(f"the signal of {signal.shape[1]} samples holds fewer than {count} frames")
    # Windows per pass: the float64 frames of a pass stay small (on a CPU, below glibc's mmap threshold).
    budget = 2**24 if p.net.device.type == "cpu" else 2**30
    windows = max(1, budget // (count * length * 12))

    first, second = window[: half + 1], window[half + 1 :]

    def kernel(tensor: torch.Tensor) -> torch.Tensor:
        parts = []
        for chunk in tensor.split(windows):
            frames = chunk.unfold(1, length, hop)[:, :count]
            folded = (frames[..., : half + 1] * first).double()  # each half times its part of the window
            folded[..., 1:half] += (frames[..., half + 1 :] * second).flip(-1)  # sample L - n onto sample n
            parts.append((folded @ matrix.T).float())
        return torch.cat(parts) if len(parts) > 1 else parts[0]

    return kernel, (op.inputs[0],), False


# --- the operators -------------------------------------------------------------------------------------------


def _axes(axis: np.ndarray, rank: int) -> tuple[int, ...]:
    return tuple(sorted({int(a) % rank for a in np.ravel(axis)}))


def _strided_slice_index(shape: tuple[int, ...], begin, end, strides, options: dict) -> tuple:
    """STRIDED_SLICE's arguments as a Python index (TFLite's clamping and negative indices are Python's)."""
    begin, end, strides = (np.ravel(v).tolist() for v in (begin, end, strides))
    if options["offset"]:
        end = [b + e for b, e in zip(begin, end, strict=True)]
    index: list = []
    dim = 0
    for i, (b, e, s) in enumerate(zip(begin, end, strides, strict=True)):
        bit = 1 << i
        if options["ellipsis_mask"] & bit:
            later = sum(1 for j in range(i + 1, len(begin)) if not options["new_axis_mask"] & (1 << j))
            index.append(Ellipsis)
            dim = len(shape) - later
        elif options["new_axis_mask"] & bit:
            index.append(None)
        elif options["shrink_axis_mask"] & bit:
            index.append(b + shape[dim] if b < 0 else b)
            dim += 1
        else:
            first = None if options["begin_mask"] & bit else b
            last = None if options["end_mask"] & bit else e
            index.append(slice(first, last, s))
            dim += 1
    return tuple(index)


def _reshape_target(op: Operator, shape: np.ndarray | None) -> tuple[int, ...]:
    return tuple(int(v) for v in np.ravel(shape)) if shape is not None else tuple(op.options["new_shape"])


def _split_v(op: Operator, value: np.ndarray, sizes: np.ndarray, axis: np.ndarray) -> list[np.ndarray]:
    axis = int(axis) % value.ndim
    sizes = [int(s) for s in np.ravel(sizes)]
    if -1 in sizes:
        sizes[sizes.index(-1)] = value.shape[axis] - (sum(sizes) + 1)
    return np.split(value, np.cumsum(sizes)[:-1], axis=axis)


def _squeeze_dims(op: Operator, shape: tuple[int, ...]) -> tuple[int, ...]:
    dims = op.options["squeeze_dims"]
    return _axes(dims, len(shape)) if dims else tuple(d for d, size in enumerate(shape) if size == 1)


def _expand_axis(axis: np.ndarray, rank: int) -> int:
    axis = int(np.ravel(axis)[0])
    return axis if axis >= 0 else axis + rank + 1


def _folded_reduction(reduce: Callable) -> Callable[..., list[np.ndarray]]:
    return lambda op, a, axes: [reduce(a, _axes(axes, a.ndim), keepdims=op.options["keep_dims"])]


# Shape arithmetic: operators whose inputs are all known before the run, in numpy. Each gives its outputs.
_FOLDS: dict[str, Callable[..., list[np.ndarray]]] = {
    "ADD": lambda op, a, b: [a + b],
    "SUB": lambda op, a, b: [a - b],
    "MUL": lambda op, a, b: [a * b],
    "DIV": lambda op, a, b: [np.true_divide(a, b)],  # an integer DIV truncates, as the store casts
    "FLOOR_DIV": lambda op, a, b: [np.floor_divide(a, b)],
    "MAXIMUM": lambda op, a, b: [np.maximum(a, b)],
    "MINIMUM": lambda op, a, b: [np.minimum(a, b)],
    "POW": lambda op, a, b: [np.power(a, b)],
    "RESHAPE": lambda op, a, shape=None: [np.reshape(a, _reshape_target(op, shape))],
    "PACK": lambda op, *values: [np.stack(values, axis=op.options["axis"])],
    "CONCATENATION": lambda op, *values: [np.concatenate(values, axis=op.options["axis"])],
    "STRIDED_SLICE": lambda op, a, *args: [a[_strided_slice_index(a.shape, *args, op.options)]],
    "GATHER": lambda op, a, indices: [np.take(a, indices, axis=op.options["axis"])],
    "RANGE": lambda op, start, limit, delta: [np.arange(start, limit, delta)],
    "SPLIT_V": _split_v,
    "EXPAND_DIMS": lambda op, a, axis: [np.expand_dims(a, _expand_axis(axis, a.ndim))],
    "SQUEEZE": lambda op, a: [np.squeeze(a, _squeeze_dims(op, a.shape))],
    "TRANSPOSE": lambda op, a, perm: [np.transpose(a, np.ravel(perm))],
    "REVERSE_V2": lambda op, a, axes: [np.flip(a, _axes(axes, a.ndim))],
    "CAST": lambda op, a: [np.real(a) if np.iscomplexobj(a) else a],
    "SUM": _folded_reduction(np.sum),
    "MEAN": _folded_reduction(np.mean),
    "REDUCE_PROD": _folded_reduction(np.prod),
    "REDUCE_MAX": _folded_reduction(np.max),
    "REDUCE_MIN": _folded_reduction(np.min),
}

# Run-time operators: each lowering gives (kernel, the tensors it reads, whether its output is NCHW).
Lowering = Callable[[_Planner, Operator], tuple[Kernel, tuple[int, ...], bool]]


def _elementwise(function: Callable[..., torch.Tensor]) -> Lowering:
    def lower(p: _Planner, op: Operator) -> tuple[Kernel, tuple[int, ...], bool]:
        nchw = any(isinstance(value := p.value(index), _Live) and value.nchw for index in op.inputs)
        reads, operands = p.operands(op.inputs, nchw)
        return (lambda *tensors: function(*operands(tensors))), reads, nchw

    return lower


def _unary(function: Callable[[torch.Tensor], torch.Tensor]) -> Lowering:
    return lambda p, op: (function, (op.inputs[0],), p.live(op.inputs[0], f"the input of {op.kind}").nchw)


def _prod(tensor: torch.Tensor, dims: tuple[int, ...], keepdim: bool) -> torch.Tensor:
    for dim in sorted(dims, reverse=True):
        tensor = torch.prod(tensor, dim, keepdim=keepdim)
    return tensor


def _reduction(reduce: Callable[..., torch.Tensor]) -> Lowering:
    def lower(p: _Planner, op: Operator) -> tuple[Kernel, tuple[int, ...], bool]:
        value, tf = p.tf_input(op)
        axes = _axes(p.static(op.inputs[1], f"the axes of {op.kind}"), len(value.shape))
        keep = op.options["keep_dims"]
        if not axes:
            return _identity, (op.inputs[0],), value.nchw
        if value.nchw:  # reduce the NCHW tensor itself where the result has TFLite's order
            dims = tuple(_NCHW_DIM[axis] for axis in axes)
            if keep or [d for d in range(4) if d not in axes] == [d for d in (0, 3, 1, 2) if d not in axes]:
                return (lambda tensor: reduce(tensor, dims, keepdim=keep)), (op.inputs[0],), keep
        return (lambda tensor: reduce(tf(tensor), axes, keepdim=keep)), (op.inputs[0],), False

    return lower


def _same_padding(size: int, kernel: int, stride: int, dilation: int) -> tuple[int, int]:
    """TensorFlow's SAME padding of one dimension: (before, after), the odd cell after."""
    span = (kernel - 1) * dilation + 1
    total = max((-(-size // stride) - 1) * stride + span - size, 0)
    return total // 2, total - total // 2


def _padding(op: Operator, shape: tuple[int, ...], kernel: tuple[int, int], dilation=(1, 1)) -> tuple[int, ...]:
    """F.pad's (left, right, top, bottom) for an NHWC `shape` under the operator's padding."""
    if op.options["padding"] == "VALID":
        return (0, 0, 0, 0)
    if op.options["padding"] == "EXPLICIT":  # a PAD folded in
        return op.options["explicit_padding"]
    top, bottom = _same_padding(shape[1], kernel[0], op.options["stride_h"], dilation[0])
    left, right = _same_padding(shape[2], kernel[1], op.options["stride_w"], dilation[1])
    return (left, right, top, bottom)


def _lower_convolution(p: _Planner, op: Operator) -> tuple[Kernel, tuple[int, ...], bool]:
    value = p.live(op.inputs[0], f"the input of {op.kind}")
    if len(value.shape) != 4:
        raise ValueError(f"{op.kind} takes a 4-D input; got {value.shape}")
    to_nchw, memory_format = _converter(value, True), p.net.memory_format
    channels = value.shape[3]
    filters = p.static(op.inputs[1], f"the filter of {op.kind}")
    if op.kind == "DEPTHWISE_CONV_2D":  # [1, kh, kw, channels x multiplier]
        _, kh, kw, out = filters.shape
        groups, weight = channels, p.constant(op.inputs[1], "depthwise")
    else:  # [out, kh, kw, in / groups]
        out, kh, kw, per_group = filters.shape
        groups, weight = channels // per_group, p.constant(op.inputs[1], "conv")
    if out % groups or channels % groups:
        raise ValueError(f"{op.kind}: a filter of shape {filters.shape} does not fit {channels} input channels")
    bias = p.constant(op.inputs[2]) if len(op.inputs) > 2 and op.inputs[2] >= 0 else None
    stride = (op.options["stride_h"], op.options["stride_w"])
    dilation = (op.options["dilation_h"], op.options["dilation_w"])
    left, right, top, bottom = pads = _padding(op, value.shape, (kh, kw), dilation)
    if left == right and top == bottom:  # symmetric: the convolution pads

        def kernel(tensor: torch.Tensor) -> torch.Tensor:
            inputs = to_nchw(tensor).contiguous(memory_format=memory_format)
            return F.conv2d(inputs, weight, bias, stride, (top, left), dilation, groups)

    else:

        def kernel(tensor: torch.Tensor) -> torch.Tensor:
            inputs = F.pad(to_nchw(tensor), pads).contiguous(memory_format=memory_format)
            return F.conv2d(inputs, weight, bias, stride, 0, dilation, groups)

    return kernel, (op.inputs[0],), True


def _lower_pool(p: _Planner, op: Operator) -> tuple[Kernel, tuple[int, ...], bool]:
    value = p.live(op.inputs[0], f"the input of {op.kind}")
    nchw = _converter(value, True)
    size, stride = (op.options["filter_h"], op.options["filter_w"]), (op.options["stride_h"], op.options["stride_w"])
    pads = _padding(op, value.shape, size)
    if not any(pads):
        pool = F.max_pool2d if op.kind == "MAX_POOL_2D" else F.avg_pool2d
        return (lambda tensor: pool(nchw(tensor), size, stride)), (op.inputs[0],), True
    if op.kind == "MAX_POOL_2D":
        return (lambda t: F.max_pool2d(F.pad(nchw(t), pads, value=-np.inf), size, stride)), (op.inputs[0],), True
    # TensorFlow's average leaves the padding out: the sum over each window over the count of real cells in it.
    ones = torch.ones((1, 1, value.shape[1], value.shape[2]), device=p.net.device)
    cells = F.avg_pool2d(F.pad(ones, pads), size, stride, divisor_override=1)
    return (
        (lambda tensor: F.avg_pool2d(F.pad(nchw(tensor), pads), size, stride, divisor_override=1) / cells),
        (op.inputs[0],),
        True,
    )


def _lower_fully_connected(p: _Planner, op: Operator) -> tuple[Kernel, tuple[int, ...], bool]:
    _, tf = p.tf_input(op)
    if op.options["weights_format"] != 0:
        raise ValueError("FULLY_CONNECTED with shuffled (non-default) weights is not supported")
    weight = p.constant(op.inputs[1])
    bias = p.constant(op.inputs[2]) if len(op.inputs) > 2 and op.inputs[2] >= 0 else None
    if op.options["keep_num_dims"]:
        return (lambda tensor: F.linear(tf(tensor), weight, bias)), (op.inputs[0],), False
    features = weight.shape[1]
    return (lambda tensor: F.linear(tf(tensor).reshape(-1, features), weight, bias)), (op.inputs[0],), False


def _lower_concatenation(p: _Planner, op: Operator) -> tuple[Kernel, tuple[int, ...], bool]:
    rank = len(p.value(op.inputs[0]).shape)
    axis = op.options["axis"] % rank
    nchw = rank == 4  # the convolutions that follow want NCHW
    reads, operands = p.operands(op.inputs, nchw)
    dim = _NCHW_DIM[axis] if nchw else axis
    return (lambda *tensors: torch.cat(operands(tensors), dim)), reads, nchw


def _lower_pad(p: _Planner, op: Operator) -> tuple[Kernel, tuple[int, ...], bool]:
    value = p.live(op.inputs[0], "the input of PAD")
    paddings = p.static(op.inputs[1], "PAD's paddings").reshape(-1, 2)
    if value.nchw:
        paddings = paddings[[0, 3, 1, 2]]
    pads = tuple(int(v) for row in paddings[::-1] for v in row)  # F.pad starts from the last dimension
    return (lambda tensor: F.pad(tensor, pads)), (op.inputs[0],), value.nchw


def _lower_reshape(p: _Planner, op: Operator) -> tuple[Kernel, tuple[int, ...], bool]:
    _, tf = p.tf_input(op)
    given = len(op.inputs) > 1 and op.inputs[1] >= 0
    shape = _reshape_target(op, p.static(op.inputs[1], "RESHAPE's shape") if given else None)
    return (lambda tensor: tf(tensor).reshape(shape)), (op.inputs[0],), False


def _lower_strided_slice(p: _Planner, op: Operator) -> tuple[Kernel, tuple[int, ...], bool]:
    value, tf = p.tf_input(op)
    begin, end, strides = (p.static(index, "STRIDED_SLICE's bounds") for index in op.inputs[1:4])
    index = _strided_slice_index(value.shape, begin, end, strides, op.options)
    if any(isinstance(part, slice) and part.step < 0 for part in index):
        raise ValueError("STRIDED_SLICE with a negative stride on a run-time tensor is not supported")
    return (lambda tensor: tf(tensor)[index]), (op.inputs[0],), False


def _lower_gather(p: _Planner, op: Operator) -> tuple[Kernel, tuple[int, ...], bool]:
    value, tf = p.tf_input(op)
    indices = p.static(op.inputs[1], "GATHER's indices")
    if op.options["batch_dims"]:
        raise ValueError("GATHER with batch_dims on a run-time tensor is not supported")
    axis = op.options["axis"] % len(value.shape)
    flat = torch.from_numpy(indices.astype(np.int64).ravel()).to(p.net.device)
    shape = value.shape[:axis] + indices.shape + value.shape[axis + 1 :]
    return (lambda tensor: torch.index_select(tf(tensor), axis, flat).reshape(shape)), (op.inputs[0],), False


def _lower_transpose(p: _Planner, op: Operator) -> tuple[Kernel, tuple[int, ...], bool]:
    _, tf = p.tf_input(op)
    perm = tuple(int(v) for v in np.ravel(p.static(op.inputs[1], "TRANSPOSE's permutation")))
    return (lambda tensor: tf(tensor).permute(perm)), (op.inputs[0],), False


def _lower_expand_dims(p: _Planner, op: Operator) -> tuple[Kernel, tuple[int, ...], bool]:
    value, tf = p.tf_input(op)
    axis = _expand_axis(p.static(op.inputs[1], "EXPAND_DIMS's axis"), len(value.shape))
    return (lambda tensor: tf(tensor).unsqueeze(axis)), (op.inputs[0],), False


def _lower_squeeze(p: _Planner, op: Operator) -> tuple[Kernel, tuple[int, ...], bool]:
    value, tf = p.tf_input(op)
    dims = _squeeze_dims(op, value.shape)
    return (lambda tensor: tf(tensor).squeeze(dims)), (op.inputs[0],), False


def _lower_reverse(p: _Planner, op: Operator) -> tuple[Kernel, tuple[int, ...], bool]:
    value, tf = p.tf_input(op)
    axes = _axes(p.static(op.inputs[1], "REVERSE_V2's axes"), len(value.shape))
    return (lambda tensor: torch.flip(tf(tensor), axes)), (op.inputs[0],), False


def _lower_cast(p: _Planner, op: Operator) -> tuple[Kernel, tuple[int, ...], bool]:
    value, tf = p.tf_input(op)
    dtype = torch.from_numpy(np.empty(0, p.tensors[op.outputs[0]].dtype)).dtype
    if value.tensor.is_complex() and not dtype.is_complex:  # TensorFlow's cast keeps the real part
        return (lambda tensor: torch.real(tf(tensor)).to(dtype)), (op.inputs[0],), False
    return (lambda tensor: tf(tensor).to(dtype)), (op.inputs[0],), False


def _lower_rfft2d(p: _Planner, op: Operator) -> tuple[Kernel, tuple[int, ...], bool]:
    _, tf = p.tf_input(op)
    size = tuple(int(v) for v in p.static(op.inputs[1], "RFFT2D's FFT length"))
    # TFLite's RFFT2D rounds an exact (float64) transform: a float32 FFT's error, raised to the power 0.46 by
    # BirdNET's spectrogram, moves the logits of a window with silence in it by up to 5e-2.
    return (lambda t: torch.fft.rfft2(tf(t).double(), s=size).to(torch.complex64)), (op.inputs[0],), False


_LOWERINGS: dict[str, Lowering] = {
    "ADD": _elementwise(torch.add),
    "SUB": _elementwise(torch.sub),
    "MUL": _elementwise(torch.mul),
    "DIV": _elementwise(torch.div),
    "FLOOR_DIV": _elementwise(torch.floor_divide),
    "MAXIMUM": _elementwise(torch.maximum),
    "MINIMUM": _elementwise(torch.minimum),
    "POW": _elementwise(torch.pow),
    "LOGISTIC": _unary(torch.sigmoid),
    SWISH: _unary(F.silu),
    "RELU": _unary(torch.relu),
    "RELU6": _unary(lambda tensor: torch.clamp(tensor, 0.0, 6.0)),
    "TANH": _unary(torch.tanh),
    "MEAN": _reduction(torch.mean),
    "SUM": _reduction(torch.sum),
    "REDUCE_MAX": _reduction(torch.amax),
    "REDUCE_MIN": _reduction(torch.amin),
    "REDUCE_PROD": _reduction(_prod),
    "CONV_2D": _lower_convolution,
    "DEPTHWISE_CONV_2D": _lower_convolution,
    "AVERAGE_POOL_2D": _lower_pool,
    "MAX_POOL_2D": _lower_pool,
    "FULLY_CONNECTED": _lower_fully_connected,
    "CONCATENATION": _lower_concatenation,
    "PAD": _lower_pad,
    "RESHAPE": _lower_reshape,
    "STRIDED_SLICE": _lower_strided_slice,
    "GATHER": _lower_gather,
    "TRANSPOSE": _lower_transpose,
    "EXPAND_DIMS": _lower_expand_dims,
    "SQUEEZE": _lower_squeeze,
    "REVERSE_V2": _lower_reverse,
    "CAST": _lower_cast,
    "RFFT2D": _lower_rfft2d,
    MEL_FRAMES: _lower_mel_frames,
}
