"""FeatureMapRecorder: hooks by qualified name or glob, copies, clean removal."""

import warnings

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
    return sum(len(m._forward_hooks) + len(m._forward_pre_hooks) for m in model.modules())


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
            # one on each module (to pass layouts along), and two on the model for its passes
            assert hook_count(alexnet) == len(list(alexnet.modules())) - 1 + 2
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


# --- eval_mode: logging never changes the model -----------------------------------------


def _snapshot(model):
    """Every buffer (BatchNorm's running_mean/var, num_batches_tracked) and training flag."""
    buffers = {name: b.clone() for name, b in model.named_buffers()}
    flags = {name: m.training for name, m in model.named_modules()}
    return buffers, flags


def _assert_unchanged(model, before):
    buffers, flags = _snapshot(model)
    assert flags == before[1]
    assert buffers.keys() == before[0].keys()
    for name, value in buffers.items():
        assert torch.equal(value, before[0][name]), name


@pytest.fixture
def training_resnet():
    torch.manual_seed(0)
    model = torchvision.models.resnet18(weights=None).train()
    model.layer2.eval()  # a part the user keeps in eval (e.g. frozen): it must stay so
    return model


def test_a_train_mode_probe_changes_batchnorm(training_resnet):
    # The reason for eval_mode: without it the probe updates the running statistics.
    before = _snapshot(training_resnet)
    with torch.no_grad(), FeatureMapRecorder(training_resnet, ["layer1.0"]):
        training_resnet(torch.randn(2, 3, 64, 64))
    assert not torch.equal(training_resnet.bn1.running_mean, before[0]["bn1.running_mean"])
    assert int(training_resnet.bn1.num_batches_tracked) == 1


def test_eval_mode_leaves_buffers_and_every_flag_unchanged(training_resnet):
    before = _snapshot(training_resnet)
    with torch.no_grad(), FeatureMapRecorder(training_resnet, ["layer1.0"], eval_mode=True) as rec:
        assert not any(m.training for m in training_resnet.modules())
        training_resnet(torch.randn(2, 3, 64, 64))
    assert rec.outputs["layer1.0"].shape == (2, 64, 16, 16)
    _assert_unchanged(training_resnet, before)
    assert training_resnet.training and not training_resnet.layer2.training


def test_eval_mode_restores_flags_when_forward_raises(training_resnet):
    before = _snapshot(training_resnet)
    with pytest.raises(RuntimeError):
        with FeatureMapRecorder(training_resnet, ["conv1"], eval_mode=True):
            training_resnet(torch.randn(2, 5, 64, 64))  # wrong channel count
    _assert_unchanged(training_resnet, before)
    assert hook_count(training_resnet) == 0


def test_eval_mode_must_be_a_bool(alexnet):
    with pytest.raises(TypeError, match="eval_mode"):
        FeatureMapRecorder(alexnet, ["features.0"], eval_mode="yes")


# --- globs: '*' stays within one part of a dotted name, '**' crosses dots ----------------


@pytest.fixture(scope="module")
def resnet():
    return torchvision.models.resnet18(weights=None).eval()


def _layers_without_warnings(model, layers):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        return FeatureMapRecorder(model, layers).layers


@pytest.mark.parametrize(
    "pattern, expected",
    [
        ("layer1.**", [n for n, _ in torchvision.models.resnet18().named_modules()
                       if n.startswith("layer1.")]),
        ("layer*.0.conv1", [f"layer{i}.0.conv1" for i in range(1, 5)]),
        ("layer?.1", [f"layer{i}.1" for i in range(1, 5)]),
        ("layer[12].0.bn?", ["layer1.0.bn1", "layer1.0.bn2", "layer2.0.bn1", "layer2.0.bn2"]),
        ("layer[!1234]", []),
        ("layer1?0", []),  # '?' is one character that is not a dot
        ("layer1.0", ["layer1.0"]),
    ],
)
def test_dotted_glob_rule(resnet, pattern, expected):
    if not expected:
        with pytest.raises(ValueError, match="matches no module"):
            FeatureMapRecorder(resnet, pattern)
        return
    assert _layers_without_warnings(resnet, pattern) == expected


def test_star_stays_within_one_part_and_double_star_crosses_dots(resnet):
    changed = r"'layer1\.\*' selects 2 modules, 12 before.*'layer1\.\*\*'"
    with pytest.warns(FutureWarning, match=changed):
        rec = FeatureMapRecorder(resnet, "layer1.*")
    assert rec.layers == ["layer1.0", "layer1.1"]
    assert len(_layers_without_warnings(resnet, "layer1.**")) == 12
    deep = _layers_without_warnings(resnet, "**.conv1")
    assert deep == [f"layer{i}.{j}.conv1" for i in range(1, 5) for j in range(2)]
    with pytest.warns(FutureWarning, match=r"'\*\*conv1'"):
        assert FeatureMapRecorder(resnet, "*conv1").layers == ["conv1"]


def test_a_pattern_that_only_crossed_dots_names_the_double_star(resnet):
    message = r"'layer1\*relu' matches no module.*'layer1\*\*relu' crosses dots"
    with pytest.raises(ValueError, match=message):
        FeatureMapRecorder(resnet, "layer1*relu")


def test_an_exact_name_is_never_a_pattern():
    model = nn.ModuleDict({name: nn.Identity() for name in ("a[1]", "a1", "b*", "bc")})
    assert _layers_without_warnings(model, "a[1]") == ["a[1]"]
    assert _layers_without_warnings(model, "b*") == ["b*"]
    assert _layers_without_warnings(model, "b?") == ["b*", "bc"]  # as a glob
    assert _layers_without_warnings(model, "a[[]1]") == ["a[1]"]


# --- a module that runs more than once in one forward pass --------------------------------


def test_a_module_called_twice_in_one_pass_warns_once_and_keeps_the_last_call(resnet):
    block = resnet.layer1[0]  # BasicBlock: relu(bn1(conv1(x))), then relu(out + identity)
    x = torch.randn(1, 3, 64, 64)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with torch.no_grad(), FeatureMapRecorder(resnet, ["layer1.0.relu", "layer1.0", "conv1"]) as rec:
            resnet(x)
            resnet(x)
    messages = [str(w.message) for w in caught if issubclass(w.category, RuntimeWarning)]
    assert len(messages) == 1, messages
    assert "'layer1.0.relu' ran more than once in one forward pass" in messages[0]
    # it points at the line that called the model, not into torch or torchvision
    (where,) = [w for w in caught if issubclass(w.category, RuntimeWarning)]
    assert where.filename == __file__, where.filename
    assert "only its last output is kept" in messages[0]
    torch.testing.assert_close(rec.outputs["layer1.0.relu"], rec.outputs["layer1.0"])
    assert hook_count(resnet) == 0
