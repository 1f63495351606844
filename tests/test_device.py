"""utils/device.py: the one rule for --device / --data_device / --vlm_device."""
import pytest
import torch

from utils.device import resolve_device, resolve_secondary_device
from utils.errors import UserError

pytestmark = pytest.mark.unit


@pytest.mark.parametrize("name", [None, "", "auto"])
def test_auto_is_cuda_when_available_else_cpu(name):
    want = "cuda" if torch.cuda.is_available() else "cpu"
    assert resolve_device(name).type == want


def test_explicit_cpu():
    assert resolve_device("cpu") == torch.device("cpu")


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the no-CUDA message")
@pytest.mark.parametrize("flag", ["--device", "--data_device"])
def test_missing_cuda_is_one_line_naming_the_flag(flag):
    with pytest.raises(UserError, match=f"^{flag} cuda: CUDA is not available"):
        resolve_device("cuda", flag)


@pytest.mark.parametrize("name", ["gpu0", "cuda:x", "cpu:zz"])
def test_bad_name_is_a_user_error(name):
    with pytest.raises(UserError) as e:
        resolve_device(name, "--vlm_device")
    assert str(e.value).startswith(f"--vlm_device {name}") and "\n" not in str(e.value)


def test_secondary_auto_follows_the_run_device():
    run = torch.device("cpu")
    assert resolve_secondary_device("auto", run, "--data_device") == run
    assert resolve_secondary_device("cpu", torch.device("meta"), "--data_device").type == "cpu"
