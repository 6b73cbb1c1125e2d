"""Training-memory measurement and the model-vs-measurement checks (needs torch)."""

from __future__ import annotations

import pandas as pd
import pytest

torch = pytest.importorskip("torch")
from torch import nn  # noqa: E402

from edgeopt.analysis.torch_checks import (  # noqa: E402
    MIB,
    edgesplit_time_check,
    memory_claim,
    tinyfel_memory_check,
    tinyfel_option_memory,
)
from edgeopt.models.profiles import from_torch  # noqa: E402
from edgeopt.models.profiles.memory import (  # noqa: E402
    allocator_step_peak,
    training_step_memory,
)
from edgeopt.models.tinyfel.profiles import memory_table, tinyfel_layers  # noqa: E402


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def mlp() -> nn.Sequential:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Linear(256, 512), nn.ReLU(), nn.Linear(512, 512), nn.Tanh(), nn.Linear(512, 10)
    )


def convnet() -> nn.Sequential:
    """Four units, no BatchNorm (its per-channel statistics do not scale with the batch)."""
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU()),
        nn.Sequential(nn.Conv2d(8, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2)),
        nn.Sequential(nn.Conv2d(16, 16, 3, padding=1), nn.Tanh()),
        nn.Sequential(nn.Flatten(), nn.Linear(16 * 4 * 4, 10)),
    )


def batch(size: int, shape: tuple[int, ...]) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(1)
    return torch.randn(size, *shape, generator=generator), torch.randint(0, 10, (size,), generator=generator)


def LOSS_SAVED(size: int) -> int:  # noqa: N802 - a constant of the batch size
    """Bytes cross-entropy keeps for backward: log-softmax output (10 classes) + total weight."""
    return size * 10 * 4 + 4


def nbytes(tensors) -> int:
    return sum(t.numel() * t.element_size() for t in tensors)


# ---- the tensor tracker ---------------------------------------------------------------------


def test_tracker_peak_equals_the_profilers_allocator_peak_on_an_mlp():
    """Two independent views (live tensor storages vs torch.profiler's allocation events)
    agree exactly when no kernel allocates scratch memory."""
    x, y = batch(64, (256,))
    tracked = training_step_memory(mlp(), x, y)
    assert tracked.peak_bytes == allocator_step_peak(mlp(), x, y)
    assert tracked.peak_bytes == sum(tracked.by_category.values())


def test_allocator_sees_at_least_the_tracked_tensors_on_a_convnet():
    x, y = batch(8, (3, 8, 8))
    assert allocator_step_peak(convnet(), x, y) >= training_step_memory(convnet(), x, y).peak_bytes


@pytest.mark.parametrize(("optimizer", "copies"), [("sgd", 0), ("momentum", 1), ("adam", 2)])
def test_optimizer_state_is_kappa_minus_one_weight_copies(optimizer, copies):
    """kappa = 1 + optimizer copies: SGD keeps none, momentum one, Adam two moments (plus a
    4-byte step counter per parameter tensor)."""
    network = mlp()
    x, y = batch(16, (256,))
    peak = training_step_memory(network, x, y, optimizer=optimizer)
    params = list(network.parameters())
    counters = 4 * len(params) if optimizer == "adam" else 0
    assert peak.by_category["optimizer"] == copies * nbytes(params) + counters
    assert peak.by_category["weights"] == nbytes(params)
    assert peak.by_category["input"] == nbytes([x, y])


def test_frozen_bottom_keeps_no_activations_and_no_gradients_there():
    network = convnet()
    x, y = batch(8, (3, 8, 8))
    top = {name for name, _ in network.named_parameters() if name.startswith("3.")}
    peak = training_step_memory(network, x, y, trainable=top)
    # what autograd keeps with these flags: the Linear's input, and for the loss the
    # log-softmax output and a 4-byte total weight
    assert peak.saved_bytes == 8 * 16 * 4 * 4 * 4 + LOSS_SAVED(8)
    assert peak.by_category["gradients"] <= nbytes(network[3].parameters())
    assert peak.by_category["optimizer"] == nbytes(network[3].parameters())
    with pytest.raises(ValueError, match="unknown parameters"):
        training_step_memory(network, x, y, trainable={"nosuch.weight"})


# ---- TinyFEL: modelled vs measured -----------------------------------------------------------


@pytest.mark.parametrize("architecture", ["resnet18-cifar10", "vgg16-cifar10"])
def test_model_terms_reproduce_the_spec_memory_table(architecture):
    model = tinyfel_option_memory(tinyfel_layers(architecture), 32, 2.0)
    terms = model[["weights", "grad_opt", "saved", "transient"]].sum(axis=1)
    assert terms.to_numpy() == pytest.approx(model["model_bytes"].to_numpy(), rel=1e-12)
    spec = memory_table(architecture).set_index("n")["memory_mib"]
    assert (model.set_index("n")["model_bytes"] / MIB).to_numpy() == pytest.approx(
        spec.sort_index().to_numpy(), abs=1e-9
    )
    assert model.iloc[-1]["model_bytes"] / MIB == pytest.approx(
        {"resnet18-cifar10": 397.0, "vgg16-cifar10": 244.5}[architecture], abs=0.1
    )


@pytest.fixture(scope="module")
def checked():
    return tinyfel_memory_check(convnet, (3, 8, 8), 10, batch_size=8)


def test_memory_check_measures_every_option_and_matches_the_models_persistent_terms(checked):
    network = convnet()
    profile = from_torch(network, torch.randn(2, 3, 8, 8))
    count = len(profile.units)
    with pytest.raises(ValueError, match=r"updated contains \[0, 5\]: options are 1..4"):
        tinyfel_memory_check(convnet, (3, 8, 8), 10, updated=[0, 2, 5])
    assert list(checked["n"]) == list(range(1, count + 1))
    categories = ["weights", "gradients", "optimizer", "saved", "input", "other"]
    assert checked[categories].sum(axis=1).to_numpy() == pytest.approx(checked["measured_mib"])
    for _, row in checked.iterrows():
        n = int(row["n"])
        trainable = sum(u.param_bytes for u in profile.units[count - n:])
        assert row["weights"] * MIB == row["model_weights"] * MIB == nbytes(network.parameters())
        assert row["optimizer"] * MIB == pytest.approx(trainable)  # momentum: one copy
        assert row["model_grad_opt"] * MIB == pytest.approx(2 * trainable)
        # saved activations after the forward pass: the model's term exactly, except the
        # network input, which the model counts (gamma_1 o_0) and the tracker files as input,
        # and the loss's tensors, which the model leaves out
        input_bytes = 8 * profile.input_bytes if n == count else 0.0
        assert row["saved_end_fwd_mib"] * MIB == pytest.approx(
            row["model_saved"] * MIB - input_bytes + LOSS_SAVED(8)
        )
        assert row["error_pct"] == pytest.approx(
            100 * (row["model_mib"] - row["measured_mib"]) / row["measured_mib"]
        )


def test_memory_claim_finds_the_largest_option_saving_enough():
    table = pd.DataFrame({"n": [1, 2, 3, 4], "measured_mib": [10.0, 20.0, 50.0, 100.0],
                          "model_mib": [30.0, 61.0, 80.0, 100.0]})
    claim = memory_claim(table).set_index("source")
    assert claim.loc["measured", "largest_n"] == 3
    assert claim.loc["measured", "saving_at_largest_n_pct"] == pytest.approx(50.0)
    assert claim.loc["measured", "saving_at_half_pct"] == pytest.approx(80.0)
    assert claim.loc["model", "largest_n"] == 1  # 61 MiB saves only 39%
    assert "reference" not in claim.index


# ---- EdgeSplit: time --------------------------------------------------------------------------


def test_time_check_tables_are_consistent_with_the_profile():
    check = edgesplit_time_check(convnet, (3, 8, 8), batch_size=8, repeats=2, direct=True)
    profile = check.profile
    assert profile.measured and len(check.per_cut) == len(profile.units)
    steps = check.per_unit["fwd_s"] + check.per_unit["bwd_s"]
    assert check.per_cut["measured_s"].to_numpy() == pytest.approx(steps.cumsum().to_numpy())
    work = 8 * sum(u.fwd_flops + u.bwd_flops for u in profile.units)
    assert check.flops_per_s == pytest.approx(work / steps.sum())
    # the per-type FLOPs (FlopCounterMode per ATen op) add up to the per-unit FLOPs (hooks)
    assert check.per_type["fwd_flops"].sum() == pytest.approx(8 * sum(u.fwd_flops for u in profile.units))
    assert check.per_type["bwd_flops"].sum() == pytest.approx(8 * sum(u.bwd_flops for u in profile.units))
    conv = check.per_type.set_index("layer_type").loc["conv"]
    assert conv["fwd_flops"] == 8 * sum(u.fwd_flops for u in profile.units[:3])
    assert (check.per_cut["direct_s"] > 0).all()
    with pytest.raises(ValueError, match="repeats = 0"):
        edgesplit_time_check(convnet, (3, 8, 8), repeats=0)
