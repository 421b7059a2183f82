"""Write small DICOM whole-slide series (VL Whole Slide Microscopy) with pydicom, for the reader tests.

One file per pyramid level (a series split over several instance files), TILED_FULL frames,
uncompressed, JPEG baseline, JPEG 2000 or JPEG-LS.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

WSI = "1.2.840.10008.5.1.4.1.1.77.1.6"


def _jpeg(tile: NDArray[np.uint8]) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(tile).save(buf, format="JPEG", quality=95)
    return buf.getvalue()


def _j2k(tile: NDArray[np.uint8]) -> bytes:
    import imagecodecs

    return bytes(imagecodecs.jpeg2k_encode(tile, level=0, codecformat="J2K"))


def _jpegls(tile: NDArray[np.uint8]) -> bytes:
    import imagecodecs

    return bytes(imagecodecs.jpegls_encode(tile))


CODECS: dict[str, tuple[str, Callable[[NDArray[np.uint8]], bytes] | None, str]] = {
    # name: (transfer syntax, encoder (None: native), photometric interpretation)
    "native": ("1.2.840.10008.1.2.1", None, "RGB"),
    "jpeg": ("1.2.840.10008.1.2.4.50", _jpeg, "YBR_FULL_422"),
    "jpeg2000": ("1.2.840.10008.1.2.4.90", _j2k, "RGB"),
    "jpegls": ("1.2.840.10008.1.2.4.80", _jpegls, "RGB"),
}


def tiles_of(img: NDArray[np.uint8], tile: int) -> list[NDArray[np.uint8]]:
    """Row-major tiles of ``img``, the edge ones padded with white to the full tile size."""
    h, w = img.shape[:2]
    out = []
    for y in range(0, h, tile):
        for x in range(0, w, tile):
            t = np.full((tile, tile, 3), 255, np.uint8)
            part = img[y : y + tile, x : x + tile]
            t[: part.shape[0], : part.shape[1]] = part
            out.append(t)
    return out


def write_instance(
    path: Path,
    img: NDArray[np.uint8],
    *,
    mpp: float | None,
    tile: int,
    codec: str = "native",
    series: str = "1.2.3.4.5.6",
    study: str = "1.2.3.4.5",
    instance: str = "1.2.3.4.5.6.1",
    image_type: str = "VOLUME",
    frames: list[bytes] | None = None,
    declared: tuple[int, int] | None = None,
) -> Path:
    """Write one level of a slide as one DICOM instance file; ``frames`` overrides the encoded tiles."""
    from pydicom.dataset import Dataset
    from pydicom.dataset import FileMetaDataset
    from pydicom.encaps import encapsulate
    from pydicom.sequence import Sequence
    from pydicom.uid import UID

    syntax, encode, photometric = CODECS[codec]
    tiles = tiles_of(img, tile)
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = UID(WSI)
    meta.MediaStorageSOPInstanceUID = UID(instance)
    meta.TransferSyntaxUID = UID(syntax)
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID = UID(WSI)
    ds.SOPInstanceUID = UID(instance)
    ds.StudyInstanceUID = UID(study)
    ds.SeriesInstanceUID = UID(series)
    ds.FrameOfReferenceUID = UID(study + ".9")
    ds.Modality = "SM"
    ds.ImageType = ["ORIGINAL", "PRIMARY", image_type, "NONE"]
    ds.DimensionOrganizationType = "TILED_FULL"
    h, w = img.shape[:2]
    ds.TotalPixelMatrixColumns, ds.TotalPixelMatrixRows = declared or (w, h)
    ds.Rows = ds.Columns = tile
    ds.NumberOfFrames = len(tiles) if frames is None else len(frames)
    ds.SamplesPerPixel = 3
    ds.PhotometricInterpretation = photometric
    ds.PlanarConfiguration = 0
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 8, 8, 7, 0
    ds.TotalPixelMatrixFocalPlanes = 1
    ds.NumberOfOpticalPaths = 1
    path_item = Dataset()
    path_item.OpticalPathIdentifier = "0"
    ds.OpticalPathSequence = Sequence([path_item])
    if mpp is not None:
        measures = Dataset()
        measures.PixelSpacing = [mpp / 1000.0, mpp / 1000.0]
        measures.SliceThickness = 0.001
        shared = Dataset()
        shared.PixelMeasuresSequence = Sequence([measures])
        ds.SharedFunctionalGroupsSequence = Sequence([shared])
        ds.ImagedVolumeWidth = w * mpp / 1000.0
        ds.ImagedVolumeHeight = h * mpp / 1000.0
    if frames is None and encode is None:
        ds.PixelData = b"".join(t.tobytes() for t in tiles)
    else:
        encoded = frames if frames is not None else [encode(t) for t in tiles]  # type: ignore[misc]
        ds.PixelData = encapsulate(encoded)
        ds["PixelData"].VR = "OB"
        ds.LossyImageCompression = "01" if codec == "jpeg" else "00"
    ds.save_as(path, enforce_file_format=True)
    return path


def write_series(
    folder: Path,
    img: NDArray[np.uint8],
    *,
    mpp: float = 0.5,
    tile: int = 64,
    levels: int = 2,
    codec: str = "native",
) -> list[Path]:
    """A pyramid of ``levels`` levels (each half the last), one instance file per level, in ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    out = []
    level = img
    for i in range(levels):
        out.append(
            write_instance(
                folder / f"level{i}.dcm",
                level,
                mpp=mpp * 2**i,
                tile=tile,
                codec=codec,
                instance=f"1.2.3.4.5.6.{i + 1}",
            )
        )
        level = level[: level.shape[0] // 2 * 2 : 2, : level.shape[1] // 2 * 2 : 2]
    return out
