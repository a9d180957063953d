"""README's registry example, copied as a user copies it: the module and the YAML file are cut from
README.md, written to a folder of their own and used from there in a fresh interpreter."""

import os
import re
import subprocess
import sys
import textwrap

from conftest import REPO


def readme_block(first_line: str) -> str:
    """The fenced block of README.md whose first line is ``first_line``."""
    with open(os.path.join(REPO, "README.md")) as f:
        text = f.read()
    blocks = re.findall(r"```(?:python|yaml)\n(.*?)```", text, flags=re.S)
    matching = [b for b in blocks if b.startswith(first_line + "\n") or b.startswith(first_line + ":")]
    assert len(matching) == 1, f"README.md has {len(matching)} blocks starting with {first_line!r}"
    return matching[0]


def test_the_readme_registry_example_builds_trains_and_embeds(tmp_path):
    (tmp_path / "my_components.py").write_text(readme_block("# my_components.py"))
    config = readme_block("# my_config.yaml")
    base = re.search(r'_BASE_: "(.*)"', config).group(1)
    assert os.path.isfile(os.path.join(REPO, base)), base
    (tmp_path / "my_config.yaml").write_text(config.replace(base, os.path.join(REPO, base)))
    code = textwrap.dedent(
        """
        import torch, torch.nn.functional as F
        from daaf.config import build_config
        from daaf.modeling import build_model
        from daaf.data import ReIDBatch

        cfg = build_config("my_config.yaml", ["MODEL.HEADS.NUM_CLASSES", "4"])
        model = build_model(cfg)
        images = torch.randint(0, 255, (8, 3, 64, 32), dtype=torch.uint8)
        batch = ReIDBatch(images=images, pids=torch.arange(4).repeat_interleave(2),
                          camids=torch.zeros(8, dtype=torch.int64), file_names=[""] * 8)
        losses = model(batch)
        sum(losses.values()).backward()
        model.eval()
        with torch.no_grad():
            embedding = model(batch)
            fmap = model.backbone(model.preprocess_image(batch))[model.head_in_feature].clamp(min=1e-6)
            gem = fmap.pow(4.0).mean(dim=(2, 3)).pow(0.25)
        try:
            build_config("my_config.yaml", ["MODEL.GEM_HEAD.P", "0.5"])
        except ValueError as e:
            refused = str(e)
        print(type(model.heads).__name__, model.heads.p, sorted(losses), tuple(embedding.shape),
              torch.allclose(embedding, gem, rtol=1e-4, atol=1e-5))
        print(refused)
        """
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path, timeout=120)
    assert proc.returncode == 0, proc.stderr
    first, refused = proc.stdout.splitlines()[:2]
    assert first.split() == ["GeMHead", "4.0", "['loss_center',", "'loss_cls',", "'loss_triplet']", "(8,", "512)", "True"]
    assert refused == "MODEL.GEM_HEAD.P: 0.5 is not allowed; expected a number >= 1"
