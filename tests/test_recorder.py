"""FeatureMapRecorder: hooks by qualified name or glob, copies, clean removal."""

import pytest
import torch
import torchvision
from torch import nn

from tb_featmap import FeatureMapRecorder


@pytest.fixture(scope="module")
def alexnet():
    torch.manual_seed(0)
    return torchvision.models.alexnet(weights=None).eval()


def hook_count(model):
    return sum(len(m._forward_hooks) for m in model.modules())


def test_records_conv_outputs_before_inplace_relu(alexnet):
    x = torch.randn(1, 3, 224, 224)
    with FeatureMapRecorder(alexnet, ["features.0", "features.3"]) as rec:
        with torch.no_grad():
            alexnet(x)
    conv = alexnet.features[0](x).detach()
    assert list(rec.outputs) == ["features.0", "features.3"]
    assert rec.outputs["features.0"].shape == (1, 64, 55, 55)
    # ReLU(inplace=True) runs right after features.0; the recorded copy keeps negatives.
    assert (rec.outputs["features.0"] < 0).any()
    torch.testing.assert_close(rec.outputs["features.0"], conv)
    assert hook_count(alexnet) == 0


def test_glob_patterns_select_in_model_order(alexnet):
    rec = FeatureMapRecorder(alexnet, "features.*")
    assert rec.layers == [f"features.{i}" for i in range(13)]
    resnet = torchvision.models.resnet18(weights=None)
    rec = FeatureMapRecorder(resnet, ["layer*.0.conv1"])
    assert rec.layers == ["layer1.0.conv1", "layer2.0.conv1", "layer3.0.conv1", "layer4.0.conv1"]


def test_unknown_name_lists_closest_names(alexnet):
    with pytest.raises(ValueError, match=r"'feature.0' matches no module.*features\.0"):
        FeatureMapRecorder(alexnet, ["feature.0"])


@pytest.mark.parametrize(
    "model, layers, error",
    [("not a model", ["a"], TypeError), (nn.Linear(2, 2), [1], TypeError), (nn.Linear(2, 2), [], ValueError)],
)
def test_bad_arguments(model, layers, error):
    with pytest.raises(error):
        FeatureMapRecorder(model, layers)


def test_hooks_removed_when_forward_raises(alexnet):
    with pytest.raises(RuntimeError):
        with FeatureMapRecorder(alexnet, ["features.0", "classifier.1"]):
            assert hook_count(alexnet) == 2
            alexnet(torch.randn(1, 5, 224, 224))  # wrong channel count
    assert hook_count(alexnet) == 0


def test_tuple_outputs_record_the_first_tensor():
    attention = nn.MultiheadAttention(8, 2, batch_first=True)
    model = nn.Sequential()
    model.add_module("attn", attention)
    x = torch.randn(2, 5, 8)
    with FeatureMapRecorder(model, ["attn"]) as rec:
        attention(x, x, x)
    assert rec.outputs["attn"].shape == (2, 5, 8)
