"""Every kind of layer, as the README logs it: the recorder infers 1-D, 3-D, linear and token
layouts from the modules, log_feature_maps uses them with no `layout=`, and layers are
listed in logging order by the plugin, `read` and `tb-featmap ls`."""

import gc
import io
import json
import math
import warnings
import weakref
from pathlib import Path

import numpy as np
import pytest
import torch
import torchvision
from torch import nn
from torch.utils.tensorboard import SummaryWriter

from support import wsgi_client
from tb_featmap import FeatureMapRecorder, log_feature_maps, render
from tb_featmap.cli import main
from tb_featmap.reader import FeatureMapReader
from tb_featmap.recorder import LayerOutputs
from tb_featmap.summary import _plan_downsample

ROUTE = "/data/plugin/feature_maps/"


class Audio(nn.Module):
    """A 1-D conv net with a linear head, the way an audio classifier looks."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv1d(2, 8, 9, padding=4)
        self.bn = nn.BatchNorm1d(8)
        self.up = nn.ConvTranspose1d(8, 4, 2, stride=2)
        self.pool = nn.AdaptiveAvgPool1d(1)
        self.head = nn.Linear(4, 3)

    def forward(self, x):
        x = self.up(torch.relu(self.bn(self.conv(x))))
        return self.head(self.pool(x).flatten(1))


class Tokens(nn.Module):
    """Patch embedding + batch-first transformer + MultiheadAttention + a token Linear."""

    def __init__(self):
        super().__init__()
        self.embed = nn.Linear(6, 16)
        self.encoder = nn.TransformerEncoder(
            nn.TransformerEncoderLayer(16, 2, 32, batch_first=True), num_layers=1,
            enable_nested_tensor=False,
        )
        self.attn = nn.MultiheadAttention(16, 2, batch_first=True)
        self.norm = nn.LayerNorm(16)

    def forward(self, x):
        x = self.encoder(self.embed(x))
        x, _ = self.attn(x, x, x)
        return self.norm(x)


def record(model, layers, x):
    with torch.no_grad(), FeatureMapRecorder(model, layers, eval_mode=True) as rec:
        model(x)
    return rec.outputs


def small_vit():
    return torchvision.models.VisionTransformer(
        image_size=32, patch_size=8, num_layers=1, num_heads=2, hidden_dim=32, mlp_dim=64,
        num_classes=5,
    )


def test_recorder_infers_each_layout_from_its_module():
    torch.manual_seed(0)
    out = record(Audio(), "*", torch.randn(2, 2, 50))
    assert isinstance(out, LayerOutputs) and list(out) == ["conv", "bn", "up", "pool", "head"]
    assert out.layouts == {"conv": "NCL", "bn": "NCL", "up": "NCL", "pool": "NCL", "head": "NF"}
    out = record(Tokens(), "**", torch.randn(2, 17, 6))
    assert out.layouts["embed"] == "NTD"  # Linear on a rank-3 output
    assert out.layouts["encoder"] == "NTD" and out.layouts["encoder.layers.0"] == "NTD"
    # Inside a batch-first encoder, a LayerNorm's and a dropout's rank-3 outputs are tokens.
    assert out.layouts["encoder.layers.0.norm1"] == "NTD"
    assert out.layouts["attn"] == "NTD"
    # A LayerNorm outside one has no rule: it takes the layout of the tokens it was given.
    assert out.layouts["norm"] == "NTD"
    vit = record(small_vit(), "**", torch.randn(1, 3, 32, 32))
    assert vit.layouts["encoder"] == "NTD"
    assert vit.layouts["encoder.layers.encoder_layer_0"] == "NTD"
    assert vit.layouts["encoder.layers.encoder_layer_0.ln_1"] == "NTD"
    assert vit.layouts["heads.head"] == "NF"
    assert "conv_proj" not in vit.layouts  # rank 4: NCHW by rank
    r3d = record(torchvision.models.video.r3d_18(weights=None), "layer1.0.conv1.0",
                 torch.randn(1, 3, 4, 32, 32))
    assert r3d.layouts == {"layer1.0.conv1.0": "NCDHW"}


def test_sequence_first_transformers_are_not_tokens(tmp_path):
    layer = nn.TransformerEncoderLayer(16, 2, 32, batch_first=False)
    out = record(nn.Sequential(layer), "0", torch.randn(5, 2, 16))
    assert out.layouts == {}
    # Nor is what they pass on, or what their own Linear layers give, although a Linear
    # before them gives tokens: [L, N, D] is not [N, T, D].
    net = nn.Sequential(nn.Linear(8, 16), nn.TransformerEncoderLayer(16, 2, 32), nn.Dropout())
    out = record(net, ["0", "1", "1.linear1", "2"], torch.randn(10, 2, 8))
    assert out.layouts == {"0": "NTD"}
    with SummaryWriter(str(tmp_path)) as writer:
        with pytest.raises(ValueError, match="rank 3 is ambiguous"):
            log_feature_maps(writer, out, 0)


class Transpose(nn.Module):
    """[N, C, L] -> [N, L, C]: the rank stays, the channel axis does not."""

    def forward(self, x):
        return x.transpose(1, 2)


class Recurrent(nn.Module):
    """A CRNN's recurrent half: an LSTM over the time steps of a 1-D conv's output."""

    def __init__(self, channels, hidden):
        super().__init__()
        self.lstm = nn.LSTM(channels, hidden, batch_first=True)

    def forward(self, x):
        y, _ = self.lstm(x.transpose(1, 2))
        return y


def test_a_module_that_moves_the_channel_axis_passes_no_layout_on(tmp_path):
    """Inheriting needs the same batch and channel axes, not only the same rank: a
    transpose, a recurrent block and what follows them stay unknown (the rank rules, which
    ask for layout= at rank 3), instead of being drawn as channels they are not."""
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv1d(4, 8, 3), Transpose(), nn.LayerNorm(8), nn.GELU())
    assert record(net, ["0", "1", "2", "3"], torch.randn(2, 4, 50)).layouts == {"0": "NCL"}
    crnn = nn.Sequential(nn.Conv1d(4, 8, 3), Recurrent(8, 16), nn.ReLU())
    out = record(crnn, ["0", "1", "1.lstm", "2"], torch.randn(2, 4, 50))
    assert out.layouts == {"0": "NCL"}
    # logging it asks for a layout, and says how to log a sequence over time
    with SummaryWriter(str(tmp_path)) as writer:
        with pytest.raises(ValueError, match=r"output.transpose\(1, 2\) with layout='NCL'"):
            log_feature_maps(writer, out, 0)
        sequence = {"lstm": out["1"].transpose(1, 2)}  # [N, H, T]: a row per feature
        assert log_feature_maps(writer, sequence, 0, layout="NCL") == {
            "feature_maps/lstm": (1, 16, 1, 48)}
    # A channel count that matches by chance does not help: the LSTM's output is unknown
    # (a sequence), and the ReLU after it too, whatever its shape.
    same = nn.Sequential(nn.Conv1d(4, 8, 3), nn.LSTM(48, 48, batch_first=True))
    assert record(same, ["1"], torch.randn(8, 4, 50)).layouts == {}


class Swish(nn.Module):
    """A custom block with no layout rule: x * sigmoid(x), a new tensor of the same shape."""

    def forward(self, x):
        return x * torch.sigmoid(x)


def test_activations_take_the_layout_of_what_they_were_given(tmp_path):
    """Only the activations of a 1-D net are recorded: the convs before them are watched
    anyway, and each activation's rank-3 output is NCL, so no `layout=` is needed."""
    torch.manual_seed(0)
    net = nn.Sequential(
        nn.Conv1d(2, 6, 5), nn.ReLU(), nn.Conv1d(6, 4, 3), nn.GELU(), nn.Dropout(0.1),
        nn.Identity(), Swish(), nn.Flatten(), nn.ReLU(),
    )
    out = record(net, ["1", "3", "4", "5", "6", "7", "8"], torch.randn(1, 2, 40))
    assert out.layouts == {"1": "NCL", "3": "NCL", "4": "NCL", "5": "NCL", "6": "NCL"}
    # Flatten changes the rank: it does not inherit, nor does the ReLU after it; rank rules.
    with SummaryWriter(str(tmp_path)) as writer:
        shapes = log_feature_maps(writer, out, 0)
    assert shapes["feature_maps/6"] == (1, 4, 1, 34)  # NCL: 4 channels of 34
    assert shapes["feature_maps/8"] == (1, 136, 1, 1)  # NF by rank
    stored = {i.layer: i.header["layout"] for i in FeatureMapReader(str(tmp_path)).layers()}
    assert stored == {"1": "NCL", "3": "NCL", "4": "NCL", "5": "NCL", "6": "NCL", "7": "NF",
                      "8": "NF"}


def test_inplace_relu_chains_and_containers(tmp_path):
    torch.manual_seed(0)
    inplace = nn.Sequential(nn.Conv1d(2, 4, 3), nn.ReLU(inplace=True))
    assert record(inplace, "1", torch.randn(1, 2, 9)).layouts == {"1": "NCL"}
    # Conv1d -> BatchNorm1d -> ReLU -> Dropout, only the last recorded; the ReLU makes a new
    # tensor, so the chain passes through a module nobody selected.
    chain = nn.Sequential(nn.Conv1d(2, 4, 3), nn.BatchNorm1d(4), nn.ReLU(), nn.Dropout(0.5))
    conv_out, alive_at_end = [], []

    def before_dropout(module, inputs):
        gc.collect()
        alive_at_end.append(conv_out[-1]() is not None)

    hooks = [chain[0].register_forward_hook(lambda m, i, o: conv_out.append(weakref.ref(o))),
             chain[3].register_forward_pre_hook(before_dropout)]
    assert record(chain, "3", torch.randn(1, 2, 9)).layouts == {"3": "NCL"}
    for hook in hooks:
        hook.remove()
    # While the pass runs, the recorder holds the conv's output by a weak reference only:
    # nothing else refers to it once the BatchNorm has run, so it is gone.
    assert alive_at_end == [False]
    # A container ending in a Conv1d returns the conv's output, and so has its layout,
    # although what it was given (the input) is unknown.
    nested = nn.Sequential(nn.Sequential(nn.ReLU(), nn.Conv1d(2, 4, 3)), nn.Tanh())
    assert record(nested, ["0", "1"], torch.randn(1, 2, 9)).layouts == {"0": "NCL", "1": "NCL"}
    # 3-D: Conv3d -> BatchNorm3d -> ReLU -> a custom block, NCDHW all along.
    volume = nn.Sequential(nn.Conv3d(1, 2, 3), nn.BatchNorm3d(2), nn.ReLU(), Swish())
    assert record(volume, ["2", "3"], torch.randn(1, 1, 4, 6, 6)).layouts == {
        "2": "NCDHW", "3": "NCDHW"
    }
    # Tokens: a LayerNorm after a token Linear outside any transformer.
    tokens = nn.Sequential(nn.Linear(3, 8), nn.LayerNorm(8), nn.GELU())
    assert record(tokens, "2", torch.randn(1, 5, 3)).layouts == {"2": "NTD"}
    # Explicit layout= still wins over what the recorder inherited.
    with SummaryWriter(str(tmp_path)) as writer:
        out = record(chain, "3", torch.randn(1, 2, 9))
        assert log_feature_maps(writer, out, 0, layout="CHW") == {"feature_maps/3": (1, 1, 4, 7)}


def test_a_scripted_submodule_is_left_unwatched():
    """Scripted modules take no hooks: the recorder watches the others and still works."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # torch.jit.script is deprecated
        scripted = torch.jit.script(nn.Sequential(nn.Conv1d(2, 4, 3), nn.ReLU()))
    net = nn.Sequential(nn.Conv1d(2, 2, 1), scripted, nn.Tanh(), nn.Conv1d(4, 4, 1), nn.GELU())
    out = record(net, ["2", "4"], torch.randn(1, 2, 9))
    # What the scripted part returns is unknown, so the Tanh after it is too; the GELU after
    # the last Conv1d is NCL.
    assert out.layouts == {"4": "NCL"}


class Fresh(nn.Module):
    """A conv whose output stays alive, then an activation of an unrelated new tensor."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv1d(2, 4, 3)
        self.act = nn.ReLU()

    def forward(self, x):
        kept = self.conv(x)
        return kept, self.act(torch.randn(1, 7, 5))


def test_a_tensor_at_a_known_address_is_not_taken_for_the_known_one(monkeypatch):
    """Every tensor is made to share one id, as a freed tensor's id may be reused: only the
    very tensor a module returned carries its layout."""
    from tb_featmap import recorder

    monkeypatch.setattr(recorder, "id", lambda _: 0, raising=False)
    out = record(Fresh(), ["conv", "act"], torch.randn(1, 2, 9))
    assert out.layouts == {"conv": "NCL"}


@pytest.fixture(scope="module")
def logdir(tmp_path_factory):
    """One run per model, each logged the README's way: no `layout=`."""
    root = tmp_path_factory.mktemp("layouts")
    torch.manual_seed(0)
    models = {
        "audio": (Audio(), ["conv", "up", "head"], torch.randn(1, 2, 3000)),
        "tokens": (Tokens(), ["embed", "encoder", "attn"], torch.randn(1, 17, 6)),
        "vit": (small_vit(), ["conv_proj", "encoder.layers.encoder_layer_0", "heads.head"],
                torch.randn(1, 3, 32, 32)),
        "r3d": (torchvision.models.video.r3d_18(weights=None), ["stem", "layer1.0.conv1.0"],
                torch.randn(1, 3, 4, 32, 32)),
        "alexnet": (torchvision.models.alexnet(weights=None),
                    ["features.0", "features.3", "features.10", "classifier.1"],
                    torch.randn(1, 3, 64, 64)),
    }
    shapes = {}
    for run, (model, layers, x) in models.items():
        with SummaryWriter(str(root / run)) as writer:
            for step in (0, 1):
                out = record(model, layers, x)
                shapes[run] = log_feature_maps(writer, out, step)
    return root, shapes


def test_readme_pattern_logs_every_layout_without_layout_argument(logdir):
    root, shapes = logdir
    assert shapes["audio"]["feature_maps/conv"] == (1, 8, 1, 3000)  # full length kept
    assert shapes["audio"]["feature_maps/up"] == (1, 4, 1, 3000)  # 6000 > 4096: halved
    assert shapes["audio"]["feature_maps/head"] == (1, 3, 1, 1)
    assert shapes["vit"]["feature_maps/encoder.layers.encoder_layer_0"] == (1, 32, 4, 4)
    assert shapes["r3d"]["feature_maps/layer1.0.conv1.0"] == (1, 64, 4 * 16, 16)
    layouts = {
        (info.run, info.layer): (info.header["layout"], info.header["dropped"]["tokens"])
        for info in FeatureMapReader(str(root)).layers()
    }
    assert layouts[("audio", "conv")] == ("NCL", 0)
    assert layouts[("audio", "head")] == ("NF", 0)
    assert layouts[("tokens", "encoder")] == ("NTD", 1)
    assert layouts[("vit", "encoder.layers.encoder_layer_0")] == ("NTD", 1)
    assert layouts[("vit", "heads.head")] == ("NF", 0)
    assert layouts[("r3d", "layer1.0.conv1.0")] == ("NCDHW", 0)


def test_layers_are_listed_in_logging_order_everywhere(logdir, capsys):
    root, _ = logdir
    want = ["features.0", "features.3", "features.10", "classifier.1"]
    infos = [i for i in FeatureMapReader(str(root)).layers() if i.run == "alexnet"]
    assert [i.layer for i in infos] == want
    assert [i.header["order"] for i in infos] == [0, 1, 2, 3]
    assert main(["ls", str(root), "--json"]) == 0
    listed = [d["layer"] for d in json.loads(capsys.readouterr().out) if d["run"] == "alexnet"]
    assert listed == want
    # The tags route keeps the order in its JSON object, which the tab keeps too.
    body = wsgi_client(root).get(ROUTE + "tags").get_data()
    tags = json.loads(body)["alexnet"]
    assert [tags[t]["layer"] for t in tags] == want
    assert [tags[t]["order"] for t in tags] == [0, 1, 2, 3]


def test_several_calls_into_one_run_are_listed_call_by_call(tmp_path):
    """The README's layouts example logs several models into one run, one call and one
    prefix each: their layers are listed call by call, each call's in its outputs' order,
    at every step, not interleaved by their places within the calls."""
    calls = [("b", {"z": torch.rand(1, 2, 3, 3), "a": torch.rand(1, 2)}),
             ("a", {"y": torch.rand(1, 2, 3, 3), "x": torch.rand(1, 2), "w": torch.rand(1, 3)})]
    with SummaryWriter(str(tmp_path / "run")) as writer:
        for step in range(2):
            for prefix, outputs in calls:
                log_feature_maps(writer, outputs, step, prefix=prefix)
    want = ["b/z", "b/a", "a/y", "a/x", "a/w"]
    infos = FeatureMapReader(str(tmp_path)).layers()
    assert [i.layer for i in infos] == want
    assert [i.header["order"] for i in infos] == [0, 1, 2, 3, 4]
    body = wsgi_client(tmp_path).get(ROUTE + "tags").get_data()
    assert [info["layer"] for info in json.loads(body)["run"].values()] == want


def test_natural_order_where_no_order_is_known():
    from tb_featmap import _series

    names = ["features.10", "features.3", "classifier.1", "features.0"]
    infos = [_series.describe_layer("r", "feature_maps/" + n, [0], {}) for n in names]
    assert [i.layer for i in _series.layer_order(infos)] == [
        "classifier.1", "features.0", "features.3", "features.10"
    ]


def test_explicit_layout_wins_and_globs_select(tmp_path):
    out = LayerOutputs(
        {"a.x": torch.randn(1, 4, 9), "a.y": torch.randn(1, 9, 4), "b": torch.randn(1, 3, 5)},
        layouts={"a.x": "NCL", "a.y": "NCL", "b": "NCL"},
    )
    with SummaryWriter(str(tmp_path)) as writer:
        shapes = log_feature_maps(writer, out, 0, layout={"a.*": "NTD", "a.x": "CHW"})
    # the name's own entry first, then the first glob; unmatched names keep outputs.layouts
    assert shapes == {
        "feature_maps/a.x": (1, 1, 4, 9),  # CHW
        "feature_maps/a.y": (1, 4, 3, 3),  # NTD: 9 tokens on a 3 x 3 grid
        "feature_maps/b": (1, 3, 1, 5),  # NCL from outputs.layouts
    }
    with SummaryWriter(str(tmp_path)) as writer:
        assert log_feature_maps(writer, out, 1, layout="NCL")["feature_maps/a.y"] == (1, 9, 1, 4)
        with pytest.raises(ValueError, match=r"not in outputs: \['c\.\*'\]"):
            log_feature_maps(writer, out, 2, layout={"c.*": "NCL"})
        # '*' stays within one part of a dotted name, as in the recorder
        with pytest.raises(ValueError, match=r"not in outputs: \['\*'\]"):
            log_feature_maps(writer, {"a.x": out["a.x"]}, 2, layout={"*": "NCL"})
        assert log_feature_maps(writer, {"a.x": out["a.x"]}, 2, layout={"**": "NCL"})


def test_keep_class_token(tmp_path):
    x = torch.randn(1, 17, 3)
    with SummaryWriter(str(tmp_path)) as writer:
        dropped = log_feature_maps(writer, {"t": x}, 0, layout="NTD")
        assert dropped == {"feature_maps/t": (1, 3, 4, 4)}
        kept = log_feature_maps(writer, {"t": x}, 1, layout="NTD", keep_class_token=True)
        with pytest.raises(TypeError, match="keep_class_token"):
            log_feature_maps(writer, {"t": x}, 2, layout="NTD", keep_class_token=1)
    assert kept == {"feature_maps/t": (1, 3, 1, 17)}
    record = list(FeatureMapReader(str(tmp_path)).records(step=1))[0]
    assert record.header["dropped"]["tokens"] == 0
    # The class token is the strip's first value; uint8 holds it within (max - min) / 508.
    truth = x[0].T.numpy()
    bound = (truth.max(1) - truth.min(1)) / 508 + 1e-6
    assert (np.abs(record.values[0, :, 0, :] - truth) <= bound[:, None]).all()


@pytest.mark.parametrize(
    "h, w, max_size, want",
    [
        (1, 4000, 64, (1, (1, 4000))),  # 1-D: up to max_size**2 values kept whole
        (1, 4096, 64, (1, (1, 4096))),
        (1, 4097, 64, (2, (1, 2049))),
        (1, 100_000, 64, (25, (1, 4000))),
        (1, 4000, None, (1, (1, 4000))),
        (128, 32, 64, (2, (64, 16))),  # 2-D: the longer side, as before
    ],
)
def test_downsample_rule(h, w, max_size, want):
    got = _plan_downsample(h, w, max_size)
    assert got == want
    if h == 1 and max_size:
        assert got[1][1] <= max_size**2 and math.ceil(w / got[0]) == got[1][1]


CASES = json.loads((Path(__file__).parent / "layout_cases.json").read_text())


def test_shared_cases_view_kind_and_row_height():
    for case in CASES["view_kind"]:
        assert render.view_kind(case["layout"], case["h"], case["w"]) == case["kind"], case
    for case in CASES["row_height"]:
        assert render.row_height(case["count"]) == case["height"], case
    for case in CASES["depth"]:
        assert render.depth_of(case["header"]) == case["depth"], case


def test_export_draws_each_layout_as_its_kind(logdir, tmp_path):
    root, _ = logdir
    records = {
        (r.run, r.layer): r for r in FeatureMapReader(str(root)).records(step=1)
    }
    conv = records[("audio", "conv")]  # 8 channels x 3000
    image = render.render_record(conv)
    assert image.shape == (8 * 16 + 7, 3000, 3)  # one row each, 16 px, the layer >= 128
    # each row is one channel: its pixels follow that channel's values
    row = image[16 + 1 + 3, :, 0].astype(float)  # channel 1, gray
    values = conv.values[0, 1, 0]
    assert np.corrcoef(row, values)[0, 1] > 0.99
    head = records[("audio", "head")]  # 3 features: near-square, per layer by default
    image = render.render_record(head)
    assert image.shape == (2 * 4 + 1, 2 * 4 + 1, 3)
    lo, hi = head.values[0].min(), head.values[0].max()
    cells = [image[0, 0, 0], image[0, 5, 0], image[5, 0, 0]]
    assert sorted(cells)[0] == 0 and sorted(cells)[-1] == 255  # one range over the layer
    flat = render.render_record(head, norm="channel")
    assert (flat[:4, :4] == flat[0, 0]).all() and lo < hi
    # the CLI's export, 1-D and linear, through the same reader
    out = tmp_path / "conv.png"
    args = ["export", str(root), "--run", "audio", "--layer", "conv", "-q", "-o", str(out)]
    assert main(args) == 0
    from PIL import Image

    assert Image.open(out).size == (3000, 8 * 16 + 7)


def test_export_pngs_of_every_layout_of_the_real_models(logdir, tmp_path):
    """`tb-featmap export` of one layer of each layout: each PNG has its kind's geometry."""
    from PIL import Image

    root, shapes = logdir
    cases = {
        ("vit", "encoder.layers.encoder_layer_0"): "maps",  # 32 dims on a 4 x 4 patch grid
        ("vit", "heads.head"): "features",
        ("r3d", "layer1.0.conv1.0"): "volume",  # each channel's 4 slices side by side
        ("audio", "up"): "rows",
        ("alexnet", "classifier.1"): "features",  # a Dropout on rank 2: NF by rank
    }
    for (run, layer), kind in cases.items():
        n, c, h, w = shapes[run][f"feature_maps/{layer}"]
        out = tmp_path / f"{run}-{layer}.png"
        args = ["export", str(root), "--run", run, "--layer", layer, "-q", "-o", str(out)]
        assert main(args) == 0
        width, height = Image.open(out).size
        if kind == "rows":
            assert (width, height) == (w, c * render.row_height(c) + c - 1)
        elif kind == "volume":  # 64 channels of 4 slices of 16 x 16 on an 8 x 8 grid
            slice_h, depth = h // 4, 4
            cell_w = depth * w + (depth - 1) * render.SLICE_GAP
            apart = render.VOLUME_GAP
            assert (width, height) == (8 * (cell_w + apart) - apart, 8 * (slice_h + apart) - apart)
        else:
            scale = max(1, -(-16 // max(h, w)))
            if kind == "features":
                scale = max(scale, render.ROW_MIN_HEIGHT)
            cols = render.grid_columns(c)
            rows = -(-c // cols)
            want = (cols * (w * scale + 1) - 1, rows * (h * scale + 1) - 1)
            assert (width, height) == want, layer


# --- torchvision's ViT-B/16, as the issue names it ---------------------------------------

VIT_B16_LAYERS = [
    "conv_proj", "encoder.layers.encoder_layer_0", "encoder.layers.encoder_layer_11.mlp",
    "encoder.ln", "heads.head",
]


@pytest.fixture(scope="module")
def vit_b16(tmp_path_factory):
    """torchvision's ViT-B/16 (weights=None) at 224 x 224, built once: a few of its layers
    recorded and logged the README's way, no `layout=`."""
    root = tmp_path_factory.mktemp("vit_b16")
    torch.manual_seed(0)
    model = torchvision.models.vit_b_16(weights=None)
    out = record(model, VIT_B16_LAYERS, torch.randn(1, 3, 224, 224))
    with SummaryWriter(str(root / "vit_b16")) as writer:
        shapes = log_feature_maps(writer, out, 0)
    return root, out, shapes


def test_vit_b16_layouts_are_inferred_and_logged_without_layout(vit_b16):
    root, out, shapes = vit_b16
    assert out.layouts == {
        "encoder.layers.encoder_layer_0": "NTD",
        "encoder.layers.encoder_layer_11.mlp": "NTD",  # inside the encoder
        "encoder.ln": "NTD",
        "heads.head": "NF",
    }  # conv_proj: rank 4, NCHW by rank
    assert tuple(out["encoder.layers.encoder_layer_0"].shape) == (1, 197, 768)
    assert shapes == {
        "feature_maps/conv_proj": (1, 768, 14, 14),
        "feature_maps/encoder.layers.encoder_layer_0": (1, 768, 14, 14),  # class token dropped
        "feature_maps/encoder.layers.encoder_layer_11.mlp": (1, 768, 14, 14),
        "feature_maps/encoder.ln": (1, 768, 14, 14),
        "feature_maps/heads.head": (1, 1000, 1, 1),
    }


def test_vit_b16_reads_back_through_tensorboard(vit_b16):
    """TensorBoard's stack (the plugin's tags and npy routes) gives each of the 768 dims as a
    14 x 14 map of the patch tokens, row-major, the class token dropped."""
    root, out, _ = vit_b16
    client = wsgi_client(root)
    tags = json.loads(client.get(ROUTE + "tags").get_data())["vit_b16"]
    assert [tags[t]["layer"] for t in tags] == VIT_B16_LAYERS  # model order
    tag = "feature_maps/encoder.layers.encoder_layer_0"
    assert tags[tag]["layout"] == "NTD" and tags[tag]["dropped"]["tokens"] == 1
    assert tags["feature_maps/heads.head"]["layout"] == "NF"
    response = client.get(ROUTE + "npy", query_string={"run": "vit_b16", "tag": tag, "step": 0})
    assert response.status_code == 200
    values = np.load(io.BytesIO(response.get_data()))
    truth = out["encoder.layers.encoder_layer_0"][0, 1:].T.reshape(768, 14, 14).numpy()
    span = truth.max(axis=(1, 2), keepdims=True) - truth.min(axis=(1, 2), keepdims=True)
    assert values.shape == (1, 768, 14, 14)
    assert (np.abs(values[0] - truth) <= span / 508 + 1e-5).all()


def test_vit_b16_exports_a_patch_grid_png(vit_b16, tmp_path):
    """`tb-featmap export` draws 768 maps of 14 x 14 on a 28 x 28 grid, 2 pixels a value;
    each map's gray levels are its tokens' values on the patch grid."""
    from PIL import Image

    root, out, _ = vit_b16
    png = tmp_path / "vit.png"
    args = ["export", str(root), "--layer", "encoder.ln", "-q", "-o", str(png)]
    assert main(args) == 0
    image = np.asarray(Image.open(png).convert("RGB"))
    assert render.grid_columns(768) == 28 and image.shape == (28 * 29 - 1, 28 * 29 - 1, 3)
    tokens = out["encoder.ln"][0].numpy()  # [197, 768], class token first
    for dim in (0, 29, 767):
        top, left = (dim // 28) * 29, (dim % 28) * 29
        cell = image[top:top + 28:2, left:left + 28:2, 0].astype(float)  # one pixel a value
        patches = tokens[1:, dim].reshape(14, 14)
        lo, hi = patches.min(), patches.max()
        # gray per channel: level = (value - lo) * 255 / (hi - lo), stored within span / 508
        assert np.abs(cell / 255 * (hi - lo) + lo - patches).max() <= (hi - lo) * (
            1 / 508 + 1 / 510) + 1e-6, dim
