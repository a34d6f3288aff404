import pytest
import torch

from testbed.device import device_count, resolve_device


def test_names_resolve_to_devices_and_auto_follows_the_machine():
    assert resolve_device("cpu") == torch.device("cpu") and resolve_device("cuda:1") == torch.device("cuda", 1)
    assert resolve_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    given = torch.device("cpu")
    assert resolve_device(given) is given
    assert device_count(torch.device("cpu")) == 1
    assert device_count(torch.device("cuda")) == (torch.cuda.device_count() if torch.cuda.is_available() else 0)


@pytest.mark.parametrize("name", ["tpu9", "abacus", "meta", "", None])
def test_anything_else_is_refused_naming_the_key_and_the_choices(name):
    with pytest.raises(ValueError, match=r"device: .* is not a device; use auto, cpu, cuda or cuda:K"):
        resolve_device(name)
