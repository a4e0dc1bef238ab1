import dataclasses

import pytest

from ffnn.config import TrainConfig
from ffnn.errors import ConfigError


def test_defaults_validate():
    config = TrainConfig()
    assert config.validate() is config
    assert config.hidden == [128, 128]
    assert TrainConfig.from_dict({}) == TrainConfig()


# (field, bad value, words the message must contain: the field and what is allowed)
BAD_VALUES = [
    ("epochs", 0, ["epochs", "positive integer"]),
    ("epochs", -3, ["epochs", "positive integer"]),
    ("epochs", 2.5, ["epochs", "positive integer"]),
    ("epochs", True, ["epochs", "positive integer"]),
    ("batch_size", 0, ["batch_size", "positive integer"]),
    ("hidden_size", 0, ["hidden_size", "positive integer"]),
    ("num_layers", -1, ["num_layers", "positive integer"]),
    ("patience", 0, ["patience", "positive integer"]),
    ("hidden_sizes", [64, 0], ["hidden_sizes", "positive integers"]),
    ("hidden_sizes", "64", ["hidden_sizes", "positive integers"]),
    ("learning_rate", 0, ["learning_rate", "> 0"]),
    ("learning_rate", -1e-3, ["learning_rate", "> 0"]),
    ("learning_rate", float("nan"), ["learning_rate", "number"]),
    ("learning_rate", "fast", ["learning_rate", "number"]),
    ("momentum", 1.0, ["momentum", "< 1"]),
    ("beta", -0.1, ["beta", ">= 0"]),
    ("beta1", 1, ["beta1", "< 1"]),
    ("beta2", 1.5, ["beta2", "< 1"]),
    ("epsilon", 0, ["epsilon", "> 0"]),
    ("weight_decay", -0.1, ["weight_decay", ">= 0"]),
    ("val_fraction", 1, ["val_fraction", "< 1"]),
    ("val_fraction", -0.1, ["val_fraction", ">= 0"]),
    ("seed", -1, ["seed", "non-negative integer"]),
    ("activation", "swish", ["activation", "'swish'", "relu", "tanh", "sigmoid", "identity"]),
    ("optimizer", "adagrad", ["optimizer", "'adagrad'", "sgd", "momentum", "nag", "rmsprop", "adam", "nadam"]),
    ("loss", "hinge", ["loss", "'hinge'", "cross_entropy", "squared_error", "mean_squared_error"]),
    ("output", "sigmoid", ["output", "'sigmoid'", "softmax", "linear"]),
    ("weight_init", "orthogonal", ["init", "'orthogonal'", "random", "xavier", "he"]),
    ("dtype", "float16", ["dtype", "float32", "float64"]),
    ("device", "tpu", ["device", "cpu", "cuda"]),
    ("dataset", "", ["dataset"]),
    ("dropout", 1.0, ["dropout", "< 1"]),
    ("label_smoothing", -0.1, ["label_smoothing", ">= 0"]),
    ("lr_schedule", "linear", ["schedule", "'linear'", "constant", "cosine", "plateau"]),
]


@pytest.mark.parametrize("field,value,words", BAD_VALUES, ids=[f"{f}={v!r}" for f, v, _ in BAD_VALUES])
def test_each_bad_value_is_a_config_error_naming_field_and_allowed(field, value, words):
    with pytest.raises(ConfigError) as info:
        TrainConfig(**{field: value}).validate()
    message = str(info.value)
    assert "\n" not in message
    for word in words:
        assert word in message, (word, message)


def test_from_dict_validates():
    with pytest.raises(ConfigError, match="batch_size"):
        TrainConfig.from_dict({"batch_size": 0})


def test_unknown_keys_are_listed_with_the_valid_ones():
    with pytest.raises(ConfigError) as info:
        TrainConfig.from_dict({"epochs": 3, "hiden_size": 64}, source="my.yaml")
    message = str(info.value)
    assert "my.yaml" in message and "'hiden_size'" in message
    for field in dataclasses.fields(TrainConfig):
        assert (field.name in message) == (field.name != "extra")  # an internal field, not a setting


def test_the_assignments_short_keys_are_accepted():
    config = TrainConfig.from_dict({"nhl": 3, "sz": 64, "lr": 0.01, "w_d": 0.5, "w_i": "he", "b": 16, "e": 2})
    assert (config.num_layers, config.hidden_size, config.learning_rate, config.weight_decay, config.weight_init,
            config.batch_size, config.epochs) == (3, 64, 0.01, 0.5, "he", 16, 2)
    with pytest.raises(ConfigError, match="'sz' sets 'hidden_size' a second time"):
        TrainConfig.from_dict({"hidden_size": 32, "sz": 64})


def test_a_run_name_says_when_the_loss_is_squared_error():
    assert TrainConfig(loss="mean_squared_error").run_name() == "hl_2_sz_128_bs_64_ac_tanh_o_adam_l_mse"
    default = "hl_2_sz_128_bs_64_ac_tanh_o_adam"
    assert TrainConfig(loss="cross_entropy").run_name() == TrainConfig().run_name() == default


def test_from_dict_accepts_dashed_keys():
    config = TrainConfig.from_dict({"batch-size": 16, "learning-rate": 0.01, "hidden_sizes": (8, 4)})
    assert config.batch_size == 16 and config.learning_rate == 0.01
    assert config.hidden_sizes == [8, 4]


def test_run_name():
    config = TrainConfig(num_layers=2, hidden_size=128, batch_size=64, activation="tanh", optimizer="adam")
    assert config.run_name() == "hl_2_sz_128_bs_64_ac_tanh_o_adam"
    config = TrainConfig(num_layers=3, hidden_size=32, batch_size=16, activation="ReLU", optimizer="NAdam")
    assert config.run_name() == "hl_3_sz_32_bs_16_ac_relu_o_nadam"
    assert TrainConfig(hidden_sizes=[256, 128]).run_name() == "hl_2_sz_256-128_bs_64_ac_tanh_o_adam"
    assert TrainConfig(hidden_sizes=[]).run_name() == "hl_0_sz_0_bs_64_ac_tanh_o_adam"
    assert TrainConfig(name="mine").run_name() == "mine"


def test_hidden_from_layers_and_size_or_explicit_sizes():
    assert TrainConfig(num_layers=3, hidden_size=32).validate().hidden == [32, 32, 32]
    assert TrainConfig(num_layers=0).validate().hidden == []
    assert TrainConfig(num_layers=3, hidden_size=32, hidden_sizes=[256, 64]).validate().hidden == [256, 64]
    assert TrainConfig(hidden_sizes=[]).validate().hidden == []


def test_optimizer_kwargs_are_the_ones_the_optimizer_takes():
    config = TrainConfig(momentum=0.5, beta=0.7, beta1=0.8, beta2=0.99, epsilon=1e-6)
    assert TrainConfig(optimizer="sgd", **_hp(config)).optimizer_kwargs() == {}
    assert TrainConfig(optimizer="nag", **_hp(config)).optimizer_kwargs() == {"momentum": 0.5}
    assert TrainConfig(optimizer="rmsprop", **_hp(config)).optimizer_kwargs() == {"beta": 0.7, "epsilon": 1e-6}
    assert TrainConfig(optimizer="Nadam", **_hp(config)).optimizer_kwargs() == {
        "beta1": 0.8, "beta2": 0.99, "epsilon": 1e-6}


def _hp(config):
    return {k: getattr(config, k) for k in ("momentum", "beta", "beta1", "beta2", "epsilon")}


def test_to_dict_round_trip():
    config = TrainConfig(dataset="iris", epochs=3, hidden_sizes=[8], activation="ReLU", extra={"trial": 4})
    again = TrainConfig.from_dict(config.to_dict())
    assert again == config.validate() and again.activation == "relu"  # one spelling once validated


def test_shipped_training_configs_are_valid():
    from pathlib import Path

    from ffnn.cli import read_config_file

    folder = Path(__file__).resolve().parents[1] / "configs"
    files = [p for p in folder.glob("*.yaml") if not p.name.startswith("sweep-")]
    assert len(files) >= 4
    for path in files:
        config = TrainConfig.from_dict(read_config_file(path), source=str(path))
        assert config.dataset in ("fashion_mnist", "mnist")
