"""The real timm model on real images: shape, determinism, orientation, CMYK, weights sources."""

import numpy as np
import pytest
import torch
from PIL import Image

from bulk_panel.compute.embed import EmbedError, check_model_name, load_model
from bulk_panel.compute.images import read_image

from helpers import DEMO



def embed_files(embedder, files):
    lm = embedder.loaded()
    batch = torch.stack([lm.transform(read_image(f)[0]) for f in files])
    return embedder.embed_tensors(batch)


@pytest.fixture(scope="module")
def photo(tmp_path_factory):
    """A real demo drawing flattened onto white, saved as an upright RGB JPEG."""
    folder = tmp_path_factory.mktemp("twins")
    src = sorted((DEMO / "animals").glob("*.png"))[3]
    rgba = Image.open(src).convert("RGBA")
    upright = Image.new("RGB", rgba.size, "white")
    upright.paste(rgba, mask=rgba.split()[3])
    upright.save(folder / "upright.jpg", quality=95)
    upright.save(folder / "upright.png")
    return folder, upright


@pytest.mark.slow
def test_offline_default_is_lite0_with_packaged_weights(embedder):
    lm = embedder.loaded()
    assert embedder.model == "tf_efficientnet_lite0"
    assert "efficientnet-lite0" in lm.weights and lm.weights.startswith("file:")
    assert lm.data_config["input_size"] == (3, 224, 224)
    assert lm.data_config["interpolation"] == "bicubic"


@pytest.mark.slow
def test_real_embeddings_are_1280_d_unit_length_and_deterministic(embedder):
    files = sorted((DEMO / "food").glob("*.png"))[:6]
    a = embed_files(embedder, files)
    b = embed_files(embedder, files[::-1])[::-1]
    assert a.shape == (6, 1280) and a.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(a, axis=1), 1.0, atol=1e-5)
    np.testing.assert_allclose(a, b, atol=1e-5)
    # different drawings get different vectors
    assert (a @ a.T)[~np.eye(6, dtype=bool)].max() < 0.99


@pytest.mark.slow
def test_exif_rotated_file_embeds_like_its_upright_twin(embedder, photo):
    folder, upright = photo
    exif = Image.Exif()
    exif[0x0112] = 6  # stored rotated: a viewer turns it 90° clockwise
    upright.transpose(Image.Transpose.ROTATE_90).save(folder / "rotated.jpg", quality=95, exif=exif)
    upright.transpose(Image.Transpose.ROTATE_90).save(folder / "rotated-no-exif.jpg", quality=95)
    up, rot, wrong = embed_files(embedder, [folder / "upright.jpg", folder / "rotated.jpg", folder / "rotated-no-exif.jpg"])
    assert float(up @ rot) > 0.99
    assert float(up @ rot) > float(up @ wrong)  # the orientation really mattered


@pytest.mark.slow
def test_cmyk_twin_is_close(embedder, photo):
    folder, upright = photo
    upright.convert("CMYK").save(folder / "cmyk.jpg", quality=95)
    others = sorted((DEMO / "animals").glob("*.png"))[4:12]
    up, jpeg, cmyk, *rest = embed_files(
        embedder, [folder / "upright.png", folder / "upright.jpg", folder / "cmyk.jpg", *others]
    )
    # as close as a plain RGB JPEG of the same picture (JPEG noise alone gives ~0.96 here)
    assert float(up @ cmyk) > min(0.95, float(up @ jpeg) - 0.01)
    assert float(up @ cmyk) > max(float(up @ r) for r in rest) + 0.2


@pytest.mark.slow
def test_split_preprocessing_equals_the_timm_transform_bit_for_bit(embedder, photo):
    """Workers make uint8 crops, the batch is normalised at once: the same floats as timm's."""
    lm = embedder.loaded()
    assert lm.preprocess.pil_ops is not None  # lite0's transform was split
    files = [photo[0] / "upright.jpg", *sorted((DEMO / "buildings").glob("*.png"))[:4]]
    images = [read_image(f)[0] for f in files]
    crops = torch.stack([lm.preprocess.image(im) for im in images])
    assert crops.dtype == torch.uint8 and crops.shape == (5, 224, 224, 3)
    expected = torch.stack([lm.transform(im) for im in images])
    for channels_last in (True, False):  # PyTorch's layout, ONNX Runtime's
        batch = lm.preprocess.normalise(crops, channels_last=channels_last)
        assert torch.equal(batch, expected)
        assert batch.is_contiguous(memory_format=torch.channels_last if channels_last else torch.contiguous_format)
    assert torch.equal(lm.preprocess._normalise_torch(crops, "cpu"), expected)  # the GPU's ops


@pytest.mark.slow
def test_grey_images_resized_as_one_band_give_the_same_tensor(embedder):
    """A grey image stays one band through the resize (half the work): the very tensor of its
    RGB copy, at sizes that upscale, downscale and pad nothing."""
    pre = embedder.loaded().preprocess
    assert pre.takes_grey
    rng = np.random.default_rng(3)
    for width, height in [(28, 28), (300, 100), (97, 301), (640, 480), (256, 256)]:
        grey = Image.fromarray(rng.integers(0, 256, (height, width), dtype=np.uint8))
        one_band = pre.image(grey)
        assert one_band.shape == (224, 224, 3)
        assert torch.equal(one_band, pre.image(grey.convert("RGB")))


def test_unknown_model_names_close_matches():
    with pytest.raises(EmbedError, match="unknown timm model 'tf_efficientnet_lite9'.*tf_efficientnet_lite0"):
        check_model_name("tf_efficientnet_lite9")


def test_hub_weights_offline_fail_fast_with_a_clear_message(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(EmbedError, match="no network to fetch weights for 'resnet18'.*--weights PATH"):
        load_model("resnet18")


@pytest.mark.slow
def test_hub_request_offline_falls_back_to_packaged_weights(monkeypatch, embedder):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    lm = load_model("tf_efficientnet_lite0", "hub")
    assert lm.weights == embedder.loaded().weights and lm.weights_id == embedder.loaded().weights_id


@pytest.mark.slow
def test_local_weights_file_by_name_gives_the_same_vectors(embedder, tmp_path):
    lm = embedder.loaded()
    path = tmp_path / "lite0.pth"
    torch.save(lm.model.state_dict(), path)  # timm's own key names
    from bulk_panel.compute.embed import Embedder

    other = Embedder(weights=str(path), workers=0, backend="torch")  # no second ONNX export
    assert other.loaded().weights_id != lm.weights_id  # a different cache identity
    files = sorted((DEMO / "people").glob("*.png"))[:3]
    np.testing.assert_allclose(embed_files(other, files), embed_files(embedder, files), atol=1e-5)


def test_weights_file_for_another_model_is_refused(tmp_path):
    path = tmp_path / "tiny.pth"
    torch.save({"weight": torch.zeros(3)}, path)
    with pytest.raises(EmbedError, match="does not fit model"):
        load_model("tf_efficientnet_lite0", str(path))
    with pytest.raises(EmbedError, match="weights file not found"):
        load_model("tf_efficientnet_lite0", str(tmp_path / "missing.pth"))


@pytest.mark.slow
def test_decoding_threads_and_processes_give_the_same_batches(embedder, tmp_path):
    """The CPU path (threads between forward passes) and the GPU path (DataLoader processes
    beside them, run here on the CPU) hand the forward pass the same rows and tensors."""
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"not a png")
    files = [str(f) for f in sorted(DEMO.rglob("*.png"))[:37]]
    files.insert(5, str(broken))
    dataset = embedder._dataset(files)
    threaded = list(embedder._batches_between_forwards(dataset, 2))
    processes = list(embedder._batches_alongside_forwards(dataset, 2, pin_memory=False))
    assert [len(rows) for rows, _ in threaded] == [16, 16, 6]  # the fixture's batch size
    assert len(threaded) == len(processes)
    for (rows_t, tensors_t), (rows_p, tensors_p) in zip(threaded, processes):
        assert rows_t == rows_p
        assert torch.equal(tensors_t, tensors_p)
    assert threaded[0][0][5][5] and not threaded[0][0][5][4]  # the broken file: a reason, no tensor
