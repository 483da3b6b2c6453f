"""Deployment: images of any size or colour to Fashion-MNIST images, predict_images and
`fmnist-c predict`."""
import sys

import numpy as np
import pytest

import fmnist_c
from fmnist_c import cli

Image = pytest.importorskip("PIL.Image", reason="Pillow is not installed")

CLASSES = (1, 5, 7, 8, 9)  # trouser, sandal, sneaker, bag, ankle boot


@pytest.fixture(scope="module")
def trained(sample_split, tmp_path_factory):
    """An MLP trained on the sample, saved, and test images it gets right with p > 0.9,
    one of each class in CLASSES."""
    s = sample_split
    model = fmnist_c.MLPClassifier(epochs=10, random_state=0).fit(s.X_train / 255, s.y_train)
    path = tmp_path_factory.mktemp("model") / "mlp.npz"
    model.save(path)
    proba = model.predict_proba(s.X_test / 255)
    sure = (proba.argmax(1) == s.y_test) & (proba.max(1) > 0.9)
    chosen = [int(np.flatnonzero(sure & (s.y_test == c))[0]) for c in CLASSES]
    return model, path, s.X_test[chosen]


def photo(image):
    """A Fashion-MNIST image as a product photo: dark on a white 150 x 111 page, tinted
    purple, three times larger and off-centre."""
    big = Image.fromarray(255 - image).resize((84, 84), Image.Resampling.BICUBIC)
    tinted = Image.merge("RGB", (big, big.point(lambda v: 255 - int((255 - v) * 0.6)), big))
    page = Image.new("RGB", (150, 111), (255, 255, 255))
    page.paste(tinted, (40, 10))
    return page


def test_png_of_a_test_image_round_trips_to_its_class(trained, tmp_path):
    _, model_path, images = trained
    paths = []
    for i, image in enumerate(images):
        paths.append(tmp_path / f"{i}.png")
        Image.fromarray(image).save(paths[-1])
        np.testing.assert_array_equal(fmnist_c.prepare_image(paths[-1]), image)
    found = fmnist_c.predict_images(model_path, paths)
    assert [p.label for p in found] == list(CLASSES)
    assert [p.class_name for p in found] == [fmnist_c.CLASS_NAMES[c] for c in CLASSES]
    assert all(p.probability > 0.9 and p.source == str(path) for p, path in zip(found, paths))
    assert all(p.probabilities.shape == (10,) for p in found)
    assert abs(found[0].probabilities.sum() - 1) < 1e-5


@pytest.mark.parametrize("fmt", ["png", "jpeg", "rgba-png"])
def test_colour_photo_of_odd_size_gets_the_same_class(trained, tmp_path, fmt):
    model, _, images = trained
    paths = []
    for i, image in enumerate(images):
        page = photo(image)
        if fmt == "rgba-png":  # a cut-out: the page transparent instead of white
            alpha = Image.fromarray(np.where(np.asarray(page.convert("L")) < 250, 255, 0)
                                    .astype(np.uint8))
            page.putalpha(alpha)
        paths.append(tmp_path / f"{i}.{fmt.split('-')[-1]}")
        page.save(paths[-1])
    prepared = np.stack([fmnist_c.prepare_image(p) for p in paths])
    assert prepared.shape == (len(images), 28, 28) and prepared.dtype == np.uint8
    assert (prepared[:, 0] < 14).any(axis=1).all() and (prepared[:, :, 0] < 14).any(axis=1).all()
    assert [p.label for p in fmnist_c.predict_images(model, paths)] == list(CLASSES)


def test_arrays_are_prepared_like_files(trained):
    model, _, images = trained
    arrays = [np.asarray(photo(im)) for im in images]
    wide = np.asarray(photo(images[0]).convert("L"))  # 2-D, not square, light background
    found = fmnist_c.predict_images(model, arrays + [wide])
    assert [p.label for p in found] == list(CLASSES) + [CLASSES[0]]
    assert found[-1].source == f"image {len(arrays)}"
    assert fmnist_c.predict_images(model, images[0])[0].label == CLASSES[0]
    out = fmnist_c.prepare_image(np.pad(np.full((3, 9), 200), 5))
    rows, cols = np.flatnonzero(out.any(1)), np.flatnonzero(out.any(0))
    assert cols[0] == 0 and cols[-1] == 27  # longest side fitted into 28
    assert abs(rows[0] - (27 - rows[-1])) <= 1  # centred


def test_predict_cli_prints_class_and_probability(trained, tmp_path, capsys):
    _, model_path, images = trained
    png = tmp_path / "a.png"
    photo(images[1]).save(png)
    assert cli.main(["predict", str(model_path), str(png)]) == 0
    assert capsys.readouterr().out.startswith(f"{png}: {fmnist_c.CLASS_NAMES[CLASSES[1]]} (")


def test_an_svc_without_probabilities_predicts_classes(sample_split, tmp_path, capsys):
    """An SVC without probability=True, as a model, as a saved file and exported to ONNX:
    predict_images gives its predict's classes (a vote: where votes tie, not the argmax of
    its decision values) and says it has no probabilities; so does `fmnist-c predict`."""
    s = sample_split
    model = fmnist_c.SVC(C=10).fit(s.X_train[:1000] / 255, s.y_train[:1000])
    X = s.X_test.reshape(len(s.X_test), -1) / np.float32(255)
    tied = np.flatnonzero(model.predict(X) != model.classes_[model.decision_function(X).argmax(1)])
    assert len(tied) > 0
    chosen = np.r_[tied, :10]
    images, expected = list(s.X_test[chosen]), model.predict(X[chosen]).tolist()
    model.save(tmp_path / "svc.npz")
    sources = [model, tmp_path / "svc.npz"]
    if _has("onnx") and _has("onnxruntime"):
        model.to_onnx(tmp_path / "svc.onnx")
        sources.append(tmp_path / "svc.onnx")
    for source in sources:
        found = fmnist_c.predict_images(source, images)
        assert [p.label for p in found] == expected, source
        assert all(p.probability is None and p.probabilities is None for p in found)
    png = tmp_path / "a.png"
    Image.fromarray(images[0]).save(png)
    assert cli.main(["predict", str(tmp_path / "svc.npz"), str(png)]) == 0
    name = fmnist_c.CLASS_NAMES[expected[0]]
    assert capsys.readouterr().out == f"{png}: {name} (the model gives no probabilities)\n"


def _has(module):
    try:
        __import__(module)
    except ImportError:
        return False
    return True


def test_files_that_are_not_models_or_images_are_rejected(trained, tmp_path, capsys):
    _, model_path, images = trained
    text = tmp_path / "notes.txt"
    text.write_text("not a model\n")
    with pytest.raises(ValueError, match="not an fmnist_c model file"):
        fmnist_c.predict_images(text, [images[0]])
    with pytest.raises(ValueError, match="cannot read it as an image"):
        fmnist_c.predict_images(model_path, [text])
    for argv, message in (([str(text), str(model_path)], "not an fmnist_c model file"),
                          ([str(model_path), str(text)], "cannot read it as an image")):
        with pytest.raises(SystemExit):
            cli.main(["predict"] + argv)
        assert message in capsys.readouterr().err


def test_bad_models_and_inputs_raise_clear_errors(trained, tmp_path):
    model, _, images = trained
    with pytest.raises(TypeError, match=r"a fitted classifier \(with predict\)"):
        fmnist_c.predict_images(object(), images[0])
    with pytest.raises(ValueError, match="not fitted"):
        fmnist_c.predict_images(fmnist_c.MLPClassifier(), images[0])
    small = fmnist_c.MLPClassifier(hidden_layer_sizes=(4,), epochs=1, random_state=0)
    small.fit(np.random.default_rng(0).random((20, 12)), np.arange(20) % 2)
    with pytest.raises(ValueError, match="takes 12 features"):
        fmnist_c.predict_images(small, images[0])
    with pytest.raises(ValueError, match="empty"):
        fmnist_c.predict_images(model, [])
    with pytest.raises(ValueError, match="pixel_scale"):
        fmnist_c.predict_images(model, images[0], pixel_scale=0)
    with pytest.raises(TypeError, match="integers 0..255"):
        fmnist_c.prepare_image(images[0] / 255)
    with pytest.raises(ValueError, match="0..255"):
        fmnist_c.prepare_image(np.full((5, 5), 300))
    with pytest.raises(ValueError, match=r"\(h, w\) gray"):
        fmnist_c.prepare_image(np.zeros((5, 5, 2), np.uint8))
    with pytest.raises(TypeError, match="path, a PIL image or a NumPy array"):
        fmnist_c.prepare_image(3)
    with pytest.raises(ValueError, match="no object"):
        fmnist_c.prepare_image(np.full((40, 30), 255, np.uint8))


def test_without_pillow_the_error_says_how_to_install_it(monkeypatch, trained):
    monkeypatch.setitem(sys.modules, "PIL", None)
    with pytest.raises(ImportError, match="pip install pillow"):
        fmnist_c.prepare_image(trained[2][0])
