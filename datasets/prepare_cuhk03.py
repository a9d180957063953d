#!/usr/bin/env python
"""Extract the images of CUHK03's cuhk-03.mat once, for the new-protocol split files.

    python datasets/prepare_cuhk03.py [--root DATASETS_ROOT]

Reads <root>/cuhk03/cuhk03_release/cuhk-03.mat and writes <root>/cuhk03/images_{labeled,detected}/.
(Not needed for the CUHK03-NP folder release.)
"""

import argparse
import os
import sys


from daaf.data.datasets import extract_cuhk03_images, resolve_datasets_root
from daaf.utils.errors import UserError


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--root", default="", help="datasets root (default: $DAAF_DATASETS or ./datasets)")
    args = parser.parse_args(argv)
    base = os.path.join(resolve_datasets_root(args.root), "cuhk03")
    try:
        counts = extract_cuhk03_images(os.path.join(base, "cuhk03_release", "cuhk-03.mat"), base)
    except UserError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(f"Extracted CUHK03 images into {base}: {counts}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
