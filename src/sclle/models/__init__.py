"""Networks: the DCE-Net enhancer, its weights registry, frozen VGG-16 and the segmentation prior."""

from sclle.models.dce import DCENet, apply_curves, flush_subnormals_

__all__ = ["DCENet", "apply_curves", "flush_subnormals_"]
