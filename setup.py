"""What pyproject.toml cannot say: the packages, found under their folders, and the bundled samples.

`datasets/samples` (photos and paintings, with their sources) travels inside the wheel as the data-only
package `fastst._samples`, so an installed fastst has its default training photos and the style images
that `fastst infer --refine` looks up; `fastst.samples` looks there before the checkout's folder. The
rest of `datasets/` (download recipes) is not installed, and no top-level `datasets` package ever is.
"""
from setuptools import find_packages, setup

# folders of data only are listed as packages too, as setuptools asks, so their files are package data
DATA_PACKAGES = ["fastst.pretrained", "fastst._samples", "fastst._samples.photos", "fastst._samples.styles"]

setup(
    packages=find_packages(include=["fastst", "fastst.*", "gatys", "gatys.*", "export", "export.*"]) + DATA_PACKAGES,
    package_dir={"fastst._samples": "datasets/samples"},
    package_data={"fastst.pretrained": ["*.fst"], "fastst._samples": ["SOURCES.md"], "export": ["web_assets/*"],
                  "fastst._samples.photos": ["*.jpg"], "fastst._samples.styles": ["*.jpg"]},
)
