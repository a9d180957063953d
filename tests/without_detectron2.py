"""Run a script or module as on a machine without detectron2, whether or not it is installed:

    python tests/without_detectron2.py tools/train_net.py --config-file ... --pseudo-label
    python tests/without_detectron2.py -m pytest tests/test_detectron2_labeler.py -rs

Every ``import detectron2`` (and of its submodules) then raises ModuleNotFoundError.
"""

import runpy
import sys

if __name__ == "__main__":
    sys.modules["detectron2"] = None
    if len(sys.argv) < 2:
        sys.exit("usage: without_detectron2.py SCRIPT [ARGS...] | -m MODULE [ARGS...]")
    if sys.argv[1] == "-m":
        module, sys.argv = sys.argv[2], sys.argv[2:]
        runpy.run_module(module, run_name="__main__", alter_sys=True)
    else:
        script, sys.argv = sys.argv[1], sys.argv[1:]
        runpy.run_path(script, run_name="__main__")
