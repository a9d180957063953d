"""Rank a gallery of crops for each query crop with a trained model: prints each query's top-k and
draws them as a ranked-list picture. Distances follow TEST.METRIC. With --faiss (needs faiss-cpu or
faiss-gpu) the gallery goes into a flat faiss index, for very large galleries.

    python tools/search.py --config-file configs/Synthetic/trinet_R18.yaml --query person.jpg \
        --gallery 'camera2/*.jpg' --top-k 10 --output search.png MODEL.WEIGHTS model_final.pth
"""

import os
import sys

import numpy as np
import torch

from daaf.data import read_image
from daaf.data.image_list import list_image_files
from daaf.engine import (
    FeatureExtractor,
    check_output_file,
    inference_argument_parser,
    inference_config,
    positive_int,
    run_command_line,
)
from daaf.evaluation import compute_distance_chunks, top_k
from daaf.evaluation.distance import paired_distance, prepare_features
from daaf.utils.errors import UserError
from daaf.utils.visualization import image_grid, ranked_list_row, save_image


def top_k_exact(query: np.ndarray, gallery: np.ndarray, metric: str, k: int):
    """(indices, distances) (Q, k) of the k nearest gallery features, chunked over queries."""
    parts = [top_k(dist, k) for dist, _ in compute_distance_chunks(torch.from_numpy(query), torch.from_numpy(gallery), metric)]
    return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])


def import_faiss():
    """The faiss module, or a one-line UserError saying how to install it."""
    try:
        import faiss
    except ImportError:
        raise UserError("--faiss: faiss is not installed (pip install faiss-cpu)") from None
    return faiss


def top_k_faiss(query: np.ndarray, gallery: np.ndarray, metric: str, k: int):
    """The same through a flat faiss L2 index over the features as the metric compares them (on
    L2-normalised features, L2 order is cosine order); the distances of the neighbours found are
    then the metric's own (daaf.evaluation.distance)."""
    faiss = import_faiss()
    query, gallery = prepare_features(query, metric), prepare_features(gallery, metric)
    index = faiss.IndexFlatL2(gallery.shape[1])
    index.add(np.ascontiguousarray(gallery.numpy()))
    _, indices = index.search(np.ascontiguousarray(query.numpy()), k)
    rows = torch.arange(len(query)).repeat_interleave(k)
    distances = paired_distance(query[rows], gallery[torch.from_numpy(indices).flatten()], metric).reshape(len(query), k)
    return indices, distances.numpy().astype(np.float32)


def main(args):
    check_output_file(args.output, (".png", ".jpg", ".jpeg"))
    if args.faiss:
        import_faiss()  # before any feature is extracted
    cfg = inference_config(args.config_file, args.opts)
    extractor = FeatureExtractor(cfg, num_workers=args.workers)
    query_names, gallery_names = list_image_files(args.query), list_image_files(args.gallery)
    query, gallery = extractor(query_names, as_numpy=True), extractor(gallery_names, as_numpy=True)
    k = min(args.top_k, len(gallery_names))
    search = top_k_faiss if args.faiss else top_k_exact
    indices, distances = search(query, gallery, cfg.TEST.METRIC, k)
    rows = []
    for q, name in enumerate(query_names):
        print(f"{name}:")
        for rank, (g, d) in enumerate(zip(indices[q], distances[q]), start=1):
            print(f"  {rank:>3}  {d:.4f}  {gallery_names[g]}")
        if q < args.max_rows:
            gallery_images = [read_image(gallery_names[g]) for g in indices[q]]
            rows.append(ranked_list_row(read_image(name), gallery_images, distances[q], None, os.path.basename(name)))
    save_image(args.output, image_grid(rows))
    print(f"Ranked lists of {len(rows)} queries drawn in {args.output}")


def parser():
    p = inference_argument_parser(__doc__)
    p.add_argument("--query", nargs="+", required=True, help="query crops: folders, globs or files")
    p.add_argument("--gallery", nargs="+", required=True, help="gallery crops: folders, globs or files")
    p.add_argument("--top-k", type=positive_int, default=10)
    p.add_argument("--output", default="search.png", help="the picture to write (default: search.png)")
    p.add_argument("--max-rows", type=positive_int, default=20, help="queries drawn in the picture (all are printed)")
    p.add_argument("--faiss", action="store_true", help="search a flat faiss index instead of exact chunked distances")
    p.add_workers_argument()
    return p


def cli() -> int:
    """The command line (``daaf-search``, ``python -m daaf.tools.search``, ``python tools/search.py``); the exit code."""
    return run_command_line(main, parser)


if __name__ == "__main__":
    sys.exit(cli())
