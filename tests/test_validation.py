"""taskloss.validation: the declared-range check on tensors that require grad."""

import warnings

import pytest
import torch

from taskloss.errors import InputError
from taskloss.validation import check_declared_range


def test_declared_range_check_reads_tensors_that_require_grad_without_a_warning() -> None:
    # float() on a tensor that requires grad warns ("Converting a tensor with requires_grad=True to a
    # scalar"); a measure's target may be another network's output.
    x = torch.tensor([0.0, 0.5, 1.0], requires_grad=True)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        check_declared_range(x, "target", (0.0, 1.0), "fix it")
        with pytest.raises(InputError) as error:
            check_declared_range(x * 255, "target", (0.0, 1.0), "rescale to [{low:.3g}, {high:.3g}]",
                                 argument="data_range")
    assert str(error.value) == "target has values in [0, 255] but data_range=(0.0, 1.0); rescale to [0, 255]"
