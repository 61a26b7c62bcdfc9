"""The typed configuration of a training run: data, model, training and evaluation.

A run config is YAML (or a preset name) validated by pydantic: unknown keys and wrong types fail
with the dotted path of the offending key. ``model`` names a recommender and carries its own
settings; each model's settings class is the one its module defines.

Reporting validation errors as ``(dotted key, message)`` problems lives in
:mod:`recdiff.config.problems`; resolving ``data.source`` in :mod:`recdiff.config.sources`.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator, model_validator

# Names re-exported from their former home here, so imports of them from this module still work.
from recdiff.config.problems import BOOLEAN_FOR_NUMBER as BOOLEAN_FOR_NUMBER
from recdiff.config.problems import ModelSettingsError, validation_problems
from recdiff.config.problems import validate_dataclass as validate_dataclass
from recdiff.config.sources import DATASETS_PREFIX as DATASETS_PREFIX
from recdiff.config.sources import absolute_source, check_source, resolve_source
from recdiff.train.config import TrainConfig

__all__ = [
    "DataConfig",
    "EvalConfig",
    "ModelSettingsError",
    "ModelSpec",
    "RunConfig",
    "TimeWeightConfig",
    "check_source",
    "resolve_source",
    "validation_problems",
]


class TimeWeightConfig(BaseModel):
    """T-DiffRec's weights w_m = w_min + (m-1)/(M-1) (w_max - w_min), oldest to newest; m and
    M count a user's distinct times, so interactions at the same time share a weight."""

    model_config = ConfigDict(extra="forbid")

    w_min: float = Field(0.1, gt=0, le=1, description="weight of a user's oldest interaction")
    w_max: float = Field(1.0, gt=0, le=1, description="weight of a user's newest interaction")
    single: Literal["max", "min"] = Field(
        "max",
        description="weight of a user's only time (M = 1, where the formula divides by 0): "
        "w_max, as the newest; min: w_min, as the released code's linspace gives",
    )

    @model_validator(mode="after")
    def _ordered(self) -> TimeWeightConfig:
        if self.w_min > self.w_max:
            raise ValueError(f"w_min ({self.w_min}) must not exceed w_max ({self.w_max})")
        return self


RECBOLE_FIELDS = {
    "user_col": "user_id",
    "item_col": "item_id",
    "rating_col": "rating",
    "time_col": "timestamp",
}


class DataConfig(BaseModel):
    """Where the interactions come from and how they are split."""

    model_config = ConfigDict(extra="forbid")

    format: Literal[
        "demo",
        "diffrec",
        "dreamrec",
        "sequences",
        "csv",
        "tsv",
        "parquet",
        "jsonl",
        "movielens",
        "recbole",
    ] = Field(
        "demo",
        description="demo = built-in synthetic data; diffrec = train/valid/test_list.npy; "
        "dreamrec = train/val/test_data.df; sequences = 'user item item ...' lines; csv / tsv "
        "set the separator; jsonl = one JSON object a line (Amazon's and Yelp's review dumps, "
        "*.json too); a file suffix naming another format is refused",
    )
    source: str | None = Field(
        None, description="file or folder; 'datasets:REL' resolves under $RECDIFF_DATASETS"
    )
    sep: str | None = Field(
        None,
        min_length=1,
        description="column separator of a csv or tsv file that uses another one, e.g. ';' "
        "(None: the format's comma or tab)",
    )
    decimal: Literal[".", ","] = Field(
        ".",
        description="decimal mark of a csv or tsv file's numbers (ratings, times): ',' for a "
        "file written where the comma is one, its columns then separated otherwise (sep ';')",
    )
    user_col: str = Field(
        "user", description="user id column (tables; RecBole files: user_id unless set)"
    )
    item_col: str = Field(
        "item", description="item id column (tables; RecBole files: item_id unless set)"
    )
    rating_col: str | None = Field(
        None, description="rating column, if any (RecBole files: rating unless set)"
    )
    time_col: str | None = Field(
        None, description="timestamp column, if any (RecBole files: timestamp unless set)"
    )
    min_rating: float | None = Field(None, description="keep ratings >= this (DiffRec: 4)")
    k_core: int | None = Field(None, ge=1, description="iterative k-core on users and items")
    duplicates: Literal["raise", "first", "last", "sum"] = Field(
        "raise",
        description="repeated (user, item) rows of a table read as an interaction matrix: raise "
        "an error naming them, keep the first or last row in file order, or sum the values "
        "(counts; not with min_rating, which judges one rating). Resolved before min_rating",
    )
    split: Literal["global_temporal", "user_temporal", "random", "leave_one_out"] = Field(
        "global_temporal",
        description="how tables and sequence files are split (ignored for diffrec and "
        "dreamrec folders, which hold their split, and for the demo's rows); leave_one_out: "
        "each user's last item test, second-to-last valid (next-item models need it, and a "
        "sequence file or the demo gets it by default; models of users' rows take it too). "
        "Sequence files have no times across users, so not global_temporal",
    )
    max_len: int = Field(
        10, ge=1, description="next-item models: the last N items kept as the history"
    )
    ratios: tuple[float, float, float] = Field((0.7, 0.1, 0.2), description="train/valid/test")
    seed: int = Field(0, ge=0, description="seed of the random split and the demo data")
    time_weights: TimeWeightConfig | None = Field(
        None, description="T-DiffRec: weight train rows by time order (None = binary)"
    )

    @field_validator("source")
    @classmethod
    def _absolute(cls, source: str | None) -> str | None:
        return absolute_source(source)

    @field_validator("ratios")
    @classmethod
    def _ratios_share_the_data(
        cls, ratios: tuple[float, float, float], info: ValidationInfo
    ) -> tuple[float, float, float]:
        """Checked here, not by the split alone: the demo's loader ignores them, so a config
        saying [0.5, 0.5, 0.5] trained there and failed once pointed at a file. A saved run's
        config (``context={"saved_run": True}``) is read as it trained."""
        if (info.context or {}).get("saved_run"):
            return ratios
        example = '--set "data.ratios=[0.7, 0.1, 0.2]"'
        if min(ratios) < 0:
            raise ValueError(
                f"{list(ratios)} holds a negative share; the train, valid and test shares are "
                f"fractions of the data, each 0 or more, summing to 1: e.g. {example}"
            )
        if abs(sum(ratios) - 1.0) > 1e-6:
            raise ValueError(
                f"{list(ratios)} sums to {sum(ratios):g}, but the train, valid and test shares "
                f"must sum to 1: e.g. {example}"
            )
        return ratios

    @model_validator(mode="after")
    def _source_needed(self) -> DataConfig:
        if self.format != "demo" and not self.source:
            raise ValueError(f"data.source is required for format {self.format!r}")
        if self.format == "demo" and self.source:
            raise ValueError(
                f"data.source is {self.source} but data.format is demo, the built-in data, which "
                "reads no file: set data.format to the file's (csv, tsv, parquet, jsonl, "
                "movielens, recbole, sequences, diffrec or dreamrec)"
            )
        return self

    @model_validator(mode="after")
    def _sep_of_a_text_table(self) -> DataConfig:
        if self.sep is not None and self.format not in ("csv", "tsv"):
            raise ValueError(
                f"data.sep sets the separator of a csv or tsv file, but data.format is "
                f"{self.format!r}, which has its own layout: set data.format=csv or drop data.sep"
            )
        if self.decimal != "." and self.format not in ("csv", "tsv"):
            raise ValueError(
                f"data.decimal sets the decimal mark of a csv or tsv file, but data.format is "
                f"{self.format!r}, whose numbers have their own: drop data.decimal"
            )
        separator = self.sep or {"csv": ",", "tsv": "\t"}.get(self.format)
        if self.decimal == separator:
            raise ValueError(
                f"data.decimal ({self.decimal!r}) is also the column separator: a comma-decimal "
                "file separates its columns otherwise; set that separator, e.g. data.sep=';'"
            )
        return self

    @model_validator(mode="after")
    def _no_columns_in_a_sequence_file(self) -> DataConfig:
        """A sequence file has no columns to name and no repeated rows to resolve: such a
        setting would be ignored without a word. Judged by value, not by whether the key was
        written, so a saved run's full config (every key written, at its default) reads."""
        if self.format != "sequences":
            return self
        defaults = type(self).model_fields
        given = [
            key
            for key in ("user_col", "item_col", "rating_col", "time_col", "duplicates")
            if getattr(self, key) != defaults[key].default
        ]
        if given:
            keys = ", ".join(f"data.{key}" for key in given)
            raise ValueError(
                f"{keys}: a sequence file (data.format=sequences) has no columns to name, and "
                f"keeps each repeated item in its place, so this would be ignored: drop {keys}, "
                "or read a table (data.format=csv, tsv, parquet or jsonl)"
            )
        return self

    @model_validator(mode="after")
    def _sum_is_no_rating(self) -> DataConfig:
        if self.duplicates == "sum" and self.min_rating is not None:
            raise ValueError(
                "data.duplicates=sum adds repeated rows' values up, and a sum of ratings is no "
                "rating for data.min_rating to judge (three 1-star rows would pass 3): keep the "
                "first or last row (data.duplicates=first or last), or drop data.min_rating"
            )
        return self

    @model_validator(mode="after")
    def _recbole_names(self) -> DataConfig:
        """RecBole files name their fields user_id, item_id, rating, timestamp: those are the
        defaults there. Filled in here, so the resolved config says which columns were read and
        reads the same when loaded again (a field left unset would take the tables' default)."""
        if self.format == "recbole":
            for key, name in RECBOLE_FIELDS.items():
                if key not in self.model_fields_set:
                    setattr(self, key, name)
        return self


class EvalConfig(BaseModel):
    """How models are evaluated: full ranking, seen items masked."""

    model_config = ConfigDict(extra="forbid")

    ks: list[int] = Field([10, 20], min_length=1, description="cut-offs")
    metrics: list[str] = Field(["recall", "ndcg", "precision", "mrr", "hit_rate", "coverage"])
    averaging: Literal["all_users", "test_users"] = Field(
        "all_users", description="all_users counts users without held-out items as 0 (papers)"
    )
    batch_size: int = Field(1024, ge=1, description="users per score block")
    exclude_history: bool = Field(
        False,
        description="next-item models: rank only items the user has not had before the target "
        "(all of their past when the data holds whole sequences, else the history window). "
        "DreamRec's protocol masks nothing; SASRec's MovieLens evaluations mask. Models of "
        "interaction rows always mask the items seen in their input",
    )

    @field_validator("ks")
    @classmethod
    def _positive(cls, ks: list[int]) -> list[int]:
        if min(ks) < 1:
            raise ValueError("every cut-off in ks must be >= 1")
        if len(set(ks)) < len(ks):
            raise ValueError(f"cut-offs repeat in {ks}: list each once")
        return ks

    @field_validator("metrics")
    @classmethod
    def _known(cls, metrics: list[str]) -> list[str]:
        # checked here, not after training: a typo should cost nothing
        from recdiff.eval.metrics import ALL_METRICS

        unknown = [name for name in metrics if name not in ALL_METRICS]
        if unknown:
            raise ValueError(f"unknown metrics {unknown}; choose from {list(ALL_METRICS)}")
        if len(set(metrics)) < len(metrics):
            raise ValueError(f"metrics repeat in {metrics}: list each once")
        return metrics


class ModelSpec(BaseModel):
    """A recommender by name plus its settings (validated by the model's own config class)."""

    model_config = ConfigDict(extra="allow")

    name: str = Field(description="diffrec, ldiffrec, ease, multvae or popularity")

    def params(self) -> dict[str, Any]:
        return dict(self.model_extra or {})


#: Validation context of a saved run's config.yaml (see RunConfig._data_a_next_item_model_reads).
SAVED_RUN = {"saved_run": True}

#: Data a next-item model splits leave-one-out whatever data.split says (a sequence file, the
#: demo), and, with DreamRec's folders of split examples, data that holds no ratings to filter.
LEAVE_ONE_OUT_FORMATS = frozenset({"sequences", "demo"})


def leave_one_out_only(split: object) -> str:
    """The refusal of a split other than leave-one-out for a next-item model's sequences."""
    return (
        "next-item models split each user's sequence leave-one-out: set "
        f"data.split=leave_one_out (got {split!r})"
    )


UNFILTERED_FORMATS = LEAVE_ONE_OUT_FORMATS | {"dreamrec"}


class RunConfig(BaseModel):
    """Everything that defines a training run; written resolved into the run directory."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field("run", description="run name, used for the run directory")
    data: DataConfig = Field(default_factory=DataConfig)
    model: ModelSpec = Field(default_factory=lambda: ModelSpec(name="diffrec"))
    train: TrainConfig = Field(default_factory=TrainConfig)
    eval: EvalConfig = Field(default_factory=EvalConfig)

    @model_validator(mode="after")
    def _selection_metric_evaluated(self) -> RunConfig:
        name, _, k = self.train.metric.partition("@")
        if name not in self.eval.metrics or int(k) not in self.eval.ks:
            raise ValueError(
                f"train.metric {self.train.metric!r} selects the epoch, so eval must compute it: "
                f"add {name!r} to eval.metrics and {k} to eval.ks"
            )
        return self

    @model_validator(mode="after")
    def _masking_asked_of_a_next_item_model(self) -> RunConfig:
        from recdiff.config.models import SEQUENTIAL_MODELS

        if self.eval.exclude_history and self.model.name not in SEQUENTIAL_MODELS:
            models = ", ".join(sorted(SEQUENTIAL_MODELS))
            raise ValueError(
                f"eval.exclude_history applies to next-item models ({models}); "
                f"{self.model.name} ranks interaction rows and always masks the items in its "
                "input: remove it"
            )
        return self

    @model_validator(mode="after")
    def _data_a_next_item_model_reads(self, info: ValidationInfo) -> RunConfig:
        """Settings a next-item model would otherwise ignore are refused, naming the key; the
        default split of a sequence file or the demo is written as what it is, leave-one-out.
        A saved run's config (``context={"saved_run": True}``) trained before these checks
        existed, with such settings ignored: they are set to what it trained with instead."""
        from recdiff.config.models import SEQUENTIAL_MODELS

        data = self.data
        if self.model.name not in SEQUENTIAL_MODELS:
            return self
        if (info.context or {}).get("saved_run"):
            if data.format in LEAVE_ONE_OUT_FORMATS:
                data.split = "leave_one_out"
            if data.format in UNFILTERED_FORMATS:
                data.min_rating = None
            data.k_core, data.time_weights = None, None
            return self
        if data.time_weights is not None:
            raise ValueError(
                "data.time_weights weights interaction rows (T-DiffRec); a next-item model "
                "reads the order of the history itself: remove data.time_weights"
            )
        if data.format in UNFILTERED_FORMATS:
            held = {"sequences": "a sequence file", "demo": "the demo"}.get(
                data.format, "a DreamRec folder (the paper's examples, already filtered)"
            )
            if data.min_rating is not None:
                raise ValueError(f"{held} holds no ratings: remove data.min_rating")
            if data.k_core is not None:
                raise ValueError(
                    f"data.k_core is not applied to {held}: filter the data first, or remove it"
                )
        elif data.k_core is not None:
            raise ValueError("data.k_core is not applied to sequences; filter the table first")
        if data.duplicates != "raise" and data.format not in ("movielens", "recbole"):
            raise ValueError(
                f"data.duplicates={data.duplicates} is not applied to sequences: a next-item "
                "model keeps a repeated (user, item) row in the user's sequence (a history, not a "
                "set); remove data.duplicates or set it to raise, the default (in `recdiff "
                "experiment`, give it to the models of rows alone: --set "
                "CONFIG:data.duplicates=first)"
            )
        if data.format in LEAVE_ONE_OUT_FORMATS and data.split != "leave_one_out":
            # the default: nothing was asked (a --set of it is refused by load_config)
            if data.split != "global_temporal":
                raise ValueError(leave_one_out_only(data.split))
            data.split = "leave_one_out"
        return self

    @model_validator(mode="after")
    def _device_known(self) -> RunConfig:
        import torch

        try:
            torch.device(self.train.device)
        except RuntimeError:
            raise ValueError(
                f"train.device {self.train.device!r} is not a torch device: use cpu, cuda, "
                "cuda:N or mps"
            ) from None
        return self

    @model_validator(mode="after")
    def _model_settings_valid(self) -> RunConfig:
        from recdiff.config.models import multvae_params, validate_model_params

        latent = (self.model.model_extra or {}).get("latent")
        if self.model.name == "ldiffrec" and isinstance(latent, dict):
            embeddings = latent.get("item_embeddings")
            if isinstance(embeddings, str):  # a file, found again from any folder as data is
                latent["item_embeddings"] = absolute_source(embeddings)
        params = self.model.params()
        if self.model.name == "multvae":  # its own loop: train.* settings map onto model.*
            params = multvae_params(params, self.train)
        validate_model_params(self.model.name, params)
        return self
