"""``export --format tfds`` without TensorFlow: the files TFDS's own writer makes, written with
tensorflow-datasets' TF-free parts.

A TFDS dataset directory ``DIR/NAME/VERSION`` holds ``features.json`` (and ``label.labels.txt``,
both from the features' ``save_config``), ``dataset_info.json`` (the DatasetInfo proto as JSON:
name, version, file format, the splits' example counts and byte sizes) and one
``NAME-SPLIT.array_record-00000-of-00001`` per split: tf.train.Example records in dataset order
(``ExampleSerializer`` and the ``array_record`` writer that TFDS uses, ``group_size:1`` for
random access). Images are stored PNG-encoded as ``tfds.features.Image`` stores them (PNG
bytes from Pillow, which TFDS passes through unchanged); ``tfds.data_source(NAME,
data_dir=DIR)`` reads the result with no TensorFlow.
"""
from __future__ import annotations

import io
import json
import os
import tempfile
from typing import Iterable, Iterator

import numpy as np

from sem_jax.data import rows as R
from sem_jax.errors import SemJaxError
from sem_jax.files import atomic, fs


def _png(image: np.ndarray) -> bytes:
  from PIL import Image
  buf = io.BytesIO()
  Image.fromarray(image[..., 0] if image.shape[-1] == 1 else image).save(buf, format="PNG")
  return buf.getvalue()


def _rows(table, labels) -> Iterator[tuple[int, np.ndarray, int]]:
  """(index, image, label) of every row of a (lazy) uint8 table, a block at a time."""
  for s, e in R.chunks(len(labels), R.block_rows(table)):
    block = np.asarray(table[s:e])
    for i in range(s, e):
      yield i, block[i - s], int(labels[i])


def write_tfds(out: str, name: str, version: str, image_shape, class_names: list[str],
               splits: dict[str, tuple], description: str) -> str:
  """Write the TFDS dataset ``name`` ``version`` under ``out`` with one split per entry of
  ``splits`` (``{split: (uint8 (N, H, W, C) table, labels)}``, rows in order); features
  ``image`` (PNG), ``label`` (ClassLabel of ``class_names``), ``index`` (int64). Returns the
  dataset's directory."""
  try:
    import tensorflow_datasets as tfds
    from tensorflow_datasets.core import example_serializer, file_adapters
  except ImportError:
    raise SemJaxError("--format tfds needs tensorflow-datasets to write the dataset: "
                      "pip install -e '.[tfds]' (no TensorFlow needed)") from None
  features = tfds.features.FeaturesDict({
      "image": tfds.features.Image(shape=tuple(image_shape)),
      "label": tfds.features.ClassLabel(names=class_names),
      "index": np.int64,
  })
  root = fs.join(out, name, version)
  fs.makedirs(root)
  features.save_config(root)
  serializer = example_serializer.ExampleSerializer(features.get_serialized_info())
  infos = []
  for split, (table, labels) in splits.items():
    size = [0]

    def records(rows: Iterable) -> Iterator[tuple[int, bytes]]:
      for i, image, label in rows:
        rec = serializer.serialize_example(features.encode_example(
            {"image": _png(image), "label": label, "index": i}))
        size[0] += len(rec)
        yield i, rec
    path = fs.join(root, f"{name}-{split}.array_record-00000-of-00001")
    local = tempfile.mkstemp(suffix=".array_record")[1] if fs.is_url(path) else path
    file_adapters.ArrayRecordFileAdapter.write_examples(local, records(_rows(table, labels)))
    if local != path:                 # the array_record writer takes local paths only
      fs.move(local, path)
    infos.append({"filepathTemplate": "{DATASET}-{SPLIT}.{FILEFORMAT}-{SHARD_X_OF_Y}",
                  "name": split, "numBytes": str(size[0]),
                  "shardLengths": [str(len(labels))]})
  info = {"description": description, "disableShuffling": True, "fileFormat": "array_record",
          "moduleName": __name__, "name": name, "splits": infos, "version": version}
  atomic.write_text(fs.join(root, "dataset_info.json"), json.dumps(info, indent=2))
  return root
