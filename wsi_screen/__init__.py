"""wsi-screen: screening pipeline for bone-marrow and blood smears.

Finds white cells in microscope fields and whole-slide scans, classifies them into the Matek 2021
bone-marrow classes, and writes reports that support a morphologist's review (not a diagnosis).
Importing the package has no side effects; heavy dependencies load lazily.
"""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["__version__"]
