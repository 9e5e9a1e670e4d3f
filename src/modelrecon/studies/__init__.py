"""Studies: the sweeps behind the README's figures (``modelrecon study ...``, ``configs/*.toml``), each drawn from
its results database by ``modelrecon results`` (``--plot``, or ``--figures`` through the study's recipe)."""
