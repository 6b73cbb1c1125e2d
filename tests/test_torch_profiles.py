"""Layer profiles from PyTorch modules against the specs' analytic tables (needs torch).

The networks are built here from plain ``torch.nn`` layers in torchvision's layout (flat
``features`` / nested ``layer1.0`` blocks), independently of ``edgeopt.models.profiles.cifar``,
and cut with named blocks.
"""

from __future__ import annotations

import math
from collections import OrderedDict

import pytest

torch = pytest.importorskip("torch")
from torch import nn  # noqa: E402
from torch.nn import functional as F  # noqa: E402

from edgeopt.models.edgesplit import EdgeSplitModel  # noqa: E402
from edgeopt.models.edgesplit.architectures import layer_profile  # noqa: E402
from edgeopt.models.profiles import LayerProfile, from_torch  # noqa: E402
from edgeopt.models.tinyfel.model import TinyFELModel  # noqa: E402
from edgeopt.solvers import solve  # noqa: E402

BATCH = 2
VGG_CONFIG = (64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M")

# EdgeSplit spec §7.1 tables as printed: (unit, fwd MFLOPs, params K, out KiB)
VGG_TABLE = [
    ("conv1_64", "3.54", "1.9", "256.0"), ("conv2_64+pool", "75.50", "37.1", "64.0"),
    ("conv3_128", "37.75", "74.1", "128.0"), ("conv4_128+pool", "75.50", "147.8", "32.0"),
    ("conv5_256", "37.75", "295.7", "64.0"), ("conv6_256", "75.50", "590.6", "64.0"),
    ("conv7_256+pool", "75.50", "590.6", "16.0"), ("conv8_512", "37.75", "1181.2", "32.0"),
    ("conv9_512", "75.50", "2360.8", "32.0"), ("conv10_512+pool", "75.50", "2360.8", "8.0"),
    ("conv11_512", "18.87", "2360.8", "8.0"), ("conv12_512", "18.87", "2360.8", "8.0"),
    ("conv13_512+pool", "18.87", "2360.8", "2.0"), ("fc_512_10", "0.01", "5.1", "0.04"),
]
RESNET_TABLE = [
    ("conv1", "3.54", "1.9", "256.0"), ("layer1.0", "150.99", "74.0", "256.0"),
    ("layer1.1", "150.99", "74.0", "256.0"), ("layer2.0", "117.44", "230.1", "128.0"),
    ("layer2.1", "150.99", "295.4", "128.0"), ("layer3.0", "117.44", "919.0", "64.0"),
    ("layer3.1", "150.99", "1180.7", "64.0"), ("layer4.0", "117.44", "3673.1", "32.0"),
    ("layer4.1", "150.99", "4720.6", "32.0"), ("avgpool+fc_512_10", "0.03", "5.1", "0.04"),
]
# TinyFEL spec §7 tables: (fwd_flops, params, in_bytes) exactly, and GFLOP/iter (beta 32)
RESNET_TINYFEL = [
    (3538944, 1856, 12288, "106.5"), (150994944, 73984, 262144, "101.6"),
    (150994944, 73984, 262144, "91.9"), (117440512, 230144, 262144, "83.3"),
    (150994944, 295424, 131072, "74.7"), (117440512, 919040, 131072, "66.2"),
    (150994944, 1180672, 65536, "57.6"), (117440512, 3673088, 65536, "49.0"),
    (150994944, 4720640, 32768, "40.4"), (18432, 5130, 32768, "35.5"),
]
VGG_TINYFEL = [
    (3538944, 1920, 12288, "60.0"), (75497472, 37056, 262144, "57.5"),
    (37748736, 74112, 65536, "53.9"), (75497472, 147840, 131072, "50.2"),
    (37748736, 295680, 32768, "46.6"), (75497472, 590592, 65536, "43.0"),
    (75497472, 590592, 65536, "38.2"), (37748736, 1181184, 16384, "34.5"),
    (75497472, 2360832, 32768, "30.9"), (75497472, 2360832, 32768, "26.1"),
    (18874368, 2360832, 8192, "23.1"), (18874368, 2360832, 8192, "21.9"),
    (18874368, 2360832, 8192, "20.6"), (10240, 5130, 2048, "20.0"),
]


def within_print(value: float, printed: str) -> bool:
    """``value`` rounds to ``printed`` (half a unit of its last digit)."""
    decimals = len(printed.split(".")[1]) if "." in printed else 0
    return abs(value - float(printed)) <= 0.5 * 10**-decimals + 1e-9


# ---- networks, torchvision layout -------------------------------------------------------


def vgg16_flat() -> tuple[nn.Module, list[str]]:
    """VGG16-CIFAR as a flat ``features`` list + ``classifier``; blocks end each spec unit
    (its ReLU, or the max pool merged into it)."""
    layers: list[nn.Module] = []
    blocks: list[str] = []
    channels = 3
    for item in VGG_CONFIG:
        if item == "M":
            layers.append(nn.MaxPool2d(2))
            blocks[-1] = f"features.{len(layers) - 1}"
            continue
        layers += [nn.Conv2d(channels, item, 3, padding=1), nn.BatchNorm2d(item), nn.ReLU()]
        blocks.append(f"features.{len(layers) - 1}")
        channels = item
    network = nn.Sequential(
        OrderedDict(features=nn.Sequential(*layers), flatten=nn.Flatten(), classifier=nn.Linear(512, 10))
    )
    return network, [*blocks, "classifier"]


class Block(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.downsample = None
        if stride != 1 or cin != cout:
            self.downsample = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x):
        identity = x if self.downsample is None else self.downsample(x)
        out = F.relu(self.bn1(self.conv1(x)))
        return F.relu(self.bn2(self.conv2(out)) + identity)


class ResNet18(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 64, 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU()
        cin = 64
        for stage, cout in enumerate((64, 128, 256, 512), start=1):
            stride = 1 if stage == 1 else 2
            setattr(self, f"layer{stage}", nn.Sequential(Block(cin, cout, stride), Block(cout, cout, 1)))
            cin = cout
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(512, 10)

    def forward(self, x):
        x = self.relu(self.bn1(self.conv1(x)))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.fc(torch.flatten(self.avgpool(x), 1))


RESNET_BLOCKS = ["relu", *[f"layer{s}.{b}" for s in (1, 2, 3, 4) for b in (0, 1)], "fc"]


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """One intra-op thread: on a shared machine more threads than free cores stall every
    parallel kernel (profiles do not depend on it)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def vgg():
    torch.manual_seed(0)
    network, blocks = vgg16_flat()
    return from_torch(network, torch.randn(BATCH, 3, 32, 32), blocks)


@pytest.fixture(scope="module")
def resnet():
    torch.manual_seed(0)
    return from_torch(ResNet18(), torch.randn(BATCH, 3, 32, 32), RESNET_BLOCKS)


# ---- the spec's analytic tables ---------------------------------------------------------


@pytest.mark.parametrize("name", ["vgg", "resnet"])
def test_units_match_the_edgesplit_table_within_its_rounding(name, request):
    profile = request.getfixturevalue(name)
    table = VGG_TABLE if name == "vgg" else RESNET_TABLE
    assert len(profile.units) == len(table)
    for unit, (label, mflops, kparams, kib) in zip(profile.units, table, strict=True):
        if label.startswith("avgpool"):
            # the table also counted the average pool; the spec allows 0.05 MFLOPs here
            assert abs(unit.fwd_flops / 1e6 - float(mflops)) <= 0.05
        else:
            assert within_print(unit.fwd_flops / 1e6, mflops), label
        assert within_print(unit.param_bytes / 4 / 1e3, kparams), label
        assert within_print(unit.out_bytes / 1024, kib), label


def test_totals_match_the_spec(vgg, resnet):
    assert within_print(sum(u.fwd_flops for u in vgg.units) / 1e6, "626.4")
    assert within_print(sum(u.param_bytes for u in vgg.units) / 4e3, "14728.3")
    assert sum(u.param_bytes for u in resnet.units) / 4 == 11_173_962
    # torch does not count the average pool (512 x 4 x 4 adds); the spec's total does
    assert within_print((sum(u.fwd_flops for u in resnet.units) + 512 * 16) / 1e6, "1110.9")


@pytest.mark.parametrize("name", ["vgg", "resnet"])
def test_units_equal_the_independent_analytic_builder(name, request):
    """torch's counts vs the preset profiles (conv/linear 2 x MACs, params, outputs):
    every integer equal."""
    profile = request.getfixturevalue(name)
    analytic = layer_profile("vgg16-cifar10" if name == "vgg" else "resnet18-cifar10")
    for unit, layer in zip(profile.units, analytic, strict=True):
        assert (unit.fwd_flops, unit.param_bytes, unit.out_bytes) == (
            layer["fwd_flops"], layer["param_bytes"], layer["out_bytes"]
        ), layer["name"]


@pytest.mark.parametrize("name", ["vgg", "resnet"])
def test_tinyfel_table_exactly_except_the_pool_adds(name, request):
    profile = request.getfixturevalue(name)
    table = VGG_TINYFEL if name == "vgg" else RESNET_TINYFEL
    layers = profile.tinyfel_layers()
    for layer, (fwd, params, in_bytes, _) in zip(layers, table, strict=True):
        assert layer["param_bytes"] == 4 * params and layer["in_bytes"] == in_bytes
        pool_adds = 512 * 4 * 4 if name == "resnet" and layer is layers[-1] else 0
        assert layer["fwd_flops"] + pool_adds == fwd


def test_backward_flops_follow_the_specs_null_conventions_except_the_input_gradient(vgg, resnet):
    """Per unit, weight-gradient work = input-gradient work = forward work (TinyFEL's null
    convention); in training the first unit needs no input gradient, so EdgeSplit's
    backward work is 2 x forward except there (its null convention says 2 x forward)."""
    for profile in (vgg, resnet):
        for k, unit in enumerate(profile.units):
            assert unit.bwd_weight_flops == unit.fwd_flops == unit.bwd_act_flops
            assert unit.bwd_flops == (1 if k == 0 else 2) * unit.fwd_flops


@pytest.mark.parametrize("name", ["vgg", "resnet"])
def test_tinyfel_flops_per_iteration_match_the_spec(name, request):
    profile = request.getfixturevalue(name)
    preset = TinyFELModel.preset(f"{'vgg16' if name == 'vgg' else 'resnet18'}-cifar10-cell", devices=2)
    document = preset.to_dict()
    document["layers"] = profile.tinyfel_layers()
    model = TinyFELModel.from_dict(document)
    table = VGG_TINYFEL if name == "vgg" else RESNET_TINYFEL
    count = len(table)
    for idx, (*_, gflop) in enumerate(table):
        n = count - idx
        per_iteration = model.options.flops[n - 1] / document["local_steps"] / 1e9
        assert abs(per_iteration - float(gflop)) <= 0.1


def test_torch_layers_drop_into_the_edgesplit_preset_and_give_its_reference_optimum(vgg):
    """The preset's instance with torch's layers (null backward / saved, as the presets)
    reproduces spec §7.3: T = 809.33 s, cuts [2,2,7,7,13,13,13,13]."""
    document = EdgeSplitModel.preset("vgg16-cifar10-hetero8").to_dict()
    document["layers"] = [
        dict(layer, bwd_flops=None, saved_act_bytes=None) for layer in vgg.edgesplit_layers()
    ]
    result = solve(EdgeSplitModel.from_dict(document), "bisection")
    assert result.objective / document["rounds"] == pytest.approx(809.33, abs=0.005)
    assert list(result.solution["cuts"]) == [2, 2, 7, 7, 13, 13, 13, 13]
    measured = dict(document, layers=vgg.edgesplit_layers())
    assert solve(EdgeSplitModel.from_dict(measured), "bisection").feasible


# ---- saved activations: autograd's saving rules ------------------------------------------


def test_vgg_saved_activations_follow_autograds_saving_rules(vgg):
    """Conv saves its input, BatchNorm its input and 2 x C statistics, ReLU its output,
    max-pool its input and int64 indices, Linear its input (weights are parameters, not
    counted). ``saved_suffix_bytes`` counts a tensor in the last unit saving it (input
    included), ``saved_act_bytes`` in the first (network input excluded)."""
    size, channels_in, previous_pooled = 32, 3, False
    convs = [c for c in VGG_CONFIG if c != "M"]
    pooled = [VGG_CONFIG[i + 1] == "M" for i, c in enumerate(VGG_CONFIG) if c != "M"]
    for k, (channels, pool) in enumerate(zip(convs, pooled, strict=True)):
        unit = vgg.units[k]
        inputs, conv_out = channels_in * size * size, channels * size * size
        stats = 2 * channels * 4 / BATCH
        indices = conv_out // 4 if pool else 0
        suffix = 4 * inputs + 4 * conv_out + stats + (4 * conv_out + 8 * indices if pool else 0)
        prefix = 8 * conv_out + stats + 8 * indices + (4 * inputs if previous_pooled else 0)
        assert (unit.saved_suffix_bytes, unit.saved_act_bytes) == (suffix, prefix), unit.name
        channels_in, size, previous_pooled = channels, size // 2 if pool else size, pool
    head = vgg.units[-1]
    assert head.saved_suffix_bytes == head.saved_act_bytes == 4 * 512 == head.in_bytes
    assert head.act_factor == 1.0  # the spec's gamma for the final unit


def test_resnet_saved_activations_follow_autograds_saving_rules(resnet):
    """BasicBlock: conv1 and the shortcut conv save the input, BN1/BN2/BN_sc their inputs,
    the inner ReLU its output, the final ReLU its output (which the next block's conv saves
    again); the average pool (a mean) saves nothing, Linear its input."""
    stem = resnet.units[0]
    assert stem.saved_suffix_bytes == 4 * 3 * 32 * 32 + 4 * 64 * 32 * 32 + 2 * 64 * 4 / BATCH
    assert stem.saved_act_bytes == 8 * 64 * 32 * 32 + 2 * 64 * 4 / BATCH
    size, channels_in = 32, 64
    for k, name in enumerate(RESNET_BLOCKS[1:-1], start=1):
        channels = 64 * 2 ** (int(name[5]) - 1)
        downsample = channels != channels_in
        size_out = size // 2 if downsample else size
        x, e = channels_in * size * size, channels * size_out * size_out
        norms = 3 if downsample else 2
        stats = norms * 2 * channels * 4 / BATCH
        inner = 4 * (3 * e + (e if downsample else 0)) + stats  # c1, r1, c2 (+ shortcut)
        last_block = k == len(RESNET_BLOCKS) - 2
        unit = resnet.units[k]
        assert unit.saved_suffix_bytes == 4 * x + inner + (4 * e if last_block else 0), name
        assert unit.saved_act_bytes == inner + 4 * e, name
        size, channels_in = size_out, channels
    head = resnet.units[-1]
    assert head.saved_suffix_bytes == head.saved_act_bytes == 4 * 512


def _saved_storages(network: nn.Module, x: torch.Tensor) -> int:
    """Bytes of the distinct non-parameter, non-input storages autograd keeps in one forward."""
    persistent = {t.untyped_storage().data_ptr() for t in [*network.parameters(), *network.buffers(), x]}
    seen: dict[int, int] = {}

    def pack(tensor):
        storage = tensor.untyped_storage()
        if storage.data_ptr() not in persistent:
            seen[storage.data_ptr()] = storage.nbytes()
        return tensor

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        network(x)
    return sum(seen.values())


def _small_net() -> nn.Sequential:
    torch.manual_seed(1)
    return nn.Sequential(
        nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU()),
        nn.Sequential(nn.Conv2d(8, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2)),
        nn.Sequential(nn.Conv2d(16, 16, 3, padding=1), nn.Tanh()),
        nn.Sequential(nn.Flatten(), nn.Linear(16 * 4 * 4, 5)),
    )


def test_saved_columns_sum_exactly_to_what_training_keeps():
    """Suffix sums = a real forward with the units below frozen (input included); prefix
    sums = the device-side network alone (input excluded): measured directly here."""
    network, x = _small_net(), torch.randn(4, 3, 8, 8)
    profile = from_torch(network, x)
    count = len(profile.units)
    network.train()
    for s in range(count):
        for k, child in enumerate(network):
            child.requires_grad_(k >= s)
        input_kept = 4 * x.numel() if s == 0 else 0  # the first conv then keeps the input
        kept = _saved_storages(network, x) + input_kept
        assert kept == pytest.approx(4 * sum(u.saved_suffix_bytes for u in profile.units[s:]))
    network.requires_grad_(True)
    for c in range(1, count + 1):
        kept = _saved_storages(nn.Sequential(*list(network)[:c]), x)
        assert kept == pytest.approx(4 * sum(u.saved_act_bytes for u in profile.units[:c]))


# ---- cutting rules and errors -------------------------------------------------------------


class Skip(nn.Module):
    def __init__(self):
        super().__init__()
        self.a, self.b, self.c = (nn.Conv2d(4, 4, 3, padding=1) for _ in range(3))

    def forward(self, x):
        h = self.a(x)
        return self.c(self.b(h)) + h


def test_a_skip_connection_across_a_cut_is_refused_naming_the_units():
    with pytest.raises(ValueError, match=r"unit 'c' reads a tensor from unit 'a'.*block 'b'"):
        from_torch(Skip(), torch.randn(2, 4, 6, 6), ["a", "b", "c"])
    profile = from_torch(Skip(), torch.randn(2, 4, 6, 6), ["a", "c"])  # encloses the skip
    assert profile.names == ["a", "c"]
    assert profile.units[1].fwd_flops == 2 * 2 * 4 * 4 * 9 * 36  # convs b and c


class Twice(nn.Module):
    def __init__(self):
        super().__init__()
        self.lin = nn.Linear(3, 3)

    def forward(self, x):
        return self.lin(self.lin(x))


class Pair(nn.Module):
    def __init__(self):
        super().__init__()
        self.split = nn.Identity()
        self.lin = nn.Linear(3, 3)

    def forward(self, x):
        return self.lin(self.split((x, x))[0])


@pytest.mark.parametrize(
    ("network", "blocks", "error", "message"),
    [
        (Twice(), ["lin"], ValueError, "more than once"),
        (Pair(), ["split", "lin"], ValueError, "returns tuple, not one tensor"),
        (Twice(), ["nosuch"], ValueError, "unknown block 'nosuch'.*children: lin"),
        (Twice(), "lin", TypeError, "list of submodule names"),
        (Twice(), [], ValueError, "at least one"),
    ],
)
def test_bad_blocks_are_refused_with_a_clear_message(network, blocks, error, message):
    with pytest.raises(error, match=message):
        from_torch(network, torch.randn(2, 3), blocks)


@pytest.mark.parametrize(
    ("module", "example", "kwargs", "message"),
    [
        ("not a module", None, {}, "not a torch.nn.Module"),
        (None, "x", {}, "tensor or a tuple"),
        (None, torch.tensor(1.0), {}, "first dimension must be a batch"),
        (None, None, {"repeats": 0}, "repeats = 0"),
    ],
)
def test_bad_arguments_are_refused(module, example, kwargs, message):
    module = nn.Linear(3, 3) if module is None else module
    example = torch.randn(2, 3) if example is None else example
    with pytest.raises((TypeError, ValueError), match=message):
        from_torch(module, example, **kwargs)


def test_work_outside_blocks_joins_the_neighbouring_unit_and_order_is_execution_order():
    network = _small_net()
    profile = from_torch(network, torch.randn(2, 3, 8, 8), ["3", "1"])
    assert profile.names == ["1", "3"]
    whole = from_torch(network, torch.randn(2, 3, 8, 8))
    assert profile.units[0].fwd_flops == whole.units[0].fwd_flops + whole.units[1].fwd_flops
    assert profile.units[0].param_names == whole.units[0].param_names + whole.units[1].param_names


class Unused(nn.Module):
    def __init__(self):
        super().__init__()
        self.body = nn.Linear(3, 4)
        self.spare_head = nn.Linear(4, 2)  # never called
        self.head = nn.Linear(4, 1)

    def forward(self, x):
        return self.head(torch.relu(self.body(x)))


def test_default_cuts_are_the_top_level_children_that_run():
    profile = from_torch(Unused(), torch.randn(2, 3))
    assert profile.names == ["body", "head"]
    assert profile.units[1].param_names == ("head.weight", "head.bias")
    assert "spare_head.weight" in profile.notes[0]  # present but never used: not counted
    single = from_torch(nn.Linear(3, 2), torch.randn(2, 3))
    assert single.names == ["Linear"] and single.units[0].param_bytes == 4 * 8


def test_profiling_leaves_the_module_as_it_was():
    network = _small_net()
    network.eval()
    network[0][0].weight.requires_grad_(False)
    network[3][1].weight.grad = torch.ones_like(network[3][1].weight)
    before = {k: v.clone() for k, v in network.state_dict().items()}
    from_torch(network, torch.randn(2, 3, 8, 8), measure=True, repeats=1)
    assert not network.training and not network[0][0].weight.requires_grad
    assert torch.equal(network[3][1].weight.grad, torch.ones_like(network[3][1].weight))
    assert network[1][0].weight.grad is None
    after = network.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)


def test_measured_times_follow_the_work_and_give_a_throughput():
    network = nn.Sequential(
        OrderedDict(small=nn.Linear(64, 64), big=nn.Sequential(nn.Linear(64, 1024), nn.Linear(1024, 1024)))
    )
    profile = from_torch(network, torch.randn(64, 64), measure=True, repeats=5)
    small, big = profile.units
    assert profile.measured and profile.repeats == 5
    assert big.fwd_flops > 200 * small.fwd_flops
    assert big.fwd_time_s > small.fwd_time_s and big.bwd_time_s > small.bwd_time_s
    work = 64 * sum(u.fwd_flops + u.bwd_flops for u in profile.units)
    seconds = sum(u.fwd_time_s + u.bwd_time_s for u in profile.units)
    assert profile.effective_flops_per_s() == pytest.approx(work / seconds)
    assert from_torch(network, torch.randn(4, 64)).units[0].fwd_time_s is None


def test_profile_round_trips_through_json(tmp_path, resnet):
    path = tmp_path / "profile.json"
    resnet.save(path)
    assert LayerProfile.load(path) == resnet


def test_tinyfel_layers_need_parameters_or_explicit_bounds():
    profile = from_torch(nn.Sequential(nn.Linear(3, 3), nn.ReLU()), torch.randn(2, 3))
    with pytest.raises(ValueError, match=r"\['1'\] have no parameters"):
        profile.tinyfel_layers()
    layers = profile.tinyfel_layers([0.7, 0.3])
    assert [layer["grad_sq_bound"] for layer in layers] == [0.7, 0.3]
    assert math.isclose(layers[1]["act_factor"], 1.0)  # ReLU keeps its output = its input size
