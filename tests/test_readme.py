"""The docs are a contract: every example in README.md, docs/api.md and docs/format.md runs.

Against what the README's own commands write: `demo/alexnet.py` with its defaults into
`runs/alexnet`, and `make demo`'s training into `runs/demo` (a short run: 100 steps with
feature maps every 50, so the steps 0 and 50 exist as in the default 2000-step run).

- Every fenced block is ``python``, ``sh``, ``console`` or ``text``; any other fails, so no
  example is skipped by accident. ``text`` blocks are signatures and synopses.
- ``python`` blocks run in order, one namespace per document. Blocks with ``>>>`` are
  doctests (outputs compared). In plain blocks, an expression statement followed by a
  comment that is a Python literal (``x.shape   # (1, 64)``) must equal that literal.
  Blocks that say ``model``, ``train_loader`` and ``val_loader`` "are yours" / ": yours"
  get small ones (a torchvision ResNet, or a LightningModule around one for ``Trainer``).
- Every ``sh`` line that starts with ``tb-featmap`` runs and must exit 0 and write its
  ``-o`` file. In ``console`` blocks each ``$ tb-featmap`` line runs, and its stdout and
  stderr must match the lines below it (``...`` stands for any text; whitespace runs are
  compared as one space); an expected ``tb-featmap: error:`` means exit code 2.
"""

import ast
import doctest
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from support import REPO

DOCS = ("README.md", "docs/api.md", "docs/format.md")
TB_FEATMAP = str(Path(sys.executable).with_name("tb-featmap"))
# Signatures written as Python in a section this file does not own: shown, not run.
SIGNATURES = ("log_feature_maps(\n    writer,",)
CHECKER = doctest.OutputChecker()
FLAGS = doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE


def _blocks(doc: str):
    """[(language, code, first line number)] of the fenced blocks of a markdown file."""
    text = (REPO / doc).read_text(encoding="utf-8")
    blocks = []
    for match in re.finditer(r"^```(\w*)\n(.*?)^```$", text, re.M | re.S):
        line = text[: match.start()].count("\n") + 1
        blocks.append((match.group(1), match.group(2), line))
    return blocks


def _params(doc: str, language: str):
    return [pytest.param(code, id=f"{doc}:{line}")
            for lang, code, line in _blocks(doc) if lang == language]


@pytest.fixture(scope="module")
def bucket(tmp_path_factory):
    """The README's `s3://my-bucket` on a real S3-protocol server (moto's, on loopback)."""
    from s3server import S3Server

    server = S3Server(tmp_path_factory.mktemp("moto"))
    try:
        server.client().create_bucket(Bucket="my-bucket")
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def work(tmp_path_factory, bucket):
    """A directory with `runs/alexnet` and `runs/demo` as the README's commands write them,
    and the same runs in `s3://my-bucket/runs` for the README's object-storage examples."""
    work = tmp_path_factory.mktemp("readme")
    alexnet = subprocess.run(
        [sys.executable, str(REPO / "demo" / "alexnet.py"), "--no-serve"],
        cwd=work, capture_output=True, text=True, timeout=300,
    )
    assert alexnet.returncode == 0, alexnet.stderr
    sys.path.insert(0, str(REPO / "demo"))
    try:
        import train
    finally:
        sys.path.remove(str(REPO / "demo"))
    train.run_all(work / "runs" / "demo", steps=100, maps_every=50)
    client = bucket.client()
    for path in sorted((work / "runs").rglob("*")):
        if path.is_file():
            client.upload_file(str(path), "my-bucket", path.relative_to(work).as_posix())
    return work


@pytest.fixture
def in_work(work, bucket, monkeypatch):
    monkeypatch.chdir(work)
    for name, value in bucket.env.items():  # boto3 reads them whenever it makes a client
        monkeypatch.setenv(name, value)
    return work


def test_every_block_has_a_known_language():
    for doc in DOCS:
        for language, code, line in _blocks(doc):
            assert language in ("python", "sh", "console", "text"), f"{doc}:{line}: ```{language}"


def test_the_docs_have_examples_to_run():
    # Guards the block parser: if it found nothing, every test below would pass vacuously.
    assert len(_params("README.md", "python")) >= 3 and len(_params("README.md", "sh")) >= 2
    assert len(_params("docs/api.md", "python")) >= 5 and len(_params("docs/api.md", "console")) == 1


# --- python -------------------------------------------------------------------------------


def _user_objects(code: str) -> dict:
    """The model and loaders a template block says are the user's; {} for other blocks."""
    if not re.search(r"\byours\b", code):
        return {}
    import torch
    import torchvision

    torch.manual_seed(0)
    images, labels = torch.randn(4, 3, 32, 32), torch.tensor([0, 1, 2, 3])
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(images, labels), batch_size=4)
    if "Trainer(" not in code:
        return {"model": torchvision.models.resnet18(weights=None, num_classes=4).train(),
                "train_loader": loader, "val_loader": loader}
    import lightning.pytorch as pl

    class Classifier(pl.LightningModule):
        def __init__(self):
            super().__init__()
            self.net = torchvision.models.resnet18(weights=None, num_classes=4)

        def forward(self, x):
            return self.net(x)

        def training_step(self, batch, batch_idx):
            x, y = batch
            return torch.nn.functional.cross_entropy(self(x), y)

        def configure_optimizers(self):
            return torch.optim.SGD(self.parameters(), lr=0.01)

    return {"model": Classifier(), "train_loader": loader, "val_loader": loader}


def _run_plain(code: str, namespace: dict, where: str) -> None:
    """Run a plain block statement by statement, checking `expr  # literal` lines."""
    lines = code.splitlines()
    for statement in ast.parse(code).body:
        source = ast.get_source_segment(code, statement)
        if isinstance(statement, ast.Expr):
            value = eval(compile(ast.Expression(statement.value), where, "eval"), namespace)
            comment = lines[statement.end_lineno - 1][statement.end_col_offset :].strip()
            if not comment.startswith("#"):
                continue
            try:
                expected = ast.literal_eval(comment.lstrip("#").strip())
            except (ValueError, SyntaxError):
                continue  # a comment in words
            assert value == expected, f"{where}: {source} gave {value!r}, the doc says {expected!r}"
        else:
            exec(compile(ast.Module([statement], type_ignores=[]), where, "exec"), namespace)


def _snapshot(model):
    buffers = {name: b.clone() for name, b in model.named_buffers()}
    return buffers, {name: m.training for name, m in model.named_modules()}


@pytest.mark.parametrize("doc", ["README.md", "docs/api.md", "docs/format.md"])
def test_python_examples_run(in_work, doc):
    import torch

    namespace: dict = {"__name__": "__doc_example__"}
    parser, runner = doctest.DocTestParser(), doctest.DocTestRunner(optionflags=FLAGS)
    for language, code, line in _blocks(doc):
        if language != "python" or code.startswith(SIGNATURES):
            continue
        where = f"{doc}:{line}"
        users = _user_objects(code)
        namespace.update(users)
        before = _snapshot(users["model"]) if users else None
        if ">>>" in code:
            test = parser.get_doctest(code, namespace, where, doc, line)
            report = lambda text: pytest.fail(f"{where}:\n{text}")  # noqa: E731
            result = runner.run(test, out=report, clear_globs=False)
            assert result.attempted > 0
            namespace.update(test.globs)  # DocTest works on a copy
        else:
            _run_plain(code, namespace, where)
        writer = namespace.get("writer")
        if writer is not None and hasattr(writer, "close"):
            writer.close()
        if before is not None:
            # Logging never changes the model: the template's probe left BatchNorm's buffers
            # (running_mean/var, num_batches_tracked) and every train/eval flag as they were,
            # unless the block trained the model itself.
            after = _snapshot(users["model"])
            assert after[1] == before[1], f"{where}: a train/eval flag changed"
            if "trainer.fit" not in code:
                for name, value in after[0].items():
                    assert torch.equal(value, before[0][name]), f"{where}: {name} changed"
    if doc == "README.md":
        # What the templates logged is there, under the names the README promises.
        from tb_featmap import read

        tags = {r.tag for r in read("runs", run="exp1", values=False)}
        assert tags == {"feature_maps/conv1", *(f"feature_maps/layer{i}.0.conv1" for i in range(1, 5))}
        remote = read("s3://my-bucket/runs", run="exp1", values=False)
        assert {r.tag for r in remote} == tags and len(namespace["records"]) == 10


# --- shell --------------------------------------------------------------------------------


def _command(line: str) -> list:
    argv = shlex.split(line, comments=True)
    assert argv[0] == "tb-featmap"
    return [TB_FEATMAP, *argv[1:]]


@pytest.mark.parametrize("code", _params("README.md", "sh") + _params("docs/format.md", "sh"))
def test_tb_featmap_lines_run(in_work, code):
    commands = [line for line in code.splitlines() if line.strip().startswith("tb-featmap")]
    for line in commands:
        argv = _command(line)
        proc = subprocess.run(argv, cwd=in_work, capture_output=True, text=True, timeout=300)
        assert proc.returncode == 0, f"{line}\n{proc.stderr}"
        if "-o" in argv:
            output = in_work / argv[argv.index("-o") + 1]
            assert output.stat().st_size > 0, line
            output.unlink()


@pytest.mark.parametrize("code", _params("docs/api.md", "console") + _params("README.md", "console"))
def test_console_sessions_match(in_work, code):
    sessions = re.split(r"^\$ ", code, flags=re.M)
    assert sessions[0] == "" and len(sessions) > 1, "a console block starts with '$ '"
    for session in sessions[1:]:
        line, _, expected = session.partition("\n")
        proc = subprocess.run(_command(line), cwd=in_work, capture_output=True, text=True, timeout=300)
        got = proc.stdout + proc.stderr
        assert proc.returncode == (2 if "tb-featmap: error:" in expected else 0), f"$ {line}\n{got}"
        assert CHECKER.check_output(expected, got, FLAGS), f"$ {line}\nexpected:\n{expected}\ngot:\n{got}"


def test_docs_name_no_other_commands_of_tb_featmap():
    # A `tb-featmap` line in a block these tests do not run (e.g. ```text) is a synopsis: it
    # must hold a placeholder in capitals (LOGDIR), or it is an example that escaped.
    for doc in DOCS:
        for language, code, line in _blocks(doc):
            if language in ("sh", "console"):
                continue
            for text in code.splitlines():
                if text.strip().startswith("tb-featmap "):
                    assert re.search(r"\b[A-Z]{3,}\b", text), f"{doc}:{line}: {text}"
