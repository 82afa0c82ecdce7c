"""The fused CBAM kernel (``cbam.cpp``) as torch functions.

:func:`cbam_inference` runs Eq. 5-11 in one call for inference; :class:`FusedCBAMFunction`
is the autograd form (its backward is fused too, and saves only the input, the two
attention maps, the pooled vectors and the max-pool's argmax). Both take
``channels_last`` ``(B, C, H, W)`` float32 or bfloat16 CPU tensors (:func:`supports`);
weights are the CBAM's own parameters, read as float32. The maths and its subgradients at
ties (the first maximum, as ``torch.max`` and max pooling) equal
:class:`~slidemap.models.cbam.CBAM`'s framework-op path in ``channels_last``.
"""

from __future__ import annotations

import ctypes
import functools
from dataclasses import dataclass
from typing import Any

import torch

from slidemap.models.native import load_library

_P, _I, _F = ctypes.c_void_p, ctypes.c_int, ctypes.c_float
_DTYPES = {torch.float32: 0, torch.bfloat16: 1}


@functools.cache
def library() -> ctypes.CDLL | None:
    """The compiled kernel with its C signatures, or ``None`` (see :mod:`slidemap.models.native`)."""
    lib = load_library("cbam")
    if lib is None:
        return None
    lib.slidemap_cbam_forward.argtypes = [_I, _P, _P, _I, _I, _I, _I, _P, _P, _I, _P, _P, _P, _F, _I,
                                          _P, _P, _P, _P, _I]
    lib.slidemap_cbam_forward.restype = _I
    lib.slidemap_cbam_backward.argtypes = [_I, _P, _P, _P, _I, _I, _I, _I, _P, _P, _I, _P, _P, _I,
                                           _P, _P, _P, _P, _P, _P, _P, _P, _P, _P, _I]
    lib.slidemap_cbam_backward.restype = _I
    return lib


def supports(x: torch.Tensor) -> bool:
    """True for what the kernel takes: a non-empty ``channels_last`` 4-D CPU tensor,
    float32 or bfloat16."""
    return (x.device.type == "cpu" and x.dtype in _DTYPES and x.dim() == 4 and x.numel() > 0
            and x.is_contiguous(memory_format=torch.channels_last))


@dataclass(frozen=True)
class CBAMWeights:
    """A CBAM's parameters as float32 contiguous tensors (``w0 (hid, C)``, ``b0 (hid,)``,
    ``w1 (C, hid)``, ``b1 (C,)``, ``wsp (2, k, k)``, ``bsp`` scalar)."""

    w0: torch.Tensor
    b0: torch.Tensor
    w1: torch.Tensor
    b1: torch.Tensor
    wsp: torch.Tensor
    bsp: float

    @property
    def hidden(self) -> int:
        return int(self.w0.shape[0])

    @property
    def kernel(self) -> int:
        return int(self.wsp.shape[-1])

    @classmethod
    def of(cls, w0: torch.Tensor, b0: torch.Tensor, w1: torch.Tensor, b1: torch.Tensor,
           wsp: torch.Tensor, bsp: torch.Tensor) -> CBAMWeights:
        """From the parameters as the modules hold them (1x1 and k x k conv weights)."""

        def flat(t: torch.Tensor) -> torch.Tensor:
            return t.detach().to(torch.float32).contiguous()

        return cls(flat(w0).reshape(w0.shape[0], -1), flat(b0), flat(w1).reshape(w1.shape[0], -1),
                   flat(b1), flat(wsp).reshape(-1, wsp.shape[-2], wsp.shape[-1]), float(bsp.detach().reshape(())))


@dataclass(frozen=True)
class ForwardResult:
    """``out`` like ``x``; ``cm (B, C)``, ``sm (B, H, W)``, ``pooled (B, 2C)`` float32;
    ``argmax (B, C)`` int64 or ``None``."""

    out: torch.Tensor
    cm: torch.Tensor
    sm: torch.Tensor
    pooled: torch.Tensor
    argmax: torch.Tensor | None


def _ptr(t: torch.Tensor | None) -> int | None:
    return None if t is None else t.data_ptr()


def forward(x: torch.Tensor, weights: CBAMWeights, out: torch.Tensor | None = None,
            want_argmax: bool = False) -> ForwardResult:
    """Eq. 5-11 on ``x`` (see :func:`supports`); ``out`` may be ``x`` itself (in place)."""
    lib = library()
    if lib is None:
        raise RuntimeError("the fused CBAM kernel is not available")
    batch, channels, height, width = x.shape
    out = torch.empty_like(x) if out is None else out
    pooled = torch.empty(batch, 2 * channels)
    argmax = torch.empty(batch, channels, dtype=torch.int64) if want_argmax else None
    cm = torch.empty(batch, channels)
    sm = torch.empty(batch, height, width)
    w = weights
    code = lib.slidemap_cbam_forward(
        _DTYPES[x.dtype], x.data_ptr(), out.data_ptr(), batch, height, width, channels,
        w.w0.data_ptr(), w.b0.data_ptr(), w.hidden, w.w1.data_ptr(), w.b1.data_ptr(),
        w.wsp.data_ptr(), w.bsp, w.kernel, pooled.data_ptr(), _ptr(argmax), cm.data_ptr(),
        sm.data_ptr(), torch.get_num_threads())
    if code != 0:
        raise ValueError(f"fused CBAM refused shape {tuple(x.shape)} with kernel {w.kernel}")
    return ForwardResult(out, cm, sm, pooled, argmax)


class FusedCBAMFunction(torch.autograd.Function):
    """Autograd form: ``apply(x, w0, b0, w1, b1, wsp, bsp) -> (out, cm, sm)``; the maps are
    returned detached (for :func:`~slidemap.models.cbam.capture_attention`)."""

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, w0: torch.Tensor, b0: torch.Tensor, w1: torch.Tensor,
                b1: torch.Tensor, wsp: torch.Tensor, bsp: torch.Tensor
                ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        weights = CBAMWeights.of(w0, b0, w1, b1, wsp, bsp)
        result = forward(x, weights, want_argmax=True)
        ctx.weights = weights
        ctx.param_dtypes = tuple(p.dtype for p in (w0, b0, w1, b1, wsp, bsp))
        ctx.param_shapes = tuple(p.shape for p in (w0, b0, w1, b1, wsp, bsp))
        ctx.save_for_backward(x, result.pooled, result.argmax, result.cm, result.sm)
        ctx.mark_non_differentiable(result.cm, result.sm)
        return result.out, result.cm, result.sm

    @staticmethod
    def backward(ctx: Any, grad_out: torch.Tensor, *_maps: Any) -> tuple[torch.Tensor | None, ...]:
        x, pooled, argmax, cm, sm = ctx.saved_tensors
        w: CBAMWeights = ctx.weights
        lib = library()
        assert lib is not None  # forward ran it
        batch, channels, height, width = x.shape
        gy = grad_out.to(x.dtype).contiguous(memory_format=torch.channels_last)
        gx = torch.empty_like(x)
        grads = [torch.zeros_like(t) for t in (w.w0, w.b0, w.w1, w.b1, w.wsp)] + [torch.zeros(1)]
        code = lib.slidemap_cbam_backward(
            _DTYPES[x.dtype], gy.data_ptr(), x.data_ptr(), gx.data_ptr(), batch, height, width, channels,
            w.w0.data_ptr(), w.b0.data_ptr(), w.hidden, w.w1.data_ptr(), w.wsp.data_ptr(), w.kernel,
            pooled.data_ptr(), argmax.data_ptr(), cm.data_ptr(), sm.data_ptr(),
            *(g.data_ptr() for g in grads), torch.get_num_threads())
        if code != 0:
            raise ValueError(f"fused CBAM backward refused shape {tuple(x.shape)}")
        shaped = [g.reshape(shape).to(dtype)
                  for g, shape, dtype in zip(grads, ctx.param_shapes, ctx.param_dtypes, strict=True)]
        return (gx, *shaped)
