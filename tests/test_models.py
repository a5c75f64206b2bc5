"""The segmenter factory and its safe checkpoints."""

from __future__ import annotations

import numpy as np
import pytest

from razn.errors import CheckpointError, ConfigError
from razn.models import (
    SegmenterConfig,
    class_labels,
    create_segmenter,
    load_segmenter,
    predict_probs,
    save_segmenter,
)

TINY = SegmenterConfig(encoder_depth=3, decoder_channels=(16, 8, 8))


def test_probabilities_have_the_patch_shape_and_sum_to_one():
    model = create_segmenter(TINY, num_classes=3).eval()
    patches = np.random.default_rng(0).integers(0, 256, (5, 32, 32, 3), dtype=np.uint8)
    probs = predict_probs(model, patches, batch_size=2)
    assert probs.shape == (5, 3, 32, 32) and probs.dtype == np.float32
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, rtol=1e-5)


def test_checkpoint_round_trip_gives_identical_outputs(tmp_path):
    model = create_segmenter(TINY, num_classes=2).eval()
    path = save_segmenter(model, TINY, tmp_path / "f0.safetensors", {"level": 0, "dice": [0.9]})
    loaded, extra = load_segmenter(path)
    assert extra == {"level": 0, "dice": [0.9]}
    patches = np.random.default_rng(1).integers(0, 256, (2, 32, 32, 3), dtype=np.uint8)
    np.testing.assert_array_equal(predict_probs(model, patches), predict_probs(loaded, patches))


def test_tampered_or_foreign_checkpoints_are_refused(tmp_path):
    path = save_segmenter(create_segmenter(TINY, 2), TINY, tmp_path / "f.safetensors")
    data = bytearray(path.read_bytes())
    data[20:40] = b"\x00" * 20  # corrupt the header
    path.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="not a valid safetensors checkpoint"):
        load_segmenter(path)
    pickle = tmp_path / "model.pt"
    pickle.write_bytes(b"\x80\x04\x95 not safetensors")
    with pytest.raises(CheckpointError, match=str(pickle)):
        load_segmenter(pickle)
    with pytest.raises(CheckpointError, match="checkpoint not found"):
        load_segmenter(tmp_path / "missing.safetensors")


def test_bad_architecture_is_a_config_error():
    with pytest.raises(ConfigError, match="decoder_channels needs 3 entries"):
        SegmenterConfig(encoder_depth=3)
    with pytest.raises(ConfigError, match="cannot build model"):
        create_segmenter(SegmenterConfig(encoder="no-such-encoder"), 2)


def test_class_labels_matches_argmax_with_ties_to_the_lowest_class():
    rng = np.random.default_rng(0)
    probs = rng.random((3, 4, 9, 7)).astype(np.float32)
    probs[0, :, 0, 0] = 0.25  # a four-way tie: class 0 wins, as with argmax
    probs[1, 2, 1, 1] = probs[1, 3, 1, 1] = 5.0  # tie between 2 and 3: 2 wins
    np.testing.assert_array_equal(class_labels(probs), probs.argmax(axis=1))
    assert class_labels(probs).dtype == np.uint8
