"""Attacks, one per file.  Each is a class whose constructor holds hyperparameters and
whose ``run(oracle)`` returns a :class:`modelrecon.result.Result`; it sees nothing but the oracle."""

from __future__ import annotations

import time
from typing import Any

from modelrecon.attacks.piecewise import NotPiecewiseLinear, RoundedAnswers
from modelrecon.oracle import Oracle, QueryBudgetExceeded
from modelrecon.result import Result


class Attack:
    """Base: times the run, fills the ledger into the result, turns an exhausted budget
    into a partial result (the attack's own partial result when it attached one), a target found not piecewise
    linear by a probe into a failed one."""

    name = "attack"

    def execute(self, oracle: Oracle) -> Result:
        raise NotImplementedError

    def hyperparameters(self) -> dict[str, Any]:
        return {k: v for k, v in vars(self).items() if not k.startswith("_")}

    def run(self, oracle: Oracle) -> Result:
        start = time.perf_counter()
        try:
            result = self.execute(oracle)
        except QueryBudgetExceeded as e:
            result = e.partial or Result(self.name, "partial", f"stopped: {e}")
        except RoundedAnswers as e:
            result = Result(self.name, "failed", str(e))
        except NotPiecewiseLinear as e:
            result = Result(self.name, "failed", f"not a ReLU network: {e}")
        result.wall_time_s = time.perf_counter() - start
        result.target = oracle.spec
        result.oracle = {"kinds": list(oracle.kinds), "options": oracle.options}
        result.queries = oracle.ledger.to_dict()
        result.details.setdefault("hyperparameters", self.hyperparameters())
        return result
