"""README's Layout section names the package's folders as they are."""

import os
import re

from conftest import REPO


def layout_block():
    with open(os.path.join(REPO, "README.md")) as f:
        text = f.read()
    section = text.split("## Layout", 1)[1]
    return section.split("```")[1]


def test_readme_layout_names_every_subpackage_and_only_existing_ones():
    block = layout_block()
    named = set(re.findall(r"^daaf/(\w+)", block, re.M))
    subpackages = {d for d in os.listdir(os.path.join(REPO, "daaf")) if os.path.isfile(os.path.join(REPO, "daaf", d, "__init__.py"))}
    assert named == subpackages
    prefix = ""
    for line in block.strip().splitlines():
        if not line.startswith(" "):  # a new entry; its continuation lines are indented
            prefix = line.split()[0].rstrip("/") if line.startswith("daaf/") else ""
        for folder in re.findall(r"(?<![\w/])([A-Za-z_]+(?:/[A-Za-z_]+)*)/(?=[\s),]|$)", line):
            where = os.path.join(REPO, prefix, folder) if prefix and not folder.startswith("daaf") else os.path.join(REPO, folder)
            assert os.path.isdir(where), f"README Layout names {folder}/, which is not a folder ({where})"
