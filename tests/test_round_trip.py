"""Every output loads back (issue #20): a converted module saved with ``tf2torch.save`` and loaded with
``tf2torch.load`` gives the same outputs and ``output_names``.

Two reproductions from the issue, then the round trip of every model the suite ran before this file's last test
(``round_trip.py``: recorded by ``harness.torch_outputs``, loaded in one fresh process; outputs within
``SAME_KERNELS_TOL`` of the module before saving, names exactly). Run alone, the last test covers this file's
models; run with ``tests/test_applications.py`` it covers every keras.applications model of both Keras versions.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import harness
import numpy as np
import pytest
import torch
from harness import RTOL, assert_matches, keras_module, keras_outputs, random_inputs, torch_outputs
from round_trip import SAME_KERNELS_TOL, Loading, wait_for_other_workers

import tf2torch
from tf2torch.errors import ModelFileError

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"
FORMATS = [("keras3", "keras"), ("keras3", "h5"), ("tf_keras", "h5")]


def dict_outputs(k):
    """Outputs given as a dict: Keras orders them by sorted key (``alpha`` → ``b`` first) and names them after
    the layers (``model.output_names == ['b', 'a']``)."""
    inputs = k.Input((4,), name="features")
    a = k.layers.Dense(3, name="a")(inputs)
    b = k.layers.Dense(2, name="b")(inputs)
    return k.Model(inputs, {"zeta": a, "alpha": b}, name="dict_outputs")


@pytest.mark.parametrize("flavour, fmt", FORMATS)
def test_dict_output_names_survive_save_and_load(flavour, fmt, tmp_path):
    """Before: ``['b', 'a']`` after convert, ``['output_0', 'output_1']`` after load (the IR's JSON dropped them)."""
    model = dict_outputs(keras_module(flavour))
    path = tmp_path / f"model.{fmt}"
    model.save(str(path))
    x = random_inputs(model)
    module = tf2torch.convert(path)
    assert module.output_names == list(model.output_names) == ["b", "a"]
    assert_matches(torch_outputs(module, x, "channels_first"), keras_outputs(model, x), RTOL, f"{flavour} .{fmt}")
    tf2torch.save(module, tmp_path / "model.pt")
    loaded = tf2torch.load(tmp_path / "model.pt")
    assert loaded.output_names == module.output_names and loaded.input_names == ["features"]
    assert_matches(torch_outputs(loaded, x, "channels_first"), keras_outputs(model, x), RTOL, f"{flavour} loaded")


def test_tf_keras_mobilenet_v3_small_h5_loads_back(tmp_path):
    """tf_keras names layers ``expanded_conv/depthwise`` and ``expanded_conv/depthwise/pad`` in one flat model.
    Before: the saved IR lost which ``/`` means nesting, and ``load`` raised ``'Conv2d' object has no attribute
    'pad'`` on a file ``convert`` had written without complaint."""
    k = keras_module("tf_keras")
    model = k.applications.MobileNetV3Small(weights=None, input_shape=(96, 96, 3))
    model.save(str(tmp_path / "mnv3.h5"))
    x = [np.random.default_rng(0).uniform(0, 255, (2, 96, 96, 3)).astype("float32")]
    module = tf2torch.convert(tmp_path / "mnv3.h5")
    tf2torch.save(module, tmp_path / "mnv3.pt")
    loaded = tf2torch.load(tmp_path / "mnv3.pt")
    assert loaded.output_names == module.output_names
    assert dict(loaded.named_modules()).keys() == dict(module.named_modules()).keys()
    want = torch_outputs(module, x, "channels_first")
    assert_matches(torch_outputs(loaded, x, "channels_first"), want, SAME_KERNELS_TOL, "loaded vs converted")
    assert_matches(want, keras_outputs(model, x), RTOL, "converted vs tf_keras")


def test_every_converted_model_loads_back():
    """Runs last (conftest): every module ``harness.torch_outputs`` ran in this session, loaded back in one fresh
    interpreter, gives the same outputs (``SAME_KERNELS_TOL``) and the same output and input names."""
    recorder = harness.ROUND_TRIP
    assert recorder is not None, "conftest did not turn recording on"
    started = time.perf_counter()
    own = sorted(recorder.directory.glob(f"{recorder.prefix}*.case"))  # complete: this worker wrote them
    early = Loading(own)  # while the other workers run their last tests
    others, others_seconds = wait_for_other_workers()  # under xdist: the other workers' files too
    count, saving = recorder.count + others, recorder.seconds + others_seconds
    late = Loading(sorted(set(recorder.directory.glob("*.case")) - set(own)))
    answers = early.answers() + late.answers()
    if count == 0:
        pytest.skip("no model ran before this test: select it with the tests whose models it should load back")
    loading = time.perf_counter() - started
    assert len(answers) == count, f"{count} recorded, {len(answers)} answered"
    failures = [f"{a['test']}: {a['failure']}" for a in answers if "failure" in a]
    failures += [f"{a['test']}: outputs differ by {a['error']:.3g}" for a in answers
                 if "error" in a and a["error"] > SAME_KERNELS_TOL]
    failures += [f"{a['test']}: names {a['names']} after loading, {a['names_before']} before" for a in answers
                 if "names" in a and a["names"] != a["names_before"]]
    exact = sum(1 for a in answers if a.get("exact"))
    print(f"round trip: {len(answers)} modules ({exact} bit-exact); saving took {saving:.1f} s in all, "
          f"loading and running them in a fresh process {loading:.1f} s")
    assert not failures, f"{len(failures)} of {len(answers)} do not come back:\n" + "\n".join(failures[:40])


@pytest.mark.parametrize("field, value", [("output_names", [1]), ("output_names", "b"), ("containers", [["x"]]),
                                          ("containers", 5)])
def test_damaged_names_in_a_saved_file_are_refused(tmp_path, field, value):
    """The names now stored in the ``.pt`` are read like the rest of it: hostile until checked."""
    module = tf2torch.convert(FIXTURES / "small_cnn.h5")
    tf2torch.save(module, tmp_path / "good.pt")
    payload = torch.load(tmp_path / "good.pt", weights_only=True)
    meta = json.loads(payload["meta"])
    assert meta["graph"]["output_names"] == module.output_names
    meta["graph"][field] = value
    payload["meta"] = json.dumps(meta)
    torch.save(payload, tmp_path / "bad.pt")
    with pytest.raises(ModelFileError, match="damaged tf2torch file"):
        tf2torch.load(tmp_path / "bad.pt")


def test_an_older_file_format_says_convert_again(tmp_path):
    """Format 1 files of TF graphs name modules that issue #21 regrouped: a name that no longer exists is reported
    as an older file to convert again, not as damage; the same names in a current file are damage."""
    module = tf2torch.convert(FIXTURES / "small_cnn.h5")
    tf2torch.save(module, tmp_path / "good.pt")
    payload = torch.load(tmp_path / "good.pt", weights_only=True)
    first = next(iter(payload["state_dict"]))
    payload["state_dict"] = {("renamed_" if k == first else "") + k: v for k, v in payload["state_dict"].items()}
    torch.save(payload, tmp_path / "current.pt")
    with pytest.raises(ModelFileError, match="damaged tf2torch file"):
        tf2torch.load(tmp_path / "current.pt")
    payload["format_version"] = 1
    torch.save(payload, tmp_path / "older.pt")
    with pytest.raises(ModelFileError, match=r"older tf2torch \(file format 1.*convert the original model again"):
        tf2torch.load(tmp_path / "older.pt")
