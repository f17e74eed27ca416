"""Networks: the enhancers (DCE-Net and the peers, one interface), frozen VGG-16, the segmentation prior.

``base`` defines the interface every enhancer implements; one module per architecture holds its
class, its builder and its weights entries; ``registry`` collects them; ``export`` writes any of them
to ONNX / TorchScript.
"""

from sclle.models.base import Enhancer
from sclle.models.dce import DCENet, apply_curves, dce_net, flush_subnormals_

__all__ = ["DCENet", "Enhancer", "apply_curves", "dce_net", "flush_subnormals_"]
