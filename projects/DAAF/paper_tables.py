#!/usr/bin/env python
"""The paper's tables (Table 2: the main results; 3: partial ReID; 4-7: the ablations) as rows:
the config that runs each row, the settings that row needs (branches, PAB groups / target /
decoders, test-time augmentation, re-ranking, test datasets), the row it is compared with, and the
paper's numbers. projects/DAAF/README.md's tables are printed from here, a test checks every
config against its row, and projects/DAAF/reproduce.py runs them:

    python projects/DAAF/paper_tables.py          # the Markdown table README shows
"""

from dataclasses import dataclass
from typing import Optional, Tuple

NO_REFERENCE = ()  # beyond the paper, and no published figure sourced for this setting
NOT_BUILT = ""  # the config of a paper row whose model this project does not build (PCB)


@dataclass(frozen=True)
class PaperRow:
    """One row of a paper table and what its config must set.

    paper: ((test dataset, first metric, second metric), ...) as the paper prints them (mAP /
    Rank-1 for Tables 2, 4 and 6, Rank-1 / Rank-3 for Table 3), NO_REFERENCE, or None where the
    paper prints only the change over the base row: then paper_delta holds it (Tables 5 and 7).
    config: the file that runs the row, NOT_BUILT for a paper row of a model not built here.
    groups / target / shared_decoder only concern rows with PAB. flip / five_crop / rerank: how the
    evaluation tests. base: (table, experiment) of the row this one is compared with (deltas), or
    None. weights_from: (table, experiment) of the row whose trained model this row evaluates (its
    own config tests it another way: re-ranking, other test sets), or None when the row trains.
    """

    table: str
    experiment: str
    config: str
    branches: Tuple[str, ...]
    paper: Optional[Tuple[Tuple[str, float, float], ...]]
    groups: str = "coco6"
    target: str = "keypoints"
    shared_decoder: bool = True
    flip: bool = False
    five_crop: bool = False
    test: Tuple[str, ...] = ("Market1501",)
    rerank: bool = False
    base: Optional[Tuple[str, str]] = None
    weights_from: Optional[Tuple[str, str]] = None
    paper_delta: Optional[Tuple[Tuple[str, float, float], ...]] = None

    @property
    def built(self) -> bool:
        """Whether the project has a config that runs this row."""
        return self.config != NOT_BUILT

    @property
    def key(self) -> Tuple[str, str]:
        return (self.table, self.experiment)

    @property
    def metrics(self) -> Tuple[str, str]:
        """The two numbers the paper reports for this row."""
        return ("Rank-1", "Rank-3") if self.table == "3" else ("mAP", "Rank-1")

    @property
    def overrides(self) -> Tuple[str, ...]:
        """KEY VALUE pairs the row's config gets on top of its file."""
        return ("TEST.RERANK.ENABLED", "True") if self.rerank else ()


ABLATIONS = "projects/DAAF/configs/"
PARTIAL = ("PartialREID", "PartialiLIDS")


def _market(map_: float, rank1: float):
    return (("Market1501", map_, rank1),)


def _partial(ilids: Tuple[float, float], reid: Tuple[float, float]):
    """Table 3's numbers (Rank-1, Rank-3), given in the paper's column order."""
    return (("PartialREID", *reid), ("PartialiLIDS", *ilids))


# Table 2 (mAP / Rank-1), from the paper; datasets in its column order
TABLE2_DATASETS = ("Market1501", "CUHK03Labeled", "CUHK03Detected", "DukeMTMCreID")
_TABLE2 = {
    "TriNet": ((69.14, 84.92), (54.45, 55.86), (51.98, 52.64), (58.18, 75.36)),
    "DAAF-TriNet": ((72.63, 87.17), (55.01, 60.34), (54.48, 58.71), (60.12, 77.29)),
    "BoT": ((85.9, 94.5), (60.9, 63.3), (58.0, 59.1), (76.4, 86.4)),
    "DAAF-BoT": ((87.9, 95.1), (67.6, 69.0), (63.1, 64.9), (77.9, 87.9)),
    "BoT + re-rank": ((94.2, 95.4), (77.1, 74.4), (73.4, 70.4), (89.1, 90.3)),
    "DAAF-BoT + re-rank": ((95.0, 96.4), (82.0, 78.7), (77.3, 73.9), (89.6, 91.7)),
}
_TABLE2_CONFIG = {"TriNet": "trinet", "DAAF-TriNet": "daaf_trinet", "BoT": "bot", "DAAF-BoT": "daaf_bot"}


def _table2_rows():
    rows = []
    for i, dataset in enumerate(TABLE2_DATASETS):
        for model, numbers in _TABLE2.items():
            trained = model.replace(" + re-rank", "")
            daaf = trained.startswith("DAAF-")
            base_model = model.replace("DAAF-", "") if daaf else None
            rows.append(
                PaperRow(
                    "2",
                    f"{model}, {dataset}",
                    f"configs/{dataset}/{_TABLE2_CONFIG[trained]}_R50.yaml",
                    ("HAB", "PAB") if daaf else (),
                    ((dataset, *numbers[i]),),
                    flip="TriNet" in model,  # TriNet's test: 5 crops x flip; BoT's: the image alone
                    five_crop="TriNet" in model,
                    test=(dataset,),
                    rerank=model.endswith("re-rank"),
                    base=("2", f"{base_model}, {dataset}") if base_model else None,
                    weights_from=("2", f"{trained}, {dataset}") if model.endswith("re-rank") else None,
                )
            )
    return tuple(rows)


BASE_4 = ("4", "base network")
OCCLUDED = "configs/Occluded/"

ROWS = _table2_rows() + (
    # Table 3: partial ReID, trained on Market-1501 (Rank-1 / Rank-3), each model's Table 2 test
    PaperRow("3", "PCB", NOT_BUILT, (), _partial((44.50, 61.30), (42.70, 50.30)), test=PARTIAL),
    PaperRow(
        "3",
        "TriNet",
        "configs/Partial/trinet_R50.yaml",
        (),
        _partial((32.77, 56.30), (43.00, 50.00)),
        flip=True,
        five_crop=True,
        test=PARTIAL,
        weights_from=("2", "TriNet, Market1501"),
    ),
    PaperRow(
        "3",
        "DAAF-TriNet",
        "configs/Partial/daaf_trinet_R50.yaml",
        ("HAB", "PAB"),
        _partial((45.38, 64.71), (47.00, 53.33)),
        flip=True,
        five_crop=True,
        test=PARTIAL,
        base=("3", "TriNet"),
        weights_from=("2", "DAAF-TriNet, Market1501"),
    ),
    PaperRow(
        "3",
        "BoT",
        "configs/Partial/bot_R50.yaml",
        (),
        _partial((51.3, 63.9), (57.3, 65.3)),
        test=PARTIAL,
        weights_from=("2", "BoT, Market1501"),
    ),
    PaperRow(
        "3",
        "DAAF-BoT",
        "configs/Partial/daaf_bot_R50.yaml",
        ("HAB", "PAB"),
        _partial((53.8, 72.3), (60.7, 68.7)),
        test=PARTIAL,
        base=("3", "BoT"),
        weights_from=("2", "DAAF-BoT, Market1501"),
    ),
    # Table 4: the branches (TriNet on Market-1501, single crop)
    PaperRow("4", "base network", ABLATIONS + "table4_base.yaml", (), _market(65.48, 82.51)),
    PaperRow("4", "+ HAB", ABLATIONS + "table4_hab.yaml", ("HAB",), _market(68.26, 83.70), base=BASE_4),
    PaperRow("4", "+ PAB", ABLATIONS + "table4_pab.yaml", ("PAB",), _market(69.31, 84.41), base=BASE_4),
    PaperRow("4", "+ HAB + PAB", ABLATIONS + "table4_hab_pab.yaml", ("HAB", "PAB"), _market(70.40, 85.87), base=BASE_4),
    # Table 5: what PAB predicts ("No HAB is used"), printed by the paper as changes over the base
    PaperRow(
        "5",
        "keypoints, no grouping",
        ABLATIONS + "table5_keypoints_ungrouped.yaml",
        ("PAB",),
        None,
        groups="coco1",
        base=BASE_4,
        paper_delta=_market(0.92, 0.03),
    ),
    PaperRow("5", "keypoints, 6 groups", ABLATIONS + "table4_pab.yaml", ("PAB",), None, base=BASE_4, paper_delta=_market(3.83, 1.90)),
    PaperRow(
        "5",
        "part image, 6 stripes",
        ABLATIONS + "table5_part_image_grouped.yaml",
        ("PAB",),
        None,
        target="part_image",
        base=BASE_4,
        paper_delta=_market(2.74, 1.66),
    ),
    # Table 6: number of keypoint groups (HAB + PAB)
    PaperRow("6", "1 group", ABLATIONS + "table6_groups1.yaml", ("HAB", "PAB"), _market(66.40, 82.54), groups="coco1", base=BASE_4),
    PaperRow("6", "4 groups", ABLATIONS + "table6_groups4.yaml", ("HAB", "PAB"), _market(69.31, 84.41), groups="coco4", base=BASE_4),
    PaperRow("6", "6 groups", ABLATIONS + "table4_hab_pab.yaml", ("HAB", "PAB"), _market(70.40, 85.87), base=BASE_4),
    PaperRow("6", "7 groups", ABLATIONS + "table6_groups7.yaml", ("HAB", "PAB"), _market(70.04, 85.72), groups="coco7", base=BASE_4),
    PaperRow("6", "17 groups", ABLATIONS + "table6_groups17.yaml", ("HAB", "PAB"), _market(69.82, 85.12), groups="coco17", base=BASE_4),
    # Table 7: one decoder shared by the groups or one per group (PAB alone), changes over the base
    PaperRow("7", "keypoints, shared decoder", ABLATIONS + "table4_pab.yaml", ("PAB",), None, base=BASE_4, paper_delta=_market(3.83, 1.90)),
    PaperRow(
        "7",
        "keypoints, independent decoders",
        ABLATIONS + "table7_independent_decoders.yaml",
        ("PAB",),
        None,
        shared_decoder=False,
        base=BASE_4,
        paper_delta=_market(1.35, -0.03),
    ),
    PaperRow(
        "7",
        "part image, shared decoder",
        ABLATIONS + "table5_part_image_grouped.yaml",
        ("PAB",),
        None,
        target="part_image",
        base=BASE_4,
        paper_delta=_market(2.74, 1.66),
    ),
    PaperRow(
        "7",
        "part image, independent decoders",
        ABLATIONS + "table7_part_image_independent_decoders.yaml",
        ("PAB",),
        None,
        target="part_image",
        shared_decoder=False,
        base=BASE_4,
        paper_delta=_market(1.33, 0.77),
    ),
)


# What a reader of a table must know about the paper's numbers in it.
TABLE_NOTES = {
    "5": "The paper prints Table 5 as changes over the base network (PAB alone, no HAB).",
    "6": (
        "The paper's 1-group and 4-group numbers equal PAB-only rows (the base network plus Table 5's "
        "ungrouped-keypoints change; Table 4's + PAB), while its 6-group number is Table 4's HAB + PAB row: "
        "the paper does not say whether Table 6 uses HAB. This project runs HAB + PAB for every row of Table 6."
    ),
    "7": "The paper prints Table 7 as changes over the base network (PAB alone, no HAB).",
}


# Occlusion, beyond the paper (DAAF claims robustness to occlusion): Occluded-Duke with its own
# training split, Occluded-REID with the Market-1501 models of Table 2.
ROWS += (
    PaperRow("occlusion", "BoT, OccludedDuke", OCCLUDED + "bot_R50_OccludedDuke.yaml", (), NO_REFERENCE, test=("OccludedDuke",)),
    PaperRow(
        "occlusion",
        "DAAF-BoT, OccludedDuke",
        OCCLUDED + "daaf_bot_R50_OccludedDuke.yaml",
        ("HAB", "PAB"),
        NO_REFERENCE,
        test=("OccludedDuke",),
        base=("occlusion", "BoT, OccludedDuke"),
    ),
    PaperRow(
        "occlusion",
        "BoT, OccludedREID",
        OCCLUDED + "bot_R50_OccludedREID.yaml",
        (),
        NO_REFERENCE,
        test=("OccludedREID",),
        weights_from=("2", "BoT, Market1501"),
    ),
    PaperRow(
        "occlusion",
        "DAAF-BoT, OccludedREID",
        OCCLUDED + "daaf_bot_R50_OccludedREID.yaml",
        ("HAB", "PAB"),
        NO_REFERENCE,
        test=("OccludedREID",),
        base=("occlusion", "BoT, OccludedREID"),
        weights_from=("2", "DAAF-BoT, Market1501"),
    ),
)


def effective_settings(cfg) -> dict:
    """What a loaded config sets of the fields a PaperRow fixes."""
    pab = "PAB" in cfg.MODEL.DAAF.BRANCHES
    return {
        "rerank": bool(cfg.TEST.RERANK.ENABLED),
        "branches": tuple(cfg.MODEL.DAAF.BRANCHES),
        "groups": cfg.MODEL.DAAF.PAB.GROUPS if pab else "coco6",
        "target": cfg.MODEL.DAAF.PAB.TARGET if pab else "keypoints",
        "shared_decoder": bool(cfg.MODEL.DAAF.PAB.SHARED_DECODER) if pab else True,
        "flip": bool(cfg.TEST.FLIP.ENABLED),
        "five_crop": bool(cfg.TEST.FIVE_CROP),
        "test": tuple(cfg.DATASETS.TEST),
    }


def expected_settings(row: PaperRow) -> dict:
    return {k: getattr(row, k) for k in ("branches", "groups", "target", "shared_decoder", "flip", "five_crop", "test", "rerank")}


def find_row(key: Tuple[str, str]) -> PaperRow:
    """The row of ``key`` (table, experiment)."""
    return next(row for row in ROWS if row.key == key)


def format_paper(row: PaperRow) -> str:
    """The paper's numbers of a row as README prints them."""
    if row.paper is None:
        return ", ".join(f"{a:+.2f} / {b:+.2f} over the base network" for _, a, b in row.paper_delta)
    if row.paper == NO_REFERENCE:
        return "- (not in the paper)"
    if len(row.paper) == 1:
        return f"{row.paper[0][1]:.2f} / {row.paper[0][2]:.2f}"
    return ", ".join(f"{name} {a:.2f} / {b:.2f}" for name, a, b in row.paper)


def markdown_table() -> str:
    """README's table of rows: table, experiment, config, test-time augmentation, paper numbers."""
    lines = ["| table | experiment | config | test | paper |", "|---|---|---|---|---|"]
    for row in ROWS:
        if row.table == "2":  # README prints Table 2 as its own table
            continue
        tta = "5 crops x flip" if row.five_crop and row.flip else "flip" if row.flip else "single crop"
        config = f"`{row.config}`" if row.built else "not built here"
        lines.append(f"| {row.table} | {row.experiment} | {config} | {tta} | {format_paper(row)} |")
    return "\n".join(lines)


if __name__ == "__main__":
    print(markdown_table())
