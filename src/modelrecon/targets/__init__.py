"""What is attacked: a model behind an oracle.  ``load(spec)`` turns a spec string into a
:class:`Target`; only the oracle's backend and the evaluator ever touch it."""

from modelrecon.targets.base import Target, TargetSpecError
from modelrecon.targets.load import load

__all__ = ["Target", "TargetSpecError", "load"]
