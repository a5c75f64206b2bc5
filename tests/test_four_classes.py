"""K = 4 end to end: four-class synthetic slides → razn train → segment → evaluate, with the
class names and colours of the config in every output, and per-class scores of known value."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import zarr
from click.testing import CliRunner
from conftest import TINY_OVERRIDES

from razn.cli import main
from razn.data.synth import SynthConfig, make_dataset
from razn.evaluate import SegmentationScores, confusion_matrix
from razn.outputs import layout

BACH = SynthConfig(classes="bach", duct_density=40.0, benign_fraction=0.3)
NAMES = list(BACH.class_names)
COLOURS = [[0, 0, 0], [30, 160, 30], [240, 170, 30], [230, 30, 30]]


def invoke(*args: str) -> str:
    result = CliRunner().invoke(main, list(args))
    assert result.exit_code == 0, result.output
    return result.output


@pytest.fixture(scope="module")
def four_class_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Three 768² four-class slides, a run trained on them with tiny budgets, and the test
    slide segmented into ``out/``."""
    folder = tmp_path_factory.mktemp("four_classes")
    manifest = make_dataset(folder / "data", 3, 768, 768, seed=3, config=BACH)
    config = folder / "bach.yaml"
    config.write_text(
        f"name: bach\ndata:\n  class_names: [{', '.join(NAMES)}]\n  class_colours: {COLOURS}\n",
        encoding="utf-8",
    )
    args = ["train", "--run", str(folder / "run"), "--manifest", str(manifest), "--quiet"]
    args += ["--config", str(config)]
    for override in TINY_OVERRIDES:
        args += ["--set", override]
    invoke(*args)
    slide = folder / "data" / "slides" / "synth_002.tiff"
    invoke("segment", str(slide), "--run", str(folder / "run"), "--out", str(folder / "out"))
    return folder


def test_the_masks_hold_all_four_classes(four_class_run):
    import tifffile

    values: set[int] = set()
    for mask in sorted((four_class_run / "data" / "masks").glob("*.tiff")):
        values |= set(np.unique(tifffile.imread(mask)).tolist())
    assert values == {0, 1, 2, 3}


def test_outputs_carry_the_four_names_and_colours(four_class_run):
    out = four_class_run / "out" / "synth_002"
    summary = json.loads((out / layout.SUMMARY).read_text(encoding="utf-8"))
    assert summary["class_names"] == NAMES
    assert summary["class_colours"] == COLOURS
    image_label = zarr.open_group(str(out / layout.LABELS_OME), mode="r").attrs.asdict()
    ngff = image_label.get("ome", image_label)["image-label"]
    assert [c["label-value"] for c in ngff["colors"]] == [0, 1, 2, 3]
    assert [c["rgba"][:3] for c in ngff["colors"]] == COLOURS
    assert [p["name"] for p in ngff["properties"]] == NAMES
    regions = json.loads((out / layout.GEOJSON).read_text(encoding="utf-8"))
    labels = np.asarray(zarr.open_array(str(out / layout.LABELS), mode="r"))
    assert labels.max() <= 3
    assert len(regions["features"]) > 0 or labels.max() == 0
    for feature in regions["features"]:
        classification = feature["properties"]["classification"]
        value = NAMES.index(classification["name"])
        assert value > 0 and classification["color"] == COLOURS[value]


def test_evaluate_scores_every_class_and_the_lesion_mean(four_class_run):
    folder = four_class_run
    manifest = folder / "data" / "manifest.csv"
    output = invoke("evaluate", "--pred", str(folder / "out"), "--manifest", str(manifest))
    assert all(f"Dice {name}" in output for name in NAMES)
    metrics = json.loads((folder / "out" / "metrics.json").read_text(encoding="utf-8"))
    pooled = metrics["pooled"]
    assert sorted(pooled["dice"]) == sorted(NAMES)
    lesions = [pooled["dice"][name] for name in NAMES[1:]]
    assert pooled["foreground_dice"] == pytest.approx(float(np.mean(lesions)))


def test_per_class_dice_of_hand_made_four_class_masks():
    truth = np.array([[0, 1, 1, 2], [2, 2, 3, 3], [3, 3, 3, 255]], np.uint8)
    prediction = np.array([[0, 1, 2, 2], [2, 0, 3, 3], [3, 3, 1, 0]], np.uint8)
    scores = SegmentationScores(confusion_matrix(truth, prediction, 4))
    # class k: 2·|T∩P| / (|T| + |P|), the ignored pixel (255) left out
    np.testing.assert_allclose(scores.dice, [2 / 3, 2 / 4, 4 / 6, 8 / 9])
    assert scores.foreground_dice == pytest.approx((2 / 4 + 4 / 6 + 8 / 9) / 3)


@pytest.mark.parametrize(
    ("colours", "reason"),
    [
        ("[[0, 0, 0], [1, 2, 3]]", "2 colours for 4 class names"),
        ("[[0, 0, 0], [1, 2, 3], [4, 5, 6], [7, 8, 300]]", r"class_colours\[3\] must be 3"),
    ],
)
def test_class_colours_must_match_the_classes(colours, reason):
    from razn.config import load_config
    from razn.errors import ConfigError
    from razn.run_config import RunConfig

    overrides = [f"data.class_names=[{', '.join(NAMES)}]", f"data.class_colours={colours}"]
    with pytest.raises(ConfigError, match=reason):
        load_config(RunConfig, None, overrides)
