#!/usr/bin/env python
"""The paper's ablation and partial-ReID tables (Tables 3-7) as rows: the config that runs each row,
the settings that row needs (branches, PAB groups / target / decoders, test-time augmentation, test
datasets) and the paper's numbers. projects/DAAF/README.md's tables are printed from here, and a
test checks every config against its row:

    python projects/DAAF/paper_tables.py          # the Markdown table README shows
"""

from dataclasses import dataclass
from typing import Optional, Tuple

SEE_PAPER = None  # numbers of the paper's Tables 5 and 7, not copied here yet


@dataclass(frozen=True)
class PaperRow:
    """One row of a paper table and what its config must set.

    paper: {test dataset: (first metric, second metric)} as the paper prints them (mAP / Rank-1 for
    Tables 4-7, Rank-1 / Rank-3 for Table 3), or SEE_PAPER. groups / target / shared_decoder only
    concern rows with PAB. flip / five_crop: the test-time augmentation of the evaluation.
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


ABLATIONS = "projects/DAAF/configs/"
PARTIAL = ("PartialREID", "PartialiLIDS")


def _market(map_: float, rank1: float):
    return (("Market1501", map_, rank1),)


ROWS = (
    # Table 3: partial ReID, trained on Market-1501 (Rank-1 / Rank-3), each model's Table 2 test
    PaperRow("3", "TriNet", "configs/Partial/trinet_R50.yaml", (), SEE_PAPER, flip=True, five_crop=True, test=PARTIAL),
    PaperRow(
        "3", "DAAF-TriNet", "configs/Partial/daaf_trinet_R50.yaml", ("HAB", "PAB"), SEE_PAPER, flip=True, five_crop=True, test=PARTIAL
    ),
    PaperRow("3", "BoT", "configs/Partial/bot_R50.yaml", (), (("PartialREID", 57.3, 65.3), ("PartialiLIDS", 51.3, 63.9)), test=PARTIAL),
    PaperRow(
        "3",
        "DAAF-BoT",
        "configs/Partial/daaf_bot_R50.yaml",
        ("HAB", "PAB"),
        (("PartialREID", 60.7, 68.7), ("PartialiLIDS", 53.8, 72.3)),
        test=PARTIAL,
    ),
    # Table 4: the branches (TriNet on Market-1501, single crop)
    PaperRow("4", "base network", ABLATIONS + "table4_base.yaml", (), _market(65.48, 82.51)),
    PaperRow("4", "+ HAB", ABLATIONS + "table4_hab.yaml", ("HAB",), _market(68.26, 83.70)),
    PaperRow("4", "+ PAB", ABLATIONS + "table4_pab.yaml", ("PAB",), _market(69.31, 84.41)),
    PaperRow("4", "+ HAB + PAB", ABLATIONS + "table4_hab_pab.yaml", ("HAB", "PAB"), _market(70.40, 85.87)),
    # Table 5: what PAB predicts ("No HAB is used"; the reference row is PAB alone, +3.83 / +1.90)
    PaperRow("5", "keypoints, no grouping", ABLATIONS + "table5_keypoints_ungrouped.yaml", ("PAB",), SEE_PAPER, groups="coco1"),
    PaperRow("5", "keypoints, 6 groups", ABLATIONS + "table4_pab.yaml", ("PAB",), _market(69.31, 84.41)),
    PaperRow("5", "part image, 6 stripes", ABLATIONS + "table5_part_image_grouped.yaml", ("PAB",), SEE_PAPER, target="part_image"),
    # Table 6: number of keypoint groups (HAB + PAB)
    PaperRow("6", "1 group", ABLATIONS + "table6_groups1.yaml", ("HAB", "PAB"), _market(66.40, 82.54), groups="coco1"),
    PaperRow("6", "4 groups", ABLATIONS + "table6_groups4.yaml", ("HAB", "PAB"), _market(69.31, 84.41), groups="coco4"),
    PaperRow("6", "6 groups", ABLATIONS + "table4_hab_pab.yaml", ("HAB", "PAB"), _market(70.40, 85.87)),
    PaperRow("6", "7 groups", ABLATIONS + "table6_groups7.yaml", ("HAB", "PAB"), _market(70.04, 85.72), groups="coco7"),
    PaperRow("6", "17 groups", ABLATIONS + "table6_groups17.yaml", ("HAB", "PAB"), _market(69.82, 85.12), groups="coco17"),
    # Table 7: one decoder shared by the groups or one per group (PAB alone)
    PaperRow("7", "keypoints, shared decoder", ABLATIONS + "table4_pab.yaml", ("PAB",), _market(69.31, 84.41)),
    PaperRow(
        "7", "keypoints, independent decoders", ABLATIONS + "table7_independent_decoders.yaml", ("PAB",), SEE_PAPER, shared_decoder=False
    ),
    PaperRow("7", "part image, shared decoder", ABLATIONS + "table5_part_image_grouped.yaml", ("PAB",), SEE_PAPER, target="part_image"),
    PaperRow(
        "7",
        "part image, independent decoders",
        ABLATIONS + "table7_part_image_independent_decoders.yaml",
        ("PAB",),
        SEE_PAPER,
        target="part_image",
        shared_decoder=False,
    ),
)


def effective_settings(cfg) -> dict:
    """What a loaded config sets of the fields a PaperRow fixes."""
    pab = "PAB" in cfg.MODEL.DAAF.BRANCHES
    return {
        "branches": tuple(cfg.MODEL.DAAF.BRANCHES),
        "groups": cfg.MODEL.DAAF.PAB.GROUPS if pab else "coco6",
        "target": cfg.MODEL.DAAF.PAB.TARGET if pab else "keypoints",
        "shared_decoder": bool(cfg.MODEL.DAAF.PAB.SHARED_DECODER) if pab else True,
        "flip": bool(cfg.TEST.FLIP.ENABLED),
        "five_crop": bool(cfg.TEST.FIVE_CROP),
        "test": tuple(cfg.DATASETS.TEST),
    }


def expected_settings(row: PaperRow) -> dict:
    return {k: getattr(row, k) for k in ("branches", "groups", "target", "shared_decoder", "flip", "five_crop", "test")}


def format_paper(row: PaperRow) -> str:
    if row.paper is SEE_PAPER:
        return "see paper"
    if len(row.paper) == 1:
        return f"{row.paper[0][1]:.2f} / {row.paper[0][2]:.2f}"
    return ", ".join(f"{name} {a} / {b}" for name, a, b in row.paper)


def markdown_table() -> str:
    """README's table of rows: table, experiment, config, test-time augmentation, paper numbers."""
    lines = ["| table | experiment | config | test | paper |", "|---|---|---|---|---|"]
    for row in ROWS:
        tta = "5 crops x flip" if row.five_crop and row.flip else "flip" if row.flip else "single crop"
        lines.append(f"| {row.table} | {row.experiment} | `{row.config}` | {tta} | {format_paper(row)} |")
    return "\n".join(lines)


if __name__ == "__main__":
    print(markdown_table())
