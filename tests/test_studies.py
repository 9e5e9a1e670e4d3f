"""Plot recipes of the studies (``[results] recipe``): what they draw and tabulate from a small sweep."""

from __future__ import annotations

import os

import numpy as np

from modelrecon.sweep import Study, run_recipe, run_sweep

os.environ.setdefault("OMP_NUM_THREADS", "1")
PNG = b"\x89PNG\r\n\x1a\n"


def test_obfuscation_recipe_pictures_curve_and_tables(tmp_path):
    """Two span sources x three ratios: grid.png (the ratio-5 run again), curve.png (a line per source), the
    Markdown table (a row per source and ratio); a target_class sweep: class.png and its table."""
    np.save(tmp_path / "x.npy", np.random.default_rng(100).normal(size=(40, 30)))
    base = {"study": {"name": "obf", "attack": "obfuscate", "target": "builtin:relu2?d=30&h=8&k=5&seed=3"},
            "oracle": {"kinds": ["value"]},
            "attack": {"inputs": {"data": str(tmp_path / "x.npy")}, "seed": 0,
                       "recover": {"setting": "relu-value", "output": "{output}", "points": "region", "ratio": 5.0}},
            "grid": {"span": [{"name": "output 0", "labels": {"output": 0}}, {"name": "output 1", "labels": {"output": 1}}],
                     "attack": {"noise": [1, 5, 10]}},
            "results": {"recipe": "modelrecon.studies.obfuscate:figures"}}
    run_sweep(Study.from_dict(base), db=tmp_path / "obf.sqlite", workers=0, progress=False)
    paths = run_recipe(tmp_path / "obf.sqlite", "obf", tmp_path / "figs")
    assert [p.name for p in paths] == ["grid.png", "curve.png", "obf.md"]
    assert all(p.read_bytes()[:8] == PNG for p in paths[:2])
    table = paths[2].read_text().splitlines()
    assert len(table) == 2 + 6 and "| - | recovered span (output 0) | 5 | none | complete | 8 / 8 |" in table[3]
    assert all(line.split(" | ")[9] == "1" for line in table[2:])  # label preserved, every source and ratio
    cls = {**base, "study": {**base["study"], "name": "cls"},
           "attack": {**base["attack"], "target_class": 3, "count": 5, "recover": {**base["attack"]["recover"], "output": 0}},
           "grid": {"attack": {"noise": [5]}}}
    run_sweep(Study.from_dict(cls), db=tmp_path / "cls.sqlite", workers=0, progress=False)
    paths = run_recipe(tmp_path / "cls.sqlite", "cls", tmp_path / "figs")
    assert [p.name for p in paths] == ["class.png", "cls.md"]
    row = paths[1].read_text().splitlines()[2].split(" | ")
    assert row[1:4] == ["3", "complete", "1"]  # class 3: every noise-looking input read as 3


def test_deep_recipes_draw_queries_per_neuron(tmp_path):
    """deep.png (a bar per run) and deep-value-queries.png (against depth and width), widths from the target."""
    from modelrecon.studies.deep import hidden_widths

    nets = [{"name": "6-4-1", "target": "builtin:deep?d=6&widths=4,1&init=random&seed=0"},
            {"name": "6-4x2-1", "target": "builtin:deep?d=6&widths=4,4,1&init=random&seed=0"}]
    for attack, recipe, kinds, hp, png in (
            ("modelrecon.attacks.relu:ReluAttack", "gradient_figures", ["value", "gradient"],
             {"mode": "value+gradient"}, "deep.png"),
            ("modelrecon.attacks.relu_value:DeepValueAttack", "value_figures", ["value"], {"seed": 0},
             "deep-value-queries.png")):
        study = Study.from_dict({"study": {"name": recipe, "attack": attack, "target": nets[0]["target"]},
                                 "oracle": {"kinds": kinds}, "attack": hp, "evaluate": {"n_inputs": 100},
                                 "grid": {"net": nets}, "results": {"recipe": f"modelrecon.studies.deep:{recipe}"}})
        db = tmp_path / f"{recipe}.sqlite"
        run_sweep(study, db=db, workers=0, progress=False)
        paths = run_recipe(db, recipe, tmp_path / "figs")
        assert [p.name for p in paths] == [png] and paths[0].read_bytes()[:8] == PNG
    assert hidden_widths({"target": nets[1]["target"], "point": {}}) == [4, 4]
