"""The inference graph: BatchNorm folded into convolutions, alpha-only output, frozen TorchScript."""

from __future__ import annotations

import warnings
from typing import Any

import torch
from torch import nn

from matting.inference.predict import ieee_float32
from matting.models.contract import MattingNetwork


def _fold_pairs(net: nn.Module) -> int:
    """Fold each BatchNorm2d into the Conv2d registered just before it in the same parent (in place)."""
    from torch.nn.utils.fusion import fuse_conv_bn_eval

    folded = 0
    for parent in list(net.modules()):
        previous: tuple[str, nn.Module] | None = None
        for name, child in list(parent.named_children()):
            if (
                previous is not None
                and isinstance(child, nn.BatchNorm2d)
                and child.running_mean is not None
                and previous[1].out_channels == child.num_features
            ):
                if type(child) is nn.BatchNorm2d:
                    replacement: nn.Module = nn.Identity()
                elif isinstance(getattr(child, "act", None), nn.Module) and isinstance(getattr(child, "drop", None), nn.Module):
                    replacement = nn.Sequential(child.drop, child.act)  # timm's BatchNormAct2d: norm, then drop, then act
                else:
                    previous = None
                    continue
                setattr(parent, previous[0], fuse_conv_bn_eval(previous[1], child))
                setattr(parent, name, replacement)
                folded += 1
            previous = (name, child) if type(child) is nn.Conv2d else None
    return folded


@torch.no_grad()  # not inference_mode: the folded weights must stay usable outside it (tracing)
def fold_batchnorm(net: nn.Module, tolerance: float = 1e-4) -> nn.Module:
    """An eval-mode copy of ``net`` with BatchNorm folded into the preceding convolutions.

    Saves one memory pass per normalised convolution at inference (about a tenth of the CPU time
    of the default network). Pairs are found by registration order, so the copy is checked
    against ``net`` on a random image; when any output differs by more than ``tolerance`` (a
    convolution whose raw output is also used elsewhere), ``net`` itself is returned unchanged.
    """
    import copy

    net = net.eval()
    fused = copy.deepcopy(net).eval()
    if _fold_pairs(fused) == 0:
        return net
    device = next(net.parameters()).device
    stride = net.pad_multiple
    probe = torch.rand(1, 3, 2 * stride + 5, 3 * stride - 7, generator=torch.Generator().manual_seed(0)).to(device)
    # A network that takes a trimap is probed with one of all three levels.
    extra = {"trimap": (probe[:, :1] * 3).floor().clamp(max=2) / 2} if net.trimap_input else {}
    with ieee_float32(device):  # TF32 convolutions would differ by more than the tolerance, folded or not
        expected, got = net(probe, **extra), fused(probe, **extra)
    for key, value in expected.items():
        if key not in got or (value.float() - got[key].float()).abs().max().item() > tolerance:
            return net
    return fused


class AlphaOnly(nn.Module):
    """Wraps a matting network so that it returns ``pred_alpha`` only: (N, 3, H, W) -> (N, 1, H, W)."""

    def __init__(self, net: nn.Module):
        super().__init__()
        self.net = net

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return self.net(image)["pred_alpha"]


class FrozenAlphaNet(MattingNetwork):
    """``pred_alpha`` of a network through a TorchScript graph traced and frozen once, reused across shapes.

    Freezing folds BatchNorm into the convolutions, prunes what ``pred_alpha`` does not need (the
    detail head's own full-resolution output) and prepacks convolution weights: about 1.3x faster
    than eager channels_last on a 2-core CPU (docs/speed.md), with the same alpha up to float
    rounding (~1e-5). Tracing costs about as much as 20 network passes' worth of that saving, so:

    - a shape runs eagerly until it has been seen ``min_repeats`` times (1: graphs from the first
      image on), which keeps a folder of photos of many sizes as fast as eager;
    - one graph is traced (on the first shape that qualifies) and reused for every later shape,
      since the network's control flow depends on shapes only through recorded size ops;
    - the graph is checked against the eager network on each shape's first graph input; a shape
      where it fails or differs by more than ``tolerance`` gets a graph traced for it, and runs
      eagerly if that fails too. At most ``cache_size`` graphs traced for one shape are kept.

    Under autocast the eager network runs (frozen graphs keep their traced precision).
    Tracing records one path through the code, which is right for networks whose control flow
    depends on shapes only (MattingNet); one that branches on pixel values must run eagerly.

    Returns the same dict as the network, with ``pred_alpha`` only.
    """

    def __init__(self, net: nn.Module, cache_size: int = 4, tolerance: float = 1e-4, min_repeats: int = 1):
        super().__init__()
        self.net = net.eval()
        # The wrapped network's contract (frozen graphs are made for networks without a refiner).
        self.pad_multiple, self.trimap_input = net.pad_multiple, net.trimap_input
        self.cache_size = cache_size
        self.tolerance = tolerance
        self.min_repeats = max(1, int(min_repeats))
        self._graphs: dict[tuple, Any] = {}  # input key -> graph checked on that shape, or None (eager)
        self._shared: dict[tuple, Any] = {}  # (dtype, device, layout) -> the graph reused across shapes
        self._seen: dict[tuple, int] = {}

    def _trace(self, sample: torch.Tensor):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # tracer warnings about shape-dependent Python values
            try:
                return torch.jit.freeze(torch.jit.trace(AlphaOnly(self.net).eval(), sample, check_trace=False))
            except Exception:  # a network TorchScript cannot trace: run it eagerly
                return None

    def _check(self, graph, sample: torch.Tensor) -> torch.Tensor | None:
        """The graph's alpha on ``sample`` when it matches the eager network's, else None."""
        if graph is None:
            return None
        try:
            got, expected = graph(sample), self.net(sample)["pred_alpha"]
        except Exception:  # a graph that cannot run this shape
            return None
        if got.shape != expected.shape or (got - expected).abs().max().item() > self.tolerance:
            return None
        return got

    def _build(self, image: torch.Tensor, layout: tuple):
        """The graph for ``image``'s shape (shared when it fits) and its alpha, or (None, None)."""
        with torch.inference_mode(False), torch.no_grad():
            sample = image.clone()
            if layout not in self._shared:
                self._shared[layout] = self._trace(sample)
            alpha = self._check(self._shared[layout], sample)
            if alpha is not None:
                return self._shared[layout], alpha
            graph = self._trace(sample)
            alpha = self._check(graph, sample)
            return (graph, alpha) if alpha is not None else (None, None)

    def _evict(self) -> None:
        """Keep at most ``cache_size`` graphs traced for one shape (each holds its own weights); the shared
        graph and eager decisions cost a dict entry and are kept, so cycling through many shapes never retraces."""
        shared = {id(g) for g in self._shared.values()}
        own = [k for k, g in self._graphs.items() if g is not None and id(g) not in shared]
        for key in own[:max(0, len(own) - self.cache_size)]:
            del self._graphs[key]

    def forward(self, image: torch.Tensor, trimap: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        if trimap is not None:  # graphs are traced on the image alone: a trimap network runs eagerly
            return self.net(image, trimap=trimap)
        if torch.is_autocast_enabled(image.device.type):
            return self.net(image)
        layout = (image.dtype, str(image.device), image.is_contiguous(memory_format=torch.channels_last))
        key = (tuple(image.shape), *layout)
        if key not in self._graphs:
            self._seen[key] = self._seen.get(key, 0) + 1
            if self._seen[key] < self.min_repeats:
                return self.net(image)
            self._graphs[key], alpha = self._build(image, layout)
            self._evict()
            if alpha is not None:
                return {"pred_alpha": alpha}
        graph = self._graphs[key]
        if graph is None:
            return self.net(image)
        with torch.inference_mode(False), torch.no_grad():  # TorchScript graphs refuse inference-mode tensors
            return {"pred_alpha": graph(image.clone() if image.is_inference() else image)}


def prepare_for_inference(net: nn.Module, jit: bool = True, channels_last: bool = True, min_repeats: int = 1) -> nn.Module:
    """The fastest exact form of ``net`` for :func:`predict_alpha` on CPU.

    BatchNorm folded (:func:`fold_batchnorm`), channels_last weights, and (``jit``) a frozen
    TorchScript graph (:class:`FrozenAlphaNet`, used for a shape once it has been seen
    ``min_repeats`` times); a network with a refiner stays eager.
    """
    net = fold_batchnorm(net.eval())
    if channels_last:
        net = net.to(memory_format=torch.channels_last)
    if jit and net.refiner is None:
        net = FrozenAlphaNet(net, min_repeats=min_repeats)
    return net
