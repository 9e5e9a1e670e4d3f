import os

import pytest
import torch

torch.set_num_threads(1)


@pytest.fixture(autouse=True, scope="session")
def _cache(tmp_path_factory):
    """Trained targets go to a per-session cache unless the user set one."""
    if "MODELRECON_CACHE" not in os.environ:
        os.environ["MODELRECON_CACHE"] = str(tmp_path_factory.mktemp("cache"))
    yield
