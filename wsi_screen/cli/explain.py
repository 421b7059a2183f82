"""``wsi-screen explain``: Grad-CAM / SmoothGrad maps of single patches and a feature embedding."""

from __future__ import annotations

import json
from pathlib import Path

import click

from wsi_screen.cli.options import CommandError
from wsi_screen.cli.options import output_option
from wsi_screen.cli.options import torch_device_option


@click.command(short_help="Grad-CAM / SmoothGrad maps and feature embeddings.")
@click.argument("model")
@click.argument("images", nargs=-1, type=click.Path(path_type=Path, exists=True, dir_okay=False))
@output_option(
    "Folder for the maps (<image>_<method>.png and .npy), explanations.json and the embedding files"
)
@click.option(
    "--method",
    type=click.Choice(["gradcam", "smoothgrad"]),
    default="gradcam",
    show_default=True,
    help="Saliency method: Grad-CAM on the last feature map, or SmoothGrad (averaged noisy gradients).",
)
@click.option("--target", default=None, help="Class code to explain (default: the predicted one).")
@click.option(
    "--mpp",
    type=click.FloatRange(min=0, min_open=True),
    default=None,
    help="Microns per pixel of the images (rescaled to the model's scale); without "
    "it, images of another size are resized whole to the patch size.",
)
@click.option(
    "--embedding",
    "embed_data",
    type=click.Path(path_type=Path, exists=True, file_okay=False),
    default=None,
    help="Also embed the penultimate features of this labelled folder (class "
    "folders) in 2-D, coloured by class: embedding.png and embedding.csv.",
)
@click.option(
    "--embed",
    "embed_method",
    type=click.Choice(["auto", "umap", "pca"]),
    default="auto",
    show_default=True,
    help="auto: UMAP when installed, else PCA.",
)
@click.option("--scheme", default=None, help="Label mapping of the --embedding folder.")
@click.option(
    "--only",
    type=click.Path(path_type=Path, exists=True, dir_okay=False),
    default=None,
    help="Embed only the listed files of the --embedding folder.",
)
@torch_device_option
def explain(
    model: str,
    images: tuple[Path, ...],
    out: Path,
    method: str,
    target: str | None,
    mpp: float | None,
    embed_data: Path | None,
    embed_method: str,
    scheme: str | None,
    only: Path | None,
    device: str,
) -> None:
    """Explain MODEL's decisions on IMAGE files (maps written to -o); optionally embed a folder.

    Unreadable images are named on stderr and make the exit code 1; the others are explained.
    A model, target class, scheme or folder that cannot be used exits 2.

    \b
    Examples:
      wsi-screen explain default BLA_00001.jpg -o out --method smoothgrad
      wsi-screen explain default -o out --embedding ../shared/data/matek_bm
    """  # noqa: D301 - click needs a real \b (backspace) to keep the example lines unwrapped
    from tqdm.auto import tqdm

    from wsi_screen.classifiers import resolve_model
    from wsi_screen.classifiers.timm_classifier import TimmClassifier
    from wsi_screen.errors import WsiScreenError
    from wsi_screen.io import atomic_write_npy
    from wsi_screen.io import atomic_write_text
    from wsi_screen.training.datasets import load_patches
    from wsi_screen.training.explain import explain_patches
    from wsi_screen.training.explain import overlay_figure

    if not images and embed_data is None:
        msg = "give IMAGE files to explain and/or --embedding DATA"
        raise click.UsageError(msg)
    try:
        bundle = resolve_model(model)
        clf = TimmClassifier(bundle, device=device)
        scale = None if mpp is None else mpp / bundle.mpp
        out.mkdir(parents=True, exist_ok=True)
        records = []
        written: list[str] = []  # one line per image or file written, printed at the end
        unreadable: list[tuple[int, str]] = []
        if images:
            patches = load_patches(
                list(images),
                patch_size_px=bundle.patch_size_px,
                scale=scale,
                errors=unreadable,
                progress="loading images",
            )
            for _, msg in unreadable:
                click.echo(f"FAILED  {msg}", err=True)
            bad = {i for i, _ in unreadable}
            readable = [img for i, img in enumerate(images) if i not in bad]
            patches = patches[[i for i in range(len(images)) if i not in bad]]
            pairs = zip(readable, patches, strict=True)
            bar = tqdm(pairs, total=len(readable), desc="images explained", leave=False, disable=None)
            for img, patch in bar:
                exp = explain_patches(clf, patch[None], method=method, target=target)[0]
                stem = f"{img.stem}_{method}"
                overlay_figure(patch, exp, out / f"{stem}.png", title=img.name)
                atomic_write_npy(out / f"{stem}.npy", exp.map)
                records.append(
                    {
                        "image": str(img),
                        "predicted": exp.predicted,
                        "target": exp.target,
                        "method": method,
                        "probs": dict(
                            zip(bundle.class_names, [round(float(p), 5) for p in exp.probs], strict=True)
                        ),
                        "map": f"{stem}.npy",
                        "figure": f"{stem}.png",
                    }
                )
                written.append(
                    f"{img.name}: {exp.predicted} ({exp.probs.max():.3f}) -> "
                    f"{out / (stem + '.png')}, {out / (stem + '.npy')}"
                )
            atomic_write_text(out / "explanations.json", json.dumps(records, indent=2) + "\n")
            written.append(f"wrote {out / 'explanations.json'}")
        if embed_data is not None:
            written.append(
                _embed(clf, embed_data, out, scheme=scheme, only=only, scale=scale, method=embed_method)
            )
    except WsiScreenError as e:
        raise CommandError(str(e)) from e
    for line in written:
        click.echo(line)
    if unreadable:
        click.echo(f"{len(unreadable)} of {len(images)} image(s) could not be read", err=True)
        raise SystemExit(1)


def _embed(
    clf: object,
    data: Path,
    out: Path,
    *,
    scheme: str | None,
    only: Path | None,
    scale: float | None,
    method: str,
) -> str:
    """Embed the penultimate features of the labelled folder ``data``; return what was written."""
    import csv
    import io

    from tqdm.auto import tqdm

    from wsi_screen.io import atomic_write_text
    from wsi_screen.training.datasets import load_patches
    from wsi_screen.training.datasets import scan_folder
    from wsi_screen.training.evaluate import select_files
    from wsi_screen.training.explain import embed_2d
    from wsi_screen.training.explain import penultimate_features
    from wsi_screen.training.explain import plot_embedding
    from wsi_screen.training.schemes import load_scheme

    ps = scan_folder(data, load_scheme(scheme) if scheme else None)
    if only is not None:
        ps = select_files(ps, only)
    bundle = clf.bundle  # type: ignore[attr-defined]
    feats = []
    with tqdm(total=len(ps.items), desc="images embedded", unit="image", leave=False, disable=None) as bar:
        for s in range(0, len(ps.items), 512):
            arr = load_patches(ps.paths[s : s + 512], patch_size_px=bundle.patch_size_px, scale=scale)
            feats.append(penultimate_features(clf, arr))  # type: ignore[arg-type]
            bar.update(len(arr))
    import numpy as np

    xy, used = embed_2d(np.concatenate(feats), method=method)
    labels = [str(it.target) for it in ps.items]
    plot_embedding(
        xy,
        labels,
        out / "embedding.png",
        title=f"{used.upper()} of penultimate features, {bundle.name or 'model'}",
    )
    from wsi_screen.textsafe import csv_cell

    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(["path", "class", "x", "y"])
    for it, (x, y) in zip(ps.items, xy, strict=True):  # names and classes are never formulas
        w.writerow(
            [csv_cell(str(it.path.relative_to(ps.root))), csv_cell(str(it.target)), f"{x:.4f}", f"{y:.4f}"]
        )
    atomic_write_text(out / "embedding.csv", buf.getvalue())
    return f"embedded {len(labels)} images with {used} -> {out / 'embedding.png'}, {out / 'embedding.csv'}"
