"""Shared test fixtures: small volumes with awkward geometry and bundles of freshly initialised networks."""

from __future__ import annotations

import numpy as np
import pytest

from WMHSegmenterLib.engine.volume import Geometry, Volume


def oblique_geometry(spacing=(0.9, 1.1, 3.0), origin=(-20.5, 13.25, 7.0), degrees=20.0) -> Geometry:
    """An anisotropic grid rotated about two axes: what a tilted clinical acquisition looks like."""
    a, b = np.radians(degrees), np.radians(degrees / 2)
    rz = np.array([[np.cos(a), -np.sin(a), 0], [np.sin(a), np.cos(a), 0], [0, 0, 1]])
    rx = np.array([[1, 0, 0], [0, np.cos(b), -np.sin(b)], [0, np.sin(b), np.cos(b)]])
    return Geometry(tuple(spacing), tuple(origin), tuple((rz @ rx).ravel().tolist()))


def blob_volume(shape=(12, 40, 36), geometry: Geometry | None = None, seed: int = 0) -> Volume:
    """A head-like bright ellipsoid with a brighter lesion and noise, on a dark background."""
    rng = np.random.default_rng(seed)
    z, y, x = np.meshgrid(*(np.linspace(-1, 1, s) for s in shape), indexing="ij")
    head = (z**2 + y**2 + x**2) < 0.8
    lesion = ((z - 0.1) ** 2 + (y - 0.2) ** 2 + (x + 0.1) ** 2) < 0.05
    image = 100.0 * head + 80.0 * lesion + rng.normal(0, 3, shape)
    return Volume(image.astype(np.float32), geometry or Geometry.identity())


def given_as(paths: dict, swap: tuple[str, str]) -> dict:
    """``paths`` (or volumes) with the two named inputs given in each other's place."""
    first, second = swap
    return {**paths, first: paths[second], second: paths[first]}


def make_bundle(
    folder,
    task: str = "wmh",
    features=(4, 8),
    patch=(16, 16, 16),
    spacing=(None, None, None),
    seed: int = 0,
    **inference,
):
    """A real bundle (safetensors + model.json with sha256) around a freshly initialised U-Net."""
    import torch

    from WMHSegmenterLib.engine.bundle import save_bundle
    from WMHSegmenterLib.engine.tasks import task_metadata
    from WMHSegmenterLib.engine.unet import UNet3D, UNetConfig

    meta = task_metadata(task)
    torch.manual_seed(seed)
    network = UNet3D(UNetConfig(len(meta["inputs"]), len(meta["outputs"]["channels"]), features=features))
    meta.update(
        id=f"test-{task}",
        version="0.0.0",
        preprocessing={"spacing_xyz_mm": list(spacing), "crop_margin_mm": 4.0},
        inference={"patch_size_zyx": list(patch), "overlap": 0.5, "tile_batch": 2, **inference},
        training={"trained": False, "note": "freshly initialised for tests"},
    )
    return save_bundle(network, meta, folder)


@pytest.fixture
def wmh_bundle(tmp_path_factory):
    return make_bundle(tmp_path_factory.mktemp("models") / "test-wmh", "wmh")


@pytest.fixture
def brats_bundle(tmp_path_factory):
    return make_bundle(tmp_path_factory.mktemp("models") / "test-brats", "brats")


@pytest.fixture
def models_env(tmp_path_factory, monkeypatch):
    """WMHSEG_MODELS pointing at a folder holding both test bundles."""
    root = tmp_path_factory.mktemp("installed")
    make_bundle(root / "test-wmh", "wmh")
    make_bundle(root / "test-brats", "brats")
    monkeypatch.setenv("WMHSEG_MODELS", str(root))
    return root


@pytest.fixture
def one_thread(monkeypatch):
    """Tiny training runs: a second thread costs more than it saves (on a busy machine, ten times more).

    Also keeps runs in this process and in subprocesses on the same thread count, as bit-identical
    comparisons between them need.
    """
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    yield
    torch.set_num_threads(threads)
