"""`mimic.builders.load_index`: the library's one way from annotations to an index; errors name parameters."""

from __future__ import annotations

import pytest

from mimic.builders import load_index
from mimic.builders.hub_folder import materialize
from mimic.builders.mimic_bench import MimicBench
from mimic.errors import AnnotationError, ConfigError


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("coco",), "source 'coco' needs annotations="),
        (("openimages", "boxes.csv"), "needs oi_classes=, oi_hierarchy="),
        (("pascal", "x.json"), "unknown source 'pascal'"),
    ],
)
def test_missing_arguments_are_named_as_parameters(args, message):
    with pytest.raises(ConfigError, match=message) as err:
        load_index(*args)
    assert "--" not in str(err.value)  # a Python caller never sees CLI flags


def test_a_missing_images_folder_is_named_before_any_image_is_read(world, tmp_path):
    paths, _ = world
    with pytest.raises(AnnotationError, match="images_dir") as err:
        load_index("synthetic", paths.annotations, tmp_path / "nope")
    assert str(tmp_path / "nope") in str(err.value) and ".jpg" not in str(err.value)


def test_a_saved_index_takes_the_images_folder_given(world, tmp_path):
    paths, index = world
    saved = index.save(tmp_path / "index.parquet")
    assert load_index("synthetic", saved).images_dir == index.images_dir
    elsewhere = tmp_path / "moved"
    elsewhere.mkdir()
    assert load_index("coco", saved, elsewhere).images_dir == str(elsewhere)
    with pytest.raises(AnnotationError, match="image files listed in"):
        load_index("coco", saved, elsewhere, check_images=True)


def test_a_bench_build_with_a_wrong_images_folder_names_it_and_writes_nothing(world, tmp_path):
    paths, _ = world
    builder = MimicBench(config_name="common", source="synthetic", annotations=str(paths.annotations),
                         images_dir=str(tmp_path / "nope"), num_samples=2)
    with pytest.raises(AnnotationError, match="images folder not found"):
        materialize(builder, tmp_path / "out", progress=False)
    assert not (tmp_path / "out").exists()
