"""Unit tests of the export building blocks, without a Florence model (fast)."""

import json
import os

import numpy as np
import pytest
import tensorflow as tf

from florence_keras import export
from florence_keras.export import rest_examples
from florence_keras.export import serving_ops


def _double_signature(name="double"):
    return export.ExportSignature(
        name, lambda x: {"y": 2.0 * x}, {"x": tf.TensorSpec([None], tf.float32)},
        {"x": np.array([1.0, 2.5], np.float32)}, description="doubles",
    )


class TestExportSignature:
    def test_concrete_function_names_inputs_and_outputs(self):
        function = _double_signature().concrete_function()
        assert [spec.name for spec in function.structured_input_signature[0]] == ["x"]
        assert function(x=tf.constant([3.0]))["y"].numpy().tolist() == [6.0]

    @pytest.mark.parametrize("name", ["serving_default", "1st", "has space", ""])
    def test_bad_names(self, name):
        with pytest.raises(ValueError, match="name="):
            export.ExportSignature(name, lambda x: {"y": x}, {"x": tf.TensorSpec([None])}, {"x": [1.0]})

    def test_bad_specs_and_examples(self):
        with pytest.raises(ValueError, match="non-empty dict"):
            export.ExportSignature("f", lambda: {}, {}, {})
        with pytest.raises(ValueError, match="must be a tf.TensorSpec"):
            export.ExportSignature("f", lambda x: {"y": x}, {"x": [None]}, {"x": [1.0]})
        with pytest.raises(ValueError, match="exactly the keys"):
            export.ExportSignature("f", lambda x: {"y": x}, {"x": tf.TensorSpec([None])}, {"z": [1.0]})
        with pytest.raises(ValueError, match="not compatible"):
            export.ExportSignature("f", lambda x: {"y": x}, {"x": tf.TensorSpec([None])}, {"x": [[1.0]]})
        with pytest.raises(ValueError, match="must be trackable"):
            export.ExportSignature("f", lambda x: {"y": x}, {"x": tf.TensorSpec([None])}, {"x": [1.0]},
                                   resources={"table": {"a": 1}})

    def test_outputs_must_be_a_named_dict(self):
        signature = export.ExportSignature("f", lambda x: 2.0 * x, {"x": tf.TensorSpec([None])}, {"x": [1.0]})
        with pytest.raises(ValueError, match="dict of named tensors"):
            signature.concrete_function()


class TestSavedModelExporter:
    def test_argument_checks(self):
        with pytest.raises(ValueError, match="non-empty list"):
            export.SavedModelExporter([], serving_default="double")
        with pytest.raises(ValueError, match="duplicates"):
            export.SavedModelExporter([_double_signature(), _double_signature()], serving_default="double")
        with pytest.raises(ValueError, match="serving_default='missing'"):
            export.SavedModelExporter([_double_signature()], serving_default="missing")
        text = export.ExportSignature("texts", lambda t: {"n": tf.strings.length(t)},
                                      {"t": tf.TensorSpec([None], tf.string)}, {"t": np.array([b"a"], object)},
                                      requires_tensorflow_text=True)
        with pytest.raises(ValueError, match="needs TF-Text ops"):
            export.SavedModelExporter([_double_signature(), text], serving_default="texts",
                                      exclude_tensorflow_text=True)
        exporter = export.SavedModelExporter([_double_signature(), text], serving_default="double",
                                             exclude_tensorflow_text=True)
        assert exporter.signature_names == ["double"]

    def test_versions_warmup_and_overwrite(self, tmp_path):
        base = str(tmp_path / "models")
        os.makedirs(os.path.join(base, "not_a_version"))
        exporter = export.SavedModelExporter(
            [_double_signature(), _double_signature("triple_free")], serving_default="triple_free",
            model_name="toy",
        )
        first = exporter.export(base)
        second = exporter.export(base)
        assert (first, second) == (os.path.join(base, "1"), os.path.join(base, "2"))
        assert export.existing_versions(base) == [1, 2]
        assert sorted(os.listdir(base)) == ["1", "2", "not_a_version"]
        with pytest.raises(FileExistsError):
            exporter.export(base, version=2)
        assert exporter.export(base, version=2, overwrite=True) == second
        with pytest.raises(ValueError, match="positive int"):
            exporter.export(base, version=0)

        requests = export.read_warmup_requests(second)
        assert [(r.model_spec.name, r.model_spec.signature_name) for r in requests] == [
            ("toy", "double"), ("toy", "triple_free")
        ]
        np.testing.assert_array_equal(export.request_inputs(requests[0])["x"], [1.0, 2.5])
        loaded = tf.saved_model.load(second)
        assert sorted(loaded.signatures) == ["double", "serving_default", "triple_free"]
        assert loaded.signatures["serving_default"](x=tf.constant([4.0]))["y"].numpy().tolist() == [8.0]
        assert export.signature_names(second) == ["double", "serving_default", "triple_free"]
        ops = export.signature_op_types(second, "double")
        assert "Mul" in ops and "Placeholder" in ops
        assert export.unregistered_op_types(ops + ["NoSuchOpAnywhere"]) == ["NoSuchOpAnywhere"]
        with pytest.raises(ValueError, match="No signature 'nope'"):
            export.signature_op_types(second, "nope")


class TestServingOps:
    def test_rgb_images_matches_numpy(self):
        rng = np.random.default_rng(0)
        for channels, expected_index in [(1, [0, 0, 0]), (2, [0, 0, 0]), (3, [0, 1, 2]), (4, [0, 1, 2])]:
            images = rng.integers(0, 256, (2, 3, 5, channels), dtype=np.uint8)
            np.testing.assert_array_equal(serving_ops.rgb_images(images).numpy(), images[..., expected_index])
        with pytest.raises(tf.errors.InvalidArgumentError, match="received 5"):
            serving_ops.rgb_images(np.zeros((1, 1, 5), np.uint8), "sig")

    def test_empty_batch(self):
        with pytest.raises(tf.errors.InvalidArgumentError, match="sig: `x` is an empty batch"):
            serving_ops.assert_non_empty_batch(tf.zeros([0, 3]), "sig", "x")

    def test_pack_token_ids_hand_worked(self):
        def packer(ragged):  # start 8, end 9, length 5, as StartEndPacker(start, end, pad=end) would
            ragged = ragged[:, :3]
            starts = tf.fill([ragged.nrows(), 1], 8)
            ends = tf.fill([ragged.nrows(), 1], 9)
            return tf.concat([starts, ragged, ends], axis=1).to_tensor(default_value=9, shape=[None, 5])

        ids = tf.constant([[1, 2, 3, 4], [5, 0, 0, 0], [0, 0, 0, 0]])
        packed = serving_ops.pack_token_ids(ids, tf.constant([4, 1, 0]), packer, 10, [8, 9], "sig")
        assert packed.numpy().tolist() == [[8, 1, 2, 3, 9], [8, 5, 9, 9, 9], [8, 9, 9, 9, 9]]
        with pytest.raises(tf.errors.InvalidArgumentError, match=r"special tokens \[8, 9\].*received \[9\]"):
            serving_ops.pack_token_ids(tf.constant([[1, 9]]), tf.constant([2]), packer, 10, [8, 9], "sig")
        # Ids past a row's length are padding and are not checked.
        padded = serving_ops.pack_token_ids(tf.constant([[1, 99]]), tf.constant([1]), packer, 10, [8, 9], "sig")
        assert padded.numpy().tolist() == [[8, 1, 9, 9, 9]]

    def test_decode_image_batch_gray_rgba_and_refusals(self):
        rng = np.random.default_rng(1)
        gray = rng.integers(0, 256, (6, 4, 1), dtype=np.uint8)
        rgba = rng.integers(0, 256, (3, 7, 4), dtype=np.uint8)
        batch = tf.stack([tf.io.encode_png(gray), tf.io.encode_png(rgba)])
        crop = lambda image: tf.cast(image[:3, :4], tf.float32)  # noqa: E731
        decoded = serving_ops.decode_image_batch(batch, crop, (3, 4, 3), "sig").numpy()
        np.testing.assert_array_equal(decoded[0], np.repeat(gray[:3, :4], 3, axis=-1))
        np.testing.assert_array_equal(decoded[1], rgba[:3, :4, :3])
        with pytest.raises(tf.errors.InvalidArgumentError, match=r"image_bytes\[1\] \(3 bytes\) was refused: not"):
            serving_ops.decode_image_batch(tf.stack([batch[0], tf.constant(b"abc")]), crop, (3, 4, 3), "sig")
        with pytest.raises(tf.errors.InvalidArgumentError, match="more pixels than max_image_pixels"):
            serving_ops.decode_image_batch(batch[:1], crop, (3, 4, 3), "sig", max_image_pixels=10)
        with pytest.raises(ValueError, match="max_image_pixels=0"):
            serving_ops.decode_image_batch(batch, crop, (3, 4, 3), "sig", max_image_pixels=0)


class TestRestExamples:
    def test_single_input_and_output_are_bare(self):
        request, response = export.rest_predict_example(
            "encode_image_bytes", {"image_bytes": np.array([b"\x89PNG"], object)},
            {"embeddings": np.array([[0.12345678, -1.0]], np.float32)}, decimals=3,
        )
        assert request == {"signature_name": "encode_image_bytes", "instances": [{"b64": "iVBORw=="}]}
        assert response == {"predictions": [[0.123, -1.0]]}

    def test_several_inputs_and_outputs_are_objects(self):
        request, response = export.rest_predict_example(
            "classify", {"token_ids": np.array([[1, 2], [3, 0]], np.int32), "lengths": np.array([2, 1])},
            {"class_names": np.array([[b"cat"], [b"dog"]], object), "scores": np.array([[0.5], [0.25]])},
        )
        assert request["instances"] == [{"token_ids": [1, 2], "lengths": 2}, {"token_ids": [3, 0], "lengths": 1}]
        assert response["predictions"][1] == {"class_names": ["dog"], "scores": [0.25]}
        assert json.loads(rest_examples._format_json(request)) == request
        with pytest.raises(ValueError, match="one shared batch size"):
            export.rest_predict_example("s", {"a": np.zeros(2), "b": np.zeros(3)}, {"y": np.zeros(2)})


def test_warmup_request_round_trip(tmp_path):
    request = export.make_predict_request("m", "sig", {"texts": np.array([b"a", "b"], object),
                                                       "n": np.array([[1, 2]], np.int32)})
    export.write_warmup_requests(str(tmp_path), [request, request])
    (first, second) = export.read_warmup_requests(str(tmp_path))
    assert first == request == second
    inputs = export.request_inputs(first)
    assert inputs["texts"].tolist() == [b"a", b"b"] and inputs["n"].dtype == np.int32
    with pytest.raises(ValueError, match="`inputs` is empty"):
        export.make_predict_request("m", "sig", {})
    with pytest.raises(ValueError, match="at least one request"):
        export.write_warmup_requests(str(tmp_path), [])
