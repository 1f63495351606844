"""utils/hf_models.py: folder vs hub id, and the one-line errors for a wrong model folder."""
import pytest

from utils.errors import UserError
from utils.hf_models import check_model_folder, local_snapshot, looks_local, model_source

pytestmark = pytest.mark.unit


@pytest.mark.parametrize("name,local", [
    ("timbrooks/instruct-pix2pix", False), ("Qwen/Qwen3-VL-2B-Instruct", False),
    ("./models/qwen", True), ("../qwen", True), ("~/models/clip", True), ("/abs/clip", True),
    ("models/qwen/", True), ("a/b/c", True), ("qwen", True)])
def test_folder_or_hub_id(name, local):
    assert looks_local(name) is local


def test_an_existing_folder_named_like_a_hub_id_is_local(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "org" / "name").mkdir(parents=True)
    assert looks_local("org/name")


def test_check_model_folder_errors(tmp_path):
    with pytest.raises(UserError, match="^--clip_model is empty$"):
        check_model_folder("", "--clip_model", "config.json")
    with pytest.raises(UserError, match="no such folder"):
        check_model_folder(str(tmp_path / "missing"), "--clip_model", "config.json")
    with pytest.raises(UserError, match=r"not a model folder \(no model_index.json\)"):
        check_model_folder(str(tmp_path), "--pix2pix_model", "model_index.json")
    (tmp_path / "model_index.json").write_text("{}")
    check_model_folder(str(tmp_path), "--pix2pix_model", "model_index.json")
    check_model_folder("org/name", "--pix2pix_model", "model_index.json")  # hub id: later


def test_model_source_expands_home(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    (tmp_path / "clip").mkdir()
    (tmp_path / "clip" / "config.json").write_text("{}")
    assert model_source("~/clip", "--clip_model", "config.json") == (str(tmp_path / "clip"), True)
    assert model_source("org/name", "--clip_model", "config.json") == ("org/name", False)


def test_local_snapshot_never_downloads(tmp_path, monkeypatch):
    assert local_snapshot(str(tmp_path)) == (str(tmp_path), None)
    pytest.importorskip("huggingface_hub", reason="the hub-id branch needs huggingface_hub")
    folder, note = local_snapshot("nobody-here/no-such-model")  # local_files_only: no network
    assert folder is None and note.startswith("no local snapshot to hash")
