"""Tests of nablatau.data: loaders on the real files, download paths against a local server, splits."""

from __future__ import annotations

import hashlib
import http.server
import io
import pickle
import socket
import tarfile
import threading
from pathlib import Path

import numpy as np
import pytest
import torch
import torchvision
from torch.utils.data import Subset, TensorDataset, random_split

from nablatau.data import (
    CIFAR_MEAN,
    CIFAR_STD,
    GOEMOTIONS_FILES,
    ImageData,
    TextData,
    TextDataset,
    UnlearningSplits,
    class_forget_split,
    data_dir,
    labels_of,
    load_cifar,
    load_goemotions,
    loaders,
    make_splits,
    random_forget_split,
    split_heldout,
    subset,
    text_collate,
)
from nablatau.errors import ConfigError, DataError, DataNotFoundError

# ------------------------------------------------------------------------------------------- helpers


class _Handler(http.server.BaseHTTPRequestHandler):
    """Serves ``server.routes`` (path -> bytes); paths in ``server.truncated`` are cut off halfway."""

    def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
        body = self.server.routes.get(self.path)
        if body is None:
            self.send_error(404)
            return
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        # HTTP/1.0 closes the connection after the response, so a short body looks like a dropped download.
        self.wfile.write(body[: len(body) // 2] if self.path in self.server.truncated else body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def serve(monkeypatch):
    """Start a local HTTP server: ``serve({"/file": b"..."}, truncated={"/file"}) -> base URL``."""
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")
    servers = []

    def start(routes: dict[str, bytes], truncated: set[str] = frozenset()) -> str:
        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        server.routes, server.truncated = routes, set(truncated)
        threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        servers.append(server)
        return f"http://127.0.0.1:{server.server_address[1]}"

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


def _closed_port_url() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}"


def _pickle_bytes(obj: dict) -> bytes:
    return pickle.dumps(obj, protocol=2)


def _fake_cifar100() -> dict[str, bytes]:
    """The three files of cifar-100-python/ with 20 train and 10 test images; pixel value = label."""
    files = {}
    for split, n in (("train", 20), ("test", 10)):
        labels = [(7 * i) % 100 for i in range(n)]
        data = np.repeat(np.array(labels, dtype=np.uint8)[:, None], 3072, axis=1)
        files[split] = _pickle_bytes({"data": data, "fine_labels": labels, "coarse_labels": [0] * n})
    files["meta"] = _pickle_bytes({"fine_label_names": [f"class{i}" for i in range(100)]})
    return files


def _tarball(folder: str, files: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for name, content in files.items():
            info = tarfile.TarInfo(f"{folder}/{name}")
            info.size = len(content)
            tar.addfile(info, io.BytesIO(content))
    return buffer.getvalue()


# ------------------------------------------------------------------------------------------ data_dir


def test_data_dir_prefers_explicit_then_env_then_default(monkeypatch, tmp_path):
    monkeypatch.setenv("NABLATAU_DATA_DIR", str(tmp_path / "env"))
    assert data_dir(tmp_path / "explicit") == tmp_path / "explicit"
    assert data_dir() == tmp_path / "env"
    monkeypatch.delenv("NABLATAU_DATA_DIR")
    assert data_dir() == Path("data")


# ------------------------------------------------------------------------------------------ CIFAR-10


@pytest.fixture(scope="module")
def cifar10_raw(real_data_dir) -> ImageData:
    return load_cifar("cifar10", real_data_dir, download=False, normalize=False)


def test_cifar10_sizes_and_classes(cifar10_raw):
    assert len(cifar10_raw.train) == 50_000 and len(cifar10_raw.test) == 10_000
    assert cifar10_raw.name == "cifar10"
    assert cifar10_raw.classes[0] == "airplane" and cifar10_raw.classes[-1] == "truck"
    assert torch.bincount(cifar10_raw.train.tensors[1]).tolist() == [5000] * 10
    assert torch.bincount(cifar10_raw.test.tensors[1]).tolist() == [1000] * 10
    assert cifar10_raw.targets[:10].tolist() == [6, 9, 9, 4, 1, 1, 2, 7, 8, 3]


def test_cifar10_raw_pixels_match_known_statistics(cifar10_raw):
    x = cifar10_raw.train.tensors[0]
    assert x.dtype == torch.float32 and x.shape == (50_000, 3, 32, 32)
    assert 0 <= x.min() and x.max() <= 1
    torch.testing.assert_close(x.mean(dim=(0, 2, 3)), torch.tensor(CIFAR_MEAN), atol=1e-3, rtol=0)


def test_cifar10_normalized(real_data_dir, cifar10_raw):
    data = load_cifar("cifar10", real_data_dir, download=False)
    x, y = data.test.tensors
    assert x.dtype == torch.float32 and x.shape == (10_000, 3, 32, 32)
    assert y.dtype == torch.int64 and y.shape == (10_000,)
    raw = cifar10_raw.test.tensors[0]
    expected = (raw - torch.tensor(CIFAR_MEAN).view(1, 3, 1, 1)) / torch.tensor(CIFAR_STD).view(1, 3, 1, 1)
    torch.testing.assert_close(x, expected)


def test_cifar_unknown_name_is_config_error(tmp_path):
    with pytest.raises(
        ConfigError, match=r"Unknown CIFAR data set 'mnist'; expected one of \['cifar10', 'cifar100'\]"
    ):
        load_cifar("mnist", tmp_path)


# ------------------------------------------------------------------------------ CIFAR-100 / download


def _check_fake_cifar100(data: ImageData) -> None:
    assert data.name == "cifar100" and len(data.classes) == 100 and data.classes[7] == "class7"
    x, y = data.train.tensors
    assert x.shape == (20, 3, 32, 32) and y.tolist() == [(7 * i) % 100 for i in range(20)]
    assert data.test.tensors[0].shape == (10, 3, 32, 32)
    # normalize=False: the pixel value (= label) / 255 everywhere
    torch.testing.assert_close(x, (y.float() / 255).view(-1, 1, 1, 1).expand_as(x))


def test_cifar100_reads_pickles(tmp_path):
    folder = tmp_path / "cifar100" / "cifar-100-python"
    folder.mkdir(parents=True)
    for name, content in _fake_cifar100().items():
        (folder / name).write_bytes(content)
    _check_fake_cifar100(load_cifar("cifar100", tmp_path, download=False, normalize=False))


def test_cifar100_is_normalised_with_its_own_statistics(tmp_path):
    # The reference's CIFAR-100 notebooks: Normalize((0.5071, 0.4867, 0.4408), (0.2675, 0.2565, 0.2761)).
    folder = tmp_path / "cifar100" / "cifar-100-python"
    folder.mkdir(parents=True)
    for name, content in _fake_cifar100().items():
        (folder / name).write_bytes(content)
    raw = load_cifar("cifar100", tmp_path, download=False, normalize=False).train.tensors[0]
    x = load_cifar("cifar100", tmp_path, download=False).train.tensors[0]
    mean = torch.tensor([0.5071, 0.4867, 0.4408]).view(1, 3, 1, 1)
    std = torch.tensor([0.2675, 0.2565, 0.2761]).view(1, 3, 1, 1)
    torch.testing.assert_close(x, (raw - mean) / std)


def test_cifar100_download_through_torchvision(tmp_path, serve, monkeypatch):
    archive = _tarball("cifar-100-python", _fake_cifar100())
    url = serve({"/cifar-100-python.tar.gz": archive})
    monkeypatch.setattr(torchvision.datasets.CIFAR100, "url", f"{url}/cifar-100-python.tar.gz")
    monkeypatch.setattr(torchvision.datasets.CIFAR100, "tgz_md5", hashlib.md5(archive).hexdigest())

    _check_fake_cifar100(load_cifar("cifar100", tmp_path, download=True, normalize=False))
    assert sorted(p.name for p in (tmp_path / "cifar100").iterdir()) == [
        "cifar-100-python"
    ]  # archive removed
    # Second call: files present, no download (the server is gone from the class attribute's point of view).
    monkeypatch.setattr(torchvision.datasets.CIFAR100, "url", _closed_port_url())
    _check_fake_cifar100(load_cifar("cifar100", tmp_path, normalize=False))


def test_cifar_download_with_bad_checksum_leaves_nothing(tmp_path, serve, monkeypatch):
    archive = _tarball("cifar-100-python", _fake_cifar100())
    url = serve({"/cifar-100-python.tar.gz": archive})
    monkeypatch.setattr(torchvision.datasets.CIFAR100, "url", f"{url}/cifar-100-python.tar.gz")
    monkeypatch.setattr(torchvision.datasets.CIFAR100, "tgz_md5", "0" * 32)
    with pytest.raises(DataNotFoundError, match="Downloading it failed: RuntimeError"):
        load_cifar("cifar100", tmp_path)
    assert list((tmp_path / "cifar100").iterdir()) == []


def test_cifar_download_offline_names_folder_files_and_url(tmp_path, monkeypatch):
    monkeypatch.setattr(torchvision.datasets.CIFAR10, "url", f"{_closed_port_url()}/cifar-10-python.tar.gz")
    folder = (tmp_path / "cifar10" / "cifar-10-batches-py").resolve()
    with pytest.raises(DataNotFoundError, match="Downloading it failed") as info:
        load_cifar("cifar10", tmp_path, download=None)
    message = str(info.value)
    for part in (
        str(folder),
        "data_batch_1",
        "test_batch",
        "batches.meta",
        "https://www.cs.toronto.edu/~kriz/cifar.html",
        "NABLATAU_DATA_DIR",
    ):
        assert part in message


def test_cifar_missing_without_download(tmp_path):
    folder = (tmp_path / "cifar100" / "cifar-100-python").resolve()
    with pytest.raises(DataNotFoundError, match="CIFAR-100 not found") as info:
        load_cifar("cifar100", tmp_path, download=False)
    message = str(info.value)
    assert str(folder) in message and "download=False was passed" in message
    assert "train, test, meta" in message and "NABLATAU_DATA_DIR" in message
    assert isinstance(info.value, FileNotFoundError)


def test_cifar_corrupt_pickle_is_data_error(tmp_path):
    folder = tmp_path / "cifar100" / "cifar-100-python"
    folder.mkdir(parents=True)
    for name, content in _fake_cifar100().items():
        (folder / name).write_bytes(content)
    (folder / "train").write_bytes(_pickle_bytes({"data": np.zeros((2, 3072), np.uint8), "labels": [0, 1]}))
    with pytest.raises(DataError, match=r"train lacks the key\(s\) \['fine_labels'\]"):
        load_cifar("cifar100", tmp_path, download=False)


# -------------------------------------------------------------------------------------- GoEmotions


@pytest.fixture(scope="module")
def goemotions(real_data_dir) -> TextData:
    return load_goemotions(real_data_dir, download=False)


def test_goemotions_sizes_and_labels(goemotions):
    assert (len(goemotions.train), len(goemotions.dev), len(goemotions.test)) == (43_410, 5_426, 5_427)
    assert len(goemotions.labels) == 28
    assert goemotions.labels[0] == "admiration" and goemotions.labels[-1] == "neutral"
    assert goemotions["train"] is goemotions.train and goemotions["labels"] is goemotions.labels


@pytest.mark.parametrize("split", ["train", "dev", "test"])
def test_goemotions_targets_are_multi_hot(goemotions, split):
    data = goemotions[split]
    assert data.targets.dtype == torch.float32 and data.targets.shape == (len(data), 28)
    assert set(data.targets.unique().tolist()) == {0.0, 1.0}
    assert data.targets.sum(dim=1).min() >= 1
    assert data.targets.sum(dim=1).max() > 1  # some rows really are multi-label
    assert len(set(data.ids)) == len(data.ids)


def test_goemotions_quoted_texts_are_unquoted(goemotions, real_data_dir):
    lines = (real_data_dir / "goemotions" / "train.tsv").read_text(encoding="utf-8").splitlines()
    quoted = [line for line in lines if line.startswith('"')]
    assert len(quoted) == 1097  # as documented in shared/data/goemotions/README.md
    text_of = dict(zip(goemotions.train.ids, goemotions.train.texts, strict=True))
    for line in quoted:
        raw_text, _, comment_id = line.rsplit("\t", 2)
        # CSV quoting: strip the outer quotes and undouble the inner ones
        assert text_of[comment_id] == raw_text[1:-1].replace('""', '"')
    example = text_of[quoted[0].rsplit("\t", 1)[1]]
    assert '""' not in example and example != quoted[0].split("\t")[0]


def _goemotions_files() -> dict[str, bytes]:
    return {
        "emotions.txt": b"joy\nanger\nneutral",  # no trailing newline, like the original
        "train.tsv": b'hello there\t0\tid1\n"she said ""hi"" to me"\t0,1\tid2\nmeh\t2\tid3\n',
        "dev.tsv": b"ok\t2\tid4\n",
        "test.tsv": b"grr\t1\tid5\n",
    }


def test_goemotions_download(tmp_path, serve):
    url = serve({f"/data/{name}": content for name, content in _goemotions_files().items()})
    data = load_goemotions(tmp_path, download=True, base_url=f"{url}/data")
    folder = tmp_path / "goemotions"
    assert sorted(p.name for p in folder.iterdir()) == sorted(GOEMOTIONS_FILES)
    assert data.labels == ["joy", "anger", "neutral"]
    assert data.train.texts == ["hello there", 'she said "hi" to me', "meh"]
    assert data.train.ids == ["id1", "id2", "id3"]
    assert data.train.targets.tolist() == [[1, 0, 0], [1, 1, 0], [0, 0, 1]]
    assert data.dev.texts == ["ok"] and data.test.targets.tolist() == [[0, 1, 0]]


def test_goemotions_cut_download_leaves_no_partial_file(tmp_path, serve):
    url = serve(
        {f"/{name}": content for name, content in _goemotions_files().items()}, truncated={"/train.tsv"}
    )
    with pytest.raises(DataNotFoundError, match="Downloading train.tsv failed: DataError") as info:
        load_goemotions(tmp_path, base_url=url)
    folder = tmp_path / "goemotions"
    assert str(folder.resolve()) in str(info.value)
    # emotions.txt... come in whichever order; what matters is that no train.tsv nor temp file is left
    assert "train.tsv" not in {p.name for p in folder.iterdir()}
    assert not [p for p in folder.iterdir() if p.name.endswith(".part")]


def test_goemotions_offline_and_missing(tmp_path, serve):
    url = serve({})  # every file 404
    with pytest.raises(DataNotFoundError, match="HTTP Error 404") as info:
        load_goemotions(tmp_path, base_url=url)
    assert url in str(info.value)
    with pytest.raises(DataNotFoundError, match="download=False was passed") as info:
        load_goemotions(tmp_path, download=False)
    message = str(info.value)
    assert str((tmp_path / "goemotions").resolve()) in message
    assert "train.tsv, dev.tsv, test.tsv, emotions.txt" in message
    assert "raw.githubusercontent.com/google-research/google-research" in message


def test_goemotions_malformed_rows_name_file_and_line(tmp_path):
    folder = tmp_path / "goemotions"
    folder.mkdir()
    for name, content in _goemotions_files().items():
        (folder / name).write_bytes(content)
    (folder / "dev.tsv").write_text(
        "fine\t0\tid1\nno label column\tid2\nbad label\t0,7\tid3\n", encoding="utf-8"
    )
    with pytest.raises(DataError, match=r"dev\.tsv is malformed") as info:
        load_goemotions(tmp_path, download=False)
    message = str(info.value)
    assert "line 2: expected 3 tab-separated fields" in message
    assert "line 3: label ids [7] outside 0..2" in message


# ------------------------------------------------------------------------------------ forget splits


def test_random_forget_split_equals_reference_random_split():
    retain, forget = random_forget_split(50_000, 0.1, seed=42)
    reference = random_split(range(50_000), [0.9, 0.1], generator=torch.Generator().manual_seed(42))
    assert retain.tolist() == reference[0].indices and forget.tolist() == reference[1].indices
    assert (len(retain), len(forget)) == (45_000, 5_000)
    assert retain.dtype == torch.int64
    assert sorted(torch.cat([retain, forget]).tolist()) == list(range(50_000))


def test_random_forget_split_is_deterministic():
    a, b, c = (random_forget_split(1000, 0.2, seed=s)[1] for s in (1, 1, 2))
    assert torch.equal(a, b) and not torch.equal(a, c)


@pytest.mark.parametrize("fraction", [0, 1, -0.1, 1.5])
def test_random_forget_split_rejects_fractions_outside_unit_interval(fraction):
    with pytest.raises(
        ConfigError, match=rf"fraction must be in \(0, 1\), got {fraction}; e\.g\. 0\.1 for 10 %"
    ):
        random_forget_split(100, fraction)


def test_random_forget_split_rejects_empty_parts():
    with pytest.raises(ConfigError, match=r"fraction 0\.1 of 5 samples gives 5 to retain and 0 to forget"):
        random_forget_split(5, 0.1)


def test_class_forget_split(cifar10_raw):
    retain, forget = class_forget_split(cifar10_raw.targets, 3)
    assert len(forget) == 5000 and (cifar10_raw.targets[forget] == 3).all()
    assert len(retain) == 45_000 and (cifar10_raw.targets[retain] != 3).all()
    retain, forget = class_forget_split(cifar10_raw.targets, [0, 9])
    assert len(forget) == 10_000 and set(cifar10_raw.targets[forget].tolist()) == {0, 9}
    assert sorted(torch.cat([retain, forget]).tolist()) == list(range(50_000))


def test_class_forget_split_errors():
    labels = torch.tensor([0, 1, 2, 2, 1, 0])
    with pytest.raises(ConfigError, match=r"Class id 10 is not among the labels; valid class ids are 0\.\.2"):
        class_forget_split(labels, 10)
    with pytest.raises(ConfigError, match=r"Found 2 problems:\n- Class id -1 .*\n- Class id 3 "):
        class_forget_split(labels, [-1, 1, 3])
    with pytest.raises(ConfigError, match="would forget all 6 samples and leave nothing to retain"):
        class_forget_split(labels, [0, 1, 2])
    with pytest.raises(ConfigError, match="forget_classes is empty"):
        class_forget_split(labels, [])


def test_split_heldout_halves_like_the_reference():
    # The reference: test_set, val_set = random_split(held_out, [0.5, 0.5], generator=RNG); the first
    # part is the test set.
    val, test = split_heldout(10_000, seed=42)
    test_set, val_set = random_split(range(10_000), [0.5, 0.5], generator=torch.Generator().manual_seed(42))
    assert test.tolist() == test_set.indices and val.tolist() == val_set.indices
    assert len(val) == len(test) == 5000
    assert [len(part) for part in split_heldout(11)] == [5, 6]  # random_split gives the first part 6
    with pytest.raises(ConfigError, match="at least 2 samples"):
        split_heldout(1)


def _toy(n: int = 100, classes: int = 5, offset: int = 0) -> TensorDataset:
    return TensorDataset(torch.arange(offset, offset + n).float().unsqueeze(1), torch.arange(n) % classes)


def test_make_splits_random():
    train, heldout = _toy(100), _toy(40, offset=1000)
    splits = make_splits(train, heldout, forget_fraction=0.1, seed=3)
    assert isinstance(splits, UnlearningSplits) and splits.extras == {}
    assert (len(splits.retain), len(splits.forget), len(splits.val), len(splits.test)) == (90, 10, 20, 20)
    assert splits.forget.indices == random_forget_split(100, 0.1, seed=3)[1].tolist()
    assert splits.val.indices == split_heldout(40, seed=3)[0].tolist()


def test_make_splits_can_keep_the_heldout_halves_fixed_while_the_forget_set_varies():
    train, heldout = _toy(100), _toy(40, offset=1000)
    first, second = (make_splits(train, heldout, forget_fraction=0.1, seed=s, heldout_seed=1337) for s in (1, 2))
    assert first.forget.indices != second.forget.indices
    assert first.val.indices == second.val.indices == split_heldout(40, seed=1337)[0].tolist()
    assert first.test.indices == second.test.indices


def test_make_splits_by_class_fills_extras():
    train, heldout = _toy(100), _toy(40, offset=1000)
    splits = make_splits(train, heldout, forget_classes=[1, 4])
    assert set(labels_of(splits.forget).tolist()) == {1, 4} and len(splits.forget) == 40
    assert set(labels_of(splits.retain).tolist()) == {0, 2, 3}
    forget_test, other_test = splits.extras["test_forget_class"], splits.extras["test_other_classes"]
    assert set(labels_of(forget_test).tolist()) <= {1, 4} and set(labels_of(other_test).tolist()) <= {0, 2, 3}
    assert sorted(forget_test.indices + other_test.indices) == sorted(splits.test.indices)
    # explicit held-out labels win over the data set's
    relabelled = make_splits(
        train, heldout, forget_classes=1, heldout_labels=torch.ones(40, dtype=torch.long)
    )
    assert (
        len(relabelled.extras["test_forget_class"]) == 20
        and len(relabelled.extras["test_other_classes"]) == 0
    )


def test_make_splits_needs_exactly_one_forget_option():
    for kwargs in ({}, {"forget_fraction": 0.1, "forget_classes": 1}):
        with pytest.raises(ConfigError, match="Pass exactly one of forget_fraction .* and forget_classes"):
            make_splits(_toy(), _toy(), **kwargs)


def test_labels_of():
    data = _toy(10)
    assert labels_of(Subset(Subset(data, [5, 6, 7]), [2, 0])).tolist() == [2, 0]

    class WithTargets(torch.utils.data.Dataset):
        targets = [3, 1]

    assert labels_of(WithTargets()).tolist() == [3, 1]
    with pytest.raises(ConfigError, match="Cannot read the labels of a list"):
        labels_of([1, 2])


def test_subset():
    data = _toy(50)
    a, b = subset(data, 10, seed=0), subset(data, 10, seed=0)
    assert a.indices == b.indices and len(set(a.indices)) == 10
    assert subset(data, 10, seed=1).indices != a.indices
    with pytest.raises(ConfigError, match="Cannot take a subset of 51 items from a data set of 50"):
        subset(data, 51, seed=0)


def test_loaders_shuffle_retain_and_forget_deterministically():
    splits = make_splits(_toy(100), _toy(40, offset=1000), forget_classes=2)

    def order(loader):
        return torch.cat([x.flatten() for x, _ in loader]).tolist()

    first, again, other = (loaders(splits, 16, seed=s) for s in (0, 0, 1))
    assert set(first) == {"retain", "forget", "val", "test", "test_forget_class", "test_other_classes"}
    assert order(first["retain"]) == order(again["retain"]) != order(other["retain"])
    assert order(first["forget"]) == order(again["forget"])
    assert sorted(order(first["retain"])) == sorted(float(i) for i in splits.retain.indices)  # no drop_last
    assert order(first["retain"]) != sorted(order(first["retain"]))  # really shuffled
    assert order(first["val"]) == [1000.0 + i for i in splits.val.indices]  # kept in order
    in_order = loaders(splits, 16, shuffle=False)
    assert order(in_order["retain"]) == [float(i) for i in splits.retain.indices]  # for measuring
    assert order(in_order["forget"]) == order(in_order["forget"])  # the same every time it is read
    with pytest.raises(ConfigError, match="batch_size must be a positive integer, got 0"):
        loaders(splits, 0)


# --------------------------------------------------------------------------------------- tokenising


class FakeTokenizer:
    """Word-level stand-in for a Hugging Face tokenizer: [CLS]=1 words... [SEP]=2, pad id 0."""

    def __call__(self, texts, truncation, max_length, padding):
        ids = [[1] + [3 + len(word) for word in text.split()] + [2] for text in texts]
        if truncation:
            ids = [seq[: max_length - 1] + [2] if len(seq) > max_length else seq for seq in ids]
        return {"input_ids": ids, "attention_mask": [[1] * len(seq) for seq in ids]}

    def pad(self, features, padding, return_tensors):
        assert padding == "longest" and return_tensors == "pt"
        width = max(len(f["input_ids"]) for f in features)
        return {
            key: torch.tensor([f[key] + [0] * (width - len(f[key])) for f in features])
            for key in ("input_ids", "attention_mask")
        }


def _real_tokenizer():
    from nablatau.models import load_tokenizer

    return load_tokenizer()  # the offline all-MiniLM-L6-v2, a required dependency


TOKENIZERS = ["fake", "real"]


@pytest.fixture(scope="module", params=TOKENIZERS)
def tokenizer(request):
    return FakeTokenizer() if request.param == "fake" else _real_tokenizer()


TEXTS = ["hi", "a somewhat longer text of several plain words here", "ok then", "word " * 50]


def test_text_dataset_truncates_without_padding(tokenizer):
    targets = torch.eye(4)[:, :3]
    data = TextDataset(TEXTS, targets, tokenizer, max_length=8)
    lengths = [len(data[i]["input_ids"]) for i in range(len(data))]
    assert len(data) == 4 and lengths[0] < lengths[2] <= 8 and lengths[3] == 8
    assert data[1]["attention_mask"] == [1] * lengths[1]
    assert torch.equal(data[2]["labels"], targets[2])
    with pytest.raises(ConfigError, match="Got 4 texts but 3 targets"):
        TextDataset(TEXTS, targets[:3], tokenizer)


def test_text_collate_pads_to_longest_in_batch(tokenizer):
    data = TextDataset(TEXTS, torch.eye(4, dtype=torch.long), tokenizer, max_length=40)
    collate = text_collate(tokenizer)
    short = collate([data[0], data[2]])  # "hi", "ok then"
    longest = len(data[2]["input_ids"])
    assert short["input_ids"].shape == (2, longest) and longest < 40
    assert short["attention_mask"].tolist()[0] == [1] * len(data[0]["input_ids"]) + [0] * (
        longest - len(data[0]["input_ids"])
    )
    assert short["labels"].dtype == torch.float32 and short["labels"].tolist() == [[1, 0, 0, 0], [0, 0, 1, 0]]
    assert collate([data[0], data[3]])["input_ids"].shape == (2, 40)  # truncated text sets the width


def test_text_dataset_on_goemotions(goemotions, tokenizer):
    split = goemotions.dev
    data = TextDataset(split.texts[:256], split.targets[:256], tokenizer, max_length=40)
    batch = next(iter(torch.utils.data.DataLoader(data, batch_size=64, collate_fn=text_collate(tokenizer))))
    assert batch["input_ids"].shape[0] == 64 and batch["input_ids"].shape[1] <= 40
    assert batch["labels"].shape == (64, 28) and torch.equal(batch["labels"], split.targets[:64])
    assert labels_of(data).shape == (256, 28)


def test_resident_loader_serves_every_sample_once_in_seeded_order():
    from nablatau.data import ResidentLoader, UnlearningSplits

    base = TensorDataset(torch.arange(50).float().unsqueeze(1), torch.arange(50))
    part = Subset(Subset(base, list(range(5, 45))), list(range(0, 40, 2)))  # nested subsets: 20 samples
    loader = ResidentLoader(part, 6, shuffle=True, generator=torch.Generator().manual_seed(0))
    batches = list(loader)
    assert len(loader) == len(batches) == 4 and [len(b[1]) for b in batches] == [6, 6, 6, 2]
    seen = torch.cat([b[1] for b in batches])
    assert sorted(seen.tolist()) == list(range(5, 45, 2))
    assert not torch.equal(seen, torch.arange(5, 45, 2))  # shuffled
    again = ResidentLoader(part, 6, shuffle=True, generator=torch.Generator().manual_seed(0))
    assert torch.equal(torch.cat([b[1] for b in again]), seen)
    splits = UnlearningSplits(retain=part, forget=part, val=part, test=part)
    assert all(isinstance(v, ResidentLoader) for v in loaders(splits, 4, device="cpu").values())
    with pytest.raises(ConfigError, match="needs a TensorDataset"):
        ResidentLoader(list(range(4)), 2)


@pytest.mark.slow  # a pytest run in a subprocess, and download attempts
def test_a_test_run_without_the_data_stops_at_once_naming_what_to_provide(tmp_path):
    """make test on a machine without the data and without internet: one message before any test runs."""
    import os
    import re
    import subprocess
    import sys

    empty = tmp_path / "data"
    env = {**os.environ, "NABLATAU_DATA_DIR": str(empty)}
    done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests/test_data.py",
                           "-k", "test_cifar10_normalized"], cwd=Path(__file__).resolve().parents[1], env=env,
                          capture_output=True, text=True, timeout=600)
    output = done.stdout + done.stderr
    if not list(empty.rglob("*.tsv")):  # offline (this machine, CI): nothing could be fetched
        assert done.returncode != 0, output
        assert "neither there nor downloadable" in output and str(empty.resolve()) in output
        assert "data_batch_1" in output and "train.tsv" in output  # the files to provide
        assert not re.search(r"\d+ (passed|failed)", output)  # no test ran
    else:  # with internet the loaders fetched the data into the folder and the test ran on it
        assert done.returncode == 0, output
