"""Pretrained encoders: timm's published weights (``pretrained: true``, offline here: refused in one line
or read from a cache the test makes), local weight files in both timm layouts, semantic pretraining on
COCO masks followed by matting, and the COCO class grouping that makes those masks."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import timm
import torch
from safetensors.torch import save_file

from matting.data.manifest import read_split
from matting.data.prepare.build import prepare
from matting.data.prepare.coco_people import read_class_groups
from matting.io.checkpoints import config_diff, without_weight_files
from matting.io.errors import MattingInputError
from matting.models import TimmEncoder

from .conftest import REPO
from .test_data_coco import _box, write_coco
from .test_data_layouts import make_tree

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _save(state: dict, path: Path, nest: str | None = None) -> Path:
    if path.suffix == ".safetensors":
        save_file({k: v.contiguous() for k, v in state.items()}, str(path))
    else:
        torch.save({nest: state, "epoch": 3} if nest else state, path)
    return path


def _published(name: str, features_only: bool = False, seed: int = 1) -> dict[str, torch.Tensor]:
    torch.manual_seed(seed)
    return timm.create_model(name, pretrained=False, features_only=features_only).state_dict()


def _timm_features(name: str, classifier_state: dict, **kwargs) -> dict[str, torch.Tensor]:
    """The backbone timm itself builds from a classifier state dict: the reference for bit-equality."""
    model = timm.create_model(name, pretrained=True, features_only=True, **kwargs,
                              pretrained_cfg_overlay={"state_dict": dict(classifier_state), "custom_load": False})
    return model.state_dict()


def _assert_equal(got: dict, want: dict) -> None:
    assert got.keys() == want.keys()
    unequal = [k for k in want if not torch.equal(got[k], want[k])]
    assert not unequal, unequal[:3]


# ---------------------------------------------------------------------------- weights_file


@pytest.mark.parametrize("name", ["test_efficientnet", "test_convnext"])  # names kept / flattened by features_only
@pytest.mark.parametrize("suffix", [".pth", ".safetensors"])
def test_classifier_weights_file_arrives_bit_equal(name, suffix, tmp_path):
    published = _published(name)
    encoder = TimmEncoder(name, weights_file=str(_save(published, tmp_path / f"w{suffix}")))
    _assert_equal(encoder.backbone.state_dict(), _timm_features(name, published))
    assert any(k.startswith(("classifier", "head")) for k in published)  # the head keys were there, and ignored


@pytest.mark.parametrize("name", ["test_efficientnet", "test_convnext"])
@pytest.mark.parametrize("suffix", [".pth", ".safetensors"])
def test_features_only_weights_file_arrives_bit_equal(name, suffix, tmp_path):
    features = _published(name, features_only=True)
    encoder = TimmEncoder(name, weights_file=str(_save(features, tmp_path / f"w{suffix}")))
    _assert_equal(encoder.backbone.state_dict(), features)


@pytest.mark.parametrize("nest", ["state_dict", "model"])
def test_weights_nested_in_a_training_checkpoint_are_found(nest, tmp_path):
    features = _published("test_efficientnet", features_only=True)
    encoder = TimmEncoder("test_efficientnet", weights_file=str(_save(features, tmp_path / "ckpt.pth", nest=nest)))
    _assert_equal(encoder.backbone.state_dict(), features)


def test_a_classifier_file_starts_the_whole_backbone_of_final_features(tmp_path):
    published = _published("test_efficientnet")
    encoder = TimmEncoder("test_efficientnet", final_features=True, weights_file=str(_save(published, tmp_path / "w.pth")))
    _assert_equal(encoder.backbone.state_dict(), {k: v for k, v in published.items() if not k.startswith("classifier")})
    features = _save(_published("test_efficientnet", features_only=True), tmp_path / "features.pth")
    with pytest.raises(MattingInputError, match="absent .e.g. conv_head.weight"):  # the head conv is not in it
        TimmEncoder("test_efficientnet", final_features=True, weights_file=str(features))


def test_an_rgb_file_starts_a_four_channel_encoder_as_timm_adapts_it(tmp_path):
    published = _published("test_efficientnet")
    encoder = TimmEncoder("test_efficientnet", weights_file=str(_save(published, tmp_path / "w.pth")), in_chans=4)
    _assert_equal(encoder.backbone.state_dict(), _timm_features("test_efficientnet", published, in_chans=4))
    assert encoder.backbone.state_dict()["conv_stem.weight"].shape[1] == 4


def test_a_file_that_fits_nothing_is_refused_naming_file_and_keys(tmp_path):
    path = _save(_published("test_resnet"), tmp_path / "resnet.pth")
    with pytest.raises(MattingInputError) as err:
        TimmEncoder("test_efficientnet", weights_file=str(path))
    message = str(err.value)
    assert "\n" not in message and str(path) in message and "test_efficientnet" in message
    assert "conv_stem.weight" in message and "conv1" in message  # what the encoder wants, what the file has


@pytest.mark.parametrize("content", [b"not a torch file", b""])
@pytest.mark.parametrize("suffix", [".pth", ".safetensors"])
def test_an_unreadable_file_is_one_line(content, suffix, tmp_path):
    path = tmp_path / f"broken{suffix}"
    path.write_bytes(content)
    with pytest.raises(MattingInputError, match="cannot be read") as err:
        TimmEncoder("test_efficientnet", weights_file=str(path))
    assert "\n" not in str(err.value) and str(path) in str(err.value)


def test_a_missing_file_is_named(tmp_path):
    with pytest.raises(MattingInputError, match="absent.pth: file not found"):
        TimmEncoder("test_efficientnet", weights_file=str(tmp_path / "absent.pth"))


# ---------------------------------------------------------------------------- pretrained: true


def test_pretrained_offline_is_one_line_naming_the_model_and_weights_file(monkeypatch, tmp_path):
    from huggingface_hub import constants

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "empty_cache"))
    with pytest.raises(MattingInputError) as err:
        TimmEncoder("test_efficientnet", pretrained=True)
    message = str(err.value)
    assert "\n" not in message
    assert "encoder test_efficientnet" in message and "HF_HUB_OFFLINE" in message
    assert "weights_file=PATH (.pth or .safetensors)" in message


def _hub_cache(cache: Path, repo_id: str, state: dict) -> None:
    """huggingface_hub's cache layout: refs/main names a snapshot holding model.safetensors."""
    folder = cache / f"models--{repo_id.replace('/', '--')}"
    commit = "0" * 40
    (folder / "refs").mkdir(parents=True)
    (folder / "refs" / "main").write_text(commit)
    (folder / "snapshots" / commit).mkdir(parents=True)
    save_file({k: v.contiguous() for k, v in state.items()}, str(folder / "snapshots" / commit / "model.safetensors"))


def test_pretrained_weights_in_the_cache_load_without_the_network(monkeypatch, tmp_path):
    from huggingface_hub import constants

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    published = _published("test_efficientnet")
    _hub_cache(tmp_path / "hub", timm.models.get_pretrained_cfg("test_efficientnet").hf_hub_id, published)
    encoder = TimmEncoder("test_efficientnet", pretrained=True)
    _assert_equal(encoder.backbone.state_dict(), _timm_features("test_efficientnet", published))


def test_a_weights_file_wins_over_pretrained(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    features = _published("test_efficientnet", features_only=True)
    encoder = TimmEncoder("test_efficientnet", pretrained=True, weights_file=str(_save(features, tmp_path / "w.pth")))
    _assert_equal(encoder.backbone.state_dict(), features)


def test_checkpoints_forget_where_the_starting_weights_came_from():
    stored = {"encoder": {"init_args": {"name": "test_resnet", "pretrained": True, "weights_file": "/x.pth"}}}
    assert without_weight_files(stored)["encoder"]["init_args"] == {"name": "test_resnet", "pretrained": False,
                                                                    "weights_file": None}
    old = {"encoder": {"init_args": {"name": "test_resnet"}}}  # a checkpoint from before the key existed
    assert config_diff(old, stored) == [] and config_diff(stored, old) == []


def test_a_checkpoint_trained_from_hub_weights_loads_offline(monkeypatch, tmp_path):
    from huggingface_hub import constants

    from matting.inference import load_net
    from tests.tiny_checkpoint import NET_CONFIG, tiny_net, write_checkpoint

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "empty_cache"))
    config = json.loads(json.dumps(NET_CONFIG))
    config["init_args"]["encoder"]["init_args"]["pretrained"] = True
    net = load_net(write_checkpoint(tmp_path / "from_hub.ckpt", config=config))
    _assert_equal(net.state_dict(), tiny_net().state_dict())


@pytest.mark.slow
def test_fit_with_pretrained_offline_stops_at_instantiation_in_one_line(monkeypatch, tmp_path):
    from huggingface_hub import constants

    from matting.runtime.lightning_cli import build_cli

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "empty_cache"))

    args = ["-c", str(REPO / "configs" / "default.yaml"), "-c", str(REPO / "configs" / "smoke.yaml"),
            "--model.net.init_args.encoder.init_args.pretrained=true", f"--trainer.default_root_dir={tmp_path}"]
    with pytest.raises(MattingInputError, match="encoder test_resnet .*: pretrained weights cannot be downloaded"):
        build_cli(args, run=False)


# ---------------------------------------------------------------------------- class grouping


def _things_and_stuff(root: Path) -> list[Path]:
    """The people test's instances file plus a COCO-Stuff file: grass on image 1, an unlisted wall on image 2."""
    instances = write_coco(root, "train2017")
    images = json.loads(instances.read_text())["images"]
    stuff = {"images": images, "categories": [{"id": 124, "name": "grass", "supercategory": "plant"},
                                              {"id": 173, "name": "wall-other", "supercategory": "wall"}],
             "annotations": [{"id": 1, "image_id": 1, "category_id": 124, "iscrowd": 0, "bbox": [40, 48, 40, 12],
                              "area": 480.0, "segmentation": [_box(40, 48, 80, 60)]},
                             {"id": 2, "image_id": 2, "category_id": 173, "iscrowd": 0, "bbox": [40, 0, 40, 30],
                              "area": 1200.0, "segmentation": [_box(40, 0, 80, 30)]}]}
    path = root / "annotations" / "stuff_train2017.json"
    path.write_text(json.dumps(stuff))
    return [instances, path]


def test_things_vs_stuff_makes_a_split_of_every_thing_class(tmp_path):
    pytest.importorskip("pycocotools")
    root = make_tree("coco", tmp_path / "coco")
    annotations = write_coco(root, "train2017")
    info = prepare("coco", root, annotations=[annotations], classes=REPO / "datasets" / "coco" / "things_vs_stuff.yaml",
                   log=lambda *_: None)
    records = {r.name: r for r in read_split(root / "manifests", "things_train2017")}
    # one person (40%), two people (50%) and the dog (33%): the people rule, applied to any thing
    assert sorted(records) == [f"COCO_train2017_{i:012d}" for i in (1, 2, 7)] and info.splits["things_train2017"] == 3
    assert records["COCO_train2017_000000000007"].extra == {"things": 1, "coverage": 0.3333}
    assert records["COCO_train2017_000000000007"].files["alpha"].path.startswith("manifests:things/train2017/")


def test_a_listed_background_drops_images_showing_unlisted_classes(tmp_path):
    pytest.importorskip("pycocotools")
    root = make_tree("coco", tmp_path / "coco")
    groups = tmp_path / "people_on_grass.yaml"
    groups.write_text("name: grass\nsubject: [person]\nbackground: [grass, sky-other]\n")
    prepare("coco", root, annotations=_things_and_stuff(root), classes=groups, log=lambda *_: None)
    (kept,) = read_split(root / "manifests", "grass_train2017")  # image 2 shows a wall, in neither list
    assert kept.name == "COCO_train2017_000000000001"
    mask = np.asarray(__import__("cv2").imread(str(root / "manifests" / kept.files["alpha"].path.split(":", 1)[1]), 0))
    assert abs((mask > 0).mean() - 0.4) < 0.05  # the person only: background classes stay 0


@pytest.mark.parametrize("text, problem", [
    ("subject: [unicorn]\n", "none of the subject categories \\(unicorn\\)"),
    ("subject: person\n", "subject must be a non-empty list"),
    ("subject: [person]\nbackground: [person]\n", "both subject and background"),
    ("subject: [person]\nname: People!\n", "name must be lower-case"),
    ("subject: [person]\nmax_coverage: 2\n", "max_coverage must be a fraction"),
    ("subjects: [person]\n", "unknown key 'subjects'"),
    ("subject: [person\n", "not valid YAML"),
])
def test_a_bad_grouping_file_is_one_line_naming_it(text, problem, tmp_path):
    pytest.importorskip("pycocotools")
    root = make_tree("coco", tmp_path / "coco")
    groups = tmp_path / "groups.yaml"
    groups.write_text(text)
    with pytest.raises(MattingInputError, match=problem) as err:
        prepare("coco", root, annotations=[write_coco(root, "train2017")], classes=groups, log=lambda *_: None)
    assert "\n" not in str(err.value)


def test_the_shipped_grouping_lists_every_coco_thing_and_stuff_class():
    groups = read_class_groups(REPO / "datasets" / "coco" / "things_vs_stuff.yaml")
    assert len(set(groups.subject)) == 80 and len(set(groups.background)) == 91 + 1  # + COCO-Stuff's "other"


# ---------------------------------------------------------------------------- two-stage recipe


@pytest.mark.slow
def test_semantic_pretraining_then_matting_starts_from_the_stage_1_checkpoint(tmp_path):
    pytest.importorskip("pycocotools")
    from matting.runtime.lightning_cli import build_cli

    data_root = tmp_path / "data"
    coco = make_tree("coco", data_root / "coco")
    prepare("coco", coco, annotations=[write_coco(coco, "train2017")], log=lambda *_: None)
    backbone = _save(_published("test_resnet"), tmp_path / "test_resnet.pth")  # offline stand-in for pretrained: true
    configs = REPO / "configs"
    stage1 = build_cli([
        "fit", "-c", str(configs / "default.yaml"), "-c", str(configs / "smoke.yaml"),
        "-c", str(configs / "data" / "coco_people.yaml"), "-c", str(configs / "recipes" / "semantic_pretrain.yaml"),
        f"--model.net.init_args.encoder.init_args.weights_file={backbone}",
        f"--data.init_args.root={data_root}", "--data.init_args.val=coco/people_train2017",
        "--data.init_args.crop_size=64", "--data.init_args.batch_size=2", "--data.init_args.num_workers=0",
        "--data.init_args.val_max_side=96", "--data.init_args.val_samples=1", "--trainer.max_steps=1",
        f"--trainer.default_root_dir={tmp_path / 'stage1'}",
    ])
    net1 = stage1.model.net
    assert net1.detail_head is None and stage1.trainer.global_step == 1
    assert [k for k, w in stage1.model.loss.weights.items() if w and k in ("semantic", "detail", "alpha", "composition")] == ["semantic"]
    ckpt = tmp_path / "stage1" / "logs" / "version_0" / "checkpoints" / "last.ckpt"  # where the recipe says
    assert ckpt.is_file()
    stage2 = build_cli(["-c", str(configs / "default.yaml"), "-c", str(configs / "smoke.yaml"),
                        f"--model.init_weights={ckpt}", f"--trainer.default_root_dir={tmp_path / 'stage2'}"], run=False)
    net2 = stage2.model.net
    assert net2.detail_head is not None
    state = torch.load(ckpt, map_location="cpu", weights_only=True)["state_dict"]
    for part in ("encoder", "semantic_head"):
        _assert_equal({k: v for k, v in getattr(net2, part).state_dict().items()},
                      {k.removeprefix(f"net.{part}."): v for k, v in state.items() if k.startswith(f"net.{part}.")})
    stage2.trainer.fit(stage2.model, datamodule=stage2.datamodule)
    assert stage2.trainer.global_step == 2
