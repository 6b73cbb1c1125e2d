"""EdgeSplit presets: layer profiles against the spec §7.1 tables, reference values of §7.3,
the ImageNet memory facts, the §9 infeasibility message, fleets and errors."""

from __future__ import annotations

import math
from decimal import Decimal

import pytest

from edgeopt.models import InstanceError
from edgeopt.models import preset as registry_preset
from edgeopt.models.edgesplit import EdgeSplitInstance, EdgeSplitModel
from edgeopt.models.edgesplit.architectures import architecture_names, layer_profile
from edgeopt.models.edgesplit.presets import DEVICE_CLASSES, preset, preset_names
from edgeopt.solvers import Status, solve

# ---- spec §7.1 tables, as printed: (unit, fwd MFLOPs, params K, out shape, out KiB) ------

VGG16_CIFAR10 = [
    ("conv1_64", "3.54", "1.9", (64, 32, 32), "256.0"),
    ("conv2_64+pool", "75.50", "37.1", (64, 16, 16), "64.0"),
    ("conv3_128", "37.75", "74.1", (128, 16, 16), "128.0"),
    ("conv4_128+pool", "75.50", "147.8", (128, 8, 8), "32.0"),
    ("conv5_256", "37.75", "295.7", (256, 8, 8), "64.0"),
    ("conv6_256", "75.50", "590.6", (256, 8, 8), "64.0"),
    ("conv7_256+pool", "75.50", "590.6", (256, 4, 4), "16.0"),
    ("conv8_512", "37.75", "1181.2", (512, 4, 4), "32.0"),
    ("conv9_512", "75.50", "2360.8", (512, 4, 4), "32.0"),
    ("conv10_512+pool", "75.50", "2360.8", (512, 2, 2), "8.0"),
    ("conv11_512", "18.87", "2360.8", (512, 2, 2), "8.0"),
    ("conv12_512", "18.87", "2360.8", (512, 2, 2), "8.0"),
    ("conv13_512+pool", "18.87", "2360.8", (512, 1, 1), "2.0"),
    ("fc_512_10", "0.01", "5.1", (10,), "0.04"),
]

RESNET18_CIFAR10 = [
    ("conv1", "3.54", "1.9", (64, 32, 32), "256.0"),
    ("layer1.0", "150.99", "74.0", (64, 32, 32), "256.0"),
    ("layer1.1", "150.99", "74.0", (64, 32, 32), "256.0"),
    ("layer2.0", "117.44", "230.1", (128, 16, 16), "128.0"),
    ("layer2.1", "150.99", "295.4", (128, 16, 16), "128.0"),
    ("layer3.0", "117.44", "919.0", (256, 8, 8), "64.0"),
    ("layer3.1", "150.99", "1180.7", (256, 8, 8), "64.0"),
    ("layer4.0", "117.44", "3673.1", (512, 4, 4), "32.0"),
    ("layer4.1", "150.99", "4720.6", (512, 4, 4), "32.0"),
    ("avgpool+fc_512_10", "0.03", "5.1", (10,), "0.04"),
]

VGG16_IMAGENET = [
    ("conv1_64", "173.41", "1.8", (64, 224, 224), "12544.0"),
    ("conv2_64+pool", "3699.38", "36.9", (64, 112, 112), "3136.0"),
    ("conv3_128", "1849.69", "73.9", (128, 112, 112), "6272.0"),
    ("conv4_128+pool", "3699.38", "147.6", (128, 56, 56), "1568.0"),
    ("conv5_256", "1849.69", "295.2", (256, 56, 56), "3136.0"),
    ("conv6_256", "3699.38", "590.1", (256, 56, 56), "3136.0"),
    ("conv7_256+pool", "3699.38", "590.1", (256, 28, 28), "784.0"),
    ("conv8_512", "1849.69", "1180.2", (512, 28, 28), "1568.0"),
    ("conv9_512", "3699.38", "2359.8", (512, 28, 28), "1568.0"),
    ("conv10_512+pool", "3699.38", "2359.8", (512, 14, 14), "392.0"),
    ("conv11_512", "924.84", "2359.8", (512, 14, 14), "392.0"),
    ("conv12_512", "924.84", "2359.8", (512, 14, 14), "392.0"),
    ("conv13_512+pool", "924.84", "2359.8", (512, 7, 7), "98.0"),
    ("fc1_25088_4096", "205.52", "102764.5", (4096,), "16.0"),
    ("fc2_4096_4096", "33.55", "16781.3", (4096,), "16.0"),
    ("fc3_4096_1000", "8.19", "4097.0", (1000,), "3.9"),
]

TABLES = {
    "vgg16-cifar10": (VGG16_CIFAR10, "626.4", "14728.3"),
    "resnet18-cifar10": (RESNET18_CIFAR10, "1110.9", "11174.0"),
    "vgg16-imagenet": (VGG16_IMAGENET, "30940.5", "138357.5"),
}

RESNET_HEAD_ALLOWANCE = 0.05
"""MFLOPs: the table's ResNet head (0.03) also counted the pool; conv/linear only: 0.01."""

ROWS = [
    (arch, index, row) for arch, (rows, _, _) in TABLES.items() for index, row in enumerate(rows)
]


def assert_printed(value: float, printed: str, allowance: float = 0.0) -> None:
    """``value`` rounds to ``printed``: within half a unit of its last digit + ``allowance``."""
    half_unit = 0.5 * 10.0 ** Decimal(printed).as_tuple().exponent
    assert abs(value - float(printed)) <= half_unit + allowance + 1e-12, (value, printed)


@pytest.mark.parametrize(("arch", "index", "row"), ROWS, ids=[f"{a}-{r[0]}" for a, _, r in ROWS])
def test_profile_row_matches_spec_table(arch, index, row):
    name, mflops, kparams, shape, kib = row
    layer = layer_profile(arch)[index]
    assert layer["name"] == name
    assert layer["fwd_flops"].is_integer()
    allowance = RESNET_HEAD_ALLOWANCE if name.startswith("avgpool") else 0.0
    assert_printed(layer["fwd_flops"] / 1e6, mflops, allowance)
    assert layer["param_bytes"] % 4 == 0
    assert_printed(layer["param_bytes"] / 4 / 1e3, kparams)
    assert layer["out_bytes"] == 4 * math.prod(shape)
    assert_printed(layer["out_bytes"] / 1024, kib)
    assert layer["bwd_flops"] is None and layer["saved_act_bytes"] is None


@pytest.mark.parametrize("arch", list(TABLES))
def test_profile_totals(arch):
    rows, mflops, kparams = TABLES[arch]
    layers = layer_profile(arch)
    assert [layer["name"] for layer in layers] == [row[0] for row in rows]
    allowance = RESNET_HEAD_ALLOWANCE if arch == "resnet18-cifar10" else 0.0
    assert_printed(sum(layer["fwd_flops"] for layer in layers) / 1e6, mflops, allowance)
    assert_printed(sum(layer["param_bytes"] for layer in layers) / 4 / 1e3, kparams)


def test_exact_values_of_distinctive_units():
    resnet = layer_profile("resnet18-cifar10")
    assert resnet[-1]["fwd_flops"] == 10240  # 2 x 512 x 10, nothing for the pool
    assert resnet[3]["param_bytes"] == 4 * (73728 + 147456 + 8192 + 3 * 256)  # 1x1 shortcut + 3 BN
    assert resnet[-1]["out_bytes"] == 40
    imagenet = layer_profile("vgg16-imagenet")
    assert sum(layer["param_bytes"] for layer in imagenet) / 2**20 == pytest.approx(527.8, abs=0.05)
    assert imagenet[13]["fwd_flops"] == 2 * 25088 * 4096


def test_unknown_architecture():
    with pytest.raises(ValueError, match="vgg16-cifar10"):
        layer_profile("alexnet")
    assert architecture_names() == list(TABLES)


# ---- spec §7.3 reference values --------------------------------------------------------

REFERENCE = {
    "vgg16-cifar10-hetero8": (809.33, [2, 2, 7, 7, 13, 13, 13, 13]),
    "resnet18-cifar10-hetero8": (1875.01, [1, 1, 8, 8, 8, 8, 8, 8]),
    "vgg16-imagenet-hetero8": (3656.66, [2, 2, 13, 13, 13, 13, 13, 13]),
}

# per-round T (s), common cut, printed speed-up "baseline / EdgeSplit"; None = infeasible
BASELINES = {
    "vgg16-cifar10-hetero8": {
        "baseline_equal_resources": (1786.66, None, "2.21"),
        "baseline_common_cut": (1156.57, 4, "1.43"),
        "baseline_fedavg": (2990.56, None, "3.70"),
        "baseline_sequential_sl": (2144.52, 2, "2.65"),
    },
    "resnet18-cifar10-hetero8": {
        "baseline_equal_resources": (5034.15, None, "2.68"),
        "baseline_common_cut": (3330.14, 4, "1.78"),
        "baseline_fedavg": (5257.86, None, "2.80"),
        "baseline_sequential_sl": (4736.71, 1, "2.53"),
    },
    "vgg16-imagenet-hetero8": {
        "baseline_equal_resources": (8915.50, None, "2.44"),
        "baseline_common_cut": (5775.48, 4, "1.58"),
        "baseline_fedavg": None,
        "baseline_sequential_sl": (10721.18, 2, "2.93"),
    },
}

BASELINE_CASES = [(name, method) for name, table in BASELINES.items() for method in table]


@pytest.fixture(scope="module")
def models() -> dict[str, EdgeSplitModel]:
    return {name: EdgeSplitModel.preset(name) for name in preset_names()}


@pytest.mark.parametrize("method", ["bisection", "alternating"])
@pytest.mark.parametrize("name", list(REFERENCE))
def test_reference_makespan_and_cuts(models, name, method):
    model = models[name]
    per_round, cuts = REFERENCE[name]
    result = solve(model, method)
    assert result.status is Status.OPTIMAL and result.verified
    assert result.objective / model.instance.rounds == pytest.approx(per_round, rel=1e-4)
    assert result.solution["cuts"] == cuts


@pytest.mark.parametrize(("name", "method"), BASELINE_CASES)
def test_reference_baselines(models, name, method):
    model = models[name]
    expected = BASELINES[name][method]
    result = solve(model, method)
    if expected is None:
        assert result.status is Status.INFEASIBLE
        assert "pi-0" in result.message and "nano-3" in result.message
        assert "tx2-4" not in result.message
        return
    per_round, common_cut, speedup = expected
    assert result.status is Status.FEASIBLE and result.verified
    assert result.objective / model.instance.rounds == pytest.approx(per_round, rel=1e-4)
    if common_cut is not None:
        assert set(result.solution["cuts"]) == {common_cut}
    assert_printed(per_round / REFERENCE[name][0], speedup)


def test_imagenet_memory_facts(models):
    table = models["vgg16-imagenet-hetero8"].options
    memory = dict(zip(table.cuts.tolist(), table.memory_bytes.tolist(), strict=True))
    assert memory[1] == pytest.approx(4.11e8, rel=1e-3)
    assert memory[2] == pytest.approx(3.09e8, rel=1e-3)
    assert memory[1] > memory[2]  # memory is not monotone in the cut
    largest = [int(table.cuts[row].max()) for row in table.feasible]
    assert largest == [13, 13, 14, 14, 15, 15, 15, 15]
    full = EdgeSplitModel.preset("vgg16-imagenet-hetero8", allow_full_local=True).options
    assert full.cuts[-1] == 16
    assert full.memory_bytes[-1] == pytest.approx(2.234e9, rel=1e-3)
    assert not full.feasible[:4, -1].any() and full.feasible[4:, -1].all()


def test_memory_infeasibility_message():
    document = preset("vgg16-imagenet-hetero8").model_dump()
    for device in document["devices"]:
        device["memory_bytes"] = 3e8
    model = EdgeSplitModel(EdgeSplitInstance.model_validate(document))
    result = solve(model, "bisection")
    assert result.status is Status.INFEASIBLE
    assert result.message == (
        "device 'pi-0': no memory-feasible cut; needs >= 308745984 bytes (cut 2), has 300000000"
    )


# ---- fleets, overrides, errors ----------------------------------------------------------


def test_hetero8_fleet():
    instance = preset("resnet18-cifar10-hetero8")
    names = ["pi-0", "pi-1", "nano-2", "nano-3", "tx2-4", "tx2-5", "laptop-6", "laptop-7"]
    assert [d.name for d in instance.devices] == names
    assert [d.spectral_efficiency for d in instance.devices] == [1.5, 4.5] * 4
    for device in instance.devices:
        kind = DEVICE_CLASSES[device.name.split("-")[0]]
        assert (device.flops_per_s, device.memory_bytes, device.samples) == (
            kind.flops_per_s,
            kind.memory_bytes,
            6250,
        )
    assert (instance.server_flops_per_s, instance.bandwidth_hz) == (1e13, 2e7)
    assert (instance.batch_size, instance.rounds, instance.optimizer_state_factor) == (32, 50, 2)
    assert instance.server_mode == "dedicated"
    assert instance.include_sync and not instance.allow_full_local
    imagenet = preset("vgg16-imagenet-hetero8")
    assert (imagenet.devices[0].samples, imagenet.batch_size, imagenet.rounds) == (640, 16, 20)


def test_cycled_fleet_size():
    devices = preset("vgg16-cifar10-hetero8", devices=11).devices
    assert [d.name for d in devices][7:] == ["laptop-7", "pi-8", "pi-9", "nano-10"]
    assert devices[8].spectral_efficiency == 1.5 and devices[9].spectral_efficiency == 4.5
    assert len(preset("vgg16-cifar10-hetero8", devices=1).devices) == 1


def test_seeded_fleet_is_deterministic_and_in_range():
    first = preset("vgg16-cifar10-hetero8", devices=12, seed=7)
    assert first == preset("vgg16-cifar10-hetero8", devices=12, seed=7)
    assert first.devices != preset("vgg16-cifar10-hetero8", devices=12, seed=8).devices
    assert len(preset("vgg16-cifar10-hetero8", seed=7).devices) == 8
    for index, device in enumerate(first.devices):
        kind, number = device.name.split("-")
        assert int(number) == index
        cls = DEVICE_CLASSES[kind]
        assert 0.8 <= device.flops_per_s / cls.flops_per_s <= 1.25
        assert 1.0 <= device.spectral_efficiency <= 5.0
        assert device.memory_bytes == cls.memory_bytes


def test_overrides():
    instance = preset("vgg16-cifar10-hetero8", devices=4, server_mode="shared", bandwidth_hz=5e7)
    assert (len(instance.devices), instance.server_mode, instance.bandwidth_hz) == (
        4,
        "shared",
        5e7,
    )
    model = registry_preset("edgesplit", "vgg16-cifar10-hetero8", devices=3, rounds=2)
    assert model.size == {"devices": 3, "layers": 14, "candidate_cuts": 13}
    assert model.instance.rounds == 2


def test_errors():
    with pytest.raises(ValueError, match="vgg16-imagenet-hetero8"):
        preset("vgg19-hetero8")
    for bad in (0, -2, 2.5, True):
        with pytest.raises(ValueError, match="devices"):
            preset("vgg16-cifar10-hetero8", devices=bad)
    with pytest.raises(ValueError, match="bandwidth_hz"):
        preset("vgg16-cifar10-hetero8", bandwith_hz=1e7)
    with pytest.raises(InstanceError, match="bandwidth_hz"):
        preset("vgg16-cifar10-hetero8", bandwidth_hz=-1)
    with pytest.raises(InstanceError, match="server_mode"):
        preset("vgg16-cifar10-hetero8", server_mode="split")
