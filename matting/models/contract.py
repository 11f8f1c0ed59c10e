"""What the runtime reads from a network: the contract every network of the family declares.

Training (``MattingModule``, ``SOCModule``), inference (``predict_alpha``, frozen graphs) and export
read these attributes and nothing else; a network that does not derive from
:class:`MattingNetwork` is refused where one is loaded, instead of being probed attribute by
attribute.
"""

from __future__ import annotations

from torch import nn

from matting.io.errors import MattingInputError

__all__ = ["DEFAULT_FUSION_MODE", "FUSION_MODES", "MattingNetwork", "require_contract"]

# GFM's fusion forms; TT (background / transition / foreground glance) is the one used without a choice.
FUSION_MODES = ("TT", "FT", "BT")
DEFAULT_FUSION_MODE = "TT"


class MattingNetwork(nn.Module):
    """Base of every network the family builds; subclasses set what differs from these defaults.

    Attributes:
        pad_multiple: inputs are padded to a multiple of this many pixels (the deepest feature
            stride); exported graphs and frozen inference round sizes to it.
        refiner: the full-resolution refiner module, or None: a network with one takes a
            downsampled base pass and returns full-resolution alpha itself.
        trimap_input: the network takes ``trimap=`` (B, 1, H, W) in {0, 0.5, 1} beside the image.
        fusion_mode: the GFM form (TT, FT, BT) whose glance and focus targets the loss builds;
            TT for networks without a collaborative fusion (the loss then reads no glance).
    """

    pad_multiple: int = 32
    trimap_input: bool = False
    fusion_mode: str = DEFAULT_FUSION_MODE
    refiner: nn.Module | None

    def __init__(self):
        super().__init__()
        # An instance attribute, not a class one: a class attribute would hide the submodule that
        # a subclass registers under the same name.
        self.refiner = None


def require_contract(net: nn.Module, where: str = "the network") -> MattingNetwork:
    """``net`` itself, or a clear refusal when it is not a network of the family."""
    if not isinstance(net, MattingNetwork):
        raise MattingInputError(f"{where}: {type(net).__module__}.{type(net).__name__} is not a matting network of this "
                                "package (matting.models.MattingNet, PatchClassifier, FCDenseNet)")
    return net
