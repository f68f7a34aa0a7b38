"""The detection-power matrix of issue 5: every harmful corruption detected, no false alarm in 100 clean replays."""

from __future__ import annotations

import numpy as np
import pytest

from goldwatch.examples import train_example_model
from goldwatch.examples.faults import CORRUPTIONS, corrupt, fault_matrix


@pytest.mark.parametrize("kind", ["tabular", "conv"])
def test_fault_matrix_detects_all_harmful_corruptions_without_false_alarms(kind: str) -> None:
    matrix = fault_matrix(kind, clean_replays=100)
    assert matrix.false_alarms == 0
    assert {r.corruption for r in matrix.rows} == set(CORRUPTIONS)
    assert matrix.harmful_all_detected
    assert any(r.harmful for r in matrix.rows)  # the matrix is not vacuous: some corruptions really do harm
    # stronger than required: goldwatch catches even the harmless ones (1.01 scaling flips no class)
    assert all(r.detected for r in matrix.rows), matrix.to_markdown()
    assert "| scale_1.01 | yes |" in matrix.to_markdown()


def test_corruptions_leave_the_original_untouched_and_change_what_they_say() -> None:
    torch = pytest.importorskip("torch")
    model, _ = train_example_model("tabular", seed=0)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    swapped = corrupt("tabular", model, "swap_layers").state_dict()
    assert torch.equal(swapped["2.weight"], before["4.weight"])
    assert torch.equal(swapped["4.weight"], before["2.weight"])
    flipped = corrupt("tabular", model, "bitflip_exponent").state_dict()["2.weight"]
    diff = (flipped != before["2.weight"]).sum().item()
    assert diff == 1
    quant = corrupt("tabular", model, "int8_quantize").state_dict()["0.weight"]
    step = before["0.weight"].abs().max() / 127
    assert np.allclose((quant / step).numpy(), np.round((quant / step).numpy()), atol=1e-3)
    for k, v in model.state_dict().items():
        assert torch.equal(v, before[k])
