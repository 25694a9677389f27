"""Activations: exact maps on the right grid, attribution where the class is, no extra forward pass."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy import ndimage

from conftest import blob_volume, oblique_geometry
from WMHSegmenterLib.engine.activations import ActivationRecorder, list_layers, on_input_grid
from WMHSegmenterLib.engine.bundle import save_bundle
from WMHSegmenterLib.engine.errors import InputError
from WMHSegmenterLib.engine.predictor import Predictor
from WMHSegmenterLib.engine.sliding_window import padded_shape, predict_sliding_window
from WMHSegmenterLib.engine.tasks import task_metadata
from WMHSegmenterLib.engine.unet import UNet3D, UNetConfig
from WMHSegmenterLib.engine.volume import Geometry


def hand_built_network() -> UNet3D:
    """encoder.0 channel k = LeakyReLU((k + 1) * input); the lesion logit follows decoder.0 channel 0,
    which copies relu(input) from the skip connection. Everything else is zero."""
    network = UNet3D(UNetConfig(1, 2, features=(3, 4), norm="none", activation="relu", convs_per_block=1))
    with torch.no_grad():
        for parameter in network.parameters():
            parameter.zero_()
        encoder_conv = network.encoder[0].convs[0]
        for k in range(3):
            encoder_conv.weight[k, 0, 1, 1, 1] = k + 1.0
        decoder_conv = network.decoder[0].block.convs[0]
        decoder_conv.weight[0, 3, 1, 1, 1] = 1.0  # concatenation = [upsampled (3), skip (3)]: skip channel 0
        network.head.weight[1, 0] = 2.0
        network.head.bias[1] = -2.0  # lesion where normalized intensity > 1
    return network.eval()


def test_hand_built_channel_maps_are_exactly_the_known_function_of_the_input():
    network = hand_built_network()
    image = torch.randn(1, 20, 24, 16)
    recorder = ActivationRecorder(network, ["encoder.0"])
    patch = (8, 8, 8)
    recorder.start(padded_shape(image.shape[1:], patch, (2, 2, 2)), patch)
    with torch.no_grad():
        predict_sliding_window(
            network,
            image,
            patch,
            lambda x: x.softmax(1),
            overlap=0.5,
            align=(2, 2, 2),
            observed_forward=recorder.forward,
        )
    features = recorder.results(image.shape[1:], Geometry.identity())["encoder.0"].features
    expected = torch.relu(image[0][None] * torch.tensor([1.0, 2.0, 3.0]).view(3, 1, 1, 1)).numpy()
    np.testing.assert_allclose(features, expected, rtol=1e-5, atol=1e-6)


def test_layers_are_listed_with_channels_and_stride_along_the_data_flow():
    network = UNet3D(UNetConfig(1, 2, features=(4, 8, 16), strides=((1, 1, 1), (1, 2, 2), (2, 2, 2))))
    layers = [(i.name, i.channels, i.stride) for i in list_layers(network)]
    assert layers == [
        ("encoder.0", 4, (1, 1, 1)),
        ("encoder.1", 8, (1, 2, 2)),
        ("bottleneck", 16, (2, 4, 4)),
        ("decoder.1", 8, (1, 2, 2)),
        ("decoder.0", 4, (1, 1, 1)),
    ]


def test_layer_maps_lie_in_physical_space_for_an_oblique_input(wmh_bundle):
    flair = blob_volume(shape=(12, 40, 36), geometry=oblique_geometry())
    predictor = Predictor(wmh_bundle, device="cpu")
    prediction = predictor.predict(
        {"flair": flair}, recorder=predictor.activation_recorder(["encoder.0", "bottleneck"])
    )
    fine, coarse = prediction.activations["encoder.0"], prediction.activations["bottleneck"]
    assert fine.geometry.direction == pytest.approx(flair.geometry.direction)
    assert coarse.geometry.spacing == pytest.approx(tuple(2 * s for s in fine.geometry.spacing))
    # the coarse grid's first voxel centre sits between the 2x2x2 fine voxels it summarises
    halfway = fine.geometry.index_to_world(np.array([[0.5, 0.5, 0.5]]))[0]
    assert coarse.geometry.origin == pytest.approx(tuple(halfway))
    mapped = on_input_grid(coarse.view("mean"), flair)
    assert mapped.geometry == flair.geometry and mapped.shape == flair.shape


def test_capture_adds_no_second_forward_pass_and_leaves_the_labels_unchanged(wmh_bundle):
    predictor = Predictor(wmh_bundle, device="cpu")
    calls = []
    predictor.network.register_forward_hook(lambda *_: calls.append(1))
    flair = blob_volume(shape=(20, 40, 40))
    plain = predictor.predict({"flair": flair})
    plain_calls = len(calls)
    calls.clear()
    captured = predictor.predict(
        {"flair": flair}, recorder=predictor.activation_recorder(["encoder.0", "decoder.0"])
    )
    assert len(calls) == plain_calls
    np.testing.assert_array_equal(captured.labels.array, plain.labels.array)
    np.testing.assert_allclose(captured.probabilities.array, plain.probabilities.array, atol=1e-6)


def test_gradcam_attribution_concentrates_on_the_predicted_lesion(tmp_path):
    meta = task_metadata("wmh")
    meta.update(
        id="hand-built",
        version="0",
        preprocessing={"spacing_xyz_mm": [None, None, None]},
        inference={"patch_size_zyx": [16, 32, 32], "overlap": 0.5},
        training={"trained": False},
    )
    bundle = save_bundle(hand_built_network(), meta, tmp_path / "hand-built")
    flair = blob_volume(shape=(16, 48, 48))
    predictor = Predictor(bundle, device="cpu")
    recorder = predictor.activation_recorder(["decoder.0"], gradcam_classes=["WMH"])
    prediction = predictor.predict({"flair": flair}, recorder=recorder)
    lesion = prediction.labels.array == 1
    assert 0 < lesion.sum() < 0.2 * lesion.size
    cam = on_input_grid(prediction.activations["decoder.0"].view("gradcam:WMH"), flair).array
    neighbourhood = ndimage.binary_dilation(lesion, iterations=2)
    assert cam[neighbourhood].sum() > 0.5 * cam.sum()  # most of the mass, in 5% of the volume
    assert cam[lesion].mean() > 20 * cam[~neighbourhood].mean()


def test_large_accumulators_spill_to_disk_within_the_memory_budget(wmh_bundle):
    predictor = Predictor(wmh_bundle, device="cpu")
    flair = blob_volume(shape=(20, 40, 40))
    in_memory = predictor.predict({"flair": flair}, recorder=predictor.activation_recorder(["encoder.0"]))
    recorder = predictor.activation_recorder(["encoder.0"], memory_budget=10_000)
    spilled = predictor.predict({"flair": flair}, recorder=recorder)
    assert recorder.bytes_in_memory <= 10_000 and recorder.spill_folder is not None
    assert isinstance(spilled.activations["encoder.0"].features.base, np.memmap)
    np.testing.assert_allclose(
        spilled.activations["encoder.0"].features, in_memory.activations["encoder.0"].features
    )
    recorder.close()


@pytest.mark.parametrize("spec", ["mean", "max", "pca", "channel:3"])
def test_every_view_gives_a_finite_map_on_the_layer_grid(wmh_bundle, spec):
    predictor = Predictor(wmh_bundle, device="cpu")
    prediction = predictor.predict(
        {"flair": blob_volume()}, recorder=predictor.activation_recorder(["encoder.0"])
    )
    layer = prediction.activations["encoder.0"]
    view = layer.view(spec)
    assert view.shape == layer.features.shape[1:] and np.isfinite(view.array).all()


def test_bad_layer_channel_or_class_is_refused_by_name(wmh_bundle):
    predictor = Predictor(wmh_bundle, device="cpu")
    with pytest.raises(InputError, match="unknown layer"):
        predictor.activation_recorder(["encoder.9"])
    with pytest.raises(InputError, match="no class 'tumor'"):
        predictor.activation_recorder(["encoder.0"], gradcam_classes=["tumor"])
    prediction = predictor.predict(
        {"flair": blob_volume()}, recorder=predictor.activation_recorder(["encoder.0"])
    )
    with pytest.raises(InputError, match="channels 0..3"):
        prediction.activations["encoder.0"].view("channel:4")
